// The REAL containerd (Debian's containerd 1.6, with its real containerd-shim-runc-v2) running
// containers on the runtime under test: `ctr run --runc-binary <runtime>`.
//
//   bun test test/peer-containerd.test.ts                              on ours (dist/bin/runc)
//   PEER_RUNTIME=/usr/sbin/runc bun test test/peer-containerd.test.ts  on the real runc
//
// One containerd for the whole file (see test/peers.ts for its namespace, cgroups and cleanup).
// Every runtime invocation the shim makes is logged to <tmp>/runtime-calls.log; a failing test
// prints the invocations made during it and containerd's error lines.
import { afterAll, beforeAll, expect } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { busyboxImage, BUSYBOX_REF } from "./fixtures/busybox-image";
import { rand, waitFor } from "./harness";
import { cgroupFile, describePeer, drivePty, ensurePeerPackages, fmt, ok, PEER_RUNTIME, PeerSession, peerTest, procCgroup, readTrim } from "./peers";

const skip = ensurePeerPackages(["containerd"], ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2"]);

let s: PeerSession | undefined;
const S = () => s;
let seq = 0;
const newId = () => `c${++seq}-${s!.tag}`;

/** `ctr run` options every container uses: the runtime under test. */
const RUN = () => ["--runc-binary", s!.runtime];

function tasks(): Map<string, { pid: number; status: string }> {
  const out = new Map<string, { pid: number; status: string }>();
  const r = s!.ctr(["task", "ls"]);
  for (const line of ok(r, "ctr task ls").split("\n").slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id && pid && status) out.set(id, { pid: Number(pid), status });
  }
  return out;
}

async function waitTaskStatus(id: string, status: string, timeoutMs = 10_000): Promise<string | undefined> {
  let last: string | undefined;
  await waitFor(() => (last = tasks().get(id)?.status) === status, timeoutMs, 100);
  return last;
}

/** Remove a container and its task whatever state they are in (best effort). */
function removeContainer(id: string): void {
  s!.ctr(["task", "kill", "-s", "SIGKILL", id]);
  s!.ctr(["task", "rm", "-f", id]);
  s!.ctr(["container", "rm", id]);
}

describePeer("real containerd + shim on the runtime under test", skip, () => {
  beforeAll(async () => {
    if (!existsSync(PEER_RUNTIME)) throw new Error(`runtime under test not found: ${PEER_RUNTIME} (build with: node_modules/.bin/bun run build.ts, or set PEER_RUNTIME)`);
    console.log(`peer runtime: ${PEER_RUNTIME}`);
    const img = busyboxImage();
    s = new PeerSession();
    try {
      await s.startContainerd();
      ok(s.ctr(["images", "import", img.archive], { timeoutMs: 60_000 }), "ctr images import");
      const ls = ok(s.ctr(["images", "ls", "-q"]), "ctr images ls");
      if (!ls.split("\n").includes(BUSYBOX_REF)) throw new Error(`imported image not listed: ${ls}`);
    } catch (e) {
      const problems = s.cleanup();
      s = undefined;
      if (problems.length) console.error(`cleanup after a failed start left:\n  ${problems.join("\n  ")}`);
      throw e;
    }
  }, 120_000);

  afterAll(() => {
    if (!s) return;
    const kept = s.keepLogs();
    if (kept) console.log(`peer logs kept in ${kept}`);
    const problems = s.cleanup();
    s = undefined;
    if (problems.length) throw new Error(`peer cleanup left resources behind:\n  ${problems.join("\n  ")}`);
  }, 60_000);

  peerTest(S, "ctr run --rm: output, exit status, the image's env, cgroup /<namespace>/<id>", () => {
    const id = newId();
    const r = s!.ctr(["run", "--rm", ...RUN(), BUSYBOX_REF, id, "sh", "-c", "echo out-$((6*7)); echo err >&2; echo PATH=$PATH; cat /proc/self/cgroup; exit 3"]);
    expect(r.code, fmt(r)).toBe(3);
    expect(r.stdout).toContain("out-42");
    expect(r.stderr).toContain("err");
    expect(r.stdout).toContain("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    // ctr's default cgroupsPath is /<namespace>/<id>; the runtime must put the container there.
    expect(r.stdout).toMatch(new RegExp(`:/${s!.namespace}/${id}$`, "m"));
    expect(tasks().has(id)).toBe(false);
    expect(s!.ctr(["containers", "ls", "-q"]).stdout.split("\n")).not.toContain(id);
  });

  peerTest(S, "ctr run --rm: stdin reaches the container, exit 0", () => {
    const id = newId();
    const r = s!.ctr(["run", "--rm", ...RUN(), BUSYBOX_REF, id, "sh", "-c", "read line; echo got:$line; id -u"], { stdin: "hello-stdin\n" });
    expect(r.code, fmt(r)).toBe(0);
    expect(r.stdout).toContain("got:hello-stdin");
    expect(r.stdout.split("\n")).toContain("0");
  });

  peerTest(S, "ctr run -d; task ls RUNNING; task exec; task ps; pause/resume (freezer); kill -s SIGKILL; task rm", async () => {
    const id = newId();
    try {
      ok(s!.ctr(["run", "-d", ...RUN(), BUSYBOX_REF, id, "sh", "-c", "echo started > /tmp/started; exec sleep 1000"]), "ctr run -d");
      expect(await waitTaskStatus(id, "RUNNING")).toBe("RUNNING");
      const pid = tasks().get(id)!.pid;
      expect(pid).toBeGreaterThan(0);
      expect(procCgroup(pid, "pids")).toBe(`/${s!.namespace}/${id}`);

      // exec: a second process in the running container, its output and exit status.
      const e = s!.ctr(["task", "exec", "--exec-id", "x1", id, "sh", "-c", "cat /tmp/started; ps -o pid,args; exit 4"]);
      expect(e.code, fmt(e)).toBe(4);
      expect(e.stdout).toContain("started");
      expect(e.stdout).toMatch(/^\s*1\s+sleep 1000\s*$/m); // same pid namespace as the init
      const e2 = s!.ctr(["task", "exec", "--exec-id", "x2", id, "sh", "-c", "read v; echo exec-stdin:$v"], { stdin: "abc\n" });
      expect(e2.code, fmt(e2)).toBe(0);
      expect(e2.stdout).toContain("exec-stdin:abc");

      // ctr task ps: the shim asks the runtime (`runc ps --format json`).
      const ps = s!.ctr(["task", "ps", id]);
      expect(ps.code, fmt(ps)).toBe(0);
      expect(ps.stdout.split("\n").some((l) => l.trim().split(/\s+/)[0] === String(pid))).toBe(true);

      // pause / resume: the task's status and the freezer cgroup.
      ok(s!.ctr(["task", "pause", id]), "ctr task pause");
      expect(await waitTaskStatus(id, "PAUSED")).toBe("PAUSED");
      const freezer = cgroupFile("freezer", `/${s!.namespace}/${id}`, "freezer.state");
      if (existsSync(freezer)) expect(readTrim(freezer)).toBe("FROZEN");
      ok(s!.ctr(["task", "resume", id]), "ctr task resume");
      expect(await waitTaskStatus(id, "RUNNING")).toBe("RUNNING");
      if (existsSync(freezer)) expect(readTrim(freezer)).toBe("THAWED");
      const e3 = s!.ctr(["task", "exec", "--exec-id", "x3", id, "true"]);
      expect(e3.code, fmt(e3)).toBe(0);

      // kill: SIGKILL stops it; task rm removes the task.
      ok(s!.ctr(["task", "kill", "-s", "SIGKILL", id]), "ctr task kill");
      expect(await waitTaskStatus(id, "STOPPED")).toBe("STOPPED");
      expect(await waitFor(() => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8")), 5000)).toBeTruthy();
      ok(s!.ctr(["task", "rm", id]), "ctr task rm");
      expect(tasks().has(id)).toBe(false);
      ok(s!.ctr(["container", "rm", id]), "ctr container rm");
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "ctr task kill (default SIGTERM) reaches an init that traps it; its exit status is kept", async () => {
    const id = newId();
    try {
      ok(s!.ctr(["run", "-d", ...RUN(), BUSYBOX_REF, id, "sh", "-c", "trap 'exit 7' TERM; touch /tmp/ready; while :; do sleep 0.1; done"]), "ctr run -d");
      expect(await waitTaskStatus(id, "RUNNING")).toBe("RUNNING");
      expect(await waitFor(() => s!.ctr(["task", "exec", "--exec-id", `r${rand(4)}`, id, "test", "-e", "/tmp/ready"]).code === 0, 5000, 100)).toBe(true);
      ok(s!.ctr(["task", "kill", id]), "ctr task kill");
      expect(await waitTaskStatus(id, "STOPPED")).toBe("STOPPED");
      // `ctr task delete` reports the task's exit status.
      const d = s!.ctr(["task", "delete", id]);
      expect(d.code, fmt(d)).toBe(0);
      expect(d.stderr).toContain("exit with non-zero exit code 7");
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "ctr task rm -f of a task that already stopped: the shim's `kill --all` and `delete` succeed", async () => {
    const id = newId();
    const m = s!.mark();
    try {
      ok(s!.ctr(["run", "-d", ...RUN(), BUSYBOX_REF, id, "sh", "-c", "exit 0"]), "ctr run -d");
      expect(await waitTaskStatus(id, "STOPPED")).toBe("STOPPED");
      // containerd's force delete kills with KillAll first (runc kill --all <id> 9): on a stopped
      // container runc signals what is left in its cgroup (nothing) and succeeds.
      const r = s!.ctr(["task", "rm", "-f", id]);
      expect(r.code, fmt(r)).toBe(0);
      expect(tasks().has(id)).toBe(false);
      const calls = s!.runtimeCalls().slice(m.calls);
      const killAll = calls.filter((c) => c.args.includes("kill") && c.args.includes("--all"));
      expect(killAll.length).toBeGreaterThan(0);
      expect(killAll.map((c) => `rc=${c.rc} ${c.log.join(" ")}`)).toEqual(killAll.map(() => "rc=0 "));
      ok(s!.ctr(["container", "rm", id]), "ctr container rm");
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "ctr run -t --rm: the container gets a terminal; exit status passed on", () => {
    const id = newId();
    const r = drivePty(s!.ctrArgv(["run", "-t", "--rm", ...RUN(), BUSYBOX_REF, id, "sh"]), "tty; stty size; echo TERM=$TERM; echo $((5*5)); exit 6\n");
    expect(r.code, r.output).toBe(6);
    const lines = ptyLines(r.output);
    expect(lines).toContain("/dev/pts/0");
    expect(lines).toContain("24 80"); // pty-drive's window size, passed through ctr and the shim
    expect(lines).toContain("25");
    expect(tasks().has(id)).toBe(false);
  });

  peerTest(S, "ctr task exec -t: a terminal for an exec'd process", async () => {
    const id = newId();
    try {
      ok(s!.ctr(["run", "-d", ...RUN(), BUSYBOX_REF, id, "sleep", "1000"]), "ctr run -d");
      expect(await waitTaskStatus(id, "RUNNING")).toBe("RUNNING");
      const r = drivePty(s!.ctrArgv(["task", "exec", "-t", "--exec-id", "tty1", id, "sh"]), "tty; echo in-exec-$((2+3)); exit 9\n");
      expect(r.code, r.output).toBe(9);
      const lines = ptyLines(r.output);
      expect(lines.some((l) => /^\/dev\/pts\/\d+$/.test(l))).toBe(true);
      expect(lines).toContain("in-exec-5");
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "ctr run -d -t, then kill: a detached container with a terminal", async () => {
    const id = newId();
    try {
      // ctr wants a terminal on its stdin for -t even with -d.
      const d = drivePty(s!.ctrArgv(["run", "-d", "-t", ...RUN(), BUSYBOX_REF, id, "sh", "-c", "tty > /tmp/tty; exec sleep 1000"]), "", { timeout: 15 });
      expect(d.code, d.output).toBe(0);
      expect(await waitTaskStatus(id, "RUNNING")).toBe("RUNNING");
      const e = s!.ctr(["task", "exec", "--exec-id", "x", id, "cat", "/tmp/tty"]);
      expect(e.code, fmt(e)).toBe(0);
      expect(e.stdout.trim()).toMatch(/^\/dev\/pts\/\d+$/);
      ok(s!.ctr(["task", "kill", "-s", "SIGKILL", id]), "ctr task kill");
      expect(await waitTaskStatus(id, "STOPPED")).toBe("STOPPED");
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "resources and security from ctr's flags: --memory-limit, --cpus, --read-only, --seccomp", async () => {
    const id = newId();
    try {
      ok(s!.ctr(["run", "-d", ...RUN(), "--memory-limit", String(64 * 1024 * 1024), "--cpus", "0.5", "--read-only", "--seccomp", BUSYBOX_REF, id, "sleep", "1000"]), "ctr run -d");
      expect(await waitTaskStatus(id, "RUNNING")).toBe("RUNNING");
      const cg = `/${s!.namespace}/${id}`;
      const w = s!.ctr(["task", "exec", "--exec-id", "w", id, "sh", "-c", "touch /x 2>&1; echo rc=$?; grep Seccomp: /proc/self/status"]);
      // The default profile refuses what no container needs, e.g. new user namespaces (without
      // CAP_SYS_ADMIN, which ctr's default capabilities exclude).
      const u = s!.ctr(["task", "exec", "--exec-id", "u", id, "unshare", "-U", "true"]);
      // All checks at once, so one run shows every one that fails.
      expect({
        "memory.limit_in_bytes": readTrim(cgroupFile("memory", cg, "memory.limit_in_bytes")),
        "cpu.cfs_quota_us": readTrim(cgroupFile("cpu", cg, "cpu.cfs_quota_us")),
        "cpu.cfs_period_us": readTrim(cgroupFile("cpu", cg, "cpu.cfs_period_us")),
        "touch / (read-only rootfs)": /Read-only file system/.test(w.stdout) && /^rc=1$/m.test(w.stdout) ? "refused: read-only" : w.stdout,
        "Seccomp: in /proc/self/status": /^Seccomp:\s+(\d)$/m.exec(w.stdout)?.[1] ?? w.stdout + w.stderr,
        "unshare -U under the default profile": u.code === 0 ? "allowed" : "refused",
      }).toEqual({
        "memory.limit_in_bytes": "67108864",
        "cpu.cfs_quota_us": "50000",
        "cpu.cfs_period_us": "100000",
        "touch / (read-only rootfs)": "refused: read-only",
        "Seccomp: in /proc/self/status": "2",
        "unshare -U under the default profile": "refused",
      });
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "without --seccomp there is no filter: the same unshare -U succeeds", () => {
    const id = newId();
    const r = s!.ctr(["run", "--rm", ...RUN(), BUSYBOX_REF, id, "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true && echo userns-ok"]);
    expect(r.code, fmt(r)).toBe(0);
    expect(r.stdout).toMatch(/^Seccomp:\s+0$/m);
    expect(r.stdout).toContain("userns-ok");
  });
});

/** A pty's output as lines, without the carriage returns (the container's pty and ctr's raw mode add them). */
function ptyLines(out: string): string[] {
  return out.split("\n").map((l) => l.replace(/\r+$/, ""));
}
