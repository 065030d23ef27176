// What containerd's Go client does on the client side for ctr's images import/export/check/mount:
// the content service as a BlobSink/BlobSource (core/image/archive.ts), the gc reference labels
// images.SetChildrenLabels puts on manifests and indexes, and image unpack (rootfs.ApplyLayers:
// chain IDs from the config's diff IDs, Snapshots.Stat to skip what exists, Prepare + Diff.Apply
// + Commit for the rest, then the snapshot gc label on the config).
import { createHash, randomBytes } from "node:crypto";
import type { BlobSink, BlobSource } from "../image/archive";
import { isIndexMediaType, isManifestMediaType, matchingManifests, type Descriptor, type ImageIndex } from "../image/manifest";
import type { PlatformMatcher } from "../image/platform";
import { isAlreadyExists, isNotFound, isUnavailable } from "../containerd/errdefs";
import type { Client } from "./client";
import { writeChunks } from "./content-write";

export const CONTENT = "containerd.services.content.v1.Content";
export const SNAPSHOTS = "containerd.services.snapshots.v1.Snapshots";
export const DIFF = "containerd.services.diff.v1.Diff";
export const IMAGES = "containerd.services.images.v1.Images";

/** The bytes of `data` from `skip` on. */
async function* bytesFrom(data: ReadableStream<Uint8Array> | Uint8Array, skip: number): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    if (skip < data.byteLength) yield data.subarray(skip);
    return;
  }
  for await (const value of data as unknown as AsyncIterable<Uint8Array>) {
    if (skip >= value.byteLength) {
      skip -= value.byteLength;
      continue;
    }
    yield skip > 0 ? value.subarray(skip) : value;
    skip = 0;
  }
}

type WriteStream = ReturnType<Client["duplex"]>;

/**
 * content.OpenWriter: open a Write stream for `ref` (its first STAT locks the ref in the daemon).
 * While another writer holds the ref the daemon answers Unavailable: wait (rand(n) ms, n doubling
 * from 16 to 2048) and try again, for as long as it takes, as containerd's client does. Returns
 * undefined when the blob already exists (AlreadyExists: someone else committed it).
 */
export async function openWriter(client: Client, ref: string, desc: { digest: string; size: number }, onWait?: () => void): Promise<{ w: WriteStream; offset: number } | undefined> {
  let retry = 16;
  for (;;) {
    const w = client.duplex(CONTENT, "Write");
    try {
      const st = await w.send({ action: "STAT", ref, total: String(desc.size), expected: desc.digest });
      return { w, offset: Number(st?.offset ?? 0) };
    } catch (e) {
      w.close();
      if (isAlreadyExists(e)) return undefined;
      if (!isUnavailable(e)) throw e;
      onWait?.();
    }
    await Bun.sleep(Math.floor(Math.random() * retry));
    if (retry < 2048) retry <<= 1;
  }
}

/** content.WriteBlob over the Write stream: WRITE messages, then COMMIT with the expected digest. */
export async function writeBlob(client: Client, ref: string, desc: { digest: string; size: number }, data: ReadableStream<Uint8Array> | Uint8Array, labels: Record<string, string> = {}): Promise<void> {
  const opened = await openWriter(client, ref, desc);
  if (!opened) return;
  const w = opened.w;
  try {
    // A kept ingest longer than the blob cannot be resumed: start over (the first WRITE at offset
    // 0 truncates it).
    const from = opened.offset > desc.size ? 0 : opened.offset;
    const offset = from < desc.size ? await writeChunks(w, ref, bytesFrom(data, from), from, desc.size, desc.digest) : from;
    try {
      await w.send({ action: "COMMIT", ref, total: String(desc.size), offset: String(offset), expected: desc.digest, labels });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
  } catch (e) {
    // A stream that failed (digest mismatch, truncation): nothing is stored, the ingest goes.
    w.close();
    await client.call(CONTENT, "Abort", { ref }).catch(() => {});
    throw e;
  } finally {
    w.close();
  }
}

export async function readAll(client: Client, digest: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const r of client.stream<{ data: Uint8Array }>(CONTENT, "Read", { digest })) parts.push(Buffer.from(r.data));
  return Buffer.concat(parts);
}

export async function readJSON<T = any>(client: Client, digest: string): Promise<T> {
  return JSON.parse((await readAll(client, digest)).toString("utf8"));
}

export async function contentInfo(client: Client, digest: string): Promise<{ digest: string; size: number; labels: Record<string, string> } | undefined> {
  try {
    const { info } = await client.call(CONTENT, "Info", { digest });
    return { digest: info.digest, size: Number(info.size), labels: info.labels ?? {} };
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export class ContentSink implements BlobSink {
  constructor(private readonly client: Client) {}
  async has(digest: string): Promise<boolean> {
    return !!(await contentInfo(this.client, digest));
  }
  async write(desc: Descriptor, data: ReadableStream<Uint8Array> | Uint8Array): Promise<void> {
    await writeBlob(this.client, `import-${desc.digest}`, desc, data);
  }
}

export class ContentSource implements BlobSource {
  constructor(private readonly client: Client) {}
  async info(digest: string): Promise<{ size: number }> {
    const { info } = await this.client.call(CONTENT, "Info", { digest });
    return { size: Number(info.size) };
  }
  read(digest: string): ReadableStream<Uint8Array> {
    const it = this.client.stream<{ data: Uint8Array }>(CONTENT, "Read", { digest });
    return new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        const { done, value } = await it.next();
        if (done) ctrl.close();
        else ctrl.enqueue(new Uint8Array(value.data));
      },
      async cancel() {
        await it.return(undefined);
      },
    });
  }
}

/** images.SetChildrenLabels: gc.ref.content.* labels on a manifest/index for its children. */
export async function setChildrenLabels(client: Client, desc: Descriptor): Promise<Descriptor[]> {
  const labels: Record<string, string> = {};
  let children: Descriptor[] = [];
  if (isManifestMediaType(desc.mediaType)) {
    const m = await readJSON(client, desc.digest);
    children = [m.config, ...(m.layers ?? [])].filter(Boolean);
    labels["containerd.io/gc.ref.content.config"] = m.config.digest;
    (m.layers ?? []).forEach((l: Descriptor, i: number) => (labels[`containerd.io/gc.ref.content.l.${i}`] = l.digest));
  } else if (isIndexMediaType(desc.mediaType)) {
    const idx = await readJSON(client, desc.digest);
    children = idx.manifests ?? [];
    children.forEach((c, i) => (labels[`containerd.io/gc.ref.content.m.${i}`] = c.digest));
  }
  if (Object.keys(labels).length) {
    await client.call(CONTENT, "Update", { info: { digest: desc.digest, labels }, updateMask: { paths: Object.keys(labels).map((k) => `labels.${k}`) } });
  }
  return children;
}

/** Label the whole tree under desc (indexes limited to what exists in the store). */
export async function labelTree(client: Client, desc: Descriptor): Promise<void> {
  if (!(await contentInfo(client, desc.digest))) return;
  const kids = await setChildrenLabels(client, desc);
  for (const k of kids) if (isManifestMediaType(k.mediaType) || isIndexMediaType(k.mediaType)) await labelTree(client, k);
}

/**
 * Resolves once a blob can be read from the content store: for an unpack that runs while the
 * image is still being fetched (ctr pull), a pending fetch of the blob. Without one, blobs are
 * read straight away.
 */
export type BlobReady = (desc: Descriptor) => Promise<void>;

/** The manifest of an image for a platform (indexes resolved through the matcher). */
export async function resolveManifest(client: Client, target: Descriptor, matcher: PlatformMatcher, ready?: BlobReady): Promise<{ desc: Descriptor; manifest: any }> {
  let d = target;
  for (let depth = 0; depth < 8; depth++) {
    await ready?.(d);
    if (isManifestMediaType(d.mediaType)) return { desc: d, manifest: await readJSON(client, d.digest) };
    if (!isIndexMediaType(d.mediaType)) throw new Error(`unexpected media type ${d.mediaType} for ${d.digest}`);
    const idx = (await readJSON(client, d.digest)) as ImageIndex;
    const ms = matchingManifests(idx, matcher);
    if (!ms.length) throw new Error(`manifest ${d.digest}: not found`);
    d = ms[0]!;
  }
  throw new Error("index nesting too deep");
}

export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) out.push(out.length ? "sha256:" + createHash("sha256").update(`${out[out.length - 1]} ${d}`).digest("hex") : d);
  return out;
}

function uniquePart(): string {
  const ns = Number(process.hrtime.bigint() % 1_000_000_000n);
  return `${ns}-${randomBytes(3).toString("base64url").replace(/-/g, "+").replace(/_/g, "/")}`;
}

export interface ImageLayers {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  diffIDs: string[];
}

export async function imageLayers(client: Client, target: Descriptor, matcher: PlatformMatcher, ready?: BlobReady): Promise<ImageLayers> {
  const { desc, manifest } = await resolveManifest(client, target, matcher, ready);
  await ready?.(manifest.config);
  const config = await readJSON(client, manifest.config.digest);
  const diffIDs: string[] = config.rootfs?.diff_ids ?? [];
  const layers: Descriptor[] = manifest.layers ?? [];
  if (diffIDs.length !== layers.length) throw new Error("mismatched image rootfs and manifest layers");
  return { manifest: desc, config: manifest.config, layers, diffIDs };
}

/** image.IsUnpacked: the top chain ID exists in the snapshotter. */
export async function isUnpacked(client: Client, target: Descriptor, matcher: PlatformMatcher, snapshotter: string): Promise<boolean> {
  const { diffIDs } = await imageLayers(client, target, matcher);
  const ids = chainIDs(diffIDs);
  if (!ids.length) return false;
  try {
    await client.call(SNAPSHOTS, "Stat", { snapshotter, key: ids[ids.length - 1] });
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/**
 * image.Unpack: apply every layer not already present, then label the config for gc. With
 * `ready`, each blob is waited for before it is read (layers are applied as they arrive).
 */
export async function unpackImage(client: Client, target: Descriptor, matcher: PlatformMatcher, snapshotter: string, ready?: BlobReady): Promise<string> {
  const { config, layers, diffIDs } = await imageLayers(client, target, matcher, ready);
  const ids = chainIDs(diffIDs);
  let parent = "";
  for (let i = 0; i < layers.length; i++) {
    const chainID = ids[i]!;
    let exists = true;
    try {
      await client.call(SNAPSHOTS, "Stat", { snapshotter, key: chainID });
    } catch (e) {
      if (!isNotFound(e)) throw e;
      exists = false;
    }
    if (!exists) {
      await ready?.(layers[i]!);
      const key = `extract-${uniquePart()} ${chainID}`;
      const { mounts } = await client.call(SNAPSHOTS, "Prepare", { snapshotter, key, parent, labels: { "containerd.io/snapshot.ref": chainID } });
      try {
        const { applied } = await client.call(DIFF, "Apply", { diff: layers[i], mounts });
        if (applied?.digest !== diffIDs[i]) throw new Error(`wrong diff id calculated on extraction ${JSON.stringify(diffIDs[i])}`);
        await client.call(SNAPSHOTS, "Commit", { snapshotter, name: chainID, key, labels: { "containerd.io/snapshot.ref": chainID } });
      } catch (e) {
        await client.call(SNAPSHOTS, "Remove", { snapshotter, key }).catch(() => {});
        if (!isAlreadyExists(e)) throw e;
      }
      // As containerd's unpacker: every layer it applied gets the label, an uncompressed one too
      // (its diff ID is then its own digest).
      const k = "containerd.io/uncompressed";
      await client.call(CONTENT, "Update", { info: { digest: layers[i]!.digest, labels: { [k]: diffIDs[i] } }, updateMask: { paths: [`labels.${k}`] } }).catch(() => {});
    }
    parent = chainID;
  }
  if (ids.length) {
    const k = `containerd.io/gc.ref.snapshot.${snapshotter}`;
    await client.call(CONTENT, "Update", { info: { digest: config.digest, labels: { [k]: parent } }, updateMask: { paths: [`labels.${k}`] } });
  }
  return parent;
}
