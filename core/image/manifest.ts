// Image manifests and configs: the wire formats of Docker's image manifest v2 schema 2 and
// manifest list, the OCI image manifest and index (image-spec v1.1), and the image config
// (Docker's container image v1 / OCI's image config). Parsing validates the shape the way
// containerd does before trusting a field, and picks the manifest for a platform from a list or
// index as containerd's images.Manifest does (platform matcher, best first).

import { parseDigest } from "./reference";
import { formatPlatform, normalizePlatform, type Platform, type PlatformMatcher } from "./platform";

// ---------------------------------------------------------------------------------------------
// Media types

export const MediaType = {
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  DockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerPluginConfig: "application/vnd.docker.plugin.v1+json",
  DockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerLayerZstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  DockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  OCIManifest: "application/vnd.oci.image.manifest.v1+json",
  OCIIndex: "application/vnd.oci.image.index.v1+json",
  OCIConfig: "application/vnd.oci.image.config.v1+json",
  OCILayer: "application/vnd.oci.image.layer.v1.tar",
  OCILayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OCILayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OCILayerNonDistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  OCILayerNonDistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  OCILayerNonDistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  OCIEmpty: "application/vnd.oci.empty.v1+json",
} as const;

/** The manifest media types a registry client accepts, in containerd's order. */
export const MANIFEST_ACCEPT = [
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
  MediaType.OCIManifest,
  MediaType.OCIIndex,
] as const;

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MediaType.DockerManifest || mt === MediaType.OCIManifest;
}
export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MediaType.DockerManifestList || mt === MediaType.OCIIndex;
}
export function isSchema1MediaType(mt: string | undefined): boolean {
  return mt === MediaType.DockerSchema1 || mt === MediaType.DockerSchema1Signed;
}
export function isConfigMediaType(mt: string | undefined): boolean {
  return mt === MediaType.DockerConfig || mt === MediaType.OCIConfig;
}

export type LayerCompression = "none" | "gzip" | "zstd";

/** The compression of a layer media type, or undefined if it is not a layer type we know. */
export function layerCompression(mt: string): LayerCompression | undefined {
  switch (mt) {
    case MediaType.DockerLayer:
    case MediaType.OCILayer:
    case MediaType.OCILayerNonDistributable:
      return "none";
    case MediaType.DockerLayerGzip:
    case MediaType.DockerForeignLayerGzip:
    case MediaType.OCILayerGzip:
    case MediaType.OCILayerNonDistributableGzip:
      return "gzip";
    case MediaType.DockerLayerZstd:
    case MediaType.OCILayerZstd:
    case MediaType.OCILayerNonDistributableZstd:
      return "zstd";
  }
  return undefined;
}

/** Layers a registry may not serve (foreign / non-distributable: fetched from `urls`). */
export function isNonDistributable(mt: string): boolean {
  return mt === MediaType.DockerForeignLayerGzip || mt.startsWith("application/vnd.oci.image.layer.nondistributable.");
}

// ---------------------------------------------------------------------------------------------
// Wire types

/** OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

/** Docker schema 2 manifest / OCI image manifest. */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** Docker manifest list / OCI image index. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The runtime part of an image config (OCI ImageConfig plus Docker's extra fields). */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  // Docker-only
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
  Shell?: string[];
  Hostname?: string;
  Domainname?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Image?: string;
  StopTimeout?: number;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** Image config: application/vnd.oci.image.config.v1+json and application/vnd.docker.container.image.v1+json. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: HistoryEntry[];
  // Docker-only
  id?: string;
  parent?: string;
  comment?: string;
  container?: string;
  container_config?: ContainerConfig;
  docker_version?: string;
}

export class ManifestError extends Error {
  override name = "ManifestError";
}

// ---------------------------------------------------------------------------------------------
// Validation

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkStringMap(v: unknown, what: string): void {
  if (v === undefined) return;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== "string")) {
    throw new ManifestError(`${what}: must be an object of strings`);
  }
}

function checkPlatform(v: unknown, what: string): asserts v is Platform {
  if (!isObject(v)) throw new ManifestError(`${what}: platform must be an object`);
  if (typeof v.architecture !== "string" || typeof v.os !== "string") {
    throw new ManifestError(`${what}: platform needs "architecture" and "os" strings`);
  }
  if (v.variant !== undefined && typeof v.variant !== "string") throw new ManifestError(`${what}: platform variant must be a string`);
  if (v["os.version"] !== undefined && typeof v["os.version"] !== "string") throw new ManifestError(`${what}: os.version must be a string`);
  for (const k of ["os.features", "features"]) {
    const f = v[k];
    if (f !== undefined && (!Array.isArray(f) || f.some((x) => typeof x !== "string"))) {
      throw new ManifestError(`${what}: ${k} must be an array of strings`);
    }
  }
}

/** Checks a descriptor's shape (media type, valid digest, non-negative integer size). */
export function validateDescriptor(v: unknown, what = "descriptor"): Descriptor {
  if (!isObject(v)) throw new ManifestError(`${what}: must be an object`);
  if (typeof v.mediaType !== "string" || v.mediaType === "") throw new ManifestError(`${what}: missing mediaType`);
  if (typeof v.digest !== "string") throw new ManifestError(`${what}: missing digest`);
  try {
    parseDigest(v.digest);
  } catch (e) {
    throw new ManifestError(`${what}: digest ${JSON.stringify(v.digest)}: ${(e as Error).message}`);
  }
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) {
    throw new ManifestError(`${what}: size must be a non-negative integer`);
  }
  if (v.urls !== undefined && (!Array.isArray(v.urls) || v.urls.some((u) => typeof u !== "string"))) {
    throw new ManifestError(`${what}: urls must be an array of strings`);
  }
  checkStringMap(v.annotations, `${what}: annotations`);
  if (v.platform !== undefined) checkPlatform(v.platform, what);
  return v as unknown as Descriptor;
}

// ---------------------------------------------------------------------------------------------
// Parsing

export type ParsedManifest =
  | { kind: "manifest"; mediaType: string; manifest: ImageManifest; bytes: Uint8Array }
  | { kind: "index"; mediaType: string; index: ImageIndex; bytes: Uint8Array };

const SCHEMA1_MESSAGE =
  "Docker Image manifest version 2, schema 1 is not supported: the image must be in the OCI format or Docker Image manifest v2, schema 2";

/**
 * The media type of a manifest document: its own `mediaType` field, else the one it was served
 * with (Content-Type / descriptor), else guessed from its shape (manifests → index, config →
 * manifest, fsLayers → schema 1).
 */
export function detectManifestMediaType(doc: unknown, served?: string): string {
  if (isObject(doc) && typeof doc.mediaType === "string" && doc.mediaType !== "") return doc.mediaType;
  const s = served?.split(";")[0]?.trim();
  if (s && (isManifestMediaType(s) || isIndexMediaType(s) || isSchema1MediaType(s))) return s;
  if (isObject(doc)) {
    if (Array.isArray(doc.manifests)) return MediaType.OCIIndex;
    if (isObject(doc.config)) return MediaType.OCIManifest;
    if (Array.isArray(doc.fsLayers) || doc.schemaVersion === 1) return MediaType.DockerSchema1;
  }
  throw new ManifestError("unable to determine the manifest media type");
}

/**
 * Parses a manifest or index. `mediaType` is the type it was served/described with; a document
 * whose own mediaType field contradicts it, or whose shape is of the other kind, is refused.
 */
export function parseManifest(bytes: Uint8Array | string, mediaType?: string): ParsedManifest {
  const raw = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (e) {
    throw new ManifestError(`invalid manifest JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw new ManifestError("invalid manifest: not a JSON object");
  const served = mediaType?.split(";")[0]?.trim();
  const mt = detectManifestMediaType(doc, served);
  if (isSchema1MediaType(mt) || doc.schemaVersion === 1) throw new ManifestError(SCHEMA1_MESSAGE);
  if (
    served &&
    typeof doc.mediaType === "string" &&
    doc.mediaType !== served &&
    (isManifestMediaType(served) || isIndexMediaType(served))
  ) {
    throw new ManifestError(`media type mismatch: served as ${served} but the document says ${doc.mediaType}`);
  }
  if (doc.schemaVersion !== 2) throw new ManifestError(`unsupported manifest schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  checkStringMap(doc.annotations, "annotations");
  if (doc.subject !== undefined) validateDescriptor(doc.subject, "subject");

  if (isIndexMediaType(mt)) {
    if (doc.config !== undefined || doc.layers !== undefined) {
      throw new ManifestError(`media-type: expected index but found manifest (${mt})`);
    }
    if (!Array.isArray(doc.manifests)) throw new ManifestError("invalid index: manifests must be an array");
    doc.manifests.forEach((d, i) => validateDescriptor(d, `manifests[${i}]`));
    if (mt === MediaType.DockerManifestList) {
      doc.manifests.forEach((d, i) => {
        if (!isObject(d) || d.platform === undefined) throw new ManifestError(`manifests[${i}]: a manifest list entry needs a platform`);
      });
    }
    return { kind: "index", mediaType: mt, index: doc as unknown as ImageIndex, bytes: raw };
  }
  if (isManifestMediaType(mt)) {
    if (doc.manifests !== undefined) throw new ManifestError(`media-type: expected manifest but found index (${mt})`);
    validateDescriptor(doc.config, "config");
    if (!Array.isArray(doc.layers)) throw new ManifestError("invalid manifest: layers must be an array");
    doc.layers.forEach((d, i) => validateDescriptor(d, `layers[${i}]`));
    return { kind: "manifest", mediaType: mt, manifest: doc as unknown as ImageManifest, bytes: raw };
  }
  throw new ManifestError(`unsupported manifest media type ${mt}`);
}

/** Parses and checks an image config (architecture, os, rootfs.diff_ids). */
export function parseImageConfig(bytes: Uint8Array | string): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ManifestError(`invalid image config JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw new ManifestError("invalid image config: not a JSON object");
  if (typeof doc.architecture !== "string" || typeof doc.os !== "string") {
    throw new ManifestError('invalid image config: "architecture" and "os" must be strings');
  }
  const rootfs = doc.rootfs;
  if (!isObject(rootfs) || rootfs.type !== "layers" || !Array.isArray(rootfs.diff_ids)) {
    throw new ManifestError('invalid image config: rootfs must be {"type":"layers","diff_ids":[...]}');
  }
  for (const id of rootfs.diff_ids) {
    if (typeof id !== "string") throw new ManifestError("invalid image config: diff_ids must be digests");
    try {
      parseDigest(id);
    } catch (e) {
      throw new ManifestError(`invalid image config: diff_id ${JSON.stringify(id)}: ${(e as Error).message}`);
    }
  }
  if (doc.config !== undefined && doc.config !== null && !isObject(doc.config)) {
    throw new ManifestError("invalid image config: config must be an object");
  }
  if (doc.history !== undefined && !Array.isArray(doc.history)) throw new ManifestError("invalid image config: history must be an array");
  return doc as unknown as ImageConfig;
}

/** The platform an image config describes. */
export function configPlatform(c: ImageConfig): Platform {
  const p: Platform = { os: c.os, architecture: c.architecture };
  if (c.variant) p.variant = c.variant;
  if (c["os.version"]) p["os.version"] = c["os.version"];
  if (c["os.features"]) p["os.features"] = c["os.features"];
  return normalizePlatform(p);
}

// ---------------------------------------------------------------------------------------------
// Platform selection

/**
 * The entries of an index that may run on the matcher's platform, best first (containerd's
 * images.Manifest: entries without a platform are kept, after the ones with one).
 */
export function matchingManifests(index: ImageIndex, matcher: PlatformMatcher): Descriptor[] {
  const descs = index.manifests.filter(
    (d) => (isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)) && (!d.platform || matcher.match(d.platform)),
  );
  // Array.prototype.sort is stable.
  return descs.sort((a, b) => {
    if (!a.platform) return b.platform ? 1 : 0;
    if (!b.platform) return -1;
    return matcher.less(a.platform, b.platform) ? -1 : matcher.less(b.platform, a.platform) ? 1 : 0;
  });
}

/** The best entry of an index for the matcher; throws docker's message when there is none. */
export function selectManifest(index: ImageIndex, matcher: PlatformMatcher): Descriptor {
  const d = matchingManifests(index, matcher)[0];
  if (!d) {
    throw new ManifestError(`no matching manifest for ${matcher.description} in the manifest list entries`);
  }
  return d;
}

/** Attestation manifests (buildx's provenance/SBOM entries) in an index. */
export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.["vnd.docker.reference.type"] === "attestation-manifest";
}

/** Every platform image of an index (attestations left out), in index order. */
export function allPlatformManifests(index: ImageIndex): Descriptor[] {
  return index.manifests.filter(
    (d) => (isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)) && !isAttestation(d),
  );
}

/** "linux/amd64" for an index entry, "unknown" without a platform. */
export function descriptorPlatform(d: Descriptor): string {
  return d.platform ? formatPlatform(d.platform) : "unknown";
}

// ---------------------------------------------------------------------------------------------
// Building

/** The bytes of a JSON document as pushed (compact, UTF-8). */
export function encodeJSON(doc: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(doc));
}
