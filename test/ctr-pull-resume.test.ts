// OUR ctr pulling into OUR containerd through content-store write refs, as containerd does it:
//   * two pulls of the same image at once: the second waits on the ref's lock ("ref ... locked"),
//     then finds the blob committed; the registry serves each blob once;
//   * a pull killed mid-blob leaves an ingest (never a visible blob); the next pull resumes it
//     with a Range request, or starts over when the registry ignores Range or the kept bytes
//     turn out wrong; either way the image ends verified;
//   * the Write protocol itself (locks, resume offsets, AlreadyExists) answers as the REAL
//     containerd 1.6 does (compared side by side when /usr/bin/containerd is there);
//   * push and pull with --user against docker-registry behind Bearer token auth (a JWT-signing
//     token server of the test's own), and the concurrent pull through it.
// Between ctr and docker-registry sits a small HTTP proxy of the test's own that counts requests,
// can hold a blob's body after some bytes, and can drop Range headers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { createHash, randomBytes, sign, X509Certificate } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { exec, type ExecResult, rand, spawnBackground, TMP_PREFIX, waitFor } from "./harness";
import { tar } from "./fixtures/tiny-tar";
import { busyboxImage, BUSYBOX_REF } from "./fixtures/busybox-image";
import { HAVE_REGISTRY, startDockerRegistry, type DockerRegistry } from "./docker-registry";
import { OUR_CTR, OurContainerd } from "./our-containerd";
import { MediaType, encodeJSON, type Descriptor } from "../core/image/manifest";
import { sha256Digest } from "../core/image/reference";
import { RegistryClient } from "../core/image/registry";
import { hostPlatform } from "../core/image/platform";
import { Client } from "../core/ctr/client";
import { Code } from "../core/containerd/errdefs";

const CONTENT = "containerd.services.content.v1.Content";
const MiB = 1 << 20;
const HAVE_OPENSSL = !!Bun.which("openssl");
const REAL_CONTAINERD = "/usr/bin/containerd";

const dir = `${TMP_PREFIX}${rand()}`;
const children: Subprocess[] = [];
const servers: { stop(force?: boolean): unknown }[] = [];
const d = new OurContainerd();
const clients: Client[] = [];
/** Holds a test released in its finally; anything still held is released at the end. */
const pendingReleases: (() => void)[] = [];

afterAll(async () => {
  for (const r of pendingReleases) r();
  for (const c of clients) c.close();
  for (const s of servers) s.stop(true);
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
  await Promise.all(children.map((c) => c.exited.catch(() => {})));
  await d.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** Our ctr against our containerd, without blocking the event loop (the proxy and token server live here). */
async function ctr(ns: string, args: string[], timeoutMs = 90_000): Promise<ExecResult> {
  return spawnBackground([OUR_CTR, "--address", d.address, "-n", ns, ...args]).finish(timeoutMs);
}

function started(ns: string, args: string[]) {
  const bg = spawnBackground([OUR_CTR, "--address", d.address, "-n", ns, ...args]);
  children.push(bg.proc as Subprocess);
  return bg;
}

function okResult(r: ExecResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}${r.signal ? `, ${r.signal}` : ""}): ${r.stdout}\n${r.stderr}\n--- daemon log tail:\n${d.log().split("\n").slice(-25).join("\n")}`);
  return r.stdout;
}

/** Poll an async condition until true or the timeout. */
async function until(fn: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await Bun.sleep(50);
  }
}

async function client(ns: string): Promise<Client> {
  const c = await Client.connect(d.address, ns);
  clients.push(c);
  return c;
}

async function ingestOffset(c: Client, ref: string): Promise<number | undefined> {
  try {
    return Number((await c.call(CONTENT, "Status", { ref })).status.offset);
  } catch {
    return undefined;
  }
}

async function readContent(c: Client, digest: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const r of c.stream<{ data: Uint8Array }>(CONTENT, "Read", { digest })) parts.push(Buffer.from(r.data));
  return Buffer.concat(parts);
}

const contentDir = () => join(d.root, "io.containerd.content.v1.content");
const blobFile = (digest: string) => join(contentDir(), "blobs", "sha256", digest.slice(7));
/** Our store's ingest directory of a namespace's ref (sha256 of "<ns>/1/<ref>", as containerd names it). */
const ingestData = (ns: string, ref: string) => join(contentDir(), "ingest", createHash("sha256").update(`${ns}/1/${ref}`).digest("hex"), "data");

interface TestImage {
  ref: string;
  layer: Descriptor;
  config: Descriptor;
  manifest: Descriptor;
  bytes: number;
}

/** A one-layer image with an incompressible `size`-byte file, pushed straight to the registry. */
async function pushImage(host: string, repo: string, size: number, creds?: { username: string; password: string }): Promise<TestImage> {
  const reg = new RegistryClient({ plainHttp: true, dockerConfigDir: false, credentials: creds ? () => creds : undefined });
  const ref = `${host}/${repo}:v1`;
  const content = randomBytes(size / 2).toString("hex");
  const layerTar = tar({ "data.txt": content });
  const layer: Descriptor = { mediaType: "application/vnd.docker.image.rootfs.diff.tar", digest: sha256Digest(layerTar), size: layerTar.byteLength };
  const cb = encodeJSON({ architecture: hostPlatform().architecture, os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [layer.digest] } });
  const config: Descriptor = { mediaType: MediaType.DockerConfig, digest: sha256Digest(cb), size: cb.byteLength };
  const mb = encodeJSON({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers: [layer] });
  await reg.pushBlob(ref, layer, layerTar);
  await reg.pushBlob(ref, config, cb);
  await reg.pushManifest(ref, mb, MediaType.DockerManifest);
  return { ref, layer, config, manifest: { mediaType: MediaType.DockerManifest, digest: sha256Digest(mb), size: mb.byteLength }, bytes: size };
}

/** Pulled, unpacked, and every blob in the namespace verifies against its digest; no ingest left. */
async function expectVerifiedImage(ns: string, img: TestImage, pullRef: string): Promise<void> {
  const images = okResult(await ctr(ns, ["images", "ls"]), "images ls");
  expect(images).toContain(pullRef);
  expect(images).toContain(img.manifest.digest);
  const c = await client(ns);
  for (const desc of [img.manifest, img.config, img.layer]) {
    const bytes = await readContent(c, desc.digest);
    expect(bytes.byteLength).toBe(desc.size);
    expect(sha256Digest(bytes)).toBe(desc.digest);
  }
  expect((await c.call(CONTENT, "ListStatuses", { filters: [] })).statuses ?? []).toEqual([]);
  const snaps = okResult(await ctr(ns, ["snapshots", "ls"]), "snapshots ls");
  expect(snaps).toContain(img.layer.digest); // one uncompressed layer: its chain ID is its digest
}

// ---------------------------------------------------------------------------------------------
// The proxy

interface Seen {
  method: string;
  path: string;
  /** The Range header ctr sent (before the proxy dropped it, if it did). */
  range: string | null;
  status: number;
}

interface Hold {
  /** Resolves once the proxy sent `after` bytes and stopped. */
  reached: Promise<void>;
  release(): void;
}

class RegistryProxy {
  readonly seen: Seen[] = [];
  ignoreRange = false;
  readonly host: string;
  private readonly holds = new Map<string, { after: number; reached: () => void; released: Promise<void> }>();

  constructor(private readonly upstream: string) {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: (req) => this.handle(req) });
    servers.push(server);
    this.host = `127.0.0.1:${server.port}`;
  }

  /** The next GET of blob `digest` stops after `after` bytes until release(). */
  hold(digest: string, after: number): Hold {
    let reached!: () => void;
    let release!: () => void;
    const h: Hold = { reached: new Promise<void>((r) => (reached = r)), release: () => release() };
    this.holds.set(digest, { after, reached, released: new Promise<void>((r) => (release = r)) });
    pendingReleases.push(h.release);
    return h;
  }

  /** The next GET of blob `digest` answers with the byte at `at` flipped (same length). */
  corrupt(digest: string, at: number): void {
    this.corruptions.set(digest, at);
  }
  private readonly corruptions = new Map<string, number>();

  /** Successful GETs of a blob. */
  blobGets(digest: string): Seen[] {
    return this.seen.filter((s) => s.method === "GET" && s.path.endsWith(`/blobs/${digest}`) && s.status < 300);
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    headers.delete("host");
    const range = headers.get("range");
    if (this.ignoreRange) headers.delete("range");
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const res = await fetch(`http://${this.upstream}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body: hasBody ? await req.arrayBuffer() : undefined,
      redirect: "manual",
      decompress: false,
    } as RequestInit);
    this.seen.push({ method: req.method, path: url.pathname, range, status: res.status });
    const out = new Headers(res.headers);
    out.delete("content-encoding");
    out.delete("transfer-encoding");
    if (req.method === "HEAD" || !res.body) return new Response(null, { status: res.status, headers: out });
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname)?.[1];
    const flip = req.method === "GET" && res.status < 300 && digest ? this.corruptions.get(digest) : undefined;
    if (flip !== undefined) {
      this.corruptions.delete(digest!);
      const b = Buffer.from(await res.arrayBuffer());
      b[flip] = b[flip]! ^ 0xff;
      return new Response(b, { status: res.status, headers: out });
    }
    const hold = req.method === "GET" && res.status < 300 && digest ? this.holds.get(digest) : undefined;
    if (!hold) return new Response(res.body, { status: res.status, headers: out });
    this.holds.delete(digest!);
    const reader = res.body.getReader();
    let sent = 0;
    let held = false;
    let rest: Uint8Array | undefined;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (rest) {
          c.enqueue(rest);
          rest = undefined;
          return;
        }
        const { done, value } = await reader.read();
        if (done) return c.close();
        if (!held && sent + value.byteLength >= hold.after) {
          const n = hold.after - sent;
          if (n > 0) c.enqueue(value.subarray(0, n));
          sent += n;
          rest = value.subarray(n);
          held = true;
          hold.reached();
          await hold.released;
          return;
        }
        sent += value.byteLength;
        c.enqueue(value);
      },
      cancel(reason) {
        reader.cancel(reason).catch(() => {});
      },
    });
    return new Response(body, { status: res.status, headers: out });
  }
}

/**
 * Two pulls of `pullRef` into `ns` at once: the first one's layer download is held at the proxy
 * until the daemon has refused the second one the layer's ref (it is waiting on the lock), then
 * both finish.
 */
async function concurrentPulls(proxy: RegistryProxy, ns: string, pullRef: string, img: TestImage, extra: string[] = []): Promise<[ExecResult, ExecResult]> {
  const layerRef = `layer-${img.layer.digest}`;
  const lockedBefore = d.log().split(`${ns}/1/${layerRef} locked for`).length;
  const hold = proxy.hold(img.layer.digest, MiB + MiB / 2);
  const first = started(ns, ["images", "pull", "--plain-http", ...extra, pullRef]);
  try {
    const reached = await Promise.race([hold.reached.then(() => true), first.proc.exited.then(() => false)]);
    if (!reached) throw new Error(`the first pull ended before the proxy held its layer: ${JSON.stringify(await first.finish())}`);
    const second = started(ns, ["images", "pull", "--plain-http", ...extra, pullRef]);
    // Our daemon logs every refused STAT ("rpc failed ... ref <ns>/1/<ref> locked for ..."): the
    // second pull is waiting for the first one's ingest.
    const waiting = await waitFor(() => d.log().split(`${ns}/1/${layerRef} locked for`).length > lockedBefore || second.proc.exitCode !== null, 30_000, 50);
    expect(waiting).toBe(true);
    expect(second.proc.exitCode).toBeNull();
    hold.release();
    return await Promise.all([first.finish(90_000), second.finish(90_000)]);
  } finally {
    hold.release();
  }
}

/** Start a pull, let the proxy stop the layer after `after` bytes, wait for the ingest to hold `expectOffset`, kill ctr. */
async function killedPull(proxy: RegistryProxy, ns: string, pullRef: string, img: TestImage, after: number, expectOffset: number): Promise<number> {
  const layerRef = `layer-${img.layer.digest}`;
  const hold = proxy.hold(img.layer.digest, after);
  const c = await client(ns);
  const bg = started(ns, ["images", "pull", "--plain-http", pullRef]);
  try {
    const reached = await Promise.race([hold.reached.then(() => true), bg.proc.exited.then(() => false)]);
    if (!reached) throw new Error(`the pull ended before the proxy held its layer: ${JSON.stringify(await bg.finish())}`);
    expect(await until(async () => ((await ingestOffset(c, layerRef)) ?? 0) >= expectOffset, 30_000)).toBe(true);
    bg.proc.kill("SIGKILL");
    await bg.finish();
  } finally {
    hold.release();
  }
  // The ingest stays (resumable), unlocked once the daemon saw the client go; nothing of it is a blob.
  const offset = (await ingestOffset(c, layerRef))!;
  expect(offset).toBe(expectOffset);
  expect(existsSync(blobFile(img.layer.digest))).toBe(false);
  const info = await c.call(CONTENT, "Info", { digest: img.layer.digest }).catch((e) => e);
  expect(info.code).toBe(Code.NOT_FOUND);
  expect(okResult(await ctr(ns, ["content", "active"]), "content active")).toContain(layerRef);
  return offset;
}

// ---------------------------------------------------------------------------------------------

describe.skipIf(!HAVE_REGISTRY)("pulls through content-store write refs (our ctr, our containerd, docker-registry)", () => {
  let registry: DockerRegistry;
  let proxy: RegistryProxy;

  beforeAll(async () => {
    if (!existsSync(OUR_CTR)) throw new Error(`${OUR_CTR} missing: build with node_modules/.bin/bun run build.ts`);
    mkdirSync(dir, { recursive: true });
    registry = await startDockerRegistry(dir, "registry", {}, children);
    proxy = new RegistryProxy(registry.host);
    await d.start();
  }, 60_000);

  test("two pulls of the same image at once: each blob is downloaded once, both succeed", async () => {
    const img = await pushImage(registry.host, "test/conc", 3 * MiB);
    const pullRef = `${proxy.host}/test/conc:v1`;
    const [a, b] = await concurrentPulls(proxy, "conc", pullRef, img);
    okResult(a, "first pull");
    okResult(b, "second pull");
    for (const desc of [img.layer, img.config]) expect(proxy.blobGets(desc.digest).length).toBe(1);
    expect(proxy.seen.filter((s) => s.method === "GET" && s.path.endsWith(`/manifests/${img.manifest.digest}`)).length).toBe(1);
    expect(b.stdout).toContain(`unpacking linux/${hostPlatform().architecture} ${img.manifest.digest}...`);
    await expectVerifiedImage("conc", img, pullRef);
  }, 120_000);

  test("a pull killed mid-blob resumes with a Range request and ends verified", async () => {
    const img = await pushImage(registry.host, "test/resume", 5 * MiB);
    const pullRef = `${proxy.host}/test/resume:v1`;
    // 2.5 MiB sent, 2 MiB of it written (1 MiB WRITE messages), then ctr is killed.
    const offset = await killedPull(proxy, "resume", pullRef, img, 2 * MiB + MiB / 2, 2 * MiB);
    okResult(await ctr("resume", ["images", "pull", "--plain-http", pullRef]), "resumed pull");
    const gets = proxy.blobGets(img.layer.digest);
    expect(gets.map((g) => [g.range, g.status])).toEqual([
      [null, 200],
      [`bytes=${offset}-`, 206],
    ]);
    await expectVerifiedImage("resume", img, pullRef);
  }, 120_000);

  test("a registry that ignores Range: the interrupted blob is fetched again from the start", async () => {
    const img = await pushImage(registry.host, "test/norange", 3 * MiB);
    const pullRef = `${proxy.host}/test/norange:v1`;
    const offset = await killedPull(proxy, "norange", pullRef, img, MiB + MiB / 2, MiB);
    proxy.ignoreRange = true;
    try {
      okResult(await ctr("norange", ["images", "pull", "--plain-http", pullRef]), "restarted pull");
    } finally {
      proxy.ignoreRange = false;
    }
    expect(proxy.blobGets(img.layer.digest).map((g) => [g.range, g.status])).toEqual([
      [null, 200],
      [`bytes=${offset}-`, 200],
    ]);
    await expectVerifiedImage("norange", img, pullRef);
  }, 120_000);

  test("kept bytes that do not add up: the commit refuses them, the ingest is dropped and fetched whole", async () => {
    const img = await pushImage(registry.host, "test/corrupt", 3 * MiB);
    const pullRef = `${proxy.host}/test/corrupt:v1`;
    const offset = await killedPull(proxy, "corrupt", pullRef, img, MiB + MiB / 2, MiB);
    // Damage the kept part on disk (a bad disk, a bug): the resumed whole cannot match the digest.
    const data = ingestData("corrupt", `layer-${img.layer.digest}`);
    const fd = openSync(data, "r+");
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, 1000);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, 1000);
    closeSync(fd);
    okResult(await ctr("corrupt", ["images", "pull", "--plain-http", pullRef]), "pull over a bad ingest");
    expect(proxy.blobGets(img.layer.digest).map((g) => [g.range, g.status])).toEqual([
      [null, 200],
      [`bytes=${offset}-`, 206],
      [null, 200],
    ]);
    await expectVerifiedImage("corrupt", img, pullRef);
  }, 120_000);

  test("a registry sending wrong bytes: the commit refuses them (the daemon checks the digest), nothing is kept, the next pull fetches them whole", async () => {
    const img = await pushImage(registry.host, "test/wrongbytes", 3 * MiB);
    const pullRef = `${proxy.host}/test/wrongbytes:v1`;
    const layerRef = `layer-${img.layer.digest}`;
    proxy.corrupt(img.layer.digest, 2 * MiB + 7);
    const r = await ctr("wrongbytes", ["images", "pull", "--plain-http", pullRef]);
    expect(r.code).toBe(1);
    // containerd's content.Copy: "failed commit on ref ...: unexpected commit digest ..., expected ...".
    expect(r.stderr).toMatch(new RegExp(`^ctr: failed commit on ref "${layerRef}": unexpected commit digest sha256:[0-9a-f]{64}, expected ${img.layer.digest}: failed precondition\n$`));
    const c = await client("wrongbytes");
    expect(await ingestOffset(c, layerRef)).toBeUndefined();
    expect(existsSync(blobFile(img.layer.digest))).toBe(false);
    okResult(await ctr("wrongbytes", ["images", "pull", "--plain-http", pullRef]), "pull after the bad one");
    expect(proxy.blobGets(img.layer.digest).map((g) => [g.range, g.status])).toEqual([
      [null, 200],
      [null, 200],
    ]);
    await expectVerifiedImage("wrongbytes", img, pullRef);
  }, 120_000);

  test("a COMMIT with the wrong digest leaves no blob, only the ingest", async () => {
    const c = await client("badcommit");
    const data = randomBytes(10_000);
    const right = sha256Digest(data);
    const w = c.duplex(CONTENT, "Write");
    try {
      await w.send({ action: "STAT", ref: "bad", total: String(data.length), expected: right });
      await w.send({ action: "WRITE", ref: "bad", offset: "0", data: data.subarray(0, 5000) });
      const other = Buffer.from(data);
      other[7000] = other[7000]! ^ 1;
      const e = await w.send({ action: "COMMIT", ref: "bad", offset: "5000", total: String(data.length), expected: right, data: other.subarray(5000) }).catch((x) => x);
      expect(e.code).toBe(Code.FAILED_PRECONDITION);
      expect(e.message).toBe(`unexpected commit digest ${sha256Digest(Buffer.concat([data.subarray(0, 5000), other.subarray(5000)]))}, expected ${right}: failed precondition`);
    } finally {
      w.close();
    }
    expect(existsSync(blobFile(right))).toBe(false);
    expect((await c.call(CONTENT, "Info", { digest: right }).catch((x) => x)).code).toBe(Code.NOT_FOUND);
    expect(await ingestOffset(c, "bad")).toBe(10_000);
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------
// The Write protocol, side by side with the real containerd

/** One scripted session of Write/Status/ListStatuses calls; what each answered, in order. */
async function writeTranscript(address: string, ns: string): Promise<string[]> {
  const c = await Client.connect(address, ns);
  const c2 = await Client.connect(address, `${ns}-other`);
  const out: string[] = [];
  const data = Buffer.from(`resumable content of ${ns} `.repeat(200));
  const dg = sha256Digest(data);
  const ref = `layer-${dg}`;
  const norm = (s: string) =>
    s
      .replace(new RegExp(`${ns}/(\\d+/)?`, "g"), "<ns>/")
      .replace(/locked for \S+ \(since [^)]*\)/, "locked for <d> (since <t>)");
  const note = async (what: string, p: Promise<any>) => {
    try {
      const r = await p;
      const m = r?.status ?? r;
      out.push(`${what}: ok offset=${m?.offset ?? ""} total=${m?.total ?? ""} digest=${m?.digest ?? ""} expected=${m?.expected ?? ""}`);
    } catch (e: any) {
      out.push(`${what}: ${e.code} ${norm(e.message)}`);
    }
  };
  try {
    const w1 = c.duplex(CONTENT, "Write");
    await note("stat", w1.send({ action: "STAT", ref, total: String(data.length), expected: dg }));
    await note("write", w1.send({ action: "WRITE", ref, offset: "0", data: data.subarray(0, 1000) }));
    const w2 = c.duplex(CONTENT, "Write");
    await note("second writer", w2.send({ action: "STAT", ref, total: String(data.length), expected: dg }));
    w2.close();
    w1.close();
    await Bun.sleep(200);
    await note("status", c.call(CONTENT, "Status", { ref }));
    const w3 = c.duplex(CONTENT, "Write");
    await note("resume stat", w3.send({ action: "STAT", ref, total: String(data.length), expected: dg }));
    await note("write at a wrong offset", w3.send({ action: "WRITE", ref, offset: "5", data: data.subarray(5, 10) }));
    w3.close();
    await Bun.sleep(100);
    const w4 = c.duplex(CONTENT, "Write");
    await note("resume again", w4.send({ action: "STAT", ref, total: String(data.length), expected: dg }));
    await note("write the rest", w4.send({ action: "WRITE", ref, offset: "1000", data: data.subarray(1000) }));
    await note("commit", w4.send({ action: "COMMIT", ref, offset: String(data.length), total: String(data.length), expected: dg }));
    w4.close();
    await note("status after commit", c.call(CONTENT, "Status", { ref }));
    const w5 = c.duplex(CONTENT, "Write");
    await note("writer of existing content", w5.send({ action: "STAT", ref, total: String(data.length), expected: dg }));
    w5.close();
    const w6 = c.duplex(CONTENT, "Write");
    await note("writer without expected", w6.send({ action: "STAT", ref: "other", total: String(data.length) }));
    await note("commit expecting existing content", w6.send({ action: "COMMIT", ref: "other", total: String(data.length), expected: dg }));
    w6.close();
    const w7 = c2.duplex(CONTENT, "Write");
    await note("another namespace: shared", w7.send({ action: "STAT", ref, total: String(data.length), expected: dg }));
    await note("another namespace: commit", w7.send({ action: "COMMIT", ref, offset: String(data.length), total: String(data.length), expected: dg }));
    w7.close();
    await note("another namespace: info", c2.call(CONTENT, "Info", { digest: dg }).then((r) => ({ offset: r.info.size, digest: r.info.digest })));
    await note("status of nothing", c.call(CONTENT, "Status", { ref: "nope" }));
    await note("abort of nothing", c.call(CONTENT, "Abort", { ref: "nope" }));
    // Abort doesn't wait for the writer holding the ref: the ingest goes at once.
    const w8 = c.duplex(CONTENT, "Write");
    await note("held writer", w8.send({ action: "STAT", ref: "held", total: "100" }));
    await note("held write", w8.send({ action: "WRITE", ref: "held", offset: "0", data: Buffer.alloc(10) }));
    await note("abort of a held ref", c.call(CONTENT, "Abort", { ref: "held" }));
    await note("status after abort", c.call(CONTENT, "Status", { ref: "held" }));
    w8.close();
    await Bun.sleep(100);
    await note("list statuses", c.call(CONTENT, "ListStatuses", { filters: [] }).then((r) => ({ offset: (r.statuses ?? []).length })));
  } finally {
    c.close();
    c2.close();
  }
  return out;
}

describe("the content Write protocol", () => {
  beforeAll(async () => {
    if (!d.proc) await d.start();
  }, 60_000);

  test("ours answers a scripted session as containerd 1.6 does", async () => {
    const ours = await writeTranscript(d.address, `wp${rand()}`);
    expect(ours).toEqual([
      expect.stringMatching(/^stat: ok offset=0 total=\d+ digest=sha256:e3b0c442/),
      expect.stringMatching(/^write: ok offset=1000 /),
      expect.stringMatching(new RegExp(`^second writer: ${Code.UNAVAILABLE} ref <ns>/layer-sha256:[0-9a-f]+ locked for <d> \\(since <t>\\): unavailable$`)),
      expect.stringMatching(/^status: ok offset=1000 /),
      expect.stringMatching(/^resume stat: ok offset=1000 /),
      `write at a wrong offset: ${Code.UNKNOWN} write @5 must occur at current offset 1000: unknown`,
      expect.stringMatching(/^resume again: ok offset=1000 /),
      expect.stringMatching(/^write the rest: ok offset=\d+ /),
      expect.stringMatching(/^commit: ok /),
      expect.stringMatching(new RegExp(`^status after commit: ${Code.NOT_FOUND} could not get status for ref "layer-sha256:[0-9a-f]+": reference layer-sha256:[0-9a-f]+: not found$`)),
      expect.stringMatching(new RegExp(`^writer of existing content: ${Code.ALREADY_EXISTS} content sha256:[0-9a-f]+: already exists$`)),
      expect.stringMatching(/^writer without expected: ok offset=0 /),
      expect.stringMatching(new RegExp(`^commit expecting existing content: ${Code.ALREADY_EXISTS} blob with expected digest sha256:[0-9a-f]+ exists: already exists$`)),
      expect.stringMatching(/^another namespace: shared: ok offset=(\d+) total=\1 digest=sha256:/),
      expect.stringMatching(/^another namespace: commit: ok /),
      expect.stringMatching(/^another namespace: info: ok /),
      `status of nothing: ${Code.NOT_FOUND} could not get status for ref "nope": reference nope: not found`,
      `abort of nothing: ${Code.NOT_FOUND} reference nope: not found`,
      expect.stringMatching(/^held writer: ok offset=0 total=100 /),
      expect.stringMatching(/^held write: ok offset=10 total=100 /),
      "abort of a held ref: ok offset= total= digest= expected=",
      `status after abort: ${Code.NOT_FOUND} could not get status for ref "held": reference held: not found`,
      expect.stringMatching(/^list statuses: ok offset=0 /),
    ]);
  }, 30_000);

  test.skipIf(!existsSync(REAL_CONTAINERD))("the real containerd 1.6 answers the same session the same way", async () => {
    const rd = join(dir, "real-containerd");
    mkdirSync(rd, { recursive: true });
    const sock = join(rd, "c.sock");
    writeFileSync(join(rd, "config.toml"), `version = 2\nroot = "${rd}/root"\nstate = "${rd}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n`);
    const fd = openSync(join(rd, "log"), "a");
    const proc = Bun.spawn([REAL_CONTAINERD, "--config", join(rd, "config.toml")], { stdin: "ignore", stdout: fd, stderr: fd });
    closeSync(fd);
    children.push(proc);
    try {
      expect(await waitFor(() => readFileSync(join(rd, "log"), "utf8").includes("successfully booted") || proc.exitCode !== null, 15_000, 20)).toBe(true);
      const ns = `wp${rand()}`;
      const real = await writeTranscript(sock, ns);
      const ours = await writeTranscript(d.address, ns);
      expect(ours).toEqual(real);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
      for (const m of readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(rd)).reverse()) exec(["umount", "-l", m]);
    }
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// Bearer token auth: docker-registry with `auth: token`, and a token server signing JWTs

/** libtrust's key ID (distribution's trusted-key lookup by `kid`): sha256 of the SPKI DER, 240 bits, base32 in 4-groups. */
function libtrustKeyID(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  const sum = createHash("sha256").update(der).digest().subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let s = "";
  for (const byte of sum) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      s += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) s += alphabet[(value << (5 - bits)) & 31];
  return s.match(/.{1,4}/g)!.join(":");
}

interface TokenServer {
  realm: string;
  /** Each token request: how the client authenticated and the scopes it asked for. */
  requests: { method: string; user: string | null; scopes: string[]; granted: boolean }[];
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

function tokenServer(opts: { keyPem: string; certPem: string; service: string; issuer: string; user: string; password: string }): TokenServer {
  const kid = libtrustKeyID(opts.certPem);
  const ts: TokenServer = { realm: "", requests: [] };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      let user: string | null = null;
      let password = "";
      let scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean);
      if (req.method === "POST") {
        // containerd's OAuth2 form: grant_type=password (or refresh_token, which we never hand out).
        const form = new URLSearchParams(await req.text());
        scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
        if (form.get("grant_type") !== "password") {
          ts.requests.push({ method: "POST", user: null, scopes, granted: false });
          return Response.json({ error: "unsupported_grant_type" }, { status: 400 });
        }
        user = form.get("username");
        password = form.get("password") ?? "";
      } else {
        const authz = req.headers.get("authorization");
        if (authz?.startsWith("Basic ")) {
          const dec = Buffer.from(authz.slice(6), "base64").toString();
          user = dec.slice(0, dec.indexOf(":"));
          password = dec.slice(dec.indexOf(":") + 1);
        }
      }
      if (user !== null && (user !== opts.user || password !== opts.password)) {
        ts.requests.push({ method: req.method, user, scopes, granted: false });
        return Response.json({ details: "incorrect username or password" }, { status: 401 });
      }
      // Anonymous callers get a token that grants nothing.
      const access =
        user === null
          ? []
          : scopes.flatMap((s) => {
              const m = /^repository:(.+):([a-z*,]+)$/.exec(s);
              return m ? [{ type: "repository", name: m[1]!, actions: m[2]!.split(",") }] : [];
            });
      ts.requests.push({ method: req.method, user, scopes, granted: access.length > 0 });
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ typ: "JWT", alg: "ES256", kid }));
      const claims = b64url(JSON.stringify({ iss: opts.issuer, sub: user ?? "", aud: opts.service, exp: now + 300, nbf: now - 60, iat: now, jti: randomBytes(8).toString("hex"), access }));
      const sig = sign("sha256", Buffer.from(`${header}.${claims}`), { key: opts.keyPem, dsaEncoding: "ieee-p1363" });
      const token = `${header}.${claims}.${b64url(sig)}`;
      return Response.json({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
    },
  });
  servers.push(server);
  ts.realm = `http://127.0.0.1:${server.port}/token`;
  return ts;
}

describe.skipIf(!HAVE_REGISTRY || !HAVE_OPENSSL)("--user against docker-registry behind Bearer token auth", () => {
  const USER = "alice";
  const PASSWORD = "s3cret-token";
  let registry: DockerRegistry;
  let ts: TokenServer;

  beforeAll(async () => {
    if (!existsSync(OUR_CTR)) throw new Error(`${OUR_CTR} missing: build with node_modules/.bin/bun run build.ts`);
    const tdir = join(dir, "token");
    mkdirSync(tdir, { recursive: true });
    const gen = exec(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(tdir, "key.pem"), "-out", join(tdir, "cert.pem"), "-days", "2", "-subj", "/CN=bunker-test-token"]);
    if (gen.code !== 0) throw new Error(`openssl: ${gen.stderr}`);
    const service = "bunker-test-registry";
    const issuer = "bunker-test-issuer";
    ts = tokenServer({ keyPem: readFileSync(join(tdir, "key.pem"), "utf8"), certPem: readFileSync(join(tdir, "cert.pem"), "utf8"), service, issuer, user: USER, password: PASSWORD });
    registry = await startDockerRegistry(dir, "registry-token", { token: { realm: ts.realm, service, issuer, rootcertbundle: join(tdir, "cert.pem") } }, children);
    if (!d.proc) await d.start();
  }, 60_000);

  test("push and pull with --user user:pass; without (or with a wrong password) both are refused", async () => {
    const img = busyboxImage();
    const ref = `${registry.host}/test/busybox:latest`;
    okResult(await ctr("tok", ["images", "import", img.archive]), "images import");

    const denied = await ctr("tok", ["images", "push", "--plain-http", ref, BUSYBOX_REF]);
    expect(denied.code).toBe(1);
    const wrong = await ctr("tok", ["images", "push", "--plain-http", "--user", `${USER}:nope`, ref, BUSYBOX_REF]);
    expect(wrong.code).toBe(1);
    expect(ts.requests.some((r) => r.user === USER && !r.granted)).toBe(true);

    const before = ts.requests.length;
    okResult(await ctr("tok", ["images", "push", "--plain-http", "--user", `${USER}:${PASSWORD}`, ref, BUSYBOX_REF]), "push with --user");
    const pushTokens = ts.requests.slice(before);
    expect(pushTokens.some((r) => r.granted && r.scopes.some((s) => /^repository:test\/busybox:.*push/.test(s)))).toBe(true);
    // The registry has it now (read back with a token of our own client).
    const reg = new RegistryClient({ plainHttp: true, dockerConfigDir: false, credentials: () => ({ username: USER, password: PASSWORD }) });
    expect((await reg.resolve(ref)).descriptor.digest).toBe(img.manifestDigest);

    const pull = okResult(await ctr("tok-pull", ["images", "pull", "--plain-http", "-u", `${USER}:${PASSWORD}`, ref]), "pull with -u");
    expect(pull).toContain(`unpacking linux/${hostPlatform().architecture} ${img.manifestDigest}...`);
    expect(okResult(await ctr("tok-pull", ["images", "ls"]), "images ls")).toContain(img.manifestDigest);
    expect(okResult(await ctr("tok-pull", ["snapshots", "ls"]), "snapshots ls")).toContain(img.layerDigest);

    expect((await ctr("tok-anon", ["images", "pull", "--plain-http", ref])).code).toBe(1);
    expect((await ctr("tok-anon", ["images", "pull", "--plain-http", "-u", `${USER}:nope`, ref])).code).toBe(1);
    expect(okResult(await ctr("tok-anon", ["images", "ls", "-q"]), "images ls")).toBe("");
  }, 120_000);

  test("two pulls at once through token auth: each blob is downloaded once", async () => {
    const creds = { username: USER, password: PASSWORD };
    const img = await pushImage(registry.host, "test/tok-conc", 3 * MiB, creds);
    const proxy = new RegistryProxy(registry.host);
    const pullRef = `${proxy.host}/test/tok-conc:v1`;
    const [a, b] = await concurrentPulls(proxy, "tok-conc", pullRef, img, ["--user", `${USER}:${PASSWORD}`]);
    okResult(a, "first pull");
    okResult(b, "second pull");
    for (const desc of [img.layer, img.config]) expect(proxy.blobGets(desc.digest).length).toBe(1);
    // Everything that reached the registry's content was authorized by a token (401s were answered).
    expect(proxy.seen.some((s) => s.status === 401)).toBe(true);
    await expectVerifiedImage("tok-conc", img, pullRef);
  }, 120_000);
});
