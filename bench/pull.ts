// Driver for bench/pull.sh (run it through that script: it puts us in a private mount namespace
// with a tmpfs on /run, and removes the temp dir and whatever we started even on failure or Ctrl-C).
//
// Cold `ctr images pull --plain-http` with unpack (overlayfs) of a ~500 MB multi-layer gzip image
// from Debian's docker-registry on loopback: our containerd + our ctr against Debian's containerd +
// ctr, each round with fresh --root/--state/--address and the same config file, the order swapped
// every round. Measured per pull:
//
//   wall     spawn of `ctr images pull` to its exit (the daemon is up and idle before)
//   unpack   ctr's own "done: <duration>" line: the unpack after the fetch (real ctr 1.6 unpacks
//            only then; ours applies each layer as soon as it is stored, so its column is what
//            was left after the last download); fetch is wall - unpack
//   peak     the daemon's VmHWM (/proc/<pid>/status: the peak since start, the daemon is fresh) and
//            ctr's maxrss (wait4's rusage). Real ctr unpacks through the daemon's Diff service,
//            ours too, so both sides' daemon memory counts; "sum" is daemon + ctr.
//   cpu      user + system seconds of the daemon (during the pull) and of ctr
//
// Then memory flatness: an image of one layer ~FLAT_FACTOR (4) times the biggest layer of the
// first, pulled by ours (and the real one for scale); our peaks must not grow with the layer size.
//
//   ROUNDS=n (3)  FLAT=0 skips flatness  SCALE=x scales the image (1 = ~500 MB compressed)
//   BASE_CONTAINERD/BASE_CTR (pull.sh BASE=path): another build of ours in the same rounds
//   GZIP_LEVEL=n (1; for generation speed, decompression cost hardly depends on it)
//   CACHE=dir     keep the generated blobs there and reuse them on the next run (default: in the temp dir)
import { createCipheriv, createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { createGzip } from "node:zlib";

const env = process.env;
const need = (k: string): string => {
  const v = env[k];
  if (!v) throw new Error(`pull.ts: ${k} not set (run bench/pull.sh)`);
  return v;
};
const TMP = need("BENCH_TMP");
const OURS_CONTAINERD = need("OURS_CONTAINERD");
const OURS_CTR = need("OURS_CTR");
const REAL_CONTAINERD = need("REAL_CONTAINERD");
const REAL_CTR = need("REAL_CTR");
const REGISTRY = need("REGISTRY");
const ROUNDS = Math.max(1, Number(env.ROUNDS ?? 3));
const FLAT = env.FLAT !== "0";
const FLAT_FACTOR = Number(env.FLAT_FACTOR ?? 4);
const SCALE = Number(env.SCALE ?? 1);
const GZIP_LEVEL = Number(env.GZIP_LEVEL ?? 1);
const CACHE = env.CACHE || join(TMP, "blobs");
const NS = "bench";
const MiB = 1 << 20;
const PULL_TIMEOUT = 600_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const mib = (n: number) => n / MiB;
const log = (s: string) => process.stderr.write(`pull bench: ${s}\n`);

// ---- the image ------------------------------------------------------------------------------------
// Layers of files whose content is AES-CTR keystream (deterministic, incompressible, GB/s to make),
// every 3rd 64 KiB slab of a file log-like text instead (gzip: ~4x): ~0.75 compressed/raw. Per layer
// ~8% of the bytes in small files (0.5-16 KiB, many entries), the rest in files of 256 KiB-24 MiB.

/** mulberry32: sizes and names from a seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Entry {
  name: string;
  type: "dir" | "file" | "symlink";
  size: number;
  mode: number;
  link?: string;
  seed?: string; // file content key
  data?: Uint8Array; // literal content
}

function layerEntries(tag: string, rawBytes: number): Entry[] {
  const rnd = prng(Number.parseInt(createHash("sha256").update(tag).digest("hex").slice(0, 8), 16));
  const out: Entry[] = [{ name: `${tag}/`, type: "dir", size: 0, mode: 0o755 }];
  let left = rawBytes;
  let small = Math.floor(rawBytes * 0.08);
  let dirN = 0;
  let i = 0;
  let dir = "";
  const newDir = () => {
    dir = `${tag}/d${String(dirN++).padStart(3, "0")}/`;
    out.push({ name: dir, type: "dir", size: 0, mode: 0o755 });
  };
  newDir();
  while (left > 0) {
    const isSmall = small > 0 && rnd() < 0.9;
    const size = Math.min(left, isSmall ? Math.floor(512 * Math.pow(32, rnd())) : Math.floor(256 * 1024 * Math.pow(96, rnd())));
    if (isSmall) small -= size;
    if (i % 200 === 199) newDir();
    const name = `${dir}f${String(i++).padStart(5, "0")}${isSmall ? ".txt" : ".bin"}`;
    out.push({ name, type: "file", size, mode: 0o644, seed: `${tag}:${name}` });
    left -= size;
  }
  return out;
}

function busyboxEntries(): Entry[] {
  const bb = readFileSync("/bin/busybox");
  const out: Entry[] = [
    { name: "bin/", type: "dir", size: 0, mode: 0o755 },
    { name: "bin/busybox", type: "file", size: bb.byteLength, mode: 0o755, data: bb },
    { name: "etc/", type: "dir", size: 0, mode: 0o755 },
  ];
  for (const a of ["sh", "ls", "cat", "cp", "mv", "rm", "true", "false", "sleep", "echo", "env", "find", "grep", "sed", "awk", "tar", "gzip", "wc", "du", "df"])
    out.push({ name: `bin/${a}`, type: "symlink", size: 0, mode: 0o777, link: "busybox" });
  const passwd = new TextEncoder().encode("root:x:0:0:root:/root:/bin/sh\n");
  out.push({ name: "etc/passwd", type: "file", size: passwd.byteLength, mode: 0o644, data: passwd });
  return out;
}

function tarHeader(e: Entry): Uint8Array {
  const enc = new TextEncoder();
  const h = new Uint8Array(512);
  const put = (off: number, s: string) => h.set(enc.encode(s), off);
  const oct = (off: number, len: number, v: number) => put(off, v.toString(8).padStart(len - 1, "0") + "\0");
  if (e.name.length > 100) throw new Error(`name too long: ${e.name}`);
  put(0, e.name);
  oct(100, 8, e.mode);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, e.type === "file" ? e.size : 0);
  oct(136, 12, 1700000000);
  put(148, "        ");
  put(156, e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "0");
  if (e.link) put(157, e.link);
  put(257, "ustar\0");
  put(263, "00");
  put(265, "root");
  put(297, "root");
  let sum = 0;
  for (const b of h) sum += b;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

const SLAB = 64 * 1024;
const ZERO = new Uint8Array(SLAB);
const HEX = new TextEncoder().encode("0123456789abcdef");
const LINE_TEXT = "2024-05-01T12:34:56.789Z INFO  svc=catalog req=0000000000000000 path=/v1/items/00000 status=200\n";
const LINE = new TextEncoder().encode(LINE_TEXT);
const REQ = LINE_TEXT.indexOf("req=") + 4; // where the request id's hex digits go
const ITEM = LINE_TEXT.indexOf("items/") + 6; // and the item number

/** Log-like text: a fixed line with a random 16-digit hex id and a random 5-digit number (gzip: ~4x). */
function logText(n: number, rnd: Uint8Array): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0, r = 0; off < n; off += LINE.length) {
    const line = out.subarray(off, off + LINE.length);
    line.set(LINE.subarray(0, line.length));
    for (let i = 0; i < 8 && REQ + 2 * i + 1 < line.length; i++, r++) {
      line[REQ + 2 * i] = HEX[rnd[r % rnd.length]! >> 4]!;
      line[REQ + 2 * i + 1] = HEX[rnd[r % rnd.length]! & 15]!;
    }
    for (let i = 0; i < 5 && ITEM + i < line.length; i++, r++) line[ITEM + i] = 0x30 + (rnd[r % rnd.length]! % 10);
  }
  return out;
}

function* fileContent(e: Entry): Generator<Uint8Array> {
  if (e.data) {
    yield e.data;
    return;
  }
  const key = createHash("sha256").update(e.seed!).digest();
  const c = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  let left = e.size;
  for (let slab = 0; left > 0; slab++) {
    const n = Math.min(left, SLAB);
    if (slab % 3 === 2) yield logText(n, c.update(ZERO.subarray(0, Math.ceil(n / 8))));
    else yield new Uint8Array(c.update(ZERO.subarray(0, n)));
    left -= n;
  }
}

function* tarStream(entries: Entry[]): Generator<Uint8Array> {
  for (const e of entries) {
    yield tarHeader(e);
    if (e.type !== "file") continue;
    yield* fileContent(e);
    const pad = (512 - (e.size % 512)) % 512;
    if (pad) yield new Uint8Array(pad);
  }
  yield new Uint8Array(1024);
}

interface Blob {
  digest: string;
  size: number;
  path: string;
  diffID?: string;
  rawSize?: number;
  files?: number;
}

function sha(b: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

/** A gzip layer of `entries` in CACHE (reused when there): digest, diffID, sizes. */
async function makeLayer(tag: string, entries: Entry[]): Promise<Blob> {
  const key = sha(JSON.stringify([3, GZIP_LEVEL, entries.map((e) => [e.name, e.size, e.type])])).slice(7, 23);
  const path = join(CACHE, `layer-${tag}-${key}.tar.gz`);
  const meta = `${path}.json`;
  if (existsSync(meta)) return JSON.parse(readFileSync(meta, "utf8"));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  const blobHash = createHash("sha256");
  const tarHash = createHash("sha256");
  let size = 0;
  let rawSize = 0;
  const gz = createGzip({ level: GZIP_LEVEL, chunkSize: 1 << 20 });
  gz.on("data", (c: Buffer) => {
    blobHash.update(c);
    size += c.byteLength;
    writeSync(fd, c);
  });
  const done = new Promise<void>((res, rej) => {
    gz.on("end", res);
    gz.on("error", rej);
  });
  for (const c of tarStream(entries)) {
    tarHash.update(c);
    rawSize += c.byteLength;
    if (!gz.write(c)) await new Promise((r) => gz.once("drain", r));
  }
  gz.end();
  await done;
  closeSync(fd);
  renameSync(tmp, path);
  const b: Blob = { digest: `sha256:${blobHash.digest("hex")}`, size, path, diffID: `sha256:${tarHash.digest("hex")}`, rawSize, files: entries.filter((e) => e.type !== "dir").length };
  writeFileSync(meta, JSON.stringify(b));
  return b;
}

function goArch(): string {
  return ({ x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x" } as Record<string, string>)[process.arch] ?? process.arch;
}

interface Image {
  repo: string;
  layers: Blob[];
  config: Uint8Array;
  manifest: Uint8Array;
}

function image(repo: string, layers: Blob[]): Image {
  const config = new TextEncoder().encode(
    JSON.stringify({
      architecture: goArch(),
      os: "linux",
      config: { Cmd: ["/bin/sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
    }),
  );
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: sha(config), size: config.byteLength },
      layers: layers.map((l) => ({ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: l.digest, size: l.size })),
    }),
  );
  return { repo, layers, config, manifest };
}

// ---- the registry ---------------------------------------------------------------------------------
async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

const children = new Set<ReturnType<typeof Bun.spawn>>();

async function startRegistry(): Promise<string> {
  const dir = join(TMP, "registry");
  mkdirSync(join(dir, "data"), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    writeFileSync(
      join(dir, "config.yml"),
      `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bunker-bench\n`,
    );
    const fd = openSync(join(dir, "registry.log"), "a");
    const proc = Bun.spawn([REGISTRY, "serve", join(dir, "config.yml")], { stdin: "ignore", stdout: fd, stderr: fd });
    closeSync(fd);
    children.add(proc);
    const end = Date.now() + 10_000;
    while (Date.now() < end && proc.exitCode === null) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/v2/`);
        await r.body?.cancel();
        if (r.status === 200) return `127.0.0.1:${port}`;
      } catch {}
      await sleep(50);
    }
    proc.kill("SIGKILL");
    children.delete(proc);
  }
  throw new Error(`docker-registry did not start:\n${readFileSync(join(dir, "registry.log"), "utf8").slice(-2000)}`);
}

async function pushBlob(host: string, repo: string, digest: string, body: Blob | Uint8Array): Promise<void> {
  const head = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  if (head.status === 200) return;
  const r = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await r.body?.cancel();
  if (r.status !== 202) throw new Error(`registry: upload start ${r.status}`);
  const loc = new URL(r.headers.get("location")!, `http://${host}`);
  loc.searchParams.set("digest", digest);
  const data = body instanceof Uint8Array ? body : Bun.file(body.path);
  const put = await fetch(loc, { method: "PUT", body: data, headers: { "content-type": "application/octet-stream" } });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`registry: upload of ${digest}: ${put.status} ${text}`);
}

async function pushImage(host: string, img: Image): Promise<string> {
  for (const l of img.layers) await pushBlob(host, img.repo, l.digest, l);
  await pushBlob(host, img.repo, sha(img.config), img.config);
  const r = await fetch(`http://${host}/v2/${img.repo}/manifests/latest`, { method: "PUT", body: img.manifest, headers: { "content-type": "application/vnd.docker.distribution.manifest.v2+json" } });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`registry: manifest: ${r.status} ${text}`);
  return `${host}/${img.repo}:latest`;
}

// ---- daemons and pulls ----------------------------------------------------------------------------
interface Impl {
  name: "ours" | "real" | "base";
  containerd: string;
  ctr: string;
}
const IMPLS: Impl[] = [
  { name: "ours", containerd: OURS_CONTAINERD, ctr: OURS_CTR },
  { name: "real", containerd: REAL_CONTAINERD, ctr: REAL_CTR },
];
// Another build of ours (BASE=path in pull.sh) in the same rounds: an A/B of a product change.
if (env.BASE_CONTAINERD) IMPLS.push({ name: "base", containerd: env.BASE_CONTAINERD, ctr: need("BASE_CTR") });

interface Daemon {
  dir: string;
  address: string;
  proc: ReturnType<typeof Bun.spawn>;
}

let runN = 0;

function status(pid: number, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

function run(argv: string[], timeoutMs = 30_000): { code: number; out: string } {
  const r = Bun.spawnSync(argv, { stdin: "ignore", timeout: timeoutMs });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

async function startDaemon(impl: Impl): Promise<Daemon> {
  const dir = join(TMP, `run-${++runN}-${impl.name}`);
  const root = join(dir, "root");
  const state = join(dir, "state");
  const address = join(dir, "containerd.sock");
  mkdirSync(dir, { recursive: true });
  // The same file for both (ours ignores what it doesn't know): no CRI, no snapshotters we don't use.
  const config = join(dir, "config.toml");
  writeFileSync(
    config,
    `version = 2
root = "${root}"
state = "${state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "${address}"

[ttrpc]
  address = "${address}.ttrpc"

[debug]
  level = "info"

[metrics]
  address = ""
`,
  );
  const fd = openSync(join(dir, "containerd.log"), "a");
  const proc = Bun.spawn([impl.containerd, "--config", config], {
    stdin: "ignore",
    stdout: fd,
    stderr: fd,
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: dir },
  });
  closeSync(fd);
  children.add(proc);
  const end = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${impl.name} containerd exited ${proc.exitCode}:\n${readFileSync(join(dir, "containerd.log"), "utf8").slice(-3000)}`);
    if (existsSync(address) && run([impl.ctr, "--address", address, "version"], 5000).code === 0) break;
    if (Date.now() > end) throw new Error(`${impl.name} containerd did not come up:\n${readFileSync(join(dir, "containerd.log"), "utf8").slice(-3000)}`);
    await sleep(50);
  }
  return { dir, address, proc };
}

async function stopDaemon(d: Daemon): Promise<void> {
  if (d.proc.exitCode === null && d.proc.signalCode === null) {
    d.proc.kill("SIGTERM");
    const t = setTimeout(() => d.proc.kill("SIGKILL"), 5000);
    await d.proc.exited;
    clearTimeout(t);
  }
  children.delete(d.proc);
  // Snapshot mounts would be in this (private) namespace; a clean pull leaves none.
  const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(d.dir))
    .sort()
    .reverse();
  for (const m of mounts) run(["umount", "-l", m]);
  rmSync(d.dir, { recursive: true, force: true });
}

/** Go's time.Duration.String: "1m2.5s", "850.3ms", "3.2s". */
function goDuration(s: string): number {
  let t = 0;
  for (const [, n, u] of s.matchAll(/([\d.]+)(h|ms|µs|us|ns|m|s)/g)) t += Number(n) * ({ h: 3600, m: 60, s: 1, ms: 1e-3, µs: 1e-6, us: 1e-6, ns: 1e-9 } as Record<string, number>)[u!]!;
  return t;
}

interface Sample {
  wall: number;
  unpack: number;
  daemonPeak: number;
  daemonIdle: number;
  ctrPeak: number;
  daemonCpu: number;
  ctrCpu: number;
}

async function pull(impl: Impl, ref: string, layers: number): Promise<Sample> {
  const d = await startDaemon(impl);
  try {
    const pid = d.proc.pid;
    run(["sync"], 120_000); // the previous round's writeback is not this pull's cost
    await sleep(200);
    const daemonIdle = status(pid, "VmHWM");
    const cpu0 = cpuSeconds(pid);
    const outFile = join(d.dir, "ctr-pull.out");
    const fd = openSync(outFile, "w");
    const t0 = Bun.nanoseconds();
    const p = Bun.spawn([impl.ctr, "--address", d.address, "-n", NS, "images", "pull", "--plain-http", ref], { stdin: "ignore", stdout: fd, stderr: fd });
    closeSync(fd);
    children.add(p);
    const timer = setTimeout(() => p.kill("SIGKILL"), PULL_TIMEOUT);
    await p.exited;
    const wall = (Bun.nanoseconds() - t0) / 1e9;
    clearTimeout(timer);
    children.delete(p);
    const daemonPeak = status(pid, "VmHWM");
    const daemonCpu = cpuSeconds(pid) - cpu0;
    const out = readFileSync(outFile, "utf8");
    if (p.exitCode !== 0) throw new Error(`${impl.name}: ctr images pull exited ${p.exitCode ?? p.signalCode}:\n${out.slice(-3000)}\n--- daemon log:\n${readFileSync(join(d.dir, "containerd.log"), "utf8").slice(-3000)}`);
    const ru = p.resourceUsage()!;
    const doneLines = [...out.matchAll(/done: ([0-9.a-zµ]+)/g)];
    const unpack = doneLines.length ? goDuration(doneLines[doneLines.length - 1]![1]!) : NaN;
    // Untimed check: every layer is a committed snapshot.
    const snaps = run([impl.ctr, "--address", d.address, "-n", NS, "snapshots", "ls"]);
    const committed = snaps.out.split("\n").filter((l) => /\bCommitted\s*$/.test(l)).length;
    if (committed !== layers) throw new Error(`${impl.name}: ${committed} committed snapshots after the pull, want ${layers}:\n${snaps.out}`);
    return { wall, unpack, daemonPeak, daemonIdle, ctrPeak: ru.maxRSS, daemonCpu, ctrCpu: Number(ru.cpuTime.total) / 1e6 };
  } finally {
    await stopDaemon(d);
  }
}

// ---- main -------------------------------------------------------------------------------------------
async function killChildren(): Promise<void> {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
  await Promise.all([...children].map((c) => c.exited));
  children.clear();
}

// Stopped (pull.sh's cleanup on Ctrl-C): end our children; their deaths are no errors to report.
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, async () => {
    interrupted = true;
    await killChildren();
    process.exit(130);
  });
}

function row(label: string, s: Sample): string {
  return `  ${label.padEnd(14)} ${f2(s.wall).padStart(7)} ${f2(s.wall - s.unpack).padStart(7)} ${f2(s.unpack).padStart(7)}   ${f1(mib(s.daemonPeak)).padStart(7)} ${f1(mib(s.daemonIdle)).padStart(6)} ${f1(mib(s.ctrPeak)).padStart(7)} ${f1(mib(s.daemonPeak + s.ctrPeak)).padStart(7)}   ${f2(s.daemonCpu).padStart(6)} ${f2(s.ctrCpu).padStart(6)}`;
}
const HEAD = `  ${"".padEnd(14)} ${"wall s".padStart(7)} ${"fetch".padStart(7)} ${"unpack".padStart(7)}   ${"daemon".padStart(7)} ${"idle".padStart(6)} ${"ctr".padStart(7)} ${"sum".padStart(7)}   ${"d cpu".padStart(6)} ${"c cpu".padStart(6)}\n  ${"".padEnd(14)} ${"".padStart(23)}   ${"peak RSS MiB (VmHWM / maxrss)".padEnd(31)}   cpu s`;

function medianSample(ss: Sample[]): Sample {
  const k = (f: (s: Sample) => number) => median(ss.map(f));
  return { wall: k((s) => s.wall), unpack: k((s) => s.unpack), daemonPeak: k((s) => s.daemonPeak), daemonIdle: k((s) => s.daemonIdle), ctrPeak: k((s) => s.ctrPeak), daemonCpu: k((s) => s.daemonCpu), ctrCpu: k((s) => s.ctrCpu) };
}

async function main(): Promise<number> {
  mkdirSync(CACHE, { recursive: true });
  // Image 1: busybox plus six layers, ~500 MB compressed. Image 2: one layer FLAT_FACTOR x the biggest.
  const rawMiB = [45, 65, 90, 110, 140, 170].map((m) => Math.round(m * SCALE));
  const t0 = Date.now();
  log(`generating layers (gzip -${GZIP_LEVEL}) in ${CACHE} ...`);
  const layers: Blob[] = [await makeLayer("busybox", busyboxEntries())];
  for (let i = 0; i < rawMiB.length; i++) layers.push(await makeLayer(`l${i}`, layerEntries(`l${i}`, rawMiB[i]! * MiB)));
  const big = image("bench/big", layers);
  const maxLayer = Math.max(...layers.map((l) => l.size));
  const flatRaw = Math.max(...rawMiB) * FLAT_FACTOR;
  const flat = FLAT ? image("bench/flat", [await makeLayer("flat", layerEntries("flat", flatRaw * MiB))]) : undefined;
  log(`generated in ${f1((Date.now() - t0) / 1000)} s; starting docker-registry ...`);
  const host = await startRegistry();
  const t1 = Date.now();
  const ref = await pushImage(host, big);
  const flatRef = flat ? await pushImage(host, flat) : undefined;
  log(`pushed in ${f1((Date.now() - t1) / 1000)} s`);
  if (!env.CACHE) for (const n of readdirSync(CACHE)) if (n.endsWith(".tar.gz")) rmSync(join(CACHE, n)); // the registry has them now

  const sum = (f: (b: Blob) => number, ls: Blob[]) => ls.reduce((n, b) => n + f(b), 0);
  console.log(`pull bench: cold \`ctr images pull --plain-http\` + unpack (overlayfs) from docker-registry on loopback`);
  console.log(`  ours: ${OURS_CONTAINERD_SHOWN()} (as containerd and ctr)`);
  if (env.BASE_CONTAINERD) console.log(`  base: ${env.BASE_SHOWN ?? env.BASE_CONTAINERD} (another build of ours, for comparison)`);
  console.log(`  real: ${REAL_CONTAINERD} + ${REAL_CTR} (${run([REAL_CONTAINERD, "--version"]).out.trim().split(" ").slice(-2).join(" ")})`);
  console.log(
    `  image: ${ref}: ${layers.length} gzip layers, ${f1(mib(sum((b) => b.size, layers)))} MiB compressed, ${f1(mib(sum((b) => b.rawSize!, layers)))} MiB uncompressed, ${sum((b) => b.files!, layers)} files; biggest layer ${f1(mib(maxLayer))} MiB`,
  );
  console.log(`  layers (MiB compressed): ${layers.map((l) => f1(mib(l.size))).join(", ")}`);
  console.log("");

  const samples: Record<string, Sample[]> = { ours: [], real: [], base: [] };
  console.log(HEAD);
  for (let r = 0; r < ROUNDS; r++) {
    // Each round in a different order (rotated, then reversed): no contender always goes first.
    const rot = IMPLS.map((_, i) => IMPLS[(i + r) % IMPLS.length]!);
    const order = Math.floor(r / IMPLS.length) % 2 ? rot.reverse() : rot;
    for (const impl of order) {
      const s = await pull(impl, ref, layers.length);
      samples[impl.name]!.push(s);
      console.log(row(`${r + 1} ${impl.name}`, s));
    }
  }
  const o = medianSample(samples.ours!);
  const g = medianSample(samples.real!);
  console.log(row("median ours", o));
  console.log(row("median real", g));
  if (samples.base!.length) console.log(row("median base", medianSample(samples.base!)));
  const ratio = (f: (s: Sample) => number) => median(samples.ours!.map((s, i) => f(s) / f(samples.real![i]!)));
  const wallRatio = ratio((s) => s.wall);
  console.log("");
  console.log(
    `ratio ours/real (median of per-round ratios): wall ${f2(wallRatio)}x  fetch ${f2(ratio((s) => s.wall - s.unpack))}x  unpack ${f2(ratio((s) => s.unpack))}x  ` +
      `peak daemon ${f2(ratio((s) => s.daemonPeak))}x  ctr ${f2(ratio((s) => s.ctrPeak))}x  sum ${f2(ratio((s) => s.daemonPeak + s.ctrPeak))}x  ` +
      `cpu ${f2(ratio((s) => s.daemonCpu + s.ctrCpu))}x`,
  );
  if (samples.base!.length) {
    const r = (f: (s: Sample) => number) => median(samples.ours!.map((s, i) => f(s) / f(samples.base![i]!)));
    console.log(
      `ratio ours/base: wall ${f2(r((s) => s.wall))}x  fetch ${f2(r((s) => s.wall - s.unpack))}x  unpack ${f2(r((s) => s.unpack))}x  peak sum ${f2(r((s) => s.daemonPeak + s.ctrPeak))}x  cpu ${f2(r((s) => s.daemonCpu + s.ctrCpu))}x; ` +
        `base/real: wall ${f2(median(samples.base!.map((s, i) => s.wall / samples.real![i]!.wall)))}x`,
    );
  }
  console.log(`throughput: ours ${f1(mib(sum((b) => b.size, layers)) / o.wall)} MiB/s, real ${f1(mib(sum((b) => b.size, layers)) / g.wall)} MiB/s (compressed bytes / wall)`);
  let ok = wallRatio <= 1.0;
  console.log(`goal wall <= 1.0x containerd: ${ok ? "met" : "NOT met"} (${f2(wallRatio)}x)`);

  if (flat && flatRef) {
    const fl = flat.layers[0]!;
    console.log("");
    console.log(`memory flatness: ${flatRef}: one layer of ${f1(mib(fl.size))} MiB compressed (${f1(mib(fl.rawSize!))} MiB uncompressed, ${fl.files} files), ${f1(fl.size / maxLayer)}x the biggest above`);
    console.log(HEAD);
    const fo = await pull(IMPLS[0]!, flatRef, 1);
    console.log(row("ours", fo));
    const fr = await pull(IMPLS[1]!, flatRef, 1);
    console.log(row("real", fr));
    // Flat: the peak with the 4x layer stays within 10% (and at most 16 MiB) of image 1's. A
    // footprint that follows the layer would grow by hundreds of MiB.
    const grow = (a: number, b: number) => `${a >= b ? "+" : ""}${f1(mib(a - b))} MiB (${f2(a / b)}x)`;
    const flatOk = (a: number, b: number) => a - b <= Math.max(16 * MiB, 0.1 * b);
    const dOk = flatOk(fo.daemonPeak, o.daemonPeak);
    const cOk = flatOk(fo.ctrPeak, o.ctrPeak);
    console.log(`  ours' peak vs image 1 (median): daemon ${grow(fo.daemonPeak, o.daemonPeak)}, ctr ${grow(fo.ctrPeak, o.ctrPeak)}; layer ${f1(fl.size / maxLayer)}x bigger`);
    console.log(`  real's peak vs image 1 (median): daemon ${grow(fr.daemonPeak, g.daemonPeak)}, ctr ${grow(fr.ctrPeak, g.ctrPeak)}`);
    console.log(`goal peak memory flat in layer size: ${dOk && cOk ? "met" : "NOT met"} (daemon ${dOk ? "flat" : "grows"}, ctr ${cOk ? "flat" : "grows"})`);
    ok &&= dOk && cOk;
  }
  return ok ? 0 : 2;
}

function OURS_CONTAINERD_SHOWN(): string {
  return env.OURS_SHOWN ?? OURS_CONTAINERD;
}

let rc = 1;
try {
  rc = await main();
} catch (e) {
  if (!interrupted) console.error(`pull bench: ${e instanceof Error ? e.stack ?? e.message : e}`);
  rc = interrupted ? 130 : 1;
} finally {
  await killChildren();
}
process.exit(rc);
