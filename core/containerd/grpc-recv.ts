// Received gRPC messages in reusable buffers, for the daemon's Content.Write streams.
//
// grpc-js's StreamDecoder collects a message's pieces (Bun hands each 16 KiB DATA frame over as
// its own buffer) and then Buffer.concat()s them into a fresh buffer of the message's size: for
// a WRITE that is a new megabyte per message, garbage as soon as the handler has written it to
// the ingest file, so a pull of a few hundred megabytes left the daemon's memory to the garbage
// collector's pace (~90 MiB above idle at its peak) and paid the page faults of fresh memory
// for every message.
//
// The decoder below is grpc-js's, except that a message of POOLED_MIN bytes or more is copied
// piece by piece into a buffer taken from a small pool (the same copy the concat made), and a
// handler that is done with such a message (nothing of it is referenced any more) gives the
// buffer back with recycle(). A message never recycled is only garbage, as before.
import { StreamDecoder } from "@grpc/grpc-js/build/src/stream-decoder";

/** Messages from this size on go into pooled buffers. */
const POOLED_MIN = 64 * 1024;
/** The pool's buffers hold a message of up to this size (a 1 MiB WRITE and its fields). */
const CAPACITY = (1 << 20) + 4096;
/** Free buffers kept. */
const KEEP = 4;

const free: Buffer[] = [];
/** The pool's buffers by their memory, and whether each is free. */
const pooled = new WeakMap<ArrayBufferLike, { buf: Buffer; free: boolean }>();

function take(size: number): Buffer {
  if (size > CAPACITY) return Buffer.allocUnsafe(size);
  let buf = free.pop();
  if (buf) pooled.get(buf.buffer)!.free = false;
  else {
    buf = Buffer.allocUnsafeSlow(CAPACITY);
    pooled.set(buf.buffer, { buf, free: false });
  }
  return buf.subarray(0, size);
}

/**
 * Give back the buffer under `view` (a received message, or a view into one, such as a decoded
 * bytes field) once nothing refers to any of it any more. Views of other memory are ignored.
 */
export function recycle(view: Uint8Array): void {
  const entry = pooled.get(view.buffer);
  if (!entry || entry.free || free.length >= KEEP) return;
  entry.free = true;
  free.push(entry.buf);
}

const enum State {
  NoData,
  ReadingSize,
  ReadingMessage,
}

interface DecoderState {
  maxReadMessageLength: number;
  state?: State;
  header?: Buffer;
  headerLength?: number;
  message?: Buffer;
  messageLength?: number;
  parts?: Buffer[];
  remaining?: number;
}

/** StreamDecoder.write: the framed messages completed by `data` (5-byte prefix included). */
function write(this: DecoderState, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  this.state ??= State.NoData;
  this.header ??= Buffer.alloc(5);
  let at = 0;
  while (at < data.length) {
    switch (this.state) {
      case State.NoData:
      case State.ReadingSize: {
        if (this.state === State.NoData) {
          this.state = State.ReadingSize;
          this.headerLength = 0;
        }
        const n = Math.min(5 - this.headerLength!, data.length - at);
        data.copy(this.header, this.headerLength!, at, at + n);
        this.headerLength! += n;
        at += n;
        if (this.headerLength! < 5) break;
        const size = this.header.readUInt32BE(1);
        if (this.maxReadMessageLength !== -1 && size > this.maxReadMessageLength) {
          throw new Error(`Received message larger than max (${size} vs ${this.maxReadMessageLength})`);
        }
        if (size === 0) {
          out.push(Buffer.from(this.header));
          this.state = State.NoData;
          break;
        }
        this.remaining = size;
        this.messageLength = 5;
        if (size >= POOLED_MIN) {
          this.message = take(size + 5);
          this.header.copy(this.message, 0);
          this.parts = undefined;
        } else {
          this.message = undefined;
          this.parts = [Buffer.from(this.header)];
        }
        this.state = State.ReadingMessage;
        break;
      }
      case State.ReadingMessage: {
        const n = Math.min(this.remaining!, data.length - at);
        if (this.message) data.copy(this.message, this.messageLength!, at, at + n);
        else this.parts!.push(data.subarray(at, at + n));
        this.messageLength! += n;
        this.remaining! -= n;
        at += n;
        if (this.remaining === 0) {
          out.push(this.message ?? Buffer.concat(this.parts!, this.messageLength));
          this.message = undefined;
          this.parts = undefined;
          this.state = State.NoData;
        }
        break;
      }
    }
  }
  return out;
}

let installed = false;

/** Replace StreamDecoder.write (every decoder grpc-js creates in this process). */
export function installPooledDecoder(): void {
  if (installed) return;
  installed = true;
  (StreamDecoder.prototype as unknown as { write: typeof write }).write = write;
}
