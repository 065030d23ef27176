// Client-side pull, unpack and push for our ctr, as containerd 1.6's client does them: blobs come
// from the registry (RegistryClient) and go into containerd's content store through Content.Write
// (WRITE chunks, then COMMIT with the expected digest, GC labels on manifests and indexes) under
// the descriptor's ref ("layer-sha256:..."): the daemon locks a ref for one writer at a time (a
// concurrent pull of the same blob waits, then finds it committed, so the registry serves it
// once) and keeps an interrupted ingest, which the next pull resumes with a Range request; the
// image record is created (or updated), layers are unpacked into a snapshotter (Prepare +
// Diff.Apply + Commit, keyed by chain IDs); push reads blobs back with Content.Read. The progress
// display is ctr's (content.ShowProgress/Display): a frame every 100 ms, redrawn with the
// progress writer's escape sequences whether or not stdout is a terminal, one final frame.
import { isAlreadyExists, isFailedPrecondition, isNotFound } from "../containerd/errdefs";
import { isIndexMediaType, isManifestMediaType, type Descriptor, type ImageIndex, type ImageManifest } from "../image/manifest";
import { onlyMatcher, platformMatcher, type Platform, type PlatformMatcher } from "../image/platform";
import { hostOnly, normalizeReference, type Reference } from "../image/reference";
import { DEFAULT_CHUNK_SIZE, DigestMismatchError, NotFoundError, RegistryClient, type RegistryClientOptions } from "../image/registry";
import type { Client } from "./client";
import { writeChunks } from "./content-write";
import { type BlobReady, ContentSource, openWriter, resolveManifest, unpackImage as unpackShared } from "./remote";
import { readBlob } from "./imageinfo";
import { GoTabWriter } from "./tabwriter";
import { progressBytes } from "./units";

const CONTENT = "containerd.services.content.v1.Content";
const IMAGES = "containerd.services.images.v1.Images";

// ---------------------------------------------------------------------------------------------
// Progress (containerd's cmd/ctr/commands/content ShowProgress/Display and pkg/progress)

export interface StatusInfo {
  ref: string;
  status: string;
  offset: number;
  total: number;
}

/** progress.Bar formatted with %40r: "|" green "+"... reset "-"... "|", 38 cells between the bars. */
export function bar(ratio: number, width = 40): string {
  const total = width - 2;
  const pos = Math.max(0, Math.min(total, Math.trunc(total * ratio)));
  return `|\x1b[32m${"+".repeat(pos)}\x1b[0m${"-".repeat(total - pos)}|`;
}

/** content.Display: one line per status, then the elapsed/total line; tab-aligned. */
export function displayStatuses(statuses: StatusInfo[], elapsedMs: number): string {
  const tw = new GoTabWriter(1, 1);
  let total = 0;
  for (const s of statuses) {
    total += s.offset;
    if (s.status === "downloading" || s.status === "uploading") {
      const b = bar(s.total > 0 ? s.offset / s.total : 0);
      tw.write(`${s.ref}:\t${s.status}\t${b}\t${progressBytes(s.offset).slice(0, 8).padStart(8)}/${progressBytes(s.total)}\t\n`);
    } else if (s.status === "resolving" || s.status === "waiting") {
      tw.write(`${s.ref}:\t${s.status}\t${bar(0)}\t\n`);
    } else {
      tw.write(`${s.ref}:\t${s.status}\t${bar(1)}\t\n`);
    }
  }
  const secs = elapsedMs / 1000;
  const bps = secs > 0 ? Math.trunc(total / secs) : 0;
  tw.write(`elapsed: ${secs.toFixed(1).padEnd(4)}s\ttotal: ${progressBytes(total).slice(0, 6).padStart(7)}\t(${progressBytes(bps)}/s)\t\n`);
  return tw.flush();
}

/** progress.Writer: each flush first erases the lines the previous one wrote. */
export class ProgressWriter {
  private lines = 0;
  constructor(private readonly write: (s: string) => void) {}
  flush(frame: string): void {
    if (!frame) return;
    this.write("\x1b[1A\x1b[2K\r".repeat(this.lines) + frame);
    this.lines = frame.split("\n").length - 1;
  }
}

/** Ticks every 100 ms until stopped; stop() draws the final frame. */
export class ProgressLoop {
  private timer?: ReturnType<typeof setInterval>;
  private readonly start = Date.now();
  private readonly pw: ProgressWriter;
  constructor(
    private readonly frame: (done: boolean) => StatusInfo[],
    write: (s: string) => void,
  ) {
    this.pw = new ProgressWriter(write);
    this.timer = setInterval(() => this.draw(false), 100);
  }
  private draw(done: boolean): void {
    this.pw.flush(displayStatuses(this.frame(done), Date.now() - this.start));
  }
  stop(): void {
    clearInterval(this.timer);
    this.draw(true);
  }
}

/** remotes.MakeRefKey: the ingest ref / progress key of a descriptor. */
export function refKey(d: { mediaType: string; digest: string; annotations?: Record<string, string> }): string {
  const name = d.annotations?.["org.opencontainers.image.ref.name"];
  const key = name ? `${name}@${d.digest}` : d.digest;
  const mt = d.mediaType;
  if (isManifestMediaType(mt)) return `manifest-${key}`;
  if (isIndexMediaType(mt)) return `index-${key}`;
  if (isLayerType(mt)) return `layer-${key}`;
  if (isKnownConfig(mt)) return `config-${key}`;
  return `unknown-${key}`;
}

function isLayerType(mt: string): boolean {
  if (mt.startsWith("application/vnd.oci.image.layer.")) return true;
  return mt.startsWith("application/vnd.docker.image.rootfs.") || mt === "application/vnd.docker.container.image.rootfs.diff+x-gtar";
}

function isKnownConfig(mt: string): boolean {
  return mt === "application/vnd.docker.container.image.v1+json" || mt === "application/vnd.oci.image.config.v1+json" || mt === "application/octet-stream";
}

// ---------------------------------------------------------------------------------------------
// Content.Write (bidirectional stream)

type Chunks = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Where a blob's bytes come from: those from `offset` on, or (`offset: 0`) all of them. */
export type BlobSourceAt = (offset: number) => Promise<{ offset: number; chunks: Chunks }>;

/**
 * remotes.fetch + content.Copy: write a blob into the content store under `ref`, resuming the
 * ingest the ref has (its STAT offset: `source` is asked for the bytes from there, and may start
 * over from 0 instead, which truncates the ingest), in 1 MiB WRITE messages (a few in flight: see
 * content-write.ts), then COMMIT with the expected digest and `labels`. Returns false when the
 * content already existed (the caller sets its labels). The daemon verifies size and digest
 * before the blob becomes visible; an ingest a stream or the commit proved bad is aborted, and a
 * resumed ingest whose whole fails the commit is aborted and written again from the start, once.
 */
export async function writeBlob(
  client: Client,
  ref: string,
  desc: { digest: string; size: number },
  source: BlobSourceAt,
  labels: Record<string, string> | (() => Record<string, string>),
  onProgress?: (offset: number) => void,
  onWait?: () => void,
): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const opened = await openWriter(client, ref, desc, onWait);
    if (!opened) return false;
    const { w } = opened;
    let offset = opened.offset > desc.size ? 0 : opened.offset;
    const resumed = offset > 0;
    try {
      onProgress?.(offset);
      if (offset < desc.size) {
        const src = await source(offset);
        offset = src.offset; // 0: start over (the first WRITE at offset 0 truncates the ingest)
        onProgress?.(offset);
        offset = await writeChunks(w, ref, src.chunks, offset, desc.size, desc.digest, onProgress);
      }
      try {
        await w.send({ action: "COMMIT", ref, offset: String(offset), total: String(desc.size), expected: desc.digest, labels: typeof labels === "function" ? labels() : labels });
      } catch (e) {
        if (isAlreadyExists(e)) return false;
        if (isFailedPrecondition(e)) {
          // The bytes do not add up to the descriptor (the daemon checks size and digest). Kept
          // from an earlier try: drop them and fetch everything, once. Fetched now: the registry
          // sent the wrong bytes, nothing of them is worth resuming.
          w.close();
          await client.call(CONTENT, "Abort", { ref }).catch(() => {});
          if (resumed && attempt === 0) continue;
        }
        throw new Error(`failed commit on ref ${JSON.stringify(ref)}: ${e instanceof Error ? e.message : String(e)}`);
      }
      return true;
    } catch (e) {
      if (e instanceof DigestMismatchError) {
        // The registry sent the wrong bytes: nothing of them is worth resuming.
        w.close();
        await client.call(CONTENT, "Abort", { ref }).catch(() => {});
      }
      throw e;
    } finally {
      w.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fetch (client.Fetch + content.Fetch's progress)

export interface FetchOptions {
  registry: RegistryClientOptions;
  /** Platforms to fetch (ctr: the host's unless --all-platforms); undefined: all. */
  platforms?: Platform[];
  labels?: Record<string, string>;
  /** Write the progress display here (ctr: stdout). */
  progress?: (s: string) => void;
  /** Told the image's root descriptor once the reference is resolved. */
  onResolved?: (target: Descriptor) => void;
  /** Told each blob once it is in the content store (fetched now, or there before). */
  onStored?: (desc: Descriptor) => void;
  /** Blobs downloaded at once (ctr --max-concurrent-downloads); 0 or undefined: no limit. */
  maxConcurrentDownloads?: number;
}

/** At most `n` holders at a time (n <= 0: no limit); others queue in order. */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  if (!(n > 0)) return (fn) => fn();
  let active = 0;
  const queue: (() => void)[] = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    else active++;
    try {
      return await fn();
    } finally {
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };
}

export interface ImageRecord {
  name: string;
  labels: Record<string, string>;
  target: { mediaType: string; digest: string; size: string; annotations: Record<string, string> };
}

interface Job {
  desc: Descriptor;
  key: string;
  status: string;
  offset: number;
  total: number;
}

function childLabels(parent: ParsedChildren): Record<string, string> {
  const labels: Record<string, string> = {};
  parent.children.forEach((c, i) => {
    if (parent.kind === "index") labels[`containerd.io/gc.ref.content.m.${i}`] = c.digest;
    else if (i === 0) labels["containerd.io/gc.ref.content.config"] = c.digest;
    else labels[`containerd.io/gc.ref.content.l.${i - 1}`] = c.digest;
  });
  return labels;
}

interface ParsedChildren {
  kind: "index" | "manifest";
  children: Descriptor[];
}

function childrenOf(mediaType: string, bytes: Uint8Array, matcher?: PlatformMatcher, limitOne = false): ParsedChildren | undefined {
  const doc = JSON.parse(new TextDecoder().decode(bytes));
  if (isIndexMediaType(mediaType) || (!mediaType && doc.manifests)) {
    let ms: Descriptor[] = (doc as ImageIndex).manifests ?? [];
    if (matcher) {
      // images.FilterPlatforms + LimitManifests(1) for a single platform as client.Fetch does
      ms = ms.filter((d) => !d.platform || matcher.match(d.platform));
      if (limitOne && ms.length > 1) ms = [ms.slice().sort((a, b) => (a.platform && b.platform && matcher.less(a.platform, b.platform) ? -1 : b.platform && a.platform && matcher.less(b.platform, a.platform) ? 1 : 0))[0]!];
    }
    return { kind: "index", children: ms };
  }
  if (isManifestMediaType(mediaType) || doc.config) {
    const m = doc as ImageManifest;
    return { kind: "manifest", children: [m.config, ...(m.layers ?? [])] };
  }
  return undefined;
}

export async function contentInfo(client: Client, digest: string): Promise<{ createdAt?: { seconds: string | number; nanos: number }; labels: Record<string, string> } | undefined> {
  try {
    return (await client.call<{ info: any }>(CONTENT, "Info", { digest })).info;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** Fetch `refStr` into the content store and create/update the image record named `name`. */
export async function fetchImage(client: Client, refStr: string, name: string, opts: FetchOptions): Promise<ImageRecord> {
  const reg = new RegistryClient(opts.registry);
  // containerd's reference.Parse: a locator without a tag or digest has no object to resolve.
  if (!/[:@][^/]*$/.test(refStr)) throw new Error(`failed to resolve reference ${JSON.stringify(refStr)}: object required`);
  const ref: Reference = normalizeReference(refStr);
  // remotes/docker's AppendDistributionSourceLabel: keyed by the host name without the port.
  const distLabelKey = `containerd.io/distribution.source.${hostOnly(ref.domain)}`;
  const distLabelVal = ref.path;
  const jobs: Job[] = [];
  let resolved = false;
  const start = Date.now();
  const matcher = opts.platforms ? orderedAny(opts.platforms) : undefined;
  const limitOne = opts.platforms?.length === 1;
  const limit = limiter(opts.maxConcurrentDownloads ?? 0);
  const loop = opts.progress
    ? new ProgressLoop(
        (done) => [
          { ref: name, status: resolved ? "resolved" : "resolving", offset: 0, total: 0 },
          ...jobs.map((j) => ({ ref: j.key, status: done && !["done", "exists"].includes(j.status) ? "done" : j.status, offset: j.offset, total: j.total })),
        ],
        opts.progress,
      )
    : undefined;
  try {
    let target: Descriptor;
    try {
      ({ descriptor: target } = await reg.resolve(ref));
    } catch (e) {
      // client.Fetch: fmt.Errorf("failed to resolve reference %q: %w"); the resolver's not found is "<ref>: not found".
      if (e instanceof NotFoundError) throw new Error(`failed to resolve reference ${JSON.stringify(refStr)}: ${refStr}: not found`);
      throw new Error(`failed to resolve reference ${JSON.stringify(refStr)}: ${e instanceof Error ? e.message : String(e)}`);
    }
    resolved = true;
    opts.onResolved?.(target);
    const handle = async (desc: Descriptor): Promise<void> => {
      const job: Job = { desc, key: refKey(desc), status: "waiting", offset: 0, total: 0 };
      jobs.push(job);
      let info = await contentInfo(client, desc.digest);
      let bytes: Uint8Array | undefined;
      const isMeta = isIndexMediaType(desc.mediaType) || isManifestMediaType(desc.mediaType);
      if (!info) {
        job.total = desc.size;
        job.status = "downloading";
        // Through the ref's writer (remotes.MakeRefKey): a concurrent pull of the same blob waits
        // for this one (or this one for it) and then finds it committed; a killed pull's ingest is
        // resumed where it stopped, with a Range request. Manifests and indexes are small: always
        // fetched whole.
        const wrote = await limit(() => writeBlob(
          client,
          job.key,
          desc,
          async (offset) => {
            job.status = "downloading";
            if (isMeta) {
              bytes = (await reg.fetchManifest(ref, desc)).bytes;
              return { offset: 0, chunks: [bytes] };
            }
            // Unverified here: the daemon checks the digest at COMMIT, as containerd's client relies on.
            const { body, offset: from } = await reg.fetchBlobFrom(ref, desc, offset, { verify: false });
            return { offset: from, chunks: body as unknown as AsyncIterable<Uint8Array> };
          },
          () => {
            const labels: Record<string, string> = { [distLabelKey]: distLabelVal };
            const ch = bytes && childrenOf(desc.mediaType, bytes, matcher, limitOne);
            return ch ? { ...labels, ...childLabels(ch) } : labels;
          },
          (o) => (job.offset = o),
          () => (job.status = "waiting"),
        ));
        if (wrote && !(isMeta && !bytes)) {
          job.offset = desc.size;
          job.status = "done";
        } else {
          // Committed by another writer meanwhile (a concurrent pull), or a manifest whose resumed
          // ingest was whole already (committed without a fetch): labelled as if it had been there.
          info = await contentInfo(client, desc.digest);
          if (!info) throw new Error(`content ${desc.digest}: committed by another writer, yet not found`);
          bytes = undefined;
        }
      }
      if (info) {
        const created = info.createdAt ? Number(info.createdAt.seconds) * 1000 + Math.floor((info.createdAt.nanos ?? 0) / 1e6) : 0;
        job.status = created >= start ? "done" : "exists";
        // As the handlers do on every pull: the distribution source, and for manifests/indexes
        // the gc references to the children this pull selected (images.SetChildrenMappedLabels).
        const prev = info.labels?.[distLabelKey];
        let labels: Record<string, string> = { [distLabelKey]: !prev ? distLabelVal : prev.split(",").includes(distLabelVal) ? prev : `${prev},${distLabelVal}` };
        if (isMeta) {
          bytes = await readBlob(client, desc.digest);
          const ch = childrenOf(desc.mediaType, bytes, matcher, limitOne);
          if (ch) labels = { ...labels, ...childLabels(ch) };
        }
        await client.call(CONTENT, "Update", { info: { digest: desc.digest, labels }, updateMask: { paths: Object.keys(labels).map((k) => `labels.${k}`) } });
        job.offset = job.status === "done" ? desc.size : 0;
        job.total = desc.size;
      }
      opts.onStored?.(desc);
      if (bytes) {
        const ch = childrenOf(desc.mediaType, bytes, matcher, limitOne);
        if (ch) await Promise.all(ch.children.map(handle));
      }
    };
    await handle(target);
    const img: ImageRecord = {
      name,
      labels: opts.labels ?? {},
      target: { mediaType: target.mediaType, digest: target.digest, size: String(target.size), annotations: target.annotations ?? {} },
    };
    try {
      const r = await client.call<{ image: ImageRecord }>(IMAGES, "Create", { image: img });
      return r.image;
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      const r = await client.call<{ image: ImageRecord }>(IMAGES, "Update", { image: img, updateMask: null });
      return r.image;
    }
  } finally {
    loop?.stop();
  }
}

function orderedAny(ps: Platform[]): PlatformMatcher {
  const ms = ps.map((p) => platformMatcher(p));
  if (ms.length === 1) return ms[0]!;
  return { description: ms.map((m) => m.description).join(", "), match: (p: Platform) => ms.some((m) => m.match(p)), less: (a: Platform, b: Platform) => ms.some((m) => m.less(a, b)) };
}

// ---------------------------------------------------------------------------------------------
// Unpack (containerd's image.Unpack: rootfs.ApplyLayers keyed by chain IDs)

/**
 * Unpack the image's layers for `platform` (platforms.Only) into `snapshotter`: the shared helper.
 * With `ready`, while the image is still being fetched.
 */
export async function unpackImage(client: Client, target: Descriptor, platform: Platform, snapshotter: string, ready?: BlobReady): Promise<string> {
  return unpackShared(client, target, onlyMatcher(platform), snapshotter, ready);
}

// ---------------------------------------------------------------------------------------------
// Push (client.Push: children first, then the manifests, then the index)

export interface PushOptions {
  registry: RegistryClientOptions;
  /** Only this platform's manifest when exactly one is given (ctr --platform). */
  platform?: Platform;
  progress?: (s: string) => void;
}

async function readStream(client: Client, digest: string): Promise<Uint8Array> {
  return new Uint8Array(await readBlob(client, digest));
}

export async function pushImage(client: Client, refStr: string, local: string, opts: PushOptions): Promise<void> {
  const reg = new RegistryClient(opts.registry);
  const ref = normalizeReference(refStr);
  const { image } = await client.call<{ image: ImageRecord }>(IMAGES, "Get", { name: local });
  let top: Descriptor = { mediaType: image.target.mediaType, digest: image.target.digest, size: Number(image.target.size) };
  if (opts.platform) {
    const m = await resolveManifest(client, top, onlyMatcher(opts.platform));
    top = { mediaType: m.desc.mediaType, digest: m.desc.digest, size: Number(m.desc.size) };
  }
  const jobs: Job[] = [];
  const loop = opts.progress ? new ProgressLoop(() => jobs.map((j) => ({ ref: j.key, status: j.status, offset: j.offset, total: j.total })), opts.progress) : undefined;
  try {
    const push = async (desc: Descriptor, tag?: string): Promise<void> => {
      const job: Job = { desc, key: refKey(desc), status: "waiting", offset: 0, total: desc.size };
      jobs.push(job);
      const isMeta = isIndexMediaType(desc.mediaType) || isManifestMediaType(desc.mediaType);
      if (isMeta) {
        const bytes = await readStream(client, desc.digest);
        const ch = childrenOf(desc.mediaType, bytes);
        if (ch) {
          // Config and layers (or the manifests) before the parent, as remotes.PushContent does.
          for (const c of ch.children) {
            if (ch.kind === "index" && !(await contentInfo(client, c.digest))) continue;
            await push(c);
          }
        }
        job.status = "uploading";
        await reg.pushManifest(ref, bytes, desc.mediaType, tag ? { tag } : {});
      } else {
        // A cross-repository mount from a repository of the same registry the blob came from
        // (the distribution source label), as containerd's pusher tries.
        const info = await contentInfo(client, desc.digest);
        const sources = (info?.labels?.[`containerd.io/distribution.source.${hostOnly(ref.domain)}`] ?? "").split(",").filter((r) => r && r !== ref.path);
        job.status = "uploading";
        job.offset = 0;
        const mount = sources[0] ? { mountFrom: sources[0] } : {};
        if (desc.size <= DEFAULT_CHUNK_SIZE) {
          await reg.pushBlob(ref, { digest: desc.digest, size: desc.size }, await readStream(client, desc.digest), mount);
        } else {
          // Big blobs stream from Content.Read to the registry in PATCH chunks (memory stays flat).
          const counted = new ContentSource(client).read(desc.digest).pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, ctrl) {
                job.offset += chunk.byteLength;
                ctrl.enqueue(chunk);
              },
            }),
          );
          await reg.pushBlob(ref, { digest: desc.digest, size: desc.size }, counted, { ...mount, chunkSize: DEFAULT_CHUNK_SIZE });
        }
      }
      job.offset = desc.size;
      job.status = "done";
    };
    await push(top, ref.tag ?? undefined);
  } finally {
    loop?.stop();
  }
}
