// The WRITE messages of a Content.Write stream, as our ctr sends a blob's bytes into containerd
// (pulls, imports). The protocol is containerd's proxy writer's: 1 MiB WRITE messages (content.Copy
// fills its 1 MiB buffer before each write) at increasing offsets, each answered with the ingest's
// new offset; what is cheaper here is only how the bytes get there:
//
//  * each message is encoded once, straight into a buffer that already holds gRPC's 5-byte
//    length prefix, and the source's chunks are copied into it (one copy: no coalescing buffer,
//    no protobufjs writer, no grpc-js framing copy; see the sendMessage hook below);
//  * a stream's buffers are reused: a message's buffer is free again once the daemon answered
//    it (it then has every byte of it), so a blob of any size costs WRITE_DEPTH + 1 buffers;
//  * WRITE_DEPTH messages are in flight before the first answer is awaited. containerd's server
//    (and ours) reads a stream's messages in order and answers each, so the answers come back in
//    order; the fetch, the framing and the daemon's hashing and file writes overlap instead of
//    taking turns.
//
// Size and digest are the daemon's to check (COMMIT carries the total and the expected digest, as
// containerd's client relies on): this only refuses a source that gives more or fewer bytes than
// the descriptor says.
import { CompressionFilter } from "@grpc/grpc-js/build/src/compression-filter";
import { DigestMismatchError } from "../image/registry";
import type { Client } from "./client";

/** Bytes of blob per WRITE message: containerd's content.Copy buffer. */
export const WRITE_CHUNK = 1 << 20;
/** WRITE messages sent before the first answer is awaited. */
export const WRITE_DEPTH = 2;

type WriteStream = ReturnType<Client["duplex"]>;
type Chunks = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

// ---------------------------------------------------------------------------------------------
// Pre-framed messages through grpc-js

/** Message bodies (what the serializer returns) whose buffer also holds the 5-byte gRPC prefix. */
const framedOf = new WeakMap<Uint8Array, Buffer>();

/**
 * grpc-js's CompressionFilter frames every outgoing message: a new buffer of 5 + length bytes and
 * a copy of the serialized message into it. A body registered in framedOf already sits 5 bytes
 * into a buffer whose prefix is filled in: with identity compression (what our client uses) that
 * buffer is the framed message as the filter would have built it.
 */
function hookFraming(): void {
  const proto = CompressionFilter.prototype as unknown as { sendMessage(m: Promise<{ message: Buffer; flags?: number }>): Promise<{ message: Buffer; flags?: number }>; __bunkerPreframed?: true };
  if (proto.__bunkerPreframed) return;
  const original = proto.sendMessage;
  proto.sendMessage = async function (this: { currentCompressionAlgorithm?: string; maxSendMessageLength?: number }, message) {
    const m = await message;
    const framed = framedOf.get(m.message);
    const max = this.maxSendMessageLength ?? -1;
    if (framed && this.currentCompressionAlgorithm === "identity" && (max === -1 || m.message.length <= max)) return { message: framed, flags: m.flags };
    return original.call(this, Promise.resolve(m));
  };
  proto.__bunkerPreframed = true;
}
hookFraming();

/** A message body for Client.duplex's serializer: passed on as it is. */
export function isPreframed(o: unknown): o is Buffer {
  return o instanceof Uint8Array && framedOf.has(o);
}

// ---------------------------------------------------------------------------------------------
// WriteContentRequest{action: WRITE, ref, offset, data}, hand-encoded

const varintLength = (n: number) => {
  let l = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    l++;
  }
  return l;
};

function putVarint(b: Buffer, at: number, n: number): number {
  while (n >= 128) {
    b[at++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  b[at++] = n;
  return at;
}

/** A reusable message buffer: the frame's prefix and fields, then room for `capacity` data bytes. */
class Frame {
  readonly buf: Buffer;
  /** Where the data goes, its length, how much of it is in. */
  dataAt = 0;
  length = 0;
  filled = 0;

  constructor(
    private readonly ref: Buffer,
    capacity: number,
  ) {
    // prefix, action, ref, offset (int64), data's tag and length
    this.buf = Buffer.allocUnsafe(5 + 2 + 1 + varintLength(ref.length) + ref.length + 1 + 10 + 1 + varintLength(capacity) + capacity);
  }

  /** Start the message for `length` bytes at `offset` (canonical protobuf: fields in order, offset 0 left out). */
  start(offset: number, length: number): void {
    const b = this.buf;
    let at = 5;
    b[at++] = 0x08; // action = WRITE (1)
    b[at++] = 1;
    b[at++] = 0x12; // ref
    at = putVarint(b, at, this.ref.length);
    at += this.ref.copy(b, at);
    if (offset > 0) {
      b[at++] = 0x28; // offset
      at = putVarint(b, at, offset);
    }
    b[at++] = 0x32; // data
    at = putVarint(b, at, length);
    this.dataAt = at;
    this.length = length;
    this.filled = 0;
    b[0] = 0; // not compressed
    b.writeUInt32BE(at - 5 + length, 1);
  }

  /** Copy what fits of `chunk` from `from`; returns the bytes taken. */
  fill(chunk: Uint8Array, from: number): number {
    const n = Math.min(chunk.byteLength - from, this.length - this.filled);
    this.buf.set(n === chunk.byteLength ? chunk : chunk.subarray(from, from + n), this.dataAt + this.filled);
    this.filled += n;
    return n;
  }

  /** The serialized message (registered with its framed buffer). */
  body(): Buffer {
    const end = this.dataAt + this.length;
    const body = this.buf.subarray(5, end);
    framedOf.set(body, this.buf.subarray(0, end));
    return body;
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Send `chunks` (the blob's bytes from `offset` to `size`) as WRITE messages on an open Write
 * stream, WRITE_DEPTH of them in flight; `onProgress` is told the ingest's offset as the daemon
 * answers. Resolves with the offset reached (`size`) once every message is answered; rejects with
 * DigestMismatchError when the source gives more or fewer bytes than that, or with the stream's
 * error.
 */
export async function writeChunks(w: WriteStream, ref: string, chunks: Chunks, offset: number, size: number, digest: string, onProgress?: (offset: number) => void): Promise<number> {
  const refBytes = Buffer.from(ref);
  const capacity = Math.min(WRITE_CHUNK, Math.max(0, size - offset));
  const free: Frame[] = [];
  const inflight: Promise<void>[] = [];
  let sent = offset;
  let cur: Frame | undefined;

  const send = async (f: Frame, at: number, length: number): Promise<void> => {
    const p = (w.send(f.body()) as Promise<{ offset?: string | number }>).then((res) => {
      // containerd's remoteWriter: the answer's offset tells how much was written.
      if (Number(res?.offset ?? 0) !== at + length) throw new Error(`short write: wrote ${Number(res?.offset ?? 0) - at} of ${length} bytes at offset ${at}`);
      free.push(f);
      onProgress?.(at + length);
    });
    p.catch(() => {}); // awaited below, in order; a failed stream rejects every one of them
    inflight.push(p);
    if (inflight.length >= WRITE_DEPTH) await inflight.shift();
  };

  for await (const chunk of chunks) {
    let from = 0;
    while (from < chunk.byteLength) {
      if (!cur) {
        if (sent >= size) throw new DigestMismatchError(`content size mismatch for ${digest}: more than the expected ${size} bytes`);
        cur = free.pop() ?? new Frame(refBytes, capacity);
        cur.start(sent, Math.min(capacity, size - sent));
      }
      from += cur.fill(chunk, from);
      if (cur.filled === cur.length) {
        const f = cur;
        cur = undefined;
        const at = sent;
        sent += f.length;
        await send(f, at, f.length);
      }
    }
  }
  if (cur || sent < size) {
    // The source ended early (a clean end: a broken connection errors instead).
    for (const p of inflight.splice(0)) await p;
    throw new DigestMismatchError(`content size mismatch for ${digest}: expected ${size} bytes, got ${sent + (cur?.filled ?? 0)}`);
  }
  for (const p of inflight.splice(0)) await p;
  return sent;
}
