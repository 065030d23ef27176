// Integration test harness for the runc command line.
//
// Tests drive the runtime only through its command line (`RUNC`), so the same tests run against the
// real runc (RUNC_BIN=/usr/sbin/runc) and against ours (default: dist/bin/runc). They run real
// containers and look at them from outside (/proc/<pid>/...) or from inside (busybox tools).
//
// Every resource a test creates is named so a leak can be traced back to the test suite:
//   temp dirs    /tmp/bunker-test-<rand>/        (per test: state root, bundles, scratch files)
//   cgroups      /bunker-test-<rand>-<n>          (per bundle, in every v1 hierarchy + unified)
//   containers   live in the per-test --root, so `list -q` finds all of them
// and everything is torn down in afterEach (even when the test failed): delete --force every
// container, kill what is left in the cgroups, rmdir the cgroups, lazily unmount anything mounted
// under the temp dir (deepest first), then rm -rf the temp dir.
//
// Usage in a test file:
//   import { useHarness, makeBundle, runc, ... } from "./harness";
//   useHarness();            // once, at the top level of the file: installs beforeEach/afterEach
//   test("...", () => { const b = makeBundle((s) => { s.process.args = ["true"]; }); ... });

import { afterAll, afterEach, beforeAll, beforeEach } from "bun:test";
import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

// ---------------------------------------------------------------------------------------------
// Configuration

/** The runc binary under test. */
export const RUNC = process.env.RUNC_BIN || join(import.meta.dir, "../dist/bin/runc");
/** True when the binary under test is not bunker (i.e. the real runc, or another runtime). */
export const IS_REAL_RUNC = (() => {
  try {
    return !realpathSync(RUNC).endsWith("/bunker");
  } catch {
    return !RUNC.includes("/dist/bin/");
  }
})();
export const BUSYBOX = "/bin/busybox";
export const TMP_PREFIX = "/tmp/bunker-test-";
export const CACHE_DIR = "/tmp/bunker-test-cache";
export const CGROUP_PREFIX = "/bunker-test-";
export const CGROUP_ROOT = "/sys/fs/cgroup";

const DEFAULT_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// Small utilities

export function rand(n = 8): string {
  const chars = "abcdefghijklmnopqrstuvwxyz0123456789";
  let s = "";
  for (let i = 0; i < n; i++) s += chars[Math.floor(Math.random() * chars.length)];
  return s;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function sleepSync(ms: number): void {
  Bun.sleepSync(ms);
}

/** Poll `fn` until it returns a truthy value (returned) or the timeout passes (returns the last value). */
export async function waitFor<T>(fn: () => T, timeoutMs = 5000, stepMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  let v = fn();
  while (!v && Date.now() < end) {
    await sleep(stepMs);
    v = fn();
  }
  return v;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOpts {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Text fed to stdin; stdin is /dev/null otherwise. */
  stdin?: string;
  timeoutMs?: number;
}

let scratchSeq = 0;
/**
 * Run a command synchronously. stdout/stderr go to files, not pipes: a container started by
 * `create`/`run -d` inherits them and keeps them open, and a pipe would make us wait for its EOF.
 */
export function exec(argv: string[], opts: ExecOpts = {}): ExecResult {
  const dir = current?.dir ?? ensureCacheDir();
  const base = join(dir, `.exec-${process.pid}-${++scratchSeq}`);
  const outFd = openSync(`${base}.out`, "w+");
  const errFd = openSync(`${base}.err`, "w+");
  let inFd: number | "ignore" = "ignore";
  if (opts.stdin !== undefined) {
    writeFileSync(`${base}.in`, opts.stdin);
    inFd = openSync(`${base}.in`, "r");
  }
  try {
    const r = Bun.spawnSync(argv, {
      cwd: opts.cwd,
      env: opts.env ? (Object.fromEntries(Object.entries(opts.env).filter(([, v]) => v !== undefined)) as Record<string, string>) : undefined,
      stdin: inFd,
      stdout: outFd,
      stderr: errFd,
      timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    return {
      code: r.exitCode,
      signal: r.signalCode == null ? null : String(r.signalCode),
      stdout: readFileSync(`${base}.out`, "utf8"),
      stderr: readFileSync(`${base}.err`, "utf8"),
      timedOut: Boolean((r as { exitedDueToTimeout?: boolean }).exitedDueToTimeout),
    };
  } finally {
    closeSync(outFd);
    closeSync(errFd);
    if (typeof inFd === "number") closeSync(inFd);
    for (const ext of [".out", ".err", ".in"]) rmSync(base + ext, { force: true });
  }
}

/** A long-running command (e.g. a socket receiver) whose output is read when it ends. */
export interface Background {
  proc: ReturnType<typeof Bun.spawn>;
  /** Waits for exit (killing it after timeoutMs) and returns its output. */
  finish(timeoutMs?: number): Promise<ExecResult>;
}

export function spawnBackground(argv: string[], opts: { cwd?: string } = {}): Background {
  const dir = current?.dir ?? ensureCacheDir();
  const base = join(dir, `.bg-${process.pid}-${++scratchSeq}`);
  const outFd = openSync(`${base}.out`, "w+");
  const errFd = openSync(`${base}.err`, "w+");
  const proc = Bun.spawn(argv, { cwd: opts.cwd, stdin: "ignore", stdout: outFd, stderr: errFd });
  closeSync(outFd);
  closeSync(errFd);
  current?.pids.add(proc.pid);
  return {
    proc,
    async finish(timeoutMs = 10_000) {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        proc.kill("SIGKILL");
      }, timeoutMs);
      await proc.exited;
      clearTimeout(timer);
      const r = {
        code: proc.exitCode,
        signal: proc.signalCode == null ? null : String(proc.signalCode),
        stdout: readFileSync(`${base}.out`, "utf8"),
        stderr: readFileSync(`${base}.err`, "utf8"),
        timedOut,
      };
      rmSync(`${base}.out`, { force: true });
      rmSync(`${base}.err`, { force: true });
      return r;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Host setup

/** Idempotent: install busybox-static when /bin/busybox is missing (fresh machine only). */
export function ensureHostDeps(): void {
  if (existsSync(BUSYBOX)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const upd = exec(["apt-get", "update"], { env, timeoutMs: 300_000 });
  if (upd.code !== 0) throw new Error(`apt-get update failed: ${upd.stderr}`);
  const inst = exec(["apt-get", "install", "-y", "busybox-static"], { env, timeoutMs: 300_000 });
  if (inst.code !== 0 || !existsSync(BUSYBOX)) throw new Error(`apt-get install busybox-static failed: ${inst.stderr}`);
}

function ensureCacheDir(): string {
  mkdirSync(CACHE_DIR, { recursive: true });
  return CACHE_DIR;
}

/** Does a host tool exist (for skipIf)? */
export function hasTool(name: string): boolean {
  return exec(["sh", "-c", `command -v ${name}`]).code === 0;
}

// ---------------------------------------------------------------------------------------------
// busybox rootfs fixture

export const PASSWD = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
tester:x:1000:1000:tester:/home/tester:/bin/sh
`;
export const GROUP = `root:x:0:
nogroup:x:65534:
tester:x:1000:
extra1:x:1001:tester
extra2:x:1002:tester
`;

let cachedRootfs: string | undefined;

/**
 * The busybox rootfs, built once per machine into CACHE_DIR (rebuilt when busybox changes).
 * Never run containers on it directly: bundles get their own copy.
 */
export function busyboxRootfs(): string {
  if (cachedRootfs) return cachedRootfs;
  ensureHostDeps();
  const bb = statSync(BUSYBOX);
  const stamp = `${bb.size}-${bb.mtimeMs}-v3`;
  const dest = join(ensureCacheDir(), "busybox-rootfs");
  const stampFile = join(CACHE_DIR, "busybox-rootfs.stamp");
  if (existsSync(dest) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) {
    cachedRootfs = dest;
    return dest;
  }
  const tmp = mkdtempSync(join(CACHE_DIR, "busybox-rootfs.tmp-"));
  chmodSync(tmp, 0o755); // mkdtemp makes it 0700: non-root container users could not traverse /
  for (const d of ["bin", "sbin", "dev", "etc", "proc", "sys", "tmp", "root", "usr/bin", "usr/sbin", "var", "run", "home/tester", "mnt"]) {
    mkdirSync(join(tmp, d), { recursive: true });
  }
  exec(["chmod", "1777", join(tmp, "tmp")]);
  exec(["cp", BUSYBOX, join(tmp, "bin/busybox")]);
  let list = exec([BUSYBOX, "--list-full"]);
  let applets: string[];
  if (list.code === 0 && list.stdout.trim()) {
    applets = list.stdout.split("\n").filter(Boolean);
  } else {
    list = exec([BUSYBOX, "--list"]);
    applets = list.stdout.split("\n").filter(Boolean).map((a) => `bin/${a}`);
  }
  const links: string[] = [];
  for (const a of applets) {
    if (a === "bin/busybox" || a.includes("..")) continue;
    links.push(a);
  }
  // One shell call instead of hundreds of spawns.
  const script = links.map((a) => `[ -e '${a}' ] || ln -s /bin/busybox '${a}'`).join("\n");
  const r = exec(["sh", "-c", script], { cwd: tmp });
  if (r.code !== 0) throw new Error(`rootfs applet links failed: ${r.stderr}`);
  writeFileSync(join(tmp, "etc/passwd"), PASSWD);
  writeFileSync(join(tmp, "etc/group"), GROUP);
  writeFileSync(join(tmp, "etc/hostname"), "busybox\n");
  writeFileSync(join(tmp, "etc/hosts"), "127.0.0.1 localhost\n");
  writeFileSync(join(tmp, "etc/resolv.conf"), "");
  rmSync(dest, { recursive: true, force: true });
  renameSync(tmp, dest);
  writeFileSync(stampFile, stamp);
  cachedRootfs = dest;
  return dest;
}

// ---------------------------------------------------------------------------------------------
// Per-test context and cleanup registry

interface TestContext {
  dir: string; // /tmp/bunker-test-<rand>
  root: string; // --root for runc
  tag: string; // <rand>
  cgroups: Set<string>; // cgroupsPath values (absolute, "/bunker-test-...")
  roots: Set<string>; // every --root used
  pids: Set<number>; // helper processes we started (killed if still alive)
  bundles: number;
}

let current: TestContext | undefined;

/** The running test's context (throws outside a test). */
export function ctx(): TestContext {
  if (!current) throw new Error("harness: no test context; call useHarness() at the top of the test file");
  return current;
}

function newContext(): TestContext {
  const tag = rand();
  const dir = `${TMP_PREFIX}${tag}`;
  mkdirSync(dir, { recursive: true });
  const root = join(dir, "root");
  return { dir, root, tag, cgroups: new Set(), roots: new Set([root]), pids: new Set(), bundles: 0 };
}

/** A fresh temp dir under the test's dir (cleaned up with it). */
export function tempDir(name = "tmp"): string {
  const d = join(ctx().dir, `${name}-${rand(4)}`);
  mkdirSync(d, { recursive: true });
  return d;
}

/** Register another --root (e.g. a test that uses two roots) for cleanup. */
export function registerRoot(root: string): string {
  ctx().roots.add(root);
  return root;
}

/** Register a cgroup path (as written in linux.cgroupsPath) for cleanup. */
export function registerCgroup(path: string): string {
  ctx().cgroups.add(path.startsWith("/") ? path : `/${path}`);
  return path;
}

/**
 * Installs the per-test lifecycle. Call once at the top level of every test file.
 */
export function useHarness(): void {
  beforeAll(() => {
    busyboxRootfs();
    if (!existsSync(RUNC)) throw new Error(`runc under test not found: ${RUNC} (set RUNC_BIN, or build with: npx bun run build.ts)`);
  });
  beforeEach(() => {
    current = newContext();
  });
  afterEach(() => {
    const c = current;
    current = undefined;
    if (c) {
      const problems = cleanup(c);
      if (problems.length) throw new Error(`harness cleanup left resources behind:\n  ${problems.join("\n  ")}`);
    }
  });
  afterAll(() => {
    if (current) {
      const c = current;
      current = undefined;
      cleanup(c);
    }
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readInts(path: string): number[] {
  try {
    return readFileSync(path, "utf8")
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Every cgroup hierarchy mount point: the v1 controllers and the unified (v2) one. */
export function cgroupHierarchies(): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const m = parseMountinfoLine(line);
    if (m && (m.fstype === "cgroup" || m.fstype === "cgroup2")) out.push(m.mountPoint);
  }
  return out;
}

/** Directories of a cgroup (relative path) in every hierarchy, existing ones only. */
export function cgroupDirs(cgPath: string): string[] {
  const rel = cgPath.replace(/^\/+/, "");
  return cgroupHierarchies()
    .map((h) => join(h, rel))
    .filter((d) => existsSync(d));
}

function subdirsDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let ents: string[] = [];
    try {
      ents = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const e of ents) walk(join(d, e));
    out.push(d);
  };
  walk(dir);
  return out;
}

/** Kill every process in a cgroup (in all hierarchies) and remove its directories. Returns leftovers. */
export function destroyCgroup(cgPath: string): string[] {
  const problems: string[] = [];
  for (const dir of cgroupDirs(cgPath)) {
    const dirs = subdirsDeepestFirst(dir);
    // A frozen freezer cgroup would keep SIGKILLed processes around.
    for (const d of dirs) {
      if (existsSync(join(d, "freezer.state"))) {
        try {
          writeFileSync(join(d, "freezer.state"), "THAWED");
        } catch {}
      }
      if (existsSync(join(d, "cgroup.freeze"))) {
        try {
          writeFileSync(join(d, "cgroup.freeze"), "0");
        } catch {}
      }
    }
    const end = Date.now() + 5000;
    for (;;) {
      const pids = dirs.flatMap((d) => readInts(join(d, "cgroup.procs")));
      if (!pids.length) break;
      for (const p of pids) {
        try {
          process.kill(p, "SIGKILL");
        } catch {}
      }
      if (Date.now() > end) {
        problems.push(`processes ${pids.join(",")} still in ${dir}`);
        break;
      }
      sleepSync(20);
    }
    for (const d of dirs) {
      for (let i = 0; i < 50 && existsSync(d); i++) {
        try {
          rmdirSync(d);
        } catch {
          sleepSync(20);
        }
      }
      if (existsSync(d)) problems.push(`cgroup dir ${d} not removable`);
    }
  }
  return problems;
}

export interface MountInfo {
  id: number;
  parent: number;
  majmin: string;
  root: string;
  mountPoint: string;
  options: string;
  optional: string[];
  fstype: string;
  source: string;
  superOptions: string;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfoLine(line: string): MountInfo | undefined {
  if (!line.trim()) return undefined;
  const [pre, post] = line.split(" - ");
  if (!pre || !post) return undefined;
  const f = pre.split(" ");
  const g = post.split(" ");
  return {
    id: Number(f[0]),
    parent: Number(f[1]),
    majmin: f[2] ?? "",
    root: unescapeMount(f[3] ?? ""),
    mountPoint: unescapeMount(f[4] ?? ""),
    options: f[5] ?? "",
    optional: f.slice(6),
    fstype: g[0] ?? "",
    source: unescapeMount(g[1] ?? ""),
    superOptions: g[2] ?? "",
  };
}

export function parseMountinfo(text: string): MountInfo[] {
  return text.split("\n").flatMap((l) => {
    const m = parseMountinfoLine(l);
    return m ? [m] : [];
  });
}

/** Mounts (in our own mount namespace) at or below `dir`. */
export function mountsUnder(dir: string): MountInfo[] {
  return parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8")).filter(
    (m) => m.mountPoint === dir || m.mountPoint.startsWith(dir + "/"),
  );
}

/** Lazily unmount everything at or below dir, deepest first. Returns what could not be unmounted. */
export function unmountUnder(dir: string): string[] {
  for (let round = 0; round < 10; round++) {
    const ms = mountsUnder(dir);
    if (!ms.length) return [];
    const points = [...new Set(ms.map((m) => m.mountPoint))].sort((a, b) => b.split("/").length - a.split("/").length || b.length - a.length);
    for (const p of points) exec(["umount", "-l", p]);
  }
  return mountsUnder(dir).map((m) => `mount ${m.mountPoint} still present`);
}

/** List container ids in a root using the runtime under test. */
function listIds(root: string): string[] {
  if (!existsSync(root)) return [];
  const r = exec([RUNC, "--root", root, "list", "-q"], { timeoutMs: 10_000 });
  const ids = new Set(r.code === 0 ? r.stdout.split("\n").map((s) => s.trim()).filter(Boolean) : []);
  // Fall back to the state directories, in case `list` itself is broken.
  try {
    for (const e of readdirSync(root, { withFileTypes: true })) if (e.isDirectory()) ids.add(e.name);
  } catch {}
  return [...ids];
}

function cleanup(c: TestContext): string[] {
  const problems: string[] = [];
  // 1. delete --force every container in every root the test used.
  for (const root of c.roots) {
    for (const id of listIds(root)) {
      exec([RUNC, "--root", root, "delete", "--force", id], { timeoutMs: 10_000 });
    }
  }
  // 2. helper processes.
  for (const pid of c.pids) {
    if (pidAlive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
  // 3. processes left in our cgroups; the cgroup dirs themselves.
  for (const cg of c.cgroups) problems.push(...destroyCgroup(cg));
  // 4. mounts under the temp dir (tests may use host tools such as mount/unshare), deepest first.
  const left = unmountUnder(c.dir);
  problems.push(...left);
  // 5. the temp dir, only when nothing is mounted below it any more (rm -rf would walk into mounts).
  if (!left.length) {
    try {
      rmSync(c.dir, { recursive: true, force: true });
    } catch (e) {
      // Busy files (e.g. a dying process's cwd) can make the first attempt fail.
      sleepSync(100);
      try {
        rmSync(c.dir, { recursive: true, force: true });
      } catch (e2) {
        problems.push(`rm -rf ${c.dir}: ${e2}`);
      }
    }
  } else {
    problems.push(`left ${c.dir} in place because of mounts`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// runc and bundles

/** A loosely typed config.json, so tests can edit anything. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Spec = any;

export interface RuncOpts extends ExecOpts {
  /** --root to use; defaults to the test's root; null: no --root flag at all. */
  root?: string | null;
  /** Extra global flags placed before the command (e.g. ["--log", f]). */
  global?: string[];
}

/** Run `RUNC --root <root> [global...] args...` synchronously. */
export function runc(args: string[], opts: RuncOpts = {}): ExecResult {
  const root = opts.root === undefined ? ctx().root : opts.root;
  const argv = [RUNC, ...(root === null ? [] : ["--root", root]), ...(opts.global ?? []), ...args];
  return exec(argv, opts);
}

/**
 * The messages in runc's stderr: logrus text lines (`time=... level=error msg="..."`) and JSON lines
 * are decoded to their msg; other lines are kept as they are. Joined with newlines.
 */
export function errMsg(stderr: string): string {
  const out: string[] = [];
  for (const line of stderr.split("\n")) {
    if (!line.trim()) continue;
    if (line.startsWith("{")) {
      try {
        const j = JSON.parse(line);
        if (typeof j.msg === "string") {
          out.push(j.msg);
          continue;
        }
      } catch {}
    }
    const m = /(?:^|\s)msg=("(?:[^"\\]|\\.)*"|\S+)/.exec(line);
    if (m && m[1]) {
      let v = m[1];
      if (v.startsWith('"')) {
        try {
          v = JSON.parse(v);
        } catch {
          v = v.slice(1, -1);
        }
      }
      out.push(v);
      continue;
    }
    out.push(line);
  }
  return out.join("\n");
}

/** runc, asserting success; returns stdout. */
export function runcOk(args: string[], opts: RuncOpts = {}): string {
  const r = runc(args, opts);
  if (r.code !== 0) {
    throw new Error(`runc ${args.join(" ")} exited ${r.code}${r.signal ? ` (${r.signal})` : ""}${r.timedOut ? " (timed out)" : ""}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r.stdout;
}

export interface Bundle {
  dir: string;
  rootfs: string;
  configPath: string;
  cgroupsPath: string | undefined;
  /** Re-read config.json. */
  spec(): Spec;
  /** Edit config.json in place. */
  edit(mutate: (s: Spec) => void): void;
}

/**
 * A temp bundle: a private copy of the busybox rootfs plus config.json from `RUNC spec`, edited to
 * be usable without a terminal: process.terminal=false, args ["sleep","300"], a unique
 * linux.cgroupsPath "/bunker-test-<rand>-<n>". `mutate` runs last and may change anything (a
 * cgroupsPath it sets is registered for cleanup too).
 */
export function makeBundle(mutate?: (s: Spec, rootfs: string) => void): Bundle {
  const c = ctx();
  const dir = join(c.dir, `bundle-${++c.bundles}`);
  mkdirSync(dir, { recursive: true });
  const rootfs = join(dir, "rootfs");
  const cp = exec(["cp", "-a", busyboxRootfs(), rootfs]);
  if (cp.code !== 0) throw new Error(`copying rootfs failed: ${cp.stderr}`);
  const sp = runc(["spec"], { root: null, cwd: dir });
  const configPath = join(dir, "config.json");
  if (sp.code !== 0 || !existsSync(configPath)) {
    throw new Error(`${RUNC} spec failed (exit ${sp.code}): ${sp.stderr}`);
  }
  const spec = JSON.parse(readFileSync(configPath, "utf8"));
  spec.process.terminal = false;
  spec.process.args = ["sleep", "300"];
  spec.linux ??= {};
  spec.linux.cgroupsPath = `${CGROUP_PREFIX}${c.tag}-${c.bundles}`;
  mutate?.(spec, rootfs);
  writeFileSync(configPath, JSON.stringify(spec, null, 2));
  const cgroupsPath: string | undefined = spec.linux?.cgroupsPath;
  if (cgroupsPath && !cgroupsPath.includes(":")) registerCgroup(cgroupsPath);
  return {
    dir,
    rootfs,
    configPath,
    cgroupsPath,
    spec: () => JSON.parse(readFileSync(configPath, "utf8")),
    edit(m) {
      const s = JSON.parse(readFileSync(configPath, "utf8"));
      m(s);
      writeFileSync(configPath, JSON.stringify(s, null, 2));
      if (s.linux?.cgroupsPath && !String(s.linux.cgroupsPath).includes(":")) registerCgroup(s.linux.cgroupsPath);
    },
  };
}

let idSeq = 0;
/** A unique container id. */
export function newId(prefix = "ct"): string {
  return `${prefix}-${ctx().tag}-${++idSeq}`;
}

export interface State {
  ociVersion: string;
  id: string;
  pid: number;
  status: string;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
}

/** `runc state <id>` parsed. Throws if it fails. */
export function state(id: string, opts: RuncOpts = {}): State {
  return JSON.parse(runcOk(["state", id], opts));
}

/** `runc state` status, or undefined if the container does not exist. */
export function statusOf(id: string, opts: RuncOpts = {}): string | undefined {
  const r = runc(["state", id], opts);
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout).status;
}

export async function waitForStatus(id: string, status: string, timeoutMs = 5000): Promise<string | undefined> {
  let last: string | undefined;
  await waitFor(() => (last = statusOf(id)) === status, timeoutMs, 50);
  return last;
}

/**
 * Run a container in the foreground with `args` (default: ["sh","-c",script]) and return the result.
 * The bundle is returned for inspection of its rootfs afterwards.
 */
export function runShell(script: string, mutate?: (s: Spec, rootfs: string) => void, opts: RuncOpts = {}): ExecResult & { bundle: Bundle; id: string } {
  const bundle = makeBundle((s, rootfs) => {
    s.process.args = ["sh", "-c", script];
    mutate?.(s, rootfs);
  });
  const id = newId("run");
  const r = runc(["run", "--bundle", bundle.dir, id], opts);
  return { ...r, bundle, id };
}

/** Start a detached container (`run -d`) and return its id, pid and bundle. */
export function runDetached(mutate?: (s: Spec, rootfs: string) => void, extraArgs: string[] = []): { id: string; pid: number; bundle: Bundle } {
  const bundle = makeBundle(mutate);
  const id = newId("det");
  runcOk(["run", "-d", "--bundle", bundle.dir, ...extraArgs, id]);
  const st = state(id);
  return { id, pid: st.pid, bundle };
}

// ---------------------------------------------------------------------------------------------
// Looking at processes from outside

export function procStatus(pid: number | "self"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Parse a "Key:\tvalue" status text produced inside a container (e.g. `cat /proc/self/status`). */
export function parseStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** The namespace identity, e.g. "net:[4026531840]". */
export function nsId(pid: number | "self", ns: string): string {
  return readlinkSync(`/proc/${pid}/ns/${ns}`);
}

/**
 * The host's namespace of a kind: /proc/1/ns/<ns> when readable, else our own (the test runner is
 * in the host namespaces; on some sandboxes pid 1's ns links are not readable even for root).
 */
export function hostNs(ns: string): string {
  try {
    return readlinkSync(`/proc/1/ns/${ns}`);
  } catch {
    return readlinkSync(`/proc/self/ns/${ns}`);
  }
}

export function nsInode(path: string): number {
  return statSync(path).ino;
}

export function procMountinfo(pid: number): MountInfo[] {
  return parseMountinfo(readFileSync(`/proc/${pid}/mountinfo`, "utf8"));
}

/** /proc/<pid>/limits as { "Max open files": { soft, hard } } with numbers or "unlimited". */
export function procLimits(pid: number): Record<string, { soft: string; hard: string }> {
  const out: Record<string, { soft: string; hard: string }> = {};
  const lines = readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").slice(1);
  for (const l of lines) {
    if (!l.trim()) continue;
    const name = l.slice(0, 26).trim();
    const [soft, hard] = l.slice(26).trim().split(/\s+/);
    out[name] = { soft: soft ?? "", hard: hard ?? "" };
  }
  return out;
}

// Capability numbers (linux/capability.h).
export const CAPS: Record<string, number> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
};

/** The /proc/<pid>/status hex mask for a list of capability names. */
export function capMask(names: string[]): bigint {
  let m = 0n;
  for (const n of names) {
    const bit = CAPS[n];
    if (bit === undefined) throw new Error(`unknown capability ${n}`);
    m |= 1n << BigInt(bit);
  }
  return m;
}

export function hexMask(s: string | undefined): bigint {
  return BigInt(`0x${s ?? "0"}`);
}

/** Does the test runner itself (the host side) hold a capability? */
export function hostHasCap(name: string): boolean {
  return (hexMask(procStatus("self").CapEff) & capMask([name])) !== 0n;
}

/** Capabilities the kernel knows (cap_last_cap). */
export function lastCap(): number {
  return Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8").trim());
}

// ---------------------------------------------------------------------------------------------
// Leak checks (used by test/run.sh after the run, and handy in tests)

export interface Leaks {
  mounts: string[];
  cgroups: string[];
  tempDirs: string[];
  processes: string[];
}

export function findLeaks(): Leaks {
  const mounts = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"))
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(TMP_PREFIX) && !p.startsWith(CACHE_DIR));
  const cgroups: string[] = [];
  for (const h of cgroupHierarchies()) {
    try {
      for (const e of readdirSync(h)) if (e.startsWith(CGROUP_PREFIX.slice(1))) cgroups.push(join(h, e));
    } catch {}
  }
  const tempDirs: string[] = [];
  for (const e of readdirSync("/tmp")) {
    const p = join("/tmp", e);
    if (p.startsWith(TMP_PREFIX) && p !== CACHE_DIR) {
      try {
        if (lstatSync(p).isDirectory()) tempDirs.push(p);
      } catch {}
    }
  }
  // Processes in a bunker-test cgroup, or chrooted / cwd'd into a temp dir (host tools, --no-pivot).
  const processes: string[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      // Zombies are already dead; only their parent (often the host's pid 1) can reap them.
      if (/^State:\s+Z/m.test(readFileSync(`/proc/${e}/status`, "utf8"))) continue;
    } catch {
      continue;
    }
    try {
      const cg = readFileSync(`/proc/${e}/cgroup`, "utf8");
      if (cg.includes(`:${CGROUP_PREFIX}`)) {
        let cmd = "";
        try {
          cmd = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").join(" ").trim();
        } catch {}
        processes.push(`${e} (in a ${CGROUP_PREFIX}* cgroup): ${cmd}`);
        continue;
      }
    } catch {}
    for (const link of ["root", "cwd"]) {
      try {
        const t = readlinkSync(`/proc/${e}/${link}`);
        if (t.startsWith(TMP_PREFIX) && !t.startsWith(CACHE_DIR)) {
          let cmd = "";
          try {
            cmd = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").join(" ").trim();
          } catch {}
          processes.push(`${e} (${link} ${t}): ${cmd}`);
          break;
        }
      } catch {}
    }
  }
  return { mounts, cgroups, tempDirs, processes };
}

if (import.meta.main) {
  // `bun test/harness.ts leaks`: print leaked resources (exit 1 if any); `bun test/harness.ts rootfs`.
  const cmd = process.argv[2];
  if (cmd === "rootfs") {
    console.log(busyboxRootfs());
  } else {
    // Two scans a second apart: only what is still there counts (containers of a test that is
    // running right now, e.g. another run on the same machine, come and go).
    const first = findLeaks();
    sleepSync(1000);
    const second = findLeaks();
    const keep = (a: string[], b: string[]) => a.filter((x) => b.includes(x));
    const l: Leaks = {
      mounts: keep(first.mounts, second.mounts),
      cgroups: keep(first.cgroups, second.cgroups),
      tempDirs: keep(first.tempDirs, second.tempDirs),
      processes: keep(first.processes, second.processes),
    };
    const n = l.mounts.length + l.cgroups.length + l.tempDirs.length + l.processes.length;
    for (const p of l.processes) console.log(`leaked process: ${p}`);
    for (const m of l.mounts) console.log(`leaked mount: ${m}`);
    for (const c of l.cgroups) console.log(`leaked cgroup: ${c}`);
    for (const d of l.tempDirs) console.log(`leaked temp dir: ${d}`);
    process.exit(n ? 1 : 0);
  }
}
