// The Content.Write fast paths, without daemons: our ctr's hand-encoded, pre-framed WRITE
// messages (core/ctr/content-write.ts) against protobufjs's encoding, their pipelining; the
// daemon's pooled message decoder (core/containerd/grpc-recv.ts) against grpc-js's own; the
// h2 window fix handing the peer's DATA through without copying it (core/h2/initial-window.ts).
import { describe, expect, test } from "bun:test";
import { StreamDecoder } from "@grpc/grpc-js/build/src/stream-decoder";
import { CompressionFilter } from "@grpc/grpc-js/build/src/compression-filter";
import { codecFor } from "../core/containerd/grpc";
import { installPooledDecoder, recycle } from "../core/containerd/grpc-recv";
import { isPreframed, writeChunks, WRITE_DEPTH } from "../core/ctr/content-write";
import { InitialWindowFix } from "../core/h2/initial-window";
import { DigestMismatchError } from "../core/image/registry";

const REQ = codecFor("containerd.services.content.v1.WriteContentRequest");

/** A fake Write stream: records what is sent, answers each WRITE when told to. */
function fakeStream() {
  const sent: { body: Buffer; framed: Buffer | undefined }[] = [];
  const answers: (() => void)[] = [];
  let offset = 0;
  const filter = Object.create(CompressionFilter.prototype) as { currentCompressionAlgorithm: string; maxSendMessageLength: number; sendMessage(m: Promise<{ message: Buffer }>): Promise<{ message: Buffer }> };
  filter.currentCompressionAlgorithm = "identity";
  filter.maxSendMessageLength = -1;
  return {
    sent,
    inFlight: () => answers.length,
    answerAll: () => answers.splice(0).forEach((a) => a()),
    w: {
      send: async (req: unknown) => {
        expect(isPreframed(req)).toBe(true);
        const body = req as Buffer;
        // What grpc-js's framing filter turns it into (the hook hands over the framed buffer).
        const framed = Buffer.from((await filter.sendMessage(Promise.resolve({ message: body }))).message);
        const msg = REQ.decode(Buffer.from(body));
        sent.push({ body: Buffer.from(body), framed });
        return new Promise((resolve) =>
          answers.push(() => {
            offset = Number(msg.offset) + msg.data.length;
            resolve({ offset: String(offset) });
          }),
        );
      },
      close: () => {},
    },
  };
}

describe("our ctr's WRITE messages", () => {
  test("encode as protobufjs does, framed as grpc-js frames them, at any offset", async () => {
    for (const start of [0, 1, 127, 128, 1 << 20, 2 ** 32 + 5, 2 ** 45 + 3]) {
      const data = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 255));
      const f = fakeStream();
      const p = writeChunks(f.w as any, "layer-sha256:abc", [data.subarray(0, 1000), data.subarray(1000)], start, start + data.length, "sha256:x");
      while (f.sent.length < 1) await Bun.sleep(1);
      f.answerAll();
      expect(await p).toBe(start + data.length);
      const { body, framed } = f.sent[0]!;
      // protobufjs also writes a zero offset; proto3 (and containerd's Go client) leaves it out.
      const expected = REQ.encode({ action: "WRITE", ref: "layer-sha256:abc", offset: String(start), data });
      if (start > 0) expect(body.equals(expected)).toBe(true);
      else expect(Buffer.concat([body.subarray(0, 4 + "layer-sha256:abc".length), Buffer.from([0x28, 0]), body.subarray(4 + "layer-sha256:abc".length)]).equals(expected)).toBe(true);
      const decoded = REQ.decode(body);
      expect([decoded.action, decoded.ref, decoded.offset, Buffer.from(decoded.data).equals(data)]).toEqual(["WRITE", "layer-sha256:abc", String(start), true]);
      expect(framed!.subarray(0, 5).equals(Buffer.from([0, ...[24, 16, 8, 0].map((s) => (body.length >>> s) & 255)]))).toBe(true);
      expect(framed!.subarray(5).equals(body)).toBe(true);
    }
  });

  test("1 MiB messages, at most WRITE_DEPTH in flight, progress as they are answered", async () => {
    const size = 5 * (1 << 20) + 123;
    const data = Buffer.alloc(size, 7);
    const f = fakeStream();
    const progress: number[] = [];
    const chunks = (function* () {
      for (let o = 0; o < size; o += 65536) yield data.subarray(o, o + 65536);
    })();
    const p = writeChunks(f.w as any, "r", chunks, 0, size, "sha256:x", (o) => progress.push(o));
    for (;;) {
      await Bun.sleep(2);
      expect(f.inFlight()).toBeLessThanOrEqual(WRITE_DEPTH);
      if (f.sent.length === 6 && f.inFlight() === 0) break;
      f.answerAll();
    }
    expect(await p).toBe(size);
    expect(f.sent.map((s) => REQ.decode(s.body).data.length)).toEqual([...Array(5).fill(1 << 20), 123]);
    expect(f.sent.map((s) => Number(REQ.decode(s.body).offset))).toEqual([0, 1, 2, 3, 4, 5].map((i) => i << 20));
    expect(progress).toEqual([1, 2, 3, 4, 5].map((i) => i << 20).concat(size));
  });

  test("a source giving more or fewer bytes than the descriptor is refused", async () => {
    const f = fakeStream();
    const answering = setInterval(f.answerAll, 1);
    try {
      await expect(writeChunks(f.w as any, "r", [Buffer.alloc(10)], 0, 9, "sha256:x")).rejects.toBeInstanceOf(DigestMismatchError);
      await expect(writeChunks(f.w as any, "r", [Buffer.alloc(8)], 0, 9, "sha256:x")).rejects.toThrow("content size mismatch for sha256:x: expected 9 bytes, got 8");
    } finally {
      clearInterval(answering);
    }
  });
});

describe("the daemon's pooled message decoder", () => {
  test("yields what grpc-js's decoder yields, split anywhere; recycled buffers are reused", () => {
    const messages = [Buffer.alloc(0), Buffer.from("small"), Buffer.alloc(70_000, 1), Buffer.alloc(1 << 20, 2), Buffer.alloc(3, 3), Buffer.alloc(200_000, 4)];
    const wire = Buffer.concat(messages.map((m) => Buffer.concat([Buffer.from([0, (m.length >>> 24) & 255, (m.length >>> 16) & 255, (m.length >>> 8) & 255, m.length & 255]), m])));
    const reference = new StreamDecoder(-1).write(wire);
    installPooledDecoder();
    for (const step of [1, 7, 16393, wire.length]) {
      const d = new StreamDecoder(-1);
      const got: Buffer[] = [];
      for (let i = 0; i < wire.length; i += step) got.push(...d.write(wire.subarray(i, i + step)));
      expect(got.length).toBe(reference.length);
      got.forEach((g, i) => expect(Buffer.compare(g, reference[i]!)).toBe(0));
      for (const g of got) recycle(g.subarray(5));
    }
    const d = new StreamDecoder(-1);
    const [a] = d.write(wire.subarray(wire.length - 200_005));
    recycle(a!.subarray(5));
    const [b] = d.write(wire.subarray(wire.length - 200_005));
    expect(b!.buffer).toBe(a!.buffer);
    expect(() => new StreamDecoder(100).write(wire.subarray(wire.length - 200_005))).toThrow("Received message larger than max (200000 vs 100)");
  });
});

describe("the h2 window fix's inbound path", () => {
  test("DATA frames reach Bun as views of the socket's chunks, split anywhere", () => {
    const frame = (type: number, stream: number, payload: Buffer) => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h.writeUInt32BE(stream, 5);
      return Buffer.concat([h, payload]);
    };
    const wire = Buffer.concat([frame(0, 1, Buffer.alloc(16384, 1)), frame(0, 1, Buffer.alloc(16384, 2)), frame(8, 0, Buffer.from([0, 0, 1, 0]))]);
    for (const cut of [100, 16393, 16400, 20000]) {
      const fix = new InitialWindowFix("client");
      fix.outbound(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
      const a = Buffer.from(wire.subarray(0, cut));
      const b = Buffer.from(wire.subarray(cut));
      const out = [...fix.inbound(a), ...fix.inbound(b)];
      expect(Buffer.concat(out).equals(wire)).toBe(true);
      // Everything but a frame header split across the two chunks is a view of them.
      const copied = out.filter((o) => o.buffer !== a.buffer && o.buffer !== b.buffer);
      expect(copied.reduce((n, o) => n + o.length, 0)).toBeLessThanOrEqual(9);
    }
  });
});
