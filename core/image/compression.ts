// Layer compression: what a media type says, what the bytes say (magic numbers), and streaming
// decompression. gzip and zstd both go through the web DecompressionStream Bun implements natively
// (zstd since Bun 1.3): it takes and gives chunks of at most a few hundred KiB, so memory does not
// depend on the layer's size even for data that compresses 30000:1 (a zstd frame of zeros).

export type Compression = "none" | "gzip" | "zstd";

export class CompressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CompressionError";
  }
}

/**
 * The compression a layer media type announces. OCI (application/vnd.oci.image.layer.v1.tar[+gzip|
 * +zstd], the nondistributable variants) and Docker (application/vnd.docker.image.rootfs.diff.tar
 * [.gzip|.zstd], foreign layers). Anything else (encrypted layers, other formats) is refused.
 */
export function compressionOfMediaType(mediaType: string): Compression {
  const mt = mediaType.trim().toLowerCase();
  if (/\+encrypted$/.test(mt)) throw new CompressionError(`unsupported layer media type ${mediaType}: encrypted layers are not supported`);
  const known = /^application\/vnd\.(oci\.image\.layer(\.nondistributable)?\.v1\.tar|docker\.image\.rootfs(\.foreign)?\.diff\.tar)([+.](gzip|zstd))?$/.exec(mt);
  if (!known) throw new CompressionError(`unsupported layer media type ${mediaType}`);
  return (known[5] as Compression | undefined) ?? "none";
}

/** What the first bytes of a layer are. */
export function sniffCompression(head: Uint8Array): Compression | "bzip2" | "xz" {
  const at = (i: number) => head[i];
  if (at(0) === 0x1f && at(1) === 0x8b) return "gzip";
  if (at(0) === 0x28 && at(1) === 0xb5 && at(2) === 0x2f && at(3) === 0xfd) return "zstd";
  if (at(0) === 0x42 && at(1) === 0x5a && at(2) === 0x68) return "bzip2";
  if (at(0) === 0xfd && at(1) === 0x37 && at(2) === 0x7a && at(3) === 0x58 && at(4) === 0x5a && at(5) === 0x00) return "xz";
  return "none";
}

/** The bytes of a ReadableStream or any async iterable of chunks, as an async iterable. */
export function chunksOf(src: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return src as AsyncIterable<Uint8Array>; // ReadableStream is async-iterable in Bun
}

/**
 * Look at the first `n` bytes of a stream without losing them: returns them and an iterable that
 * yields the whole stream again from the start.
 */
export async function peek(src: AsyncIterable<Uint8Array>, n: number): Promise<{ head: Uint8Array; stream: AsyncIterable<Uint8Array>; cancel: () => Promise<void> }> {
  const it = src[Symbol.asyncIterator]();
  const seen: Uint8Array[] = [];
  let have = 0, done = false;
  while (have < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    if (r.value.byteLength) {
      seen.push(r.value);
      have += r.value.byteLength;
    }
  }
  const head = Buffer.concat(seen).subarray(0, n);
  async function* replay(): AsyncGenerator<Uint8Array> {
    try {
      yield* seen.splice(0);
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      if (!done) await it.return?.();
    }
  }
  return { head, stream: replay(), cancel: async () => void (done || (await it.return?.())) };
}

/** Pass chunks through, showing each to `see` first (hashing, counting). */
export async function* tap(src: AsyncIterable<Uint8Array>, see: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  for await (const c of src) {
    see(c);
    yield c;
  }
}

/** A pull-driven ReadableStream over an async iterable: nothing is read ahead of demand. */
function toReadable(src: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = src[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const r = await it.next();
        if (r.done) c.close();
        else c.enqueue(r.value);
      },
      async cancel() {
        await it.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}

/** Decompress a stream of chunks, streaming. Errors name the format ("gzip: unexpected end of file"). */
export async function* decompress(src: AsyncIterable<Uint8Array>, kind: Compression): AsyncGenerator<Uint8Array> {
  if (kind === "none") {
    yield* src;
    return;
  }
  let ds: DecompressionStream;
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    ds = new DecompressionStream(kind as any);
  } catch {
    throw new CompressionError(`${kind} decompression is not available in this Bun`);
  }
  const out = toReadable(src).pipeThrough(ds as unknown as TransformStream<Uint8Array, Uint8Array>);
  const reader = out.getReader();
  try {
    for (;;) {
      let r: { done: boolean; value?: Uint8Array };
      try {
        r = await reader.read();
      } catch (e) {
        if (e instanceof CompressionError) throw e;
        const msg = e instanceof Error ? e.message : String(e);
        // The source's own errors (a failed download) pass through the pipe unchanged.
        if (e instanceof Error && !(e instanceof TypeError)) throw e;
        throw new CompressionError(`${kind}: ${msg}${/end of file/.test(msg) ? " (the layer is truncated)" : ""}`);
      }
      if (r.done) return;
      yield r.value!;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** Compress a stream of chunks (gzip or zstd), streaming. */
export async function* compress(src: AsyncIterable<Uint8Array>, kind: Compression): AsyncGenerator<Uint8Array> {
  if (kind === "none") {
    yield* src;
    return;
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const cs = new CompressionStream(kind as any) as unknown as TransformStream<Uint8Array, Uint8Array>;
  const reader = toReadable(src).pipeThrough(cs).getReader();
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) return;
      yield r.value;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
