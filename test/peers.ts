// Shared set-up for the peer tests: the REAL containerd (Debian's `containerd` 1.6) and the REAL
// dockerd (Debian's `docker.io` 20.10) driving OUR runc through the runc command line.
//
//   PEER_RUNTIME=/usr/sbin/runc bun test test/peer-   validate the tests with the real runc
//   bun test test/peer-                               the same tests on ours (dist/bin/runc)
//   PEER_KEEP_LOGS=1 ...                              keep the logs in /tmp/bunker-peer-logs/<tag>/
//
// Each test file starts its daemons once (beforeAll) and shares them between its tests:
//
//   * A "holder" process makes a private mount namespace (`unshare -m --propagation private`)
//     with a tmpfs on /run. containerd 1.6 and its shims hard-code /run/containerd (shim sockets in
//     /run/containerd/s, the runc --root /run/containerd/runc/<ns>, ctr's fifos in
//     /run/containerd/fifo); with the tmpfs they never touch the host's /run. The daemons, and
//     every ctr command, run in that namespace (nsenter -t <holder> -m), so snapshot, overlay2 and
//     rootfs mounts never show on the host, and they all go away with the namespace's last process.
//   * containerd, dockerd and the holder live in the cgroup /bunker-test-<tag>-daemons (every
//     hierarchy); shims inherit it, and so does anything a runtime fails to move into the
//     container's own cgroup. Containers get cgroups under /bunker-test-<tag>... (ctr's default
//     /<namespace>/<id> with the namespace "bunker-test-<tag>"; dockerd's --cgroup-parent).
//   * The runtime is a wrapper script that logs the argv and exit status of every invocation to
//     <tmp>/runtime-calls.log (plus, for a failed call, the tail of its --log file), keeps a copy of
//     each create's config.json and each exec's process.json, and runs PEER_RUNTIME.
//   * Cleanup (afterAll, also after failures): kill every process in the daemons' and containers'
//     cgroups (thawing frozen ones) and remove the cgroups, unmount anything under the temp dir that
//     shows on the host, rm -rf the temp dir.

import { describe, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupHierarchies, CGROUP_PREFIX, destroyCgroup, exec, type ExecResult, rand, sleepSync, TMP_PREFIX, unmountUnder, waitFor } from "./harness";

/** The runtime the peers drive: PEER_RUNTIME, else RUNC_BIN (as for the runc tests), else ours. */
export const PEER_RUNTIME = process.env.PEER_RUNTIME || process.env.RUNC_BIN || join(import.meta.dir, "..", "dist/bin/runc");
/** Whether PEER_RUNTIME is bunker's runc (a link to dist/bunker) rather than a real runtime. */
export const OURS_UNDER_TEST = (() => {
  try {
    return realpathSync(PEER_RUNTIME).endsWith("/bunker");
  } catch {
    return false;
  }
})();

export const PTY_DRIVER = join(import.meta.dir, "fixtures/pty-drive.py");

// ---------------------------------------------------------------------------------------------
// The peer packages

/**
 * Install Debian packages when one of `bins` is missing. Returns undefined when all are there, or
 * why not (the caller skips its tests with that message). The packages' init scripts are kept
 * from starting the system daemons (/var/lib/docker, /run/containerd) with a policy-rc.d.
 */
export function ensurePeerPackages(pkgs: string[], bins: string[]): string | undefined {
  const missing = () => bins.filter((b) => !existsSync(b));
  if (!missing().length) return undefined;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const policy = "/usr/sbin/policy-rc.d";
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  try {
    let r = exec(["apt-get", "install", "-y", "-qq", ...pkgs], { env, timeoutMs: 600_000 });
    if (r.code !== 0) {
      exec(["apt-get", "update", "-qq"], { env, timeoutMs: 300_000 });
      r = exec(["apt-get", "install", "-y", "-qq", ...pkgs], { env, timeoutMs: 600_000 });
    }
    const still = missing();
    if (still.length) return `could not install ${pkgs.join(" ")} (missing ${still.join(", ")}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`;
    return undefined;
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

export function fmt(r: ExecResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ""}${r.timedOut ? " (timed out)" : ""}\n--- stdout:\n${r.stdout}\n--- stderr:\n${r.stderr}`;
}

/** Throws (with the output) unless the command exited 0; returns stdout. */
export function ok(r: ExecResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what}: ${fmt(r)}`);
  return r.stdout;
}

export interface Driven {
  code: number;
  output: string;
  restored: boolean;
}

/** Run argv on a fresh pty (test/fixtures/pty-drive.py), typing `input` after `delay` seconds. */
export function drivePty(argv: string[], input: string, opts: { delay?: number; timeout?: number } = {}): Driven {
  const r = exec(
    ["python3", PTY_DRIVER, "--input", input, "--input-delay", String(opts.delay ?? 1), "--timeout", String(opts.timeout ?? 20), "--", ...argv],
    { timeoutMs: ((opts.timeout ?? 20) + 10) * 1000 },
  );
  if (r.code !== 0) throw new Error(`pty driver failed: ${fmt(r)}`);
  return JSON.parse(r.stdout);
}

/** A cgroup's file in its v1 controller hierarchy (or the unified one), e.g. ("memory", path, "memory.limit_in_bytes"). */
export function cgroupFile(controller: string, cgPath: string, file: string): string {
  const rel = cgPath.replace(/^\/+/, "");
  const v1 = join("/sys/fs/cgroup", controller, rel, file);
  if (existsSync(v1)) return v1;
  return join("/sys/fs/cgroup", rel, file);
}

export function readTrim(path: string): string {
  return readFileSync(path, "utf8").trim();
}

/** The cgroup path of a process in a v1 controller's hierarchy ("" if not found). */
export function procCgroup(pid: number, controller: string): string {
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
    const [, ctrls, path] = line.split(":");
    if (ctrls !== undefined && ctrls.split(",").includes(controller)) return path ?? "";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// The session: temp dir, mount namespace, daemons, runtime wrapper, cleanup

export interface RuntimeCall {
  pid: string;
  time: string;
  args: string[];
  rc?: number;
  /** Lines from the runtime's --log file, for a failed call. */
  log: string[];
}

export interface Mark {
  calls: number;
  logs: Record<string, number>;
}

export class PeerSession {
  readonly tag = rand();
  readonly dir = `${TMP_PREFIX}${this.tag}`;
  /** containerd namespace; ctr's default cgroup for a container is /<namespace>/<id>. */
  readonly namespace = `bunker-test-${this.tag}`;
  readonly daemonCgroup = `${CGROUP_PREFIX}${this.tag}-daemons`;
  readonly dockerCgroupParent = `${CGROUP_PREFIX}${this.tag}-docker`;
  /** Every cgroup tree to destroy at cleanup, daemons first. */
  readonly cgroups = [this.daemonCgroup, `${CGROUP_PREFIX}${this.tag}`, this.dockerCgroupParent];
  readonly runtime: string; // the wrapper
  readonly callLog: string;
  readonly copies: string; // config.json / process.json copies
  holderPid = 0;
  containerd?: { pid: number; address: string; log: string; root: string; state: string };
  dockerd?: { pid: number; host: string; log: string; dataRoot: string; execRoot: string; cliConfig: string };
  private logs = new Map<string, string>(); // name -> file, for diagnostics

  constructor(readonly realRuntime = PEER_RUNTIME) {
    mkdirSync(this.dir, { recursive: true });
    this.callLog = join(this.dir, "runtime-calls.log");
    this.copies = join(this.dir, "runtime-copies");
    mkdirSync(this.copies);
    this.runtime = join(this.dir, "runtime");
    writeFileSync(this.callLog, "");
    writeFileSync(
      this.runtime,
      `#!/bin/sh
# Logs each invocation of the runtime (argv, exit status, the --log file's tail on failure) and runs it.
LOG='${this.callLog}'
COPIES='${this.copies}'
log=; prev=; bundle=; proc=
for a in "$@"; do
  case "$prev" in
    --log) log=$a ;;
    --bundle|-b) bundle=$a ;;
    --process|-p) proc=$a ;;
  esac
  prev=$a
done
t=$(/bin/date +%H:%M:%S.%N)
{ printf '%s %s CALL' "$$" "$t"; for a in "$@"; do printf ' %s' "$a"; done; printf '\\n'; } >> "$LOG"
[ -n "$bundle" ] && [ -f "$bundle/config.json" ] && /bin/cp "$bundle/config.json" "$COPIES/config-$$.json"
[ -n "$proc" ] && [ -f "$proc" ] && /bin/cp "$proc" "$COPIES/process-$$.json"
n=0; [ -n "$log" ] && [ -f "$log" ] && n=$(/usr/bin/wc -l < "$log")
'${this.realRuntime}' "$@"
rc=$?
printf '%s %s EXIT %s\\n' "$$" "$(/bin/date +%H:%M:%S.%N)" "$rc" >> "$LOG"
if [ "$rc" != 0 ] && [ -n "$log" ] && [ -f "$log" ]; then
  /usr/bin/tail -n +$((n + 1)) "$log" | /usr/bin/tail -n 5 | while IFS= read -r l; do printf '%s LOG %s\\n' "$$" "$l"; done >> "$LOG"
fi
exit $rc
`,
      { mode: 0o755 },
    );
  }

  /** argv run inside the session's mount namespace. */
  inNs(argv: string[]): string[] {
    return ["nsenter", "-t", String(this.holderPid), "-m", "--", ...argv];
  }

  private cgroupProcsFiles(cg: string): string[] {
    const rel = cg.replace(/^\/+/, "");
    const out: string[] = [];
    for (const h of cgroupHierarchies()) {
      const d = join(h, rel);
      mkdirSync(d, { recursive: true });
      // A new v1 cpuset cgroup has no cpus or mems, and nothing can join it until it gets some.
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        const own = join(d, f);
        if (existsSync(own) && !readFileSync(own, "utf8").trim()) writeFileSync(own, readFileSync(join(h, f), "utf8").trim());
      }
      out.push(join(d, "cgroup.procs"));
    }
    return out;
  }

  /** Spawn argv (in the namespace once it exists) in the daemons' cgroup, output to a log file. */
  private spawnDaemon(name: string, argv: string[], env?: Record<string, string>): number {
    const log = join(this.dir, `${name}.log`);
    this.logs.set(name, log);
    const fd = openSync(log, "a");
    const procs = this.cgroupProcsFiles(this.daemonCgroup);
    const script = `for f in ${procs.map((p) => `'${p}'`).join(" ")}; do echo $$ > "$f" || exit 125; done; exec "$@"`;
    const p = Bun.spawn(["sh", "-c", script, "sh", ...argv], { stdin: "ignore", stdout: fd, stderr: fd, env: env ?? (process.env as Record<string, string>) });
    closeSync(fd);
    p.unref();
    return p.pid;
  }

  /**
   * Host files the daemons see differently (bind-mounted over them in the session's namespace only),
   * e.g. /etc/subuid for dockerd's --userns-remap. Set before the first start.
   */
  etcOverrides: Record<string, string> = {};
  /** Extra dockerd flags. Set before startDockerd. */
  dockerdArgs: string[] = [];

  /** The private mount namespace with a tmpfs on /run. */
  startHolder(): void {
    const ready = join(this.dir, "ns-ready");
    const binds = Object.entries(this.etcOverrides).map(([target, content], i) => {
      const src = join(this.dir, `etc-override-${i}`);
      writeFileSync(src, content);
      return `mount --bind '${src}' '${target}' && `;
    });
    this.holderPid = this.spawnDaemon("holder", [
      "unshare",
      "-m",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      `mount -t tmpfs -o mode=755,size=256m bunker-test-run /run && ${binds.join("")}mkdir -p /run/containerd /run/lock && touch '${ready}' && exec sleep 100000`,
    ]);
    const end = Date.now() + 10_000;
    while (!existsSync(ready)) {
      if (Date.now() > end) throw new Error(`mount namespace holder did not start: ${this.logText("holder")}`);
      sleepSync(20);
    }
  }

  /** Start the real containerd with its own root, state, socket and config. */
  async startContainerd(): Promise<void> {
    if (!this.holderPid) this.startHolder();
    const root = join(this.dir, "containerd-root");
    const state = join(this.dir, "containerd-state");
    const address = join(this.dir, "containerd.sock");
    const config = join(this.dir, "containerd.toml");
    writeFileSync(
      config,
      `version = 2
root = "${root}"
state = "${state}"
# Only what ctr and dockerd need; no CRI, no snapshotters we do not use, nothing under /opt.
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
  level = "debug"

[metrics]
  address = ""
`,
    );
    // The shim and containerd come from the Debian package (PATH without dist/bin).
    const env = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: this.dir };
    const pid = this.spawnDaemon("containerd", this.inNs(["containerd", "--config", config]), env);
    this.containerd = { pid, address, log: join(this.dir, "containerd.log"), root, state };
    const up = await waitFor(() => this.ctr(["version"], { ns: false, timeoutMs: 5000 }).code === 0, 20_000, 100);
    if (!up) throw new Error(`containerd did not come up:\n${this.logText("containerd").slice(-3000)}`);
  }

  /** ctr against our containerd (in the namespace; ctr's fifos live in /run/containerd/fifo). */
  ctr(args: string[], opts: { ns?: boolean; timeoutMs?: number; stdin?: string } = {}): ExecResult {
    return exec(this.ctrArgv(args, opts.ns), { timeoutMs: opts.timeoutMs ?? 30_000, stdin: opts.stdin });
  }

  ctrArgv(args: string[], ns = true): string[] {
    if (!this.containerd) throw new Error("containerd not started");
    return this.inNs(["ctr", "--address", this.containerd.address, ...(ns ? ["--namespace", this.namespace] : []), ...args]);
  }

  /** Start the real dockerd on our containerd, with the runtime under test as runtime "bunker". */
  async startDockerd(): Promise<void> {
    if (!this.containerd) await this.startContainerd();
    const dataRoot = join(this.dir, "docker-data");
    const execRoot = join(this.dir, "docker-exec");
    const cliConfig = join(this.dir, "docker-cli");
    const host = `unix://${join(this.dir, "docker.sock")}`;
    mkdirSync(cliConfig, { recursive: true });
    // Its own config file, and its trust key (dockerd 20.10 would write /etc/docker/key.json).
    const daemonJson = join(this.dir, "daemon.json");
    writeFileSync(daemonJson, JSON.stringify({ "deprecated-key-path": join(this.dir, "docker-key.json") }, null, 2));
    const argv = [
      "dockerd",
      "--host",
      host,
      "--config-file",
      daemonJson,
      "--data-root",
      dataRoot,
      "--exec-root",
      execRoot,
      "--pidfile",
      join(this.dir, "docker.pid"),
      "--containerd",
      this.containerd!.address,
      "--containerd-namespace",
      `${this.namespace}-moby`,
      "--containerd-plugins-namespace",
      `${this.namespace}-plugins`,
      "--bridge=none",
      "--iptables=false",
      "--ip6tables=false",
      "--ip-masq=false",
      "--ip-forward=false",
      "--storage-driver",
      "overlay2",
      "--cgroup-parent",
      this.dockerCgroupParent,
      "--exec-opt",
      "native.cgroupdriver=cgroupfs",
      "--add-runtime",
      `bunker=${this.runtime}`,
      // With bunker as the runtime, --init is bunker's docker-init too (it works on busybox images,
      // where a glibc-linked init binary can't run). The real runc keeps Debian's tini.
      ...(OURS_UNDER_TEST ? ["--init-path", join(import.meta.dir, "..", "dist/bin/docker-init")] : []),
      "--userland-proxy=false",
      "--debug",
      ...this.dockerdArgs,
    ];
    const env = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: this.dir };
    const pid = this.spawnDaemon("dockerd", this.inNs(argv), env);
    this.dockerd = { pid, host, log: join(this.dir, "dockerd.log"), dataRoot, execRoot, cliConfig };
    const up = await waitFor(() => this.docker(["version", "--format", "{{.Server.Version}}"], { timeoutMs: 5000 }).code === 0, 30_000, 100);
    if (!up) throw new Error(`dockerd did not come up:\n${this.logText("dockerd").slice(-3000)}`);
  }

  /** Debian's docker CLI (API 1.41, the daemon's own). */
  dockerArgv(args: string[]): string[] {
    if (!this.dockerd) throw new Error("dockerd not started");
    return ["/usr/bin/docker", "--config", this.dockerd.cliConfig, "--host", this.dockerd.host, ...args];
  }

  docker(args: string[], opts: { timeoutMs?: number; stdin?: string } = {}): ExecResult {
    return exec(this.dockerArgv(args), { timeoutMs: opts.timeoutMs ?? 30_000, stdin: opts.stdin });
  }

  logText(name: string): string {
    const f = this.logs.get(name);
    try {
      return f ? readFileSync(f, "utf8") : "";
    } catch {
      return "";
    }
  }

  // --- diagnostics ---------------------------------------------------------------------------

  runtimeCalls(): RuntimeCall[] {
    const calls: RuntimeCall[] = [];
    const byPid = new Map<string, RuntimeCall>();
    let text = "";
    try {
      text = readFileSync(this.callLog, "utf8");
    } catch {}
    for (const line of text.split("\n")) {
      const m = /^(\d+) (\S+) (CALL|EXIT|LOG) ?(.*)$/.exec(line);
      if (m) {
        const [, pid, time, kind, rest] = m as unknown as [string, string, string, string, string];
        if (kind === "CALL") {
          const c: RuntimeCall = { pid, time, args: rest.split(" ").filter(Boolean), log: [] };
          calls.push(c);
          byPid.set(pid, c);
        } else if (kind === "EXIT") {
          const c = byPid.get(pid);
          if (c) c.rc = Number(rest);
        }
        continue;
      }
      const l = /^(\d+) LOG (.*)$/.exec(line);
      if (l) byPid.get(l[1]!)?.log.push(l[2]!);
    }
    return calls;
  }

  mark(): Mark {
    const logs: Record<string, number> = {};
    for (const [name, f] of this.logs) {
      try {
        logs[name] = statSync(f).size;
      } catch {
        logs[name] = 0;
      }
    }
    return { calls: this.runtimeCalls().length, logs };
  }

  /** What happened since the mark: runtime invocations (failed ones with their log), daemon errors. */
  diag(since: Mark): string {
    const out: string[] = [];
    const calls = this.runtimeCalls().slice(since.calls);
    if (calls.length) {
      out.push(`runtime invocations (${this.realRuntime}):`);
      for (const c of calls) {
        out.push(`  [${c.rc === undefined ? "running" : `rc=${c.rc}`}] runc ${shortArgs(c.args).join(" ")}`);
        for (const l of c.log) out.push(`      log: ${l}`);
      }
    }
    for (const [name, f] of this.logs) {
      if (name === "holder") continue;
      let text = "";
      try {
        text = readFileSync(f, "utf8").slice(since.logs[name] ?? 0);
      } catch {}
      const errs = text
        .split("\n")
        .filter((l) => /level=(error|fatal|panic)/.test(l) || (/level=warning/.test(l) && /error=|failed|fail to|unable/i.test(l)))
        .slice(-12);
      if (errs.length) out.push(`${name} errors:`, ...errs.map((l) => `  ${l.slice(0, 600)}`));
    }
    return out.length ? `\n\n===== peer diagnostics =====\n${out.join("\n")}` : "";
  }

  // --- cleanup -----------------------------------------------------------------------------------

  /**
   * With PEER_KEEP_LOGS set: keep the runtime call log, the configs/process specs the runtime was
   * given, and the daemons' logs in /tmp/bunker-peer-logs/<tag>/ (outside the temp dir cleanup removes).
   */
  keepLogs(): string | undefined {
    if (!process.env.PEER_KEEP_LOGS) return undefined;
    const dest = join("/tmp/bunker-peer-logs", this.tag);
    mkdirSync(dest, { recursive: true });
    const files = [this.callLog, this.copies, ...this.logs.values()].filter((f) => existsSync(f));
    exec(["cp", "-a", ...files, dest]);
    return dest;
  }

  /** Kill everything, remove cgroups, unmount, remove the temp dir. Returns what was left behind. */
  cleanup(): string[] {
    const problems: string[] = [];
    // Our cgroup trees, plus any cgroup the runtime made under a name of ours (none expected).
    const trees = [...this.cgroups];
    for (const h of cgroupHierarchies()) {
      let ents: string[] = [];
      try {
        ents = readdirSync(h);
      } catch {}
      for (const e of ents) if (e.startsWith(`${CGROUP_PREFIX.slice(1)}${this.tag}`) && !trees.includes(`/${e}`)) trees.push(`/${e}`);
    }
    // Thaw every paused container first: destroyCgroup walks the hierarchies one by one, and a
    // process frozen in the freezer hierarchy does not die of SIGKILL while it walks the others.
    for (const cg of trees) thawTree(cg);
    // Daemons, shims, the namespace holder, and stray runtime processes first, then the containers.
    for (const cg of trees) problems.push(...destroyCgroup(cg));
    for (const pid of [this.holderPid, this.containerd?.pid, this.dockerd?.pid]) {
      if (pid) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    const left = unmountUnder(this.dir);
    problems.push(...left);
    if (!left.length) {
      for (let i = 0; i < 3; i++) {
        try {
          rmSync(this.dir, { recursive: true, force: true });
          break;
        } catch (e) {
          if (i === 2) problems.push(`rm -rf ${this.dir}: ${e}`);
          sleepSync(200);
        }
      }
    } else {
      problems.push(`left ${this.dir} in place because of mounts`);
    }
    return problems;
  }
}

/** Thaw a cgroup and everything below it (v1 freezer and v2 cgroup.freeze), parents first. */
function thawTree(cgPath: string): void {
  const rel = cgPath.replace(/^\/+/, "");
  for (const h of cgroupHierarchies()) {
    const walk = (d: string) => {
      for (const [f, v] of [
        ["freezer.state", "THAWED"],
        ["cgroup.freeze", "0"],
      ] as const) {
        try {
          if (existsSync(join(d, f))) writeFileSync(join(d, f), v);
        } catch {}
      }
      let ents: string[] = [];
      try {
        ents = readdirSync(d, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name);
      } catch {}
      for (const e of ents) walk(join(d, e));
    };
    if (existsSync(join(h, rel))) walk(join(h, rel));
  }
}

/** Runtime args without the global flags every shim call repeats (--root, --log, --log-format). */
export function shortArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if ((a === "--root" || a === "--log" || a === "--log-format") && i + 1 < args.length) {
      i++;
      continue;
    }
    if (a === "--systemd-cgroup") continue;
    out.push(a);
  }
  return out;
}

/**
 * `test` with the session's diagnostics appended to a failure: the runtime invocations the peers
 * made during the test (exit statuses, log lines of failed ones) and the daemons' error lines.
 */
export function peerTest(session: () => PeerSession | undefined, name: string, fn: () => unknown | Promise<unknown>, timeoutMs = 60_000): void {
  test(
    name,
    async () => {
      const s = session();
      if (!s) throw new Error("peer session did not start (see beforeAll)");
      const m = s.mark();
      try {
        await fn();
      } catch (e) {
        const d = s.diag(m);
        if (e instanceof Error) {
          e.message += d;
          throw e;
        }
        throw new Error(String(e) + d);
      }
    },
    timeoutMs,
  );
}

/** describe, or describe.skip with a reason printed once. */
export function describePeer(name: string, skipReason: string | undefined, fn: () => void): void {
  if (skipReason) {
    console.warn(`SKIP ${name}: ${skipReason}`);
    describe.skip(name, fn);
  } else {
    describe(name, fn);
  }
}
