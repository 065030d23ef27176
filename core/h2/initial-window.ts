// A workaround, between a Bun node:http2 session (client or server) and its socket, for a
// flow-control bug of Bun's HTTP/2 (seen in 1.4.5: H2FrameParser.handleSettingsFrame in
// h2_frame_parser.zig, shared by both sides).
//
// RFC 9113 6.9.2: when the peer changes SETTINGS_INITIAL_WINDOW_SIZE, the send window of every
// open stream changes by the difference. Bun instead sets a stream's window limit to the new
// value, and only when that value is above both the stream's limit and the connection's limit
// so far; a stream that already got a WINDOW_UPDATE keeps its old window (or, when the new value
// is higher still, loses the WINDOW_UPDATEs it got). Go's gRPC raises the setting as its BDP
// estimator sees the receive window fill (65535, 131704, ... up to 16 MiB) and, believing the
// stream's window grew with it, sends the next stream WINDOW_UPDATE only after a quarter of the
// new window has been read. A long stream from Bun to Go then waits forever with the window the
// Go side thinks it has granted unused:
//   * Bun as the client: Content.Write streams into Go's containerd (our ctr, our dockerd);
//   * Bun as the server: Content.Read streams from our containerd to Go's ctr (a big image
//     config read by ReadBlob in one call: `ctr images import` stalls at "unpacking").
//
// The fix: increases of INITIAL_WINDOW_SIZE are taken out of the peer's SETTINGS frames before
// Bun reads them (Bun keeps opening streams with the window it knew), and granted as WINDOW_UPDATE
// frames handed to Bun instead: the difference for every stream Bun is still sending on when the
// setting grows, and (peer's value - Bun's) for every stream opened later. Bun then holds the
// window RFC 9113 gives each stream. A decrease (neither Go's nor grpc-js's peers send one) goes
// to Bun unchanged; open streams cannot be given less by a WINDOW_UPDATE.
import { Duplex } from "node:stream";
import type { Socket } from "node:net";

const PREFACE_LENGTH = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", sent by the client only
const HEADER = 9;
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const DEFAULT_INITIAL_WINDOW = 65535;
const MAX_WINDOW = 0x7fffffff;

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(HEADER + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(stream, 5);
  payload.copy(b, HEADER);
  return b;
}

function windowUpdate(stream: number, increment: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(increment, 0);
  return frame(WINDOW_UPDATE, 0, stream, p);
}

/** Which end of the connection Bun's session is. */
export type Role = "client" | "server";

/**
 * Frame-level bookkeeping of one connection, separate from the socket for testing: `outbound` is
 * told what Bun writes, `inbound` rewrites what the peer sends.
 *
 * Which streams Bun is sending on: a client's streams are the ones its HEADERS open (outbound),
 * until it ends them, resets them or the server ends the call (gRPC sends nothing after the
 * server's END_STREAM). A server's are the ones the peer's HEADERS open (inbound; the request's
 * END_STREAM does not end the response), until the server ends them or either side resets them.
 */
export class InitialWindowFix {
  /** The initial window Bun gives a new stream: the last INITIAL_WINDOW_SIZE it was shown. */
  private bunInitial = DEFAULT_INITIAL_WINDOW;
  /** The peer's INITIAL_WINDOW_SIZE. */
  private peerInitial = DEFAULT_INITIAL_WINDOW;
  /** Streams Bun may still send DATA on. */
  private readonly sending = new Set<number>();
  private lastStream = 0;
  private outSkip: number;
  private readonly outHeader = Buffer.alloc(HEADER);
  private outHeaderLength = 0;
  /** The client preface still to pass through unparsed (server role). */
  private inSkip: number;
  /** The peer's frame header being read (split across chunks), and how much of it came. */
  private readonly inHeader = Buffer.alloc(HEADER);
  private inHeaderLength = 0;
  /** Payload bytes of the peer's current frame still to come. */
  private inLeft = 0;
  /** A SETTINGS frame being collected: its header and payload. */
  private inSettingsHeader?: Buffer;
  private inSettings?: Buffer;
  /** The current frame ends the header block of this new stream (server role): 0 if not. */
  private inOpened = 0;
  /** Server role: a stream opened by a header block still going on (CONTINUATION frames to come). */
  private opening = 0;

  /** Window updates owed to Bun for streams opened by `outbound` (handed over by the caller). */
  pending: Buffer[] = [];

  constructor(readonly role: Role = "client") {
    this.outSkip = role === "client" ? PREFACE_LENGTH : 0;
    this.inSkip = role === "server" ? PREFACE_LENGTH : 0;
  }

  /** Scan what Bun writes (forwarded unchanged): which streams open and finish sending. */
  outbound(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.outSkip > 0) {
        const n = Math.min(this.outSkip, chunk.length - i);
        this.outSkip -= n;
        i += n;
        continue;
      }
      const n = Math.min(HEADER - this.outHeaderLength, chunk.length - i);
      this.outHeader.set(chunk.subarray(i, i + n), this.outHeaderLength);
      this.outHeaderLength += n;
      i += n;
      if (this.outHeaderLength < HEADER) return;
      this.outHeaderLength = 0;
      const h = this.outHeader;
      this.outSkip = h.readUIntBE(0, 3);
      this.onBunFrame(h[3]!, h[4]!, h.readUInt32BE(5) & MAX_WINDOW);
    }
  }

  private onBunFrame(type: number, flags: number, stream: number): void {
    if (this.role === "client" && type === HEADERS && stream > this.lastStream) {
      // A new stream: Bun gave it bunInitial, the server peerInitial.
      this.lastStream = stream;
      if (flags & END_STREAM) return;
      this.sending.add(stream);
      if (this.peerInitial > this.bunInitial) this.pending.push(windowUpdate(stream, this.peerInitial - this.bunInitial));
      return;
    }
    if (type === RST_STREAM || ((type === DATA || type === HEADERS) && flags & END_STREAM)) this.sending.delete(stream);
  }

  /**
   * Rewrite what the peer sent; returns what Bun is to read. Bytes pass through as they come
   * (views of `chunk`, whatever the frame boundaries: a Content.Write stream's megabytes are not
   * copied here), except the few frames this rewrites or follows: a frame header split across
   * chunks is held until whole, a SETTINGS frame until its payload is complete, and the window
   * updates added after a frame go out once that frame is through.
   */
  inbound(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    /** Bytes [start, i) of chunk go to Bun as they are. */
    let start = 0;
    if (this.inSkip > 0) {
      const n = Math.min(this.inSkip, chunk.length);
      this.inSkip -= n;
      i = n;
    }
    while (i < chunk.length) {
      if (this.inLeft > 0) {
        // The payload of the current frame.
        const n = Math.min(this.inLeft, chunk.length - i);
        if (this.inSettings) {
          chunk.copy(this.inSettings, this.inSettings.length - this.inLeft, i, i + n);
          start = i + n;
        }
        i += n;
        this.inLeft -= n;
        if (this.inLeft === 0) start = this.inFrameDone(out, chunk, start, i);
        continue;
      }
      // A frame header, perhaps split across chunks.
      const at = i;
      const split = this.inHeaderLength > 0;
      const n = Math.min(HEADER - this.inHeaderLength, chunk.length - i);
      chunk.copy(this.inHeader, this.inHeaderLength, i, i + n);
      this.inHeaderLength += n;
      i += n;
      if (this.inHeaderLength < HEADER) {
        // The rest of it comes with the next chunk: hand over what came before it.
        if (at > start) out.push(chunk.subarray(start, at));
        start = i;
        break;
      }
      this.inHeaderLength = 0;
      const h = this.inHeader;
      const length = h.readUIntBE(0, 3);
      const type = h[3]!;
      const flags = h[4]!;
      const stream = h.readUInt32BE(5) & MAX_WINDOW;
      if (type === SETTINGS && !(flags & ACK) && stream === 0 && length % 6 === 0) {
        // Held until its payload is complete (onPeerSettings may rewrite it).
        if (at > start) out.push(chunk.subarray(start, at));
        start = i;
        this.inSettingsHeader = Buffer.from(h);
        this.inSettings = Buffer.alloc(length);
      } else {
        // The header's first bytes came with an earlier chunk: Bun gets it whole from here.
        if (split) {
          out.push(Buffer.from(h));
          start = i;
        }
        if (type === RST_STREAM || (this.role === "client" && (type === DATA || type === HEADERS) && flags & END_STREAM)) {
          this.sending.delete(stream);
        } else if (this.role === "server" && type === HEADERS && stream > this.lastStream) {
          // A new stream: Bun will give it bunInitial, the client peerInitial; the window update
          // goes after its header block, once Bun knows the stream.
          this.lastStream = stream;
          this.sending.add(stream);
          this.opening = stream;
        }
        if (this.opening && (type === HEADERS || type === CONTINUATION) && stream === this.opening && flags & END_HEADERS) {
          this.inOpened = stream;
          this.opening = 0;
        }
      }
      this.inLeft = length;
      if (length === 0) start = this.inFrameDone(out, chunk, start, i);
    }
    if (i > start) out.push(chunk.subarray(start, i));
    return out;
  }

  /** The current inbound frame is through (chunk[..i) ends it): returns where the pass-through run starts now. */
  private inFrameDone(out: Buffer[], chunk: Buffer, start: number, i: number): number {
    const settings = this.inSettings;
    if (settings) {
      this.inSettings = undefined;
      out.push(...(this.onPeerSettings(settings) ?? [this.inSettingsHeader!, settings]));
      return i;
    }
    const opened = this.inOpened;
    if (opened) {
      this.inOpened = 0;
      if (this.peerInitial > this.bunInitial && this.sending.has(opened)) {
        if (i > start) out.push(chunk.subarray(start, i));
        out.push(windowUpdate(opened, this.peerInitial - this.bunInitial));
        return i;
      }
    }
    return start;
  }

  /** What is left of a partial frame (one Bun was not handed yet) when the peer's side ends. */
  rest(): Buffer {
    const parts: Buffer[] = [];
    if (this.inSettings) parts.push(this.inSettingsHeader!, this.inSettings.subarray(0, this.inSettings.length - this.inLeft));
    if (this.inHeaderLength) parts.push(Buffer.from(this.inHeader.subarray(0, this.inHeaderLength)));
    this.inSettings = undefined;
    this.inHeaderLength = 0;
    return Buffer.concat(parts);
  }

  /** The frames Bun gets for a SETTINGS frame, or undefined to pass it on unchanged. */
  private onPeerSettings(payload: Buffer): Buffer[] | undefined {
    let value: number | undefined;
    const kept: Buffer[] = [];
    for (let j = 0; j < payload.length; j += 6) {
      if (payload.readUInt16BE(j) === SETTINGS_INITIAL_WINDOW_SIZE) value = payload.readUInt32BE(j + 2);
      else kept.push(payload.subarray(j, j + 6));
    }
    // Nothing to do, or a value over 2^31-1 that Bun is to answer with FLOW_CONTROL_ERROR.
    if (value === undefined || value > MAX_WINDOW) return undefined;
    const delta = value - this.peerInitial;
    this.peerInitial = value;
    if (value < this.bunInitial) {
      // A decrease below what Bun opens streams with: Bun has to know it for new streams.
      const e = Buffer.allocUnsafe(6);
      e.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 0);
      e.writeUInt32BE(value, 2);
      kept.push(e);
      this.bunInitial = value;
    }
    const out = [frame(SETTINGS, 0, 0, Buffer.concat(kept))];
    if (delta > 0) for (const s of this.sending) out.push(windowUpdate(s, delta));
    return out;
  }
}

/**
 * The socket as Bun's HTTP/2 session sees it: bytes pass both ways, the peer's SETTINGS rewritten
 * and window updates added by InitialWindowFix. `role` is the side of Bun's session: "client"
 * for http2.connect's createConnection, "server" for a connection handed to an http2 server
 * (grpc-js's Server.createConnectionInjector).
 */
export class InitialWindowFixSocket extends Duplex {
  private readonly fix: InitialWindowFix;
  /** The peer's side ended: nothing more for Bun to read. */
  private ended = false;

  constructor(
    private readonly socket: Socket,
    role: Role = "client",
  ) {
    super();
    this.fix = new InitialWindowFix(role);
    socket.on("data", (d: Buffer) => {
      let more = true;
      for (const b of this.fix.inbound(d)) more = this.push(b);
      if (!more) socket.pause();
    });
    socket.on("end", () => this.end_());
    socket.on("error", (e) => this.destroy(e));
    // Closed: once Bun has read what came before (a GOAWAY...), this side closes too.
    socket.on("close", () => {
      this.end_();
      if (this.readableEnded) this.destroy();
      else this.once("end", () => this.destroy());
    });
  }

  private end_(): void {
    if (this.ended) return;
    this.ended = true;
    const r = this.fix.rest();
    if (r.length) this.push(r);
    this.push(null);
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.fix.outbound(chunk);
    // Client role: Bun's stream exists once its HEADERS are written; its window updates can follow.
    if (this.fix.pending.length) {
      const p = this.fix.pending;
      this.fix.pending = [];
      if (!this.ended) for (const b of p) this.push(b);
    }
    // Done as soon as the socket took it: Bun's session writes a frame at a time, and a write
    // still "pending" here (the socket's callback comes a tick later) would make the next ones
    // report backpressure, which Bun answers by queueing (copying) everything until 'drain'. Only
    // a socket that is buffering past its limit holds the stream up, until it drains.
    if (this.socket.write(chunk)) cb();
    else this.waitDrain(cb);
  }

  private waitDrain(cb: (e?: Error | null) => void): void {
    const done = (e?: Error) => {
      this.socket.off("drain", drained);
      this.socket.off("close", closed);
      cb(e ?? null);
    };
    const drained = () => done();
    const closed = () => done(new Error("socket closed"));
    this.socket.on("drain", drained);
    this.socket.on("close", closed);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(e: Error | null, cb: (e: Error | null) => void): void {
    this.socket.destroy();
    cb(e);
  }

  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, delay?: number): this {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.socket.setTimeout(ms, cb);
    return this;
  }
  ref(): this {
    this.socket.ref();
    return this;
  }
  unref(): this {
    this.socket.unref();
    return this;
  }
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.socket.localPort;
  }
}
