// Image archives, as a library over an abstract blob sink/source: what `ctr images import/export`
// and `docker save/load` / `docker import` are built on.
//
//   importArchive(tar, sink)            an OCI image layout tar (oci-layout, index.json, blobs/...)
//                                       or a `docker save` archive (manifest.json, old layout with
//                                       <id>/layer.tar or docker 25+'s blobs/sha256 layout, or
//                                       skopeo's <hex>.tar with symlinks). Docker archives become
//                                       Docker schema2 manifests written to the sink.
//   importRootfsTar(tar, sink, opts)    a plain rootfs tarball (maybe compressed) as a one-layer image
//   exportArchive(images, src, out)     an OCI layout tar or a `docker save` tar
//
// Every blob's digest is checked while it streams; a mismatch is refused (the stream handed to the
// sink errors before it ends, so a sink that commits only on a clean end stores nothing). Memory
// does not depend on layer size: small JSON files are held in memory, big files either stream
// straight to the sink (blobs/<alg>/<hex>: the digest is known from the path) or are spooled to a
// temp file while being hashed (docker's <id>/layer.tar, whose digest is only known at its end).
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chunksOf, decompress, peek, sniffCompression, type Compression } from "./compression";
import {
  encodeJSON,
  isIndexMediaType,
  isManifestMediaType,
  MediaType,
  parseImageConfig,
  parseManifest,
  selectManifest,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from "./manifest";
import { hostPlatform, normalizePlatform, platformMatcher, type Platform, type PlatformMatcher } from "./platform";
import { familiarString, normalizeReference, parseDigest } from "./reference";
import { encodeHeader, END_OF_ARCHIVE, paddingFor, TarReader } from "./tar";

// ---------------------------------------------------------------------------------------------
// Interfaces

export interface BlobSink {
  has(digest: string): Promise<boolean>;
  /** Store a blob. `data` streams: when it errors (digest mismatch, truncation) nothing must be stored. */
  write(desc: Descriptor, data: ReadableStream<Uint8Array> | Uint8Array): Promise<void>;
}

export interface BlobSource {
  info(digest: string): Promise<{ size: number; mediaType?: string }>;
  read(digest: string): ReadableStream<Uint8Array>;
}

export interface ArchiveImage {
  /** Normalised reference (docker.io/library/busybox:latest); "" for an untagged image. */
  name: string;
  target: Descriptor;
}

export interface ImportResult {
  /** One entry per name (an untagged image once, with name ""), in archive order. */
  images: ArchiveImage[];
  /** The same as an OCI index: targets annotated with io.containerd.image.name when named. */
  index: ImageIndex;
  /** "oci" for an OCI layout (docker 25+ archives included), "docker" for manifest.json only. */
  format: "oci" | "docker";
  /** An OCI layout's index.json, byte for byte (what `ctr images import --index-name` keeps). */
  layoutIndex?: Uint8Array;
}

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArchiveError";
  }
}

/** A sink over a plain object, for tests and small tools: blobs kept in memory. */
export class MemoryBlobStore implements BlobSink, BlobSource {
  blobs = new Map<string, { desc: Descriptor; data: Uint8Array }>();
  async has(digest: string) {
    return this.blobs.has(digest);
  }
  async write(desc: Descriptor, data: ReadableStream<Uint8Array> | Uint8Array) {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(await new Response(data).arrayBuffer());
    this.blobs.set(desc.digest, { desc, data: bytes });
  }
  async info(digest: string) {
    const b = this.blobs.get(digest);
    if (!b) throw new ArchiveError(`blob ${digest} not found`);
    return { size: b.data.byteLength, mediaType: b.desc.mediaType };
  }
  read(digest: string): ReadableStream<Uint8Array> {
    const b = this.blobs.get(digest);
    if (!b) throw new ArchiveError(`blob ${digest} not found`);
    return new Blob([b.data]).stream();
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const SMALL_LIMIT = 16 << 20; // JSON files and blobs we keep in memory
const BLOB_KEEP = 4 << 20; // blobs/ entries at most this big are also kept (they may be manifests)

function hexOf(bytes: Uint8Array | string): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(bytes);
  return h.digest("hex");
}

function newHasher(algorithm: string): Bun.CryptoHasher {
  return new Bun.CryptoHasher(algorithm as "sha256" | "sha384" | "sha512");
}

/** A member name made safe: no leading "./", no "..", not absolute; refused otherwise. */
function cleanName(name: string): string {
  const raw = name;
  if (name.startsWith("/")) throw new ArchiveError(`archive entry ${JSON.stringify(raw)}: absolute paths are not allowed`);
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") throw new ArchiveError(`archive entry ${JSON.stringify(raw)}: path escapes the archive ("..")`);
    parts.push(p);
  }
  return parts.join("/");
}

/** Resolve a path named inside a JSON file (relative to the archive root) against the symlinks seen. */
function resolvePath(p: string, links: Map<string, string>): string {
  let cur = cleanName(p);
  for (let i = 0; i < 16; i++) {
    const t = links.get(cur);
    if (t === undefined) return cur;
    const dir = cur.includes("/") ? cur.slice(0, cur.lastIndexOf("/")) : "";
    const joined = t.startsWith("/") ? t.slice(1) : dir ? `${dir}/${t}` : t;
    const parts: string[] = [];
    for (const s of joined.split("/")) {
      if (s === "" || s === ".") continue;
      if (s === "..") {
        if (!parts.length) throw new ArchiveError(`symlink ${JSON.stringify(cur)} points outside the archive`);
        parts.pop();
      } else parts.push(s);
    }
    cur = parts.join("/");
  }
  throw new ArchiveError(`too many levels of symlinks at ${JSON.stringify(p)}`);
}

function parseJSON(bytes: Uint8Array, what: string): any {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ArchiveError(`invalid ${what}: ${(e as Error).message}`);
  }
}

/** A pull stream over chunks that hashes them and errors at the end if the digest or size is wrong. */
function verifying(src: AsyncIterable<Uint8Array>, digest: string, size: number | undefined, what: string): ReadableStream<Uint8Array> {
  const { algorithm, encoded: hex } = parseDigest(digest);
  const h = newHasher(algorithm);
  let n = 0;
  const it = src[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const r = await it.next();
        if (r.done) {
          const got = h.digest("hex");
          if (got !== hex) c.error(new ArchiveError(`${what}: digest mismatch: expected ${digest}, got ${algorithm}:${got}`));
          else if (size !== undefined && n !== size) c.error(new ArchiveError(`${what}: size mismatch: expected ${size} bytes, got ${n}`));
          else c.close();
          return;
        }
        h.update(r.value);
        n += r.value.byteLength;
        c.enqueue(new Uint8Array(r.value)); // copy: tar bodies are views into reused chunks
      },
      async cancel() {
        await it.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}

function layerMediaType(c: Compression | "bzip2" | "xz"): string {
  if (c === "gzip") return MediaType.DockerLayerGzip;
  if (c === "zstd") return MediaType.DockerLayerZstd;
  if (c === "none") return MediaType.DockerLayer;
  throw new ArchiveError(`unsupported layer compression ${c}`);
}

// ---------------------------------------------------------------------------------------------
// Import

interface FileRec {
  size: number;
  digest: string; // "sha256:<hex>"
  head: Uint8Array; // first bytes, for compression sniffing
  /** One of: */
  bytes?: Uint8Array; // in memory
  spool?: string; // a temp file
  inSink?: boolean; // already written to the sink (blobs/...)
}

export interface ImportOptions {
  /** Temp dir for spooling layers (default os.tmpdir()). */
  tmpDir?: string;
  /**
   * ctr import --base-name: an OCI entry whose org.opencontainers.image.ref.name is a bare tag
   * ("latest") is named <baseName>:<tag>. Without it such an entry is named from manifest.json's
   * RepoTags when the archive has one (docker 25+), else left unnamed.
   */
  baseName?: string;
  /**
   * Names an OCI index entry from its annotations instead (ctr's refTranslator: names kept as
   * written, not normalised); "" leaves it unnamed.
   */
  nameOf?: (annotations: Record<string, string>) => string;
  signal?: AbortSignal;
}

const BLOB_RE = /^blobs\/(sha256|sha384|sha512)\/([a-f0-9]+)$/;
const isSmallName = (n: string) => n.endsWith(".json") || n === "repositories" || n === "oci-layout" || n.endsWith("/json") || n.endsWith("/VERSION");

export async function importArchive(
  tar: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  sink: BlobSink,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const files = new Map<string, FileRec>();
  const links = new Map<string, string>();
  const spoolDir = mkdtempSync(join(opts.tmpDir ?? tmpdir(), "bunker-import-"));
  let spools = 0;
  // `docker save | gzip` is accepted by docker load: a compressed archive is decompressed first.
  const { head: archiveHead, stream: archiveStream } = await peek(chunksOf(tar), 16);
  const archiveKind = sniffCompression(archiveHead);
  if (archiveKind === "bzip2" || archiveKind === "xz") {
    rmSync(spoolDir, { recursive: true, force: true });
    throw new ArchiveError(`${archiveKind}-compressed archives are not supported`);
  }
  const reader = new TarReader(archiveKind === "none" ? archiveStream : decompress(archiveStream, archiveKind));
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      const h = await reader.next();
      if (!h) break;
      const name = cleanName(h.name);
      if (h.type === "dir") continue;
      if (h.type === "symlink" || h.type === "link") {
        // Hardlink targets are archive-relative; symlinks relative to the link's dir.
        links.set(name, h.type === "link" ? "/" + cleanName(h.linkname) : h.linkname);
        continue;
      }
      if (h.type !== "file") throw new ArchiveError(`archive entry ${JSON.stringify(name)}: unexpected ${h.type} entry`);
      if (files.has(name)) throw new ArchiveError(`archive entry ${JSON.stringify(name)} appears twice`);
      const blob = BLOB_RE.exec(name);
      if (blob) {
        const digest = `${blob[1]}:${blob[2]}`;
        parseDigest(digest);
        if (h.size <= BLOB_KEEP) {
          const bytes = await readAll(reader.body(), h.size);
          const got = `${blob[1]}:${newHasher(blob[1]!).update(bytes).digest("hex")}`;
          if (got !== digest) throw new ArchiveError(`blob ${name}: digest mismatch: expected ${digest}, got ${got}`);
          files.set(name, { size: h.size, digest, head: bytes.subarray(0, 16), bytes });
          continue;
        }
        if (!(await sink.has(digest))) {
          // The first bytes, for sniffing, ride along the verified stream.
          let head: Uint8Array | undefined;
          const body = (async function* () {
            for await (const c of reader.body()) {
              if (!head) head = new Uint8Array(c.subarray(0, 16));
              yield c;
            }
          })();
          await sink.write({ mediaType: "application/octet-stream", digest, size: h.size }, verifying(body, digest, h.size, `blob ${name}`));
          files.set(name, { size: h.size, digest, head: head ?? new Uint8Array(0), inSink: true });
        } else {
          // Already stored: not re-read, but its first bytes still tell the compression.
          let head = new Uint8Array(0);
          for await (const c of reader.body()) {
            head = new Uint8Array(c.subarray(0, 16));
            break;
          }
          files.set(name, { size: h.size, digest, head, inSink: true });
        }
        continue;
      }
      if (isSmallName(name) && h.size <= SMALL_LIMIT) {
        const bytes = await readAll(reader.body(), h.size);
        files.set(name, { size: h.size, digest: `sha256:${hexOf(bytes)}`, head: bytes.subarray(0, 16), bytes });
        continue;
      }
      // Anything else (a docker layer.tar): spool to disk, hashing.
      const path = join(spoolDir, String(spools++));
      const fd = openSync(path, "w", 0o600);
      const hasher = newHasher("sha256");
      let head: Uint8Array | undefined;
      try {
        for await (const c of reader.body()) {
          if (!head) head = new Uint8Array(c.subarray(0, 16));
          hasher.update(c);
          let off = 0;
          while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
        }
      } finally {
        closeSync(fd);
      }
      files.set(name, { size: h.size, digest: `sha256:${hasher.digest("hex")}`, head: head ?? new Uint8Array(0), spool: path });
    }
    await reader.finish();

    const get = (p: string) => files.get(resolvePath(p, links));
    const ensure = async (rec: FileRec | undefined, what: string, mediaType = "application/octet-stream"): Promise<void> => {
      if (!rec) throw new ArchiveError(`${what}: not in the archive`);
      if (rec.inSink) return;
      if (await sink.has(rec.digest)) return;
      const desc = { mediaType, digest: rec.digest, size: rec.size };
      if (rec.bytes) await sink.write(desc, rec.bytes);
      else await sink.write(desc, verifying(chunksOf(Bun.file(rec.spool!).stream()), rec.digest, rec.size, what));
      rec.inSink = true;
    };
    const blobRec = (d: Descriptor): FileRec | undefined => {
      const { algorithm, encoded: hex } = parseDigest(d.digest);
      return files.get(`blobs/${algorithm}/${hex}`);
    };

    const indexFile = files.get("index.json");
    const manifestFile = files.get("manifest.json");
    let result: Omit<ImportResult, "index"> | undefined;
    if (indexFile) {
      const images = await importOCI(indexFile, files, blobRec, ensure, sink, opts.baseName, opts.nameOf);
      // Names docker 25+ keeps only in manifest.json: match the entries by config digest.
      if (manifestFile && images.some((i) => !i.name)) {
        const tagsByConfig = new Map<string, string[]>();
        const doc = parseJSON(manifestFile.bytes!, "manifest.json");
        if (Array.isArray(doc)) {
          for (const e of doc) {
            const rec = e && typeof e.Config === "string" ? get(e.Config) : undefined;
            if (rec && Array.isArray(e.RepoTags)) tagsByConfig.set(rec.digest, e.RepoTags.filter((t: unknown) => typeof t === "string"));
          }
        }
        const named: ArchiveImage[] = [];
        for (const im of images) {
          const bytes = im.name ? undefined : blobRec(im.target)?.bytes;
          const m = bytes ? parseManifest(bytes, im.target.mediaType) : undefined;
          const tags = m?.kind === "manifest" ? tagsByConfig.get(m.manifest.config.digest) : undefined;
          if (!tags?.length) named.push(im);
          else for (const t of tags) named.push({ name: normalizeReference(t).toString(), target: im.target });
        }
        images.splice(0, images.length, ...named);
      }
      result = { format: "oci", images, layoutIndex: indexFile.bytes };
    } else if (manifestFile) {
      result = { format: "docker", images: await importDocker(manifestFile, get, ensure, files, sink) };
    }
    if (result) {
      const index: ImageIndex = {
        schemaVersion: 2,
        mediaType: MediaType.OCIIndex,
        manifests: result.images.map((i) => ({ ...i.target, ...(i.name ? { annotations: { "io.containerd.image.name": i.name } } : {}) })),
      };
      return { ...result, index };
    }
    throw new ArchiveError("not an image archive: neither index.json (OCI layout) nor manifest.json (docker save) found");
  } finally {
    await reader.close().catch(() => {});
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

async function readAll(body: AsyncIterable<Uint8Array>, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let off = 0;
  for await (const c of body) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

type Ensure = (rec: FileRec | undefined, what: string, mediaType?: string) => Promise<void>;

async function importOCI(
  indexFile: FileRec,
  files: Map<string, FileRec>,
  blobRec: (d: Descriptor) => FileRec | undefined,
  ensure: Ensure,
  sink: BlobSink,
  baseName?: string,
  nameOf?: ImportOptions["nameOf"],
): Promise<ArchiveImage[]> {
  const parsed = parseManifest(indexFile.bytes!, MediaType.OCIIndex);
  if (parsed.kind !== "index") throw new ArchiveError("index.json is not an image index");
  const layout = files.get("oci-layout");
  if (layout?.bytes) {
    const v = parseJSON(layout.bytes, "oci-layout").imageLayoutVersion;
    if (typeof v !== "string" || !v.startsWith("1.")) throw new ArchiveError(`unsupported OCI layout version ${JSON.stringify(v)}`);
  }

  // Check that everything a manifest names is there (in the archive or already in the sink).
  const present = async (d: Descriptor, what: string) => {
    const r = blobRec(d);
    if (r) {
      if (r.size !== d.size) throw new ArchiveError(`${what} ${d.digest}: size ${r.size} in the archive, descriptor says ${d.size}`);
      return r;
    }
    if (await sink.has(d.digest)) return undefined;
    throw new ArchiveError(`${what} ${d.digest} is referenced but missing from the archive`);
  };
  const walk = async (d: Descriptor, depth: number): Promise<void> => {
    if (depth > 8) throw new ArchiveError("index nesting too deep");
    const r = await present(d, isIndexMediaType(d.mediaType) ? "index" : "manifest");
    let bytes = r?.bytes;
    if (!bytes) {
      if (r) throw new ArchiveError(`manifest ${d.digest} too big`);
      return; // already stored: trust it
    }
    const m = parseManifest(bytes, d.mediaType);
    if (m.kind === "index") {
      for (const c of m.index.manifests) if (isManifestMediaType(c.mediaType) || isIndexMediaType(c.mediaType)) await walk(c, depth + 1);
      // Other entries (attestations of unknown type, etc.) are stored if present but not required.
    } else {
      await ensure(await present(m.manifest.config, "config"), `config ${m.manifest.config.digest}`, m.manifest.config.mediaType);
      for (const l of m.manifest.layers) {
        if (l.urls?.length && !blobRec(l) && !(await sink.has(l.digest))) continue; // foreign layer
        await ensure(await present(l, "layer"), `layer ${l.digest}`, l.mediaType);
      }
    }
    if (r) await ensure(r, `manifest ${d.digest}`, d.mediaType);
  };

  const images: ArchiveImage[] = [];
  for (const d of parsed.index.manifests) {
    await walk(d, 0);
    const target: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
    if (d.platform) target.platform = d.platform;
    const ann = d.annotations ?? {};
    let name = "";
    const full = ann["io.containerd.image.name"];
    const refName = ann["org.opencontainers.image.ref.name"];
    const attempt = (s: string) => {
      try {
        return normalizeReference(s).toString();
      } catch {
        return "";
      }
    };
    if (nameOf) name = nameOf(ann);
    else if (full) name = attempt(full);
    if (!nameOf && !name && refName) {
      // A bare tag ("latest", "v1.2") is only a tag: it needs a base name (containerd does the same).
      const bareTag = /^[\w][\w.-]{0,127}$/.test(refName) && !refName.includes("/") && !refName.includes(":");
      if (!bareTag) name = attempt(refName);
      else if (baseName) name = attempt(`${baseName}:${refName}`);
    }
    images.push({ name, target });
  }
  return images;
}

async function importDocker(
  manifestFile: FileRec,
  get: (p: string) => FileRec | undefined,
  ensure: Ensure,
  files: Map<string, FileRec>,
  sink: BlobSink,
): Promise<ArchiveImage[]> {
  const doc = parseJSON(manifestFile.bytes!, "manifest.json");
  if (!Array.isArray(doc)) throw new ArchiveError("invalid manifest.json: not an array");
  let repos: Record<string, Record<string, string>> = {};
  const reposFile = files.get("repositories");
  if (reposFile?.bytes) repos = parseJSON(reposFile.bytes, "repositories") ?? {};
  const images: ArchiveImage[] = [];
  for (const [i, e] of doc.entries()) {
    if (!e || typeof e.Config !== "string" || !Array.isArray(e.Layers)) throw new ArchiveError(`invalid manifest.json entry ${i}`);
    const cfgRec = get(e.Config);
    if (!cfgRec?.bytes) throw new ArchiveError(`manifest.json entry ${i}: config ${JSON.stringify(e.Config)} is missing from the archive`);
    const config = parseImageConfig(cfgRec.bytes);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== e.Layers.length) {
      throw new ArchiveError(`manifest.json entry ${i}: ${e.Layers.length} layers but the config has ${diffIds.length} diff ids`);
    }
    await ensure(cfgRec, `config ${e.Config}`, MediaType.DockerConfig);
    const layers: Descriptor[] = [];
    for (const [j, lp] of (e.Layers as unknown[]).entries()) {
      if (typeof lp !== "string") throw new ArchiveError(`manifest.json entry ${i}: invalid layer path`);
      const rec = get(lp);
      if (!rec) throw new ArchiveError(`manifest.json entry ${i}: layer ${JSON.stringify(lp)} is missing from the archive`);
      const mt = rec.size === 0 ? MediaType.DockerLayer : layerMediaType(sniffCompression(rec.head));
      if (mt === MediaType.DockerLayer && rec.digest !== diffIds[j]) {
        throw new ArchiveError(`layer ${JSON.stringify(lp)}: digest ${rec.digest} does not match the config's diff id ${diffIds[j]}`);
      }
      await ensure(rec, `layer ${lp}`, mt);
      layers.push({ mediaType: mt, digest: rec.digest, size: rec.size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: cfgRec.digest, size: cfgRec.size },
      layers,
    };
    const mbytes = encodeJSON(manifest);
    const target: Descriptor = { mediaType: MediaType.DockerManifest, digest: `sha256:${hexOf(mbytes)}`, size: mbytes.byteLength };
    if (!(await sink.has(target.digest))) await sink.write(target, mbytes);
    target.platform = normalizePlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) });
    let tags: string[] = Array.isArray(e.RepoTags) ? e.RepoTags.filter((t: unknown) => typeof t === "string") : [];
    if (!tags.length && e.Layers.length) {
      // Very old archives: names only in `repositories`, keyed by the top layer's v1 id.
      const topId = cleanName(String(e.Layers[e.Layers.length - 1])).split("/")[0];
      for (const [repo, t] of Object.entries(repos)) for (const [tag, id] of Object.entries(t ?? {})) if (id === topId) tags.push(`${repo}:${tag}`);
    }
    if (!tags.length) images.push({ name: "", target });
    for (const t of tags) {
      let name: string;
      try {
        name = normalizeReference(t).toString();
      } catch (err) {
        throw new ArchiveError(`manifest.json entry ${i}: invalid tag ${JSON.stringify(t)}: ${(err as Error).message}`);
      }
      images.push({ name, target });
    }
  }
  return images;
}

// ---------------------------------------------------------------------------------------------
// docker import: a rootfs tarball as a one-layer image

export interface RootfsImportOptions {
  ref: string;
  platform?: Platform;
  /** The config's `config` (Cmd, Env, ...). */
  config?: Record<string, unknown>;
  /** History comment (docker import -m). */
  comment?: string;
  created?: string;
  tmpDir?: string;
}

export async function importRootfsTar(
  tar: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  sink: BlobSink,
  opts: RootfsImportOptions,
): Promise<ArchiveImage> {
  const name = normalizeReference(opts.ref).toString();
  const spoolDir = mkdtempSync(join(opts.tmpDir ?? tmpdir(), "bunker-rootfs-"));
  try {
    const { head, stream } = await peek(chunksOf(tar), 16);
    const kind = sniffCompression(head);
    if (kind === "bzip2" || kind === "xz") throw new ArchiveError(`unsupported compression ${kind}`);
    const path = join(spoolDir, "layer.tar");
    const fd = openSync(path, "w", 0o600);
    const hasher = newHasher("sha256");
    let size = 0;
    // Check it is a tar as it goes: run the reader over the uncompressed bytes alongside.
    try {
      const tee = async function* () {
        for await (const c of decompress(stream, kind)) {
          hasher.update(c);
          let off = 0;
          while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
          size += c.byteLength;
          yield c;
        }
      };
      const r = new TarReader(tee());
      while (await r.next()) for await (const _ of r.body());
      await r.finish();
    } finally {
      closeSync(fd);
    }
    const diffId = `sha256:${hasher.digest("hex")}`;
    const layer: Descriptor = { mediaType: MediaType.DockerLayer, digest: diffId, size };
    if (!(await sink.has(diffId))) await sink.write(layer, verifying(chunksOf(Bun.file(path).stream()), diffId, size, "layer"));
    const p = normalizePlatform(opts.platform ?? hostPlatform());
    const created = opts.created ?? new Date().toISOString();
    const config = {
      architecture: p.architecture,
      os: p.os,
      ...(p.variant ? { variant: p.variant } : {}),
      created,
      config: opts.config ?? {},
      rootfs: { type: "layers", diff_ids: [diffId] },
      history: [{ created, created_by: "", comment: opts.comment ?? "Imported from tarball" }],
    };
    const cbytes = encodeJSON(config);
    const cdesc: Descriptor = { mediaType: MediaType.DockerConfig, digest: `sha256:${hexOf(cbytes)}`, size: cbytes.byteLength };
    if (!(await sink.has(cdesc.digest))) await sink.write(cdesc, cbytes);
    const mbytes = encodeJSON({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config: cdesc, layers: [layer] });
    const target: Descriptor = { mediaType: MediaType.DockerManifest, digest: `sha256:${hexOf(mbytes)}`, size: mbytes.byteLength };
    if (!(await sink.has(target.digest))) await sink.write(target, mbytes);
    return { name, target: { ...target, platform: p } };
  } finally {
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Export

export interface ExportOptions {
  format: "oci" | "docker";
  /** Which platform of a multi-platform image (default: the host's). */
  platform?: string | Platform | PlatformMatcher;
  /** OCI format only: keep whole indexes with every platform (all blobs must be in the source). */
  allPlatforms?: boolean;
  /**
   * OCI format only: also write a Docker-compatible manifest.json (one entry per platform
   * manifest, RepoTags in familiar form), as `ctr images export` does unless --skip-manifest-json.
   */
  dockerManifest?: boolean;
  /**
   * OCI format only: containerd's exporter layout, byte for byte what `ctr images export` writes:
   * entries sorted by name, blobs and oci-layout read-only (0444), index.json without mediaType.
   */
  ctrLayout?: boolean;
  tmpDir?: string;
}

type Out = WritableStream<Uint8Array> | ((chunk: Uint8Array) => unknown);

export async function exportArchive(images: ArchiveImage[], source: BlobSource, out: Out, opts: ExportOptions): Promise<void> {
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  const emit = async (c: Uint8Array) => {
    if (typeof out === "function") await out(c);
    else {
      writer ??= out.getWriter();
      await writer.write(c);
    }
  };
  const written = new Set<string>();
  // ctrLayout: entries are collected and written sorted by name at the end (streams stay unread
  // until then).
  const deferred = opts.ctrLayout && opts.format === "oci" ? new Map<string, () => Promise<void>>() : undefined;
  const fileMode = (name: string) => (opts.ctrLayout && (name.startsWith("blobs/") || name === "oci-layout") ? 0o444 : 0o644);
  const putFile = async (name: string, data: Uint8Array) => {
    if (written.has(name)) return;
    written.add(name);
    if (deferred) {
      deferred.set(name, async () => {
        await emit(encodeHeader({ name, type: "file", mode: fileMode(name), size: data.byteLength }));
        await emit(data);
        await emit(paddingFor(data.byteLength));
      });
      return;
    }
    await emit(encodeHeader({ name, type: "file", mode: 0o644, size: data.byteLength }));
    await emit(data);
    await emit(paddingFor(data.byteLength));
  };
  const putDir = async (name: string) => {
    if (written.has(name)) return;
    written.add(name);
    if (deferred) return void deferred.set(name, () => emit(encodeHeader({ name, type: "dir", mode: 0o755 })));
    await emit(encodeHeader({ name, type: "dir", mode: 0o755 }));
  };
  const putStream = async (name: string, size: number, src: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>, digest?: string) => {
    if (written.has(name)) return;
    written.add(name);
    if (deferred) return void deferred.set(name, () => putStreamNow(name, size, src, digest));
    await putStreamNow(name, size, src, digest);
  };
  const putStreamNow = async (name: string, size: number, src: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>, digest?: string) => {
    await emit(encodeHeader({ name, type: "file", mode: fileMode(name), size }));
    let n = 0;
    const h = digest ? newHasher(parseDigest(digest).algorithm) : undefined;
    for await (const c of chunksOf(src)) {
      n += c.byteLength;
      if (n > size) throw new ArchiveError(`${name}: more than the ${size} bytes expected`);
      h?.update(c);
      await emit(c);
    }
    if (n !== size) throw new ArchiveError(`${name}: ${n} bytes, expected ${size}`);
    if (h && `${parseDigest(digest!).algorithm}:${h.digest("hex")}` !== digest) throw new ArchiveError(`${name}: content does not match digest ${digest}`);
    await emit(paddingFor(size));
  };
  const readBytes = async (digest: string) => new Uint8Array(await new Response(source.read(digest)).arrayBuffer());
  const matcher = opts.platform !== undefined ? platformMatcher(opts.platform) : platformMatcher();

  /** The single-platform manifest of an image. */
  const resolve = async (d: Descriptor): Promise<{ desc: Descriptor; manifest: ImageManifest; bytes: Uint8Array }> => {
    for (let depth = 0; depth < 8; depth++) {
      const bytes = await readBytes(d.digest);
      const m = parseManifest(bytes, d.mediaType);
      if (m.kind === "manifest") return { desc: d, manifest: m.manifest, bytes };
      d = selectManifest(m.index, matcher);
    }
    throw new ArchiveError("index nesting too deep");
  };

  try {
    if (opts.format === "oci") {
      await putFile("oci-layout", encodeJSON({ imageLayoutVersion: "1.0.0" }));
      await putDir("blobs/");
      const blobDirs = new Set<string>();
      const putBlob = async (d: Descriptor, bytes?: Uint8Array) => {
        const { algorithm, encoded: hex } = parseDigest(d.digest);
        if (!blobDirs.has(algorithm)) {
          blobDirs.add(algorithm);
          await putDir(`blobs/${algorithm}/`);
        }
        const name = `blobs/${algorithm}/${hex}`;
        if (written.has(name)) return;
        if (bytes) {
          if (`${algorithm}:${newHasher(algorithm).update(bytes).digest("hex")}` !== d.digest) throw new ArchiveError(`blob ${d.digest}: content does not match`);
          return putFile(name, bytes);
        }
        const info = await source.info(d.digest);
        if (info.size !== d.size) throw new ArchiveError(`blob ${d.digest}: size ${info.size}, descriptor says ${d.size}`);
        await putStream(name, d.size, source.read(d.digest), d.digest);
      };
      const walk = async (d: Descriptor, depth: number): Promise<void> => {
        if (depth > 8) throw new ArchiveError("index nesting too deep");
        const bytes = await readBytes(d.digest);
        const m = parseManifest(bytes, d.mediaType);
        if (m.kind === "index") {
          for (const c of m.index.manifests) await walk(c, depth + 1);
        } else {
          await putBlob(m.manifest.config);
          for (const l of m.manifest.layers) {
            if (l.urls?.length) {
              try {
                await source.info(l.digest);
              } catch {
                continue; // foreign layer not present: left out, as containerd does
              }
            }
            await putBlob(l);
          }
        }
        await putBlob(d, bytes);
      };
      const entries: Descriptor[] = [];
      for (const img of images) {
        let d = img.target;
        if (!opts.allPlatforms && isIndexMediaType(d.mediaType)) {
          const r = await resolve(d);
          d = { ...r.desc };
        }
        await walk(d, 0);
        const entry: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
        if (d.platform) entry.platform = d.platform;
        if (img.name) {
          const ref = normalizeReference(img.name);
          entry.annotations = { "io.containerd.image.name": ref.toString() };
          if (ref.tag) entry.annotations["org.opencontainers.image.ref.name"] = ref.tag;
        }
        entries.push(entry);
      }
      const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OCIIndex, manifests: entries };
      if (opts.ctrLayout) delete (index as { mediaType?: string }).mediaType;
      await putFile("index.json", encodeJSON(index));
      if (opts.dockerManifest) {
        const docker: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
        const byManifest = new Map<string, (typeof docker)[number]>();
        const blobPath = (dg: string) => `blobs/${dg.replace(":", "/")}`;
        for (const img of images) {
          let r: Awaited<ReturnType<typeof resolve>>;
          try {
            r = await resolve(img.target);
          } catch {
            continue; // no manifest for the platform: left out of manifest.json
          }
          let e = byManifest.get(r.desc.digest);
          if (!e) {
            e = { Config: blobPath(r.manifest.config.digest), RepoTags: [], Layers: r.manifest.layers.map((l) => blobPath(l.digest)) };
            byManifest.set(r.desc.digest, e);
            docker.push(e);
          }
          if (img.name) {
            let tag = img.name;
            try {
              tag = familiarString(img.name);
            } catch {
              // not a docker reference: kept as it is
            }
            if (!e.RepoTags.includes(tag)) e.RepoTags.push(tag);
          }
        }
        await putFile("manifest.json", encodeJSON(docker));
      }
      if (deferred) {
        for (const name of [...deferred.keys()].sort()) await deferred.get(name)!();
      }
    } else {
      const manifestJson: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
      const repositories: Record<string, Record<string, string>> = {};
      const byManifest = new Map<string, (typeof manifestJson)[number]>();
      for (const img of images) {
        const { desc, manifest } = await resolve(img.target);
        let entry = byManifest.get(desc.digest);
        let topId = "";
        if (!entry) {
          const cfgBytes = await readBytes(manifest.config.digest);
          if (`sha256:${hexOf(cfgBytes)}` !== manifest.config.digest) throw new ArchiveError(`config ${manifest.config.digest}: content does not match`);
          const config = parseImageConfig(cfgBytes);
          const diffIds = config.rootfs.diff_ids;
          if (diffIds.length !== manifest.layers.length) throw new ArchiveError(`image ${img.name}: ${manifest.layers.length} layers but ${diffIds.length} diff ids`);
          const layerPaths: string[] = [];
          let parent = "";
          for (const [i, l] of manifest.layers.entries()) {
            const diffId = diffIds[i]!;
            // v1 layer ids: the chain id (unique per position in the stack).
            const id = i === 0 ? parseDigest(diffId).encoded : hexOf(`sha256:${parent} ${diffId}`);
            const dir = `${id}/`;
            await putDir(dir);
            await putFile(`${id}/VERSION`, new TextEncoder().encode("1.0"));
            await putFile(`${id}/json`, encodeJSON({ id, ...(parent ? { parent } : {}), created: "1970-01-01T00:00:00Z", container_config: { Hostname: "", Domainname: "", User: "", AttachStdin: false, AttachStdout: false, AttachStderr: false, Tty: false, OpenStdin: false, StdinOnce: false, Env: null, Cmd: null, Image: "", Volumes: null, WorkingDir: "", Entrypoint: null, OnBuild: null, Labels: null }, os: config.os }));
            const path = `${id}/layer.tar`;
            if (!written.has(path)) {
              const comp = l.mediaType === MediaType.DockerLayer || l.mediaType === MediaType.OCILayer ? "none" : undefined;
              if (comp === "none") {
                await putStream(path, l.size, source.read(l.digest), l.digest);
              } else {
                // Compressed: docker save holds uncompressed layers. Spool the uncompressed tar to
                // learn its size, checking it against the diff id.
                const kind = layerCompressionOf(l.mediaType);
                const tmp = mkdtempSync(join(opts.tmpDir ?? tmpdir(), "bunker-export-"));
                try {
                  const f = join(tmp, "layer.tar");
                  const fd = openSync(f, "w", 0o600);
                  const h = newHasher("sha256");
                  let size = 0;
                  try {
                    for await (const c of decompress(chunksOf(source.read(l.digest)), kind)) {
                      h.update(c);
                      size += c.byteLength;
                      let off = 0;
                      while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
                    }
                  } finally {
                    closeSync(fd);
                  }
                  if (`sha256:${h.digest("hex")}` !== diffId) throw new ArchiveError(`layer ${l.digest}: uncompressed content does not match diff id ${diffId}`);
                  await putStream(path, size, Bun.file(f).stream());
                } finally {
                  rmSync(tmp, { recursive: true, force: true });
                }
              }
            }
            layerPaths.push(path);
            parent = id;
          }
          topId = parent;
          await putFile(`${parseDigest(manifest.config.digest).encoded}.json`, cfgBytes);
          entry = { Config: `${parseDigest(manifest.config.digest).encoded}.json`, RepoTags: null, Layers: layerPaths };
          byManifest.set(desc.digest, entry);
          manifestJson.push(entry);
          (entry as any)._top = topId;
        }
        if (img.name) {
          const ref = normalizeReference(img.name);
          if (ref.tag) {
            (entry.RepoTags ??= []).push(ref.familiarString.replace(/@.*$/, ""));
            (repositories[ref.familiarName] ??= {})[ref.tag] = (entry as any)._top;
          }
        }
      }
      for (const e of manifestJson) delete (e as any)._top;
      await putFile("manifest.json", encodeJSON(manifestJson));
      if (Object.keys(repositories).length) await putFile("repositories", encodeJSON(repositories));
    }
    await emit(END_OF_ARCHIVE);
    if (writer) await writer.close();
  } catch (e) {
    if (writer) await writer.abort(e).catch(() => {});
    throw e;
  }
}

function layerCompressionOf(mt: string): Compression {
  if (mt.endsWith("+gzip") || mt.endsWith(".gzip")) return "gzip";
  if (mt.endsWith("+zstd") || mt.endsWith(".zstd")) return "zstd";
  if (mt === MediaType.DockerLayer || mt === MediaType.OCILayer || mt.endsWith(".tar")) return "none";
  throw new ArchiveError(`unsupported layer media type ${mt}`);
}
