// containerd's plugin model, reduced to what we use: a plugin has a type and an id, is
// initialised once at startup (in list order) with an InitContext, and yields an instance other
// plugins fetch with `ic.get(type, id)`. gRPC plugins (type io.containerd.grpc.v1) yield the
// services they serve. The introspection service lists every plugin that is not `hidden`, with
// its exports, platforms, capabilities, and its init error if it failed (status "error" in
// `ctr plugins ls`, or "skip" when it threw SkipPlugin).
//
// How a new service plugs in (e.g. the content store):
//
//   // core/containerd/plugins.ts, in PLUGINS, after the metadata plugin:
//   { type: PluginType.Content, id: "content",
//     init: (ic) => new ContentStore(ic.root) },                          // <root>/io.containerd.content.v1.content
//   { type: PluginType.GRPC, id: "content", requires: [PluginType.Content, PluginType.Metadata],
//     init: (ic) => ({ services: [contentService(ic.get(PluginType.Content), ic.get(PluginType.Metadata), ic.get(PluginType.Event))] }) },
//
// Any containerd service no plugin serves is answered by a stub (UNIMPLEMENTED, "... is not
// implemented by bunker's containerd yet"), so nothing else changes.
import type { Config } from "./config";
import type { Logger } from "./log";
import type { ServiceImpl } from "./grpc";
import type { Platform } from "./types";

export const PluginType = {
  Content: "io.containerd.content.v1",
  Snapshot: "io.containerd.snapshotter.v1",
  Metadata: "io.containerd.metadata.v1",
  Event: "io.containerd.event.v1",
  Differ: "io.containerd.differ.v1",
  GC: "io.containerd.gc.v1",
  Service: "io.containerd.service.v1",
  GRPC: "io.containerd.grpc.v1",
  Runtime: "io.containerd.runtime.v2",
  Internal: "io.containerd.internal.v1",
} as const;

/** Thrown by init to skip a plugin (listed with status "skip"). */
export class SkipPlugin extends Error {
  constructor(reason: string) {
    super(`skip plugin: ${reason}`);
  }
}

export interface InitContext {
  /** This plugin's directory under --root: <root>/<type>.<id> (not created for you). */
  readonly root: string;
  /** This plugin's directory under --state: <state>/<type>.<id> (not created for you). */
  readonly state: string;
  /** The daemon's configuration; `pluginConfig` is this plugin's [plugins."<type>.<id>"] table. */
  readonly config: Config;
  readonly pluginConfig: Record<string, unknown>;
  readonly address: string;
  readonly log: Logger;
  /** Shown by `ctr plugins ls -d` (e.g. root, path). */
  readonly exports: Record<string, string>;
  readonly platforms: Platform[];
  readonly capabilities: string[];
  /** The instance of a loaded plugin of `type` (with `id`, or the first one); throws when none loaded. */
  get<T>(type: string, id?: string): T;
  /** Every loaded instance of a type, by id. */
  getAll<T>(type: string): Map<string, T>;
  /** Run when the daemon starts stopping, before in-flight calls drain (end long-lived streams here). */
  onStop(fn: () => void | Promise<void>): void;
  /** Run once the server has stopped, last registered first (release resources here). */
  onClose(fn: () => void | Promise<void>): void;
}

export interface PluginRegistration<T = unknown> {
  type: string;
  id: string;
  requires?: string[];
  /** Not listed by the introspection service. */
  hidden?: boolean;
  init(ic: InitContext): T | Promise<T>;
}

/** What a gRPC plugin's init returns. */
export interface GrpcPlugin {
  services: ServiceImpl[];
}

export interface LoadedPlugin {
  reg: PluginRegistration;
  instance?: unknown;
  error?: Error;
  exports: Record<string, string>;
  platforms: Platform[];
  capabilities: string[];
}

export const pluginURI = (p: { type: string; id: string }) => `${p.type}.${p.id}`;

/** The host platform as containerd formats it (linux/amd64, linux/arm64/v8...). */
export function hostPlatform(): Platform {
  const arch = ({ x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" } as Record<string, string>)[process.arch] ?? process.arch;
  return { os: "linux", architecture: arch, variant: arch === "arm64" ? "v8" : "" };
}
