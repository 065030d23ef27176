// runc exec: a new process inside a running container, with its own user, env, capabilities and
// terminal, in every namespace and the cgroup of the container; its exit status is exec's.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ctx, errMsg, exec, makeBundle, newId, nsId, procStatus, RUNC, runc, runcOk, runDetached, spawnBackground, state, waitFor, useHarness } from "./harness";

useHarness();

const hasBit = (mask: string, bit: number) => (BigInt("0x" + mask) >> BigInt(bit)) & 1n;

describe("runc exec", () => {
  test("runs in the container's namespaces and cgroup; exit status is the process's", () => {
    const { id, pid } = runDetached();
    const r = runc(["exec", id, "sh", "-c", "echo pid=$$; for n in mnt net uts ipc pid; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup; exit 9"]);
    expect(r.code).toBe(9);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).not.toBe("pid=1");
    expect(lines.slice(1, 6)).toEqual(["mnt", "net", "uts", "ipc", "pid"].map((n) => nsId(pid, n)));
    // Same cgroups as the container's init, hierarchy by hierarchy.
    const initCg = readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n").filter((l) => !l.startsWith("0::"));
    for (const l of initCg) expect(lines).toContain(l);
  });

  test("a process killed by a signal gives 128+N; a program that can't start gives 255", () => {
    const { id } = runDetached();
    expect(runc(["exec", id, "sh", "-c", "kill -9 $$"]).code).toBe(137);
    const r = runc(["exec", id, "nosuch"]);
    expect(r.code).toBe(255);
    expect(errMsg(r.stderr)).toBe('exec failed: unable to start container process: exec: "nosuch": executable file not found in $PATH');
  });

  test("-e, --cwd, -u uid:gid, -g, as seen inside and from the outside", () => {
    const { id } = runDetached();
    const r = runc(["exec", "-e", "FOO=bar", "-e", "PATH=/bin", "--cwd", "/tmp", "-u", "1000:1000", "-g", "1001", "-g", "1002", id, "sh", "-c", "echo $FOO $PATH; pwd; id -u; id -g; id -G"]);
    expect(r.code).toBe(0);
    // id -G lists the primary gid first.
    expect(r.stdout.split("\n").slice(0, 6)).toEqual(["bar /bin", "/tmp", "1000", "1000", "1000 1001 1002", ""]);
    const pidFile = join(ctx().dir, "user.pid");
    runcOk(["exec", "-d", "--pid-file", pidFile, "-u", "1000:1000", "-g", "1001", id, "sleep", "30"]);
    const st = procStatus(Number(readFileSync(pidFile, "utf8")));
    expect(st.Uid!.split(/\s+/)[0]).toBe("1000");
    expect(st.Groups!.trim()).toBe("1001");
  });

  test("--cap adds a capability; --no-new-privs sets NoNewPrivs", () => {
    const { id } = runDetached();
    const base = runcOk(["exec", id, "cat", "/proc/self/status"]);
    const eff = (s: string) => /^CapEff:\s+(\w+)/m.exec(s)![1]!;
    expect(hasBit(eff(base), 21)).toBe(0n); // CAP_SYS_ADMIN
    const withCap = runcOk(["exec", "--cap", "CAP_SYS_ADMIN", "--no-new-privs", id, "cat", "/proc/self/status"]);
    expect(hasBit(eff(withCap), 21)).toBe(1n);
    expect(/^NoNewPrivs:\s+1/m.test(withCap)).toBe(true);
  });

  test("-d returns at once and --pid-file names the process, which is in the container", async () => {
    const { id, pid } = runDetached();
    const pidFile = join(ctx().dir, "exec.pid");
    const r = runc(["exec", "-d", "--pid-file", pidFile, id, "sleep", "30"]);
    expect(r.code).toBe(0);
    const epid = Number(readFileSync(pidFile, "utf8"));
    expect(procStatus(epid).Name).toBe("sleep");
    expect(nsId(epid, "pid")).toBe(nsId(pid, "pid"));
    expect(runcOk(["ps", "--format", "json", id])).toContain(String(epid));
  });

  test("--process process.json", () => {
    const { id } = runDetached();
    const file = join(ctx().dir, "process.json");
    writeFileSync(file, JSON.stringify({ args: ["sh", "-c", "echo $X; id -u; exit 2"], env: ["X=from-json", "PATH=/bin"], cwd: "/", user: { uid: 65534, gid: 65534 } }));
    const r = runc(["exec", "--process", file, id]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("from-json\n65534\n");
  });

  test("an invalid process.json names the field", () => {
    const { id } = runDetached();
    const file = join(ctx().dir, "process.json");
    writeFileSync(file, JSON.stringify({ args: ["true"], cwd: "relative" }));
    const r = runc(["exec", "--process", file, id]);
    expect(r.code).toBe(255);
    expect(errMsg(r.stderr)).toStartWith("exec failed: ");
    expect(errMsg(r.stderr).toLowerCase()).toContain("cwd");
  });

  test("the container's rlimits apply to exec'd processes", () => {
    const { id } = runDetached((s) => (s.process.rlimits = [{ type: "RLIMIT_NOFILE", soft: 321, hard: 654 }]));
    expect(runcOk(["exec", id, "sh", "-c", "ulimit -n; ulimit -Hn"])).toBe("321\n654\n");
  });

  test("--preserve-fds passes fds 3.. to the process", () => {
    const { id } = runDetached();
    const data = join(ctx().dir, "passed.txt");
    writeFileSync(data, "through fd 3\n");
    // The shell opens the file as fd 3 for runc; runc hands it on.
    const r = exec(["sh", "-c", `exec 3<"${data}"; exec "${RUNC}" --root "${ctx().root}" exec --preserve-fds 1 ${id} sh -c 'cat <&3'`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("through fd 3\n");
  });

  test("systemd socket activation: LISTEN_FDS meant for runc are passed on, with LISTEN_FDS set", () => {
    const data = join(ctx().dir, "listen.txt");
    writeFileSync(data, "listen fd\n");
    const b = makeBundle((s) => (s.process.args = ["sh", "-c", "cat <&3; echo LISTEN_FDS=$LISTEN_FDS"]));
    // exec keeps the shell's pid, so LISTEN_PID names runc as systemd would.
    const r = exec(["sh", "-c", `exec 3<"${data}"; export LISTEN_FDS=1 LISTEN_PID=$$; exec "${RUNC}" --root "${ctx().root}" run --bundle "${b.dir}" ${newId()}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("listen fd\nLISTEN_FDS=1\n");
  });

  test("LISTEN_FDS meant for another process are ignored", () => {
    const b = makeBundle((s) => (s.process.args = ["sh", "-c", "echo LISTEN_FDS=$LISTEN_FDS; ls /proc/self/fd"]));
    const r = exec(["sh", "-c", `export LISTEN_FDS=1 LISTEN_PID=1; exec "${RUNC}" --root "${ctx().root}" run --bundle "${b.dir}" ${newId()}`]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe("LISTEN_FDS=");
  });

  test("no fd of the runtime leaks into the process", () => {
    const { id } = runDetached();
    // ls itself opens one directory fd (3) to read /proc/self/fd.
    expect(runcOk(["exec", id, "ls", "/proc/self/fd"]).trim().split(/\s+/)).toEqual(["0", "1", "2", "3"]);
  });

  test("exec in a stopped container fails; in a paused one unless --ignore-paused", async () => {
    const { id } = runDetached();
    runcOk(["pause", id]);
    const paused = runc(["exec", id, "true"]);
    expect(paused.code).toBe(255);
    expect(errMsg(paused.stderr)).toBe("exec failed: cannot exec in a paused container (use --ignore-paused to override)");
    runcOk(["resume", id]);
    runcOk(["kill", id, "KILL"]);
    await waitFor(() => state(id).status === "stopped");
    const stopped = runc(["exec", id, "true"]);
    expect(stopped.code).toBe(255);
    expect(errMsg(stopped.stderr)).toBe("exec failed: cannot exec in a stopped container");
    const missing = runc(["exec", "nonexistent", "true"]);
    expect(missing.code).toBe(255);
    expect(errMsg(missing.stderr)).toBe("exec failed: container does not exist");
  });

  test("-t with --console-socket sends the pty master (needs python3)", async () => {
    const { id } = runDetached();
    const sock = join(ctx().dir, "exec-console.sock");
    const recv = spawnBackground(["python3", join(import.meta.dir, "fixtures/console-recv.py"), sock]);
    expect(await waitFor(() => existsSync(sock + ".ready"))).toBe(true);
    const r = runc(["exec", "-t", "-d", "--console-socket", sock, id, "sh", "-c", "tty; echo from-exec-pty"]);
    expect(r.code).toBe(0);
    const out = await recv.finish(15_000);
    expect(out.stdout).toContain("NAME /dev/ptmx");
    expect(out.stdout).toMatch(/DATA '\/dev\/pts\/\d+\\r\\nfrom-exec-pty/);
  });

  test("-t in the foreground on a real terminal", () => {
    const { id } = runDetached();
    const r = exec(["python3", join(import.meta.dir, "fixtures/pty-drive.py"), "--input", "tty; exit 6\n", "--", RUNC, "--root", ctx().root, "exec", "-t", id, "sh"], { timeoutMs: 30000 });
    const res = JSON.parse(r.stdout);
    expect(res.code).toBe(6);
    expect(res.output).toMatch(/\/dev\/pts\/\d+/);
    expect(res.restored).toBe(true);
  });
});
