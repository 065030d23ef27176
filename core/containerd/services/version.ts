// containerd.services.version.v1.Version
import { defineService, unary } from "../grpc";
import { CONTAINERD_REVISION, CONTAINERD_VERSION } from "../version";

export interface VersionResponse {
  version: string;
  revision: string;
}

export const versionService = () =>
  defineService("containerd.services.version.v1.Version", {
    Version: unary<object, VersionResponse>(() => ({ version: CONTAINERD_VERSION, revision: CONTAINERD_REVISION })),
  });
