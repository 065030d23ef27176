// Driver for bench/runc-run.sh (run it through that script: it builds the bundle's rootfs, the base
// config and the per-runtime --root dirs, and cleans up after us even on failure or Ctrl-C).
//
// Times create + start + wait + delete of a container running `true`, interleaved across runtimes
// (ours, runc, crun, ours, runc, crun, ...), each step on its own, with Bun.nanoseconds(). "Wait" is
// waiting for the container's process to exit: `create --pid-file F`, pidfd_open(pid) before `start`,
// then poll() the pidfd after `start` until it is readable (the process exited). No polling loop, no
// state calls: the same cost for every runtime.
//
// Then: `exec true` into a running `sleep 1000` container, startup context (bare unshare, our binary's
// --version), and our runtime's per-stage BUNKER_TIMINGS lines aggregated per command + stage.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dlopen, ptr } from "bun:ffi";

const env = process.env;
const need = (k: string): string => {
  const v = env[k];
  if (!v) throw new Error(`runc-run.ts: ${k} not set (run bench/runc-run.sh)`);
  return v;
};
const TMP = need("BENCH_TMP");
const TAG = need("BENCH_TAG");
const ITER = Math.max(1, Number(env.ITER ?? 30));
const WARMUP = Math.max(0, Number(env.WARMUP ?? 2));
const EXEC_ITER = Math.max(1, Number(env.EXEC_ITER ?? ITER));
const CTX_ITER = Math.max(1, Number(env.CTX_ITER ?? ITER));
const TIMINGS = env.TIMINGS === "0" ? "" : `${TMP}/timings.log`;
const ROOTFS = `${TMP}/rootfs`;
const BASE = JSON.parse(readFileSync(`${TMP}/base-config.json`, "utf8"));
const CALL_TIMEOUT = 30_000; // ms; a hung runtime call is killed and counted as a failure
const MAX_FAILS = 3; // a runtime failing this often in the loop is dropped from it

// ---- pidfd wait -----------------------------------------------------------------------------------
const libc = dlopen("libc.so.6", {
  syscall: { args: ["i64", "i64", "i64"], returns: "i64" },
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  kill: { args: ["i32", "i32"], returns: "i32" },
});
const SYS_pidfd_open = 434; // same number on x86_64 and aarch64
const POLLIN = 1;

/** An fd that becomes readable when pid exits; -1 if it already has (or never existed). */
function pidfdOpen(pid: number): number {
  return Number(libc.symbols.syscall(SYS_pidfd_open, pid, 0));
}

/** Wait for the process behind pidfd to exit (pidfd -1: fall back to polling pid). */
function waitExit(pidfd: number, pid: number, timeoutMs: number): boolean {
  if (pidfd < 0) {
    const end = performance.now() + timeoutMs;
    while (libc.symbols.kill(pid, 0) === 0) {
      if (performance.now() > end) return false;
      Bun.sleepSync(0.05);
    }
    return true;
  }
  const pfd = new Int16Array(4); // struct pollfd { int fd; short events; short revents; }
  new Int32Array(pfd.buffer, 0, 1)[0] = pidfd;
  pfd[2] = POLLIN;
  const end = performance.now() + timeoutMs;
  for (;;) {
    const left = Math.max(0, Math.ceil(end - performance.now()));
    const r = libc.symbols.poll(ptr(pfd), 1, left);
    if (r > 0) return true;
    if (r === 0) return false;
    if (performance.now() > end) return false; // r < 0: EINTR, retry
  }
}

// ---- running runtimes ------------------------------------------------------------------------------
interface Runtime {
  name: string;
  bin: string;
  root: string;
  env: Record<string, string | undefined>;
  error?: string; // why it can't take part
  fails: number;
  steps: Record<Step, number[]>;
}
type Step = "create" | "start" | "wait" | "delete" | "total";
const STEPS: Step[] = ["create", "start", "wait", "delete"];

function runtime(name: string, bin: string, ours: boolean): Runtime {
  const e: Record<string, string | undefined> = { ...env };
  delete e.BUNKER_TIMINGS;
  if (ours && TIMINGS) e.BUNKER_TIMINGS = TIMINGS;
  const root = `${TMP}/root-${name}`;
  mkdirSync(root, { recursive: true });
  return { name, bin, root, env: e, fails: 0, steps: { create: [], start: [], wait: [], delete: [], total: [] } };
}

const errFile = `${TMP}/stderr`;

interface Result {
  ok: boolean;
  ms: number;
  err: string;
}

/** Run one runtime command with stdio on /dev/null (stderr kept in a file for the error message). */
function run(rt: Runtime, args: string[], timeout = CALL_TIMEOUT): Result {
  const fd = openSync(errFile, "w");
  const t0 = Bun.nanoseconds();
  let r;
  try {
    r = Bun.spawnSync({
      cmd: [rt.bin, "--root", rt.root, ...args],
      env: rt.env,
      stdin: "ignore",
      stdout: "ignore",
      stderr: fd,
      timeout,
    });
  } finally {
    closeSync(fd);
  }
  const ms = (Bun.nanoseconds() - t0) / 1e6;
  const ok = r.exitCode === 0;
  return { ok, ms, err: ok ? "" : errorLine(readFileSync(errFile, "utf8"), r.exitCode, r.signalCode) };
}

/** The last meaningful line a runtime printed, without logrus/JSON decoration. */
function errorLine(stderr: string, code: number | null, sig: unknown): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  let line = lines[lines.length - 1] ?? "";
  try {
    const j = JSON.parse(line);
    if (j && typeof j.msg === "string") line = j.msg;
  } catch {}
  const m = /\bmsg="((?:[^"\\]|\\.)*)"/.exec(line);
  if (m?.[1]) line = m[1].replace(/\\"/g, '"');
  const status = sig ? `killed by ${sig}` : `exit ${code}`;
  return line ? `${line} (${status})` : `(${status}, no output)`;
}

function writeBundle(id: string, args: string[], cgroup: string): string {
  const dir = `${TMP}/bundles/${id}`;
  mkdirSync(dir, { recursive: true });
  const c = structuredClone(BASE);
  c.process.terminal = false;
  c.process.args = args;
  c.root = { ...(c.root ?? {}), path: ROOTFS };
  c.linux = { ...(c.linux ?? {}), cgroupsPath: cgroup };
  writeFileSync(`${dir}/config.json`, JSON.stringify(c));
  return dir;
}

function forceDelete(rt: Runtime, id: string): void {
  run(rt, ["delete", "--force", id], 10_000);
}

/** One create + start + wait + delete cycle of `true`; records the step times on success. */
function cycle(rt: Runtime, n: number | string, record: boolean): string | undefined {
  const id = `bb-${TAG}-${rt.name}-${n}`;
  const bundle = writeBundle(id, ["true"], `/bunker-bench-${TAG}-${rt.name}-${n}`);
  const pidFile = `${bundle}/pid`;
  const t: Partial<Record<Step, number>> = {};
  try {
    const c = run(rt, ["create", "--bundle", bundle, "--pid-file", pidFile, id]);
    if (!c.ok) return `create: ${c.err}`;
    t.create = c.ms;
    let pid = NaN;
    try {
      pid = Number(readFileSync(pidFile, "utf8").trim());
    } catch {}
    if (!(pid > 0)) return `create: no pid in --pid-file ${pidFile}`;
    const pidfd = pidfdOpen(pid);
    try {
      const s = run(rt, ["start", id]);
      if (!s.ok) return `start: ${s.err}`;
      t.start = s.ms;
      const w0 = Bun.nanoseconds();
      if (!waitExit(pidfd, pid, CALL_TIMEOUT)) return `wait: container process ${pid} still running after ${CALL_TIMEOUT} ms`;
      t.wait = (Bun.nanoseconds() - w0) / 1e6;
    } finally {
      if (pidfd >= 0) libc.symbols.close(pidfd);
    }
    const d = run(rt, ["delete", id]);
    if (!d.ok) return `delete: ${d.err}`;
    t.delete = d.ms;
    if (record) {
      for (const s of STEPS) rt.steps[s].push(t[s]!);
      rt.steps.total.push(STEPS.reduce((a, s) => a + t[s]!, 0));
    }
    return undefined;
  } finally {
    if (t.delete === undefined) forceDelete(rt, id);
    rmSync(bundle, { recursive: true, force: true });
  }
}

// ---- statistics and printing -----------------------------------------------------------------------
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const median = (xs: number[]) => {
  if (!xs.length) return NaN;
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const f = (x: number, w = 7) => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : "-").padStart(w);
const out = (s = "") => console.log(s);

function version(bin: string): string {
  try {
    const r = Bun.spawnSync({ cmd: [bin, "--version"], stdin: "ignore", stderr: "ignore", timeout: 5000 });
    return r.stdout.toString().split("\n")[0]?.trim() || "?";
  } catch {
    return "?";
  }
}

// ---- main ------------------------------------------------------------------------------------------
const OURS = need("OURS");
const RUNC = need("RUNC");
const CRUN = env.CRUN ?? "";
const all: Runtime[] = [runtime("ours", OURS, true), runtime("runc", RUNC, false)];
if (CRUN && existsSync(CRUN)) all.push(runtime("crun", CRUN, false));
const ours = all[0]!;
const runc = all[1]!;

out(`runc-run: create + start + wait + delete of \`true\` (busybox rootfs), ${ITER} iterations interleaved, ${WARMUP} warm-up`);
for (const rt of all) out(`  ${rt.name.padEnd(5)} ${rt.bin}  [${version(rt.bin)}]`);
if (!CRUN || !existsSync(CRUN)) out(`  crun  not found${CRUN ? ` at ${CRUN}` : ""}, skipped`);
out(`  config: \`${env.SPEC_FROM ?? RUNC} spec\`, terminal false, args ["true"], cgroupsPath /bunker-bench-${TAG}-<runtime>-<n>`);

// Warm-up doubles as the probe: a runtime whose first cycle fails sits out, with the error it gave.
for (const rt of all) {
  for (let i = 0; i < Math.max(1, WARMUP) && !rt.error; i++) {
    const e = cycle(rt, `w${i}`, false);
    if (e) rt.error = e;
  }
  if (rt.error) out(`${rt.name}: can't run a container here, left out: ${rt.error}`);
}
const active = () => all.filter((r) => !r.error);

for (let i = 0; i < ITER; i++) {
  for (const rt of active()) {
    const e = cycle(rt, i, true);
    if (!e) continue;
    rt.fails++;
    out(`${rt.name}: iteration ${i} failed: ${e}`);
    if (rt.fails >= MAX_FAILS) {
      rt.error = `dropped after ${rt.fails} failures (last: ${e})`;
      out(`${rt.name}: ${rt.error}`);
    }
  }
}
out();

out(`cycle create+start+wait+delete (ms)   median     p90     min     max   ok`);
for (const rt of all) {
  const x = rt.steps.total;
  if (!x.length) {
    out(`  ${rt.name.padEnd(34)} not measured: ${rt.error ?? "?"}`);
    continue;
  }
  out(`  ${rt.name.padEnd(34)} ${f(median(x))} ${f(quantile(x, 0.9))} ${f(Math.min(...x))} ${f(Math.max(...x))}   ${x.length}/${ITER}`);
}
const ratio = median(ours.steps.total) / median(runc.steps.total);
const ratio90 = quantile(ours.steps.total, 0.9) / quantile(runc.steps.total, 0.9);
if (Number.isFinite(ratio)) {
  out(`ratio ours/runc: ${ratio.toFixed(2)}x median, ${ratio90.toFixed(2)}x p90`);
  const crun = all.find((r) => r.name === "crun");
  if (crun?.steps.total.length)
    out(`ratio ours/crun: ${(median(ours.steps.total) / median(crun.steps.total)).toFixed(2)}x median`);
} else out(`ratio ours/runc: n/a (${ours.steps.total.length ? "runc" : "ours"} not measured)`);
out(`goal: ours <= 0.6x runc` + (Number.isFinite(ratio) ? `  -> ${ratio <= 0.6 ? "MET" : "not met"} (${ratio.toFixed(2)}x)` : ""));
out();

out(`per step, median ms     create   start    wait  delete`);
for (const rt of all) {
  if (!rt.steps.total.length) continue;
  out(`  ${rt.name.padEnd(20)} ${STEPS.map((s) => f(median(rt.steps[s]))).join(" ")}`);
}
out(`  (p90)`);
for (const rt of all) {
  if (!rt.steps.total.length) continue;
  out(`  ${rt.name.padEnd(20)} ${STEPS.map((s) => f(quantile(rt.steps[s], 0.9))).join(" ")}`);
}
out();

// ---- startup context --------------------------------------------------------------------------------
const ctx: { label: string; cmd: string[]; xs: number[]; err?: string }[] = [
  { label: "unshare --fork --pid --mount true", cmd: ["unshare", "--fork", "--pid", "--mount", "true"], xs: [] },
];
const BUNKER = env.BUNKER ?? "";
if (BUNKER && existsSync(BUNKER)) ctx.push({ label: `${BUNKER} --version`, cmd: [BUNKER, "--version"], xs: [] });
else ctx.push({ label: `bunker --version`, cmd: [], xs: [], err: `${BUNKER || "BUNKER"} not found` });
ctx.push({ label: `${RUNC} --version`, cmd: [RUNC, "--version"], xs: [] });
for (let i = 0; i < CTX_ITER + 1; i++) {
  for (const c of ctx) {
    if (c.err) continue;
    const t0 = Bun.nanoseconds();
    const r = Bun.spawnSync({ cmd: c.cmd, stdin: "ignore", stdout: "ignore", stderr: "ignore", timeout: 10_000 });
    const ms = (Bun.nanoseconds() - t0) / 1e6;
    if (r.exitCode !== 0) c.err = `exit ${r.exitCode ?? r.signalCode}`;
    else if (i > 0) c.xs.push(ms); // first round is warm-up
  }
}
out(`context, median ms over ${CTX_ITER} (same run)   median     p90`);
for (const c of ctx) {
  if (c.err) out(`  ${c.label.padEnd(42)} failed: ${c.err}`);
  else out(`  ${c.label.padEnd(42)} ${f(median(c.xs))} ${f(quantile(c.xs, 0.9))}`);
}
out(`reference, measured earlier on this machine: runc 17.8 ms, crun 7.5 ms (cycle), bare unshare --fork 1.8 ms,`);
out(`  compiled Bun hello-world 2.7 ms (startup)`);
out();

// ---- our per-stage timings ----------------------------------------------------------------------------
function timingsTable(): void {
  if (!TIMINGS) {
    out(`ours, per-stage BUNKER_TIMINGS: disabled (TIMINGS=0)`);
    return;
  }
  let text = "";
  try {
    text = readFileSync(TIMINGS, "utf8");
  } catch {}
  const groups = new Map<string, number[]>();
  const pids = new Map<string, Set<string>>();
  let bad = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const m = /^(\d+)\s+(\S+)\s+(\S+)\s+([0-9.]+)\s*$/.exec(line.trim());
    if (!m) {
      bad++;
      continue;
    }
    const [, pid, cmd, stage, ms] = m as unknown as [string, string, string, string, string];
    const k = `${cmd}\t${stage}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(Number(ms));
    if (!pids.has(cmd)) pids.set(cmd, new Set());
    pids.get(cmd)!.add(pid);
  }
  if (!groups.size) {
    out(`ours, per-stage BUNKER_TIMINGS: no lines written to ${TIMINGS} — ${OURS} doesn't emit them (yet)` + (bad ? ` (${bad} unparseable lines)` : ""));
    return;
  }
  out(`ours, per-stage BUNKER_TIMINGS (ms since process start; warm-up, failed and exec runs included)`);
  out(`  command    stage                            median     p90       n`);
  // Order: by command in first-seen order, stages by median within the command.
  const cmds = [...new Set([...groups.keys()].map((k) => k.split("\t")[0]!))];
  for (const cmd of cmds) {
    const rows = [...groups.entries()]
      .filter(([k]) => k.split("\t")[0] === cmd)
      .map(([k, xs]) => ({ stage: k.split("\t")[1]!, xs, med: median(xs) }))
      .sort((a, b) => a.med - b.med);
    for (const r of rows)
      out(`  ${cmd.padEnd(10)} ${r.stage.padEnd(32)} ${f(r.med)} ${f(quantile(r.xs, 0.9))} ${String(r.xs.length).padStart(7)}`);
  }
  out(`  processes: ${[...pids.entries()].map(([c, s]) => `${c} ${s.size}`).join(", ")}` + (bad ? `; ${bad} unparseable lines` : ""));
}

// ---- exec into a running container --------------------------------------------------------------------
function execProbe(rt: Runtime, id: string): string | undefined {
  const fd = openSync(errFile, "w");
  let r;
  try {
    r = Bun.spawnSync({
      cmd: [rt.bin, "--root", rt.root, "exec", id, "sh", "-c", "echo bunker-exec-probe"],
      env: rt.env,
      stdin: "ignore",
      stdout: "pipe",
      stderr: fd,
      timeout: CALL_TIMEOUT,
    });
  } finally {
    closeSync(fd);
  }
  if (r.exitCode !== 0) return errorLine(readFileSync(errFile, "utf8"), r.exitCode, r.signalCode);
  const o = r.stdout.toString();
  if (!o.includes("bunker-exec-probe")) return `exit 0 but the exec'd process didn't run (stdout ${JSON.stringify(o.slice(0, 60))})`;
  return undefined;
}

function execBench(): void {
  out(`exec \`true\` into a running \`sleep 1000\` container (ms), ${EXEC_ITER} iterations interleaved`);
  const ready: { rt: Runtime; id: string; xs: number[] }[] = [];
  for (const rt of all) {
    const label = `  ${rt.name}:`;
    if (rt.name !== "ours" && rt.error && rt.steps.total.length === 0) {
      out(`${label} skipped, can't run containers here (${rt.error})`);
      continue;
    }
    const id = `bx-${TAG}-${rt.name}`;
    const bundle = writeBundle(id, ["sleep", "1000"], `/bunker-bench-${TAG}-${rt.name}-exec`);
    const pidFile = `${bundle}/pid`;
    const c = run(rt, ["create", "--bundle", bundle, "--pid-file", pidFile, id]);
    const s = c.ok ? run(rt, ["start", id]) : c;
    let pid = NaN;
    try {
      pid = Number(readFileSync(pidFile, "utf8").trim());
    } catch {}
    const alive = pid > 0 && libc.symbols.kill(pid, 0) === 0;
    if (!s.ok || !alive) {
      const why = !c.ok ? `create: ${c.err}` : !s.ok ? `start: ${s.err}` : `no running process (pid file: ${pid || "none"})`;
      out(`${label} can't start the sleep container: ${why}`);
      forceDelete(rt, id);
      continue;
    }
    // Probe with a command whose effect we can see, so a runtime that exits 0 without running
    // anything doesn't pass: exec must deliver the process's stdout.
    const probe = execProbe(rt, id);
    if (probe) {
      out(rt.name === "ours" ? `  ours: exec not supported yet (${probe})` : `${label} exec failed: ${probe}`);
      forceDelete(rt, id);
      continue;
    }
    ready.push({ rt, id, xs: [] });
  }
  try {
    for (let i = 0; i < EXEC_ITER; i++) {
      for (const r of ready) {
        const x = run(r.rt, ["exec", r.id, "true"]);
        if (x.ok) r.xs.push(x.ms);
        else out(`  ${r.rt.name}: exec iteration ${i} failed: ${x.err}`);
      }
    }
  } finally {
    for (const r of ready) forceDelete(r.rt, r.id);
  }
  if (!ready.length) return;
  out(`  ${"".padEnd(8)}  median     p90     min   ok`);
  for (const r of ready)
    out(`  ${r.rt.name.padEnd(8)} ${f(median(r.xs))} ${f(quantile(r.xs, 0.9))} ${f(Math.min(...r.xs))}   ${r.xs.length}/${EXEC_ITER}`);
  const o = ready.find((r) => r.rt.name === "ours");
  const g = ready.find((r) => r.rt.name === "runc");
  if (o && g) out(`  ratio ours/runc: ${(median(o.xs) / median(g.xs)).toFixed(2)}x median`);
}

execBench();
out();
timingsTable();

// Exit 2 when our runtime couldn't be measured at all: the numbers above are then only context.
process.exit(ours.steps.total.length ? 0 : 2);
