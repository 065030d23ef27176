// core/h2/initial-window.ts: the workaround for Bun's HTTP/2 not growing open streams' send
// windows when the peer raises SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 6.9.2), on both sides: our
// clients (ctr, dockerd) writing into Go's containerd, our containerd answering Go's ctr.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { InitialWindowFix, InitialWindowFixSocket } from "../core/h2/initial-window";
import { tar } from "./fixtures/tiny-tar";
import { exec, waitFor } from "./harness";
import { OUR_CONTAINERD, OurContainerd, REAL_CTR } from "./our-containerd";
import { ensurePeerPackages } from "./peers";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
function settings(entries: [number, number][]): Buffer {
  const p = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, v], i) => {
    p.writeUInt16BE(id, i * 6);
    p.writeUInt32BE(v, i * 6 + 2);
  });
  return frame(4, 0, 0, p);
}
const headers = (stream: number, flags = 4) => frame(1, flags, stream, Buffer.from([0x83]));
const data = (stream: number, n: number, flags = 0) => frame(0, flags, stream, Buffer.alloc(n));

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}
function parse(bufs: Buffer[]): Frame[] {
  const b = Buffer.concat(bufs);
  const out: Frame[] = [];
  for (let i = 0; i < b.length; ) {
    const len = b.readUIntBE(i, 3);
    out.push({ type: b[i + 3]!, flags: b[i + 4]!, stream: b.readUInt32BE(i + 5), payload: b.subarray(i + 9, i + 9 + len) });
    i += 9 + len;
  }
  return out;
}
const windowUpdates = (fs: Frame[]) => fs.filter((f) => f.type === 8).map((f) => [f.stream, f.payload.readUInt32BE(0)]);

describe("InitialWindowFix, Bun as the client", () => {
  test("a raised INITIAL_WINDOW_SIZE becomes window updates for the streams still sending", () => {
    const fix = new InitialWindowFix();
    fix.outbound(Buffer.concat([PREFACE, settings([[4, 65535]]), headers(1), headers(3), data(3, 10, 1), headers(5)]));
    expect(fix.pending).toEqual([]); // the server's window is still the default
    const out = parse(fix.inbound(Buffer.concat([frame(8, 0, 0, u32(1000)), settings([[5, 16384], [4, 131704]]), data(1, 5)])));
    // Order kept, the setting taken out of the SETTINGS frame, the others left in it.
    expect(out.map((f) => f.type)).toEqual([8, 4, 8, 8, 0]);
    expect(out[1]!.payload).toEqual(settings([[5, 16384]]).subarray(9));
    expect(windowUpdates(out.slice(2))).toEqual([
      [1, 131704 - 65535],
      [5, 131704 - 65535],
    ]);
    // Raised again: only the delta.
    expect(windowUpdates(parse(fix.inbound(settings([[4, 262144]]))))).toEqual([
      [1, 262144 - 131704],
      [5, 262144 - 131704],
    ]);
  });

  test("a stream opened after the change gets the difference to what Bun gave it", () => {
    const fix = new InitialWindowFix();
    fix.outbound(PREFACE);
    fix.inbound(settings([[4, 1 << 20]]));
    fix.outbound(headers(1));
    expect(windowUpdates(parse(fix.pending))).toEqual([[1, (1 << 20) - 65535]]);
  });

  test("streams done sending get nothing: END_STREAM either way, RST_STREAM either way", () => {
    const fix = new InitialWindowFix();
    fix.outbound(Buffer.concat([PREFACE, headers(1), headers(3), headers(5), headers(7), headers(9)]));
    fix.outbound(Buffer.concat([data(1, 3, 1), frame(3, 0, 3, u32(8))]));
    fix.inbound(Buffer.concat([frame(1, 5, 5, Buffer.from([0x88])), frame(3, 0, 7, u32(0))]));
    expect(windowUpdates(parse(fix.inbound(settings([[4, 100000]]))))).toEqual([[9, 100000 - 65535]]);
  });

  test("frames split anywhere across chunks, both ways", () => {
    const fix = new InitialWindowFix();
    const outBytes = Buffer.concat([PREFACE, headers(1), data(1, 40000), headers(3)]);
    for (let i = 0; i < outBytes.length; i += 7) fix.outbound(outBytes.subarray(i, i + 7));
    const inBytes = Buffer.concat([data(1, 20000), settings([[4, 70000]]), frame(6, 0, 0, Buffer.alloc(8))]);
    const got: Buffer[] = [];
    for (let i = 0; i < inBytes.length; i += 5) got.push(...fix.inbound(inBytes.subarray(i, i + 5)));
    const fs = parse(got);
    expect(fs.map((f) => f.type)).toEqual([0, 4, 8, 8, 6]);
    expect(fs[0]!.payload.length).toBe(20000);
    expect(fs[1]!.payload.length).toBe(0);
    expect(windowUpdates(fs)).toEqual([
      [1, 70000 - 65535],
      [3, 70000 - 65535],
    ]);
  });

  test("a decrease goes to Bun unchanged; ACKs and other frames pass as they are", () => {
    const fix = new InitialWindowFix();
    fix.outbound(Buffer.concat([PREFACE, headers(1)]));
    const ack = frame(4, 1, 0);
    expect(Buffer.concat(fix.inbound(ack)).equals(ack)).toBe(true);
    expect(parse(fix.inbound(settings([[4, 1000]])))).toEqual(parse([settings([[4, 1000]])]));
    // Back up to 65535: Bun opens streams with 1000 now, so new ones get the difference.
    expect(parse(fix.inbound(settings([[4, 65535]]))).map((f) => f.type)).toEqual([4, 8]);
    fix.outbound(headers(3));
    expect(windowUpdates(parse(fix.pending))).toEqual([[3, 65535 - 1000]]);
  });
});

// A raw HTTP/2 server: answers each request with a 200, gives the stream a WINDOW_UPDATE of
// `grant` (as Go's gRPC server does for a message bigger than the window), raises
// INITIAL_WINDOW_SIZE to `raise` once 70000 bytes arrived, and counts what the client sends.
function rawServer(grant: number, raise: number): Promise<{ server: Server; port: number; received: () => number }> {
  let received = 0;
  const server = createServer((s) => {
    let buf = Buffer.alloc(0);
    let preface = false;
    let raised = false;
    s.write(settings([]));
    s.write(frame(8, 0, 0, u32(64 << 20)));
    s.on("error", () => {});
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!preface) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        preface = true;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        const type = buf[3]!;
        const flags = buf[4]!;
        const stream = buf.readUInt32BE(5);
        if (buf.length < 9 + len) break;
        buf = buf.subarray(9 + len);
        if (type === 4 && !(flags & 1)) s.write(frame(4, 1, 0));
        if (type === 1) {
          s.write(frame(1, 4, stream, Buffer.from([0x88])));
          s.write(frame(8, 0, stream, u32(grant)));
        }
        if (type === 0) {
          received += len;
          if (received >= 70000 && !raised) {
            raised = true;
            s.write(settings([[4, raise]]));
          }
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as any).port, received: () => received })));
}

/** Write `bytes` on one stream over the fix; resolves once `done()` holds (or 3 s passed). */
async function clientSends(port: number, bytes: number, done: () => boolean): Promise<void> {
  const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => new InitialWindowFixSocket(connect(port, "127.0.0.1")) as unknown as Socket });
  const req = session.request({ ":method": "POST", ":path": "/" });
  req.on("error", () => {});
  req.write(Buffer.alloc(bytes));
  await waitFor(done, 3000, 10);
  // Then a moment for anything beyond the window, which the assertion would catch.
  await Bun.sleep(100);
  session.destroy();
}

describe("Bun's node:http2 client over InitialWindowFixSocket", () => {
  // RFC 9113: 65535 + grant + (raise - 65535) = grant + raise may be sent.
  for (const [grant, raise] of [
    [100_000, 1 << 20],
    [1_048_663, 1_079_672], // the numbers of a stalled Content.Write into containerd 1.6
  ] as const) {
    test(`stream WINDOW_UPDATE ${grant}, then INITIAL_WINDOW_SIZE 65535 -> ${raise}: the client sends what RFC 9113 allows`, async () => {
      const want = 2 << 20;
      const { server, port, received } = await rawServer(grant, raise);
      try {
        const allowed = Math.min(want, grant + raise);
        await clientSends(port, want, () => received() >= allowed);
        expect(received()).toBe(allowed);
      } finally {
        server.close();
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Bun as the server: the client (Go's gRPC, BDP estimation) raises the setting.

const continuation = (stream: number, flags = 4) => frame(9, flags, stream, Buffer.from([0x86]));

/** Bun's side of the connection: the preface passes first, then whole frames. */
function parseServerIn(bufs: Buffer[]): Frame[] {
  const b = Buffer.concat(bufs);
  expect(b.subarray(0, PREFACE.length).equals(PREFACE)).toBe(true);
  return parse([b.subarray(PREFACE.length)]);
}

describe("InitialWindowFix, Bun as the server", () => {
  test("a raised INITIAL_WINDOW_SIZE becomes window updates for every response still being sent", () => {
    const fix = new InitialWindowFix("server");
    // Streams 1, 3, 5: the requests end at once (server streaming), the responses go on.
    const opening = Buffer.concat([PREFACE, settings([]), headers(1, 5), data(1, 10, 1), headers(3, 5), headers(5)]);
    expect(Buffer.concat(fix.inbound(opening)).equals(opening)).toBe(true);
    fix.outbound(Buffer.concat([settings([]), headers(1), data(1, 16384), headers(3), headers(5)]));
    const out = parse(fix.inbound(Buffer.concat([frame(8, 0, 0, u32(1000)), settings([[5, 16384], [4, 131704]]), frame(6, 0, 0, Buffer.alloc(8))])));
    expect(out.map((f) => f.type)).toEqual([8, 4, 8, 8, 8, 6]);
    expect(out[1]!.payload).toEqual(settings([[5, 16384]]).subarray(9));
    expect(windowUpdates(out.slice(2))).toEqual([
      [1, 131704 - 65535],
      [3, 131704 - 65535],
      [5, 131704 - 65535],
    ]);
    // The server ends 1 (trailers), the client resets 3, the server resets 5: nothing is owed.
    fix.outbound(Buffer.concat([data(1, 100), headers(1, 5)]));
    fix.inbound(frame(3, 0, 3, u32(8)));
    expect(windowUpdates(parse(fix.inbound(settings([[4, 262144]]))))).toEqual([[5, 262144 - 131704]]);
    fix.outbound(frame(3, 0, 5, u32(8)));
    expect(windowUpdates(parse(fix.inbound(settings([[4, 524288]]))))).toEqual([]);
  });

  test("a stream opened after the change gets the difference right after its header block", () => {
    const fix = new InitialWindowFix("server");
    fix.inbound(Buffer.concat([PREFACE, settings([[4, 1 << 20]])]));
    // A header block in HEADERS + CONTINUATION: nothing may come between them.
    const fs = parse(fix.inbound(Buffer.concat([headers(1, 0), continuation(1), data(1, 5, 1), headers(3, 5), data(3, 7, 1)])));
    expect(fs.map((f) => [f.type, f.stream])).toEqual([
      [1, 1],
      [9, 1],
      [8, 1],
      [0, 1],
      [1, 3],
      [8, 3],
      [0, 3],
    ]);
    expect(windowUpdates(fs)).toEqual([
      [1, (1 << 20) - 65535],
      [3, (1 << 20) - 65535],
    ]);
    // Trailers of an old stream open nothing.
    expect(windowUpdates(parse(fix.inbound(headers(1, 5))))).toEqual([]);
    expect(fix.pending).toEqual([]);
  });

  test("the preface and frames split anywhere across chunks", () => {
    const fix = new InitialWindowFix("server");
    const inBytes = Buffer.concat([PREFACE, settings([[4, 70000]]), headers(1, 1), continuation(1), data(1, 30000), settings([[4, 80000]]), frame(6, 0, 0, Buffer.alloc(8))]);
    const got: Buffer[] = [];
    for (let i = 0; i < inBytes.length; i += 5) got.push(...fix.inbound(inBytes.subarray(i, i + 5)));
    const fs = parseServerIn(got);
    expect(fs.map((f) => f.type)).toEqual([4, 1, 9, 8, 0, 4, 8, 6]);
    expect(fs[0]!.payload.length).toBe(0);
    expect(fs[4]!.payload.length).toBe(30000);
    expect(windowUpdates(fs)).toEqual([
      [1, 70000 - 65535],
      [1, 80000 - 70000],
    ]);
  });
});

// A raw HTTP/2 client as Go's gRPC client behaves on a long response: it gives the stream a
// WINDOW_UPDATE of `grant` once 30000 bytes came, raises INITIAL_WINDOW_SIZE to `raise` once
// min(70000, the first window) came, and counts what the server sends.
async function rawClient(port: number, grant: number, raise: number, done: (received: number) => boolean): Promise<number> {
  const s = connect(port, "127.0.0.1");
  let received = 0;
  let stage = 0;
  let buf = Buffer.alloc(0);
  s.on("error", () => {});
  s.write(Buffer.concat([PREFACE, settings([]), frame(8, 0, 0, u32(64 << 20))]));
  // GET / (HPACK static :method GET, :path /, :scheme http, :authority "x"); the request ends here.
  s.write(frame(1, 5, 1, Buffer.from([0x82, 0x84, 0x86, 0x41, 0x01, 0x78])));
  s.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3]!;
      const flags = buf[4]!;
      buf = buf.subarray(9 + len);
      if (type === 4 && !(flags & 1)) s.write(frame(4, 1, 0));
      if (type !== 0) continue;
      received += len;
      if (stage === 0 && received >= 30000) {
        stage = 1;
        if (grant) s.write(frame(8, 0, 1, u32(grant)));
      }
      if (stage === 1 && received >= Math.min(70000, 65535 + grant)) {
        stage = 2;
        s.write(settings([[4, raise]]));
      }
    }
  });
  await waitFor(() => done(received), 3000, 10);
  // Then a moment for anything beyond the window, which the assertion would catch.
  await Bun.sleep(100);
  s.destroy();
  return received;
}

describe("Bun's node:http2 server over InitialWindowFixSocket", () => {
  const body = 4 << 20;
  let h2: http2.Http2Server;
  let listener: Server;
  let port = 0;
  beforeAll(async () => {
    h2 = http2.createServer();
    h2.on("stream", (st: http2.ServerHttp2Stream) => {
      st.on("error", () => {});
      st.respond({ ":status": 200 });
      st.end(Buffer.alloc(body));
    });
    listener = createServer((sock) => h2.emit("connection", new InitialWindowFixSocket(sock, "server")));
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    port = (listener.address() as { port: number }).port;
  });
  afterAll(() => {
    listener?.close();
    h2?.close();
  });

  // RFC 9113: 65535 + grant + (raise - 65535) = grant + raise may be sent.
  for (const [grant, raise] of [
    [100_000, 1 << 20], // Bun alone sends 1 MiB: the grant is lost
    [1_048_584, 1_146_180], // the numbers of a Content.Read that stalled the real ctr: the same
    [1_048_663, 1_079_672], // Bun alone ignores a raise below the window it has granted so far
    [0, 1 << 20], // no grant before: Bun alone gets this one right
  ] as const) {
    test(`stream WINDOW_UPDATE ${grant}, then INITIAL_WINDOW_SIZE 65535 -> ${raise}: the server sends what RFC 9113 allows`, async () => {
      const allowed = Math.min(body, grant + raise);
      expect(await rawClient(port, grant, raise, (n) => n >= allowed)).toBe(allowed);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Our containerd and the real ctr (Go's gRPC client, BDP window tuning on).

const peerSkip = ensurePeerPackages(["containerd"], [REAL_CTR]);

const sha256 = (b: Uint8Array | string) => "sha256:" + createHash("sha256").update(b).digest("hex");

/**
 * An OCI archive whose image config is `configBytes` large: `ctr images import` reads the config
 * with content.ReadBlob, one Content.Read stream of the whole blob, while its client raises the
 * window (`ctr content get` reads in 32 KiB calls, each within the first window).
 */
function bigConfigArchive(path: string, ref: string, configBytes: number): { config: string } {
  const layer = Buffer.from(tar({ "hello.txt": "hello\n" }));
  const base = { architecture: "amd64", os: "linux", config: { Labels: { pad: "" } }, rootfs: { type: "layers", diff_ids: [sha256(layer)] } };
  const pad = "x".repeat(configBytes - JSON.stringify(base).length);
  const config = JSON.stringify({ ...base, config: { Labels: { pad } } });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(layer), size: layer.length }],
  });
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha256(manifest), size: manifest.length, annotations: { "io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref } }],
  });
  const blob = (s: string) => `blobs/sha256/${sha256(s).slice(7)}`;
  // tiny-tar takes text: the layer (a tar of ASCII) is all bytes below 0x80.
  const layerText = layer.toString("latin1");
  writeFileSync(path, tar({ "oci-layout": '{"imageLayoutVersion":"1.0.0"}', "index.json": index, [blob(manifest)]: manifest, [blob(config)]: config, [blob(layerText)]: layerText }));
  return { config: sha256(config) };
}

describe("our containerd answering the real ctr: long responses while its window grows", () => {
  let d: OurContainerd;
  beforeAll(async () => {
    if (!existsSync(OUR_CONTAINERD)) throw new Error(`${OUR_CONTAINERD} missing: build with node_modules/.bin/bun run build.ts`);
    d = new OurContainerd();
    await d.start();
  }, 30_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  test.skipIf(!!peerSkip)("ctr images import of an image with a 24 MiB config (one Content.Read of it), and content get of it, 3 times", () => {
    const ref = "docker.io/library/bigconfig:v1";
    const archive = join(d.dir, "bigconfig.tar");
    const { config } = bigConfigArchive(archive, ref, 24 << 20);
    for (let i = 0; i < 3; i++) {
      // The unpack reads the config every time; without the fix it waits forever for window.
      const r = exec([REAL_CTR, "--address", d.address, "images", "import", archive], { timeoutMs: 30_000 });
      if (r.timedOut || r.code !== 0) throw new Error(`import ${i + 1}: ${r.timedOut ? "stalled" : `failed (${r.code})`}: ${r.stdout}${r.stderr}`);
      expect(r.stdout).toContain(`unpacking ${ref}`);
      expect(r.stdout).toContain("...done");
      const out = join(d.dir, "config.out");
      const fd = openSync(out, "w");
      try {
        const g = Bun.spawnSync([REAL_CTR, "--address", d.address, "content", "get", config], { stdout: fd, stderr: "pipe", timeout: 60_000, killSignal: "SIGKILL" });
        expect(g.exitCode).toBe(0);
      } finally {
        closeSync(fd);
      }
      expect(sha256(readFileSync(out))).toBe(config);
    }
  }, 240_000);
});
