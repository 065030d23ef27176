// dockerd's --init on an image without glibc: the config shaped as dockerd writes it (our binary
// bind-mounted at /sbin/docker-init, args ["/sbin/docker-init", "--", ...]) on a busybox-static
// rootfs. Our binary can't run there, so the runtime's own init stays PID 1 and does tini's work.
import { describe, expect, test } from "bun:test";
import { readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { IS_REAL_RUNC, makeBundle, newId, runc, runcOk, runDetached, state, useHarness, waitFor, type Spec } from "./harness";

useHarness();

const INIT = realpathSync(join(import.meta.dir, "../dist/bin/docker-init"));

function withInit(cmd: string[]) {
  return (s: Spec) => {
    s.mounts.push({ destination: "/sbin/docker-init", type: "bind", source: INIT, options: ["bind", "ro"] });
    s.process.args = ["/sbin/docker-init", "--", ...cmd];
  };
}

describe.skipIf(IS_REAL_RUNC)("--init with bunker's docker-init on a busybox-static rootfs", () => {
  test("PID 1 is the init, shown as tini is; the program is its child in its own process group", () => {
    const b = makeBundle(withInit(["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/1/comm; echo ppid=$PPID; echo pgid=$(cut -d' ' -f5 /proc/$$/stat) pid=$$"]));
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    const [cmdline, comm, ppid, pg] = r.stdout.split("\n");
    expect(cmdline!.trim()).toStartWith("/sbin/docker-init -- sh -c");
    expect(comm).toBe("docker-init");
    expect(ppid).toBe("ppid=1");
    const [, pgid, pid] = /pgid=(\d+) pid=(\d+)/.exec(pg!)!;
    expect(pgid).toBe(pid);
  });

  test("the program's exit status is the container's", () => {
    const b = makeBundle(withInit(["sh", "-c", "exit 42"]));
    expect(runc(["run", "--bundle", b.dir, newId()]).code).toBe(42);
  });

  test("1000 orphans are reaped: no zombie is left", () => {
    const script = "i=0; while [ $i -lt 1000 ]; do (true &); i=$((i+1)); done; sleep 1; ps -o stat | grep -c '^Z' || true";
    const b = makeBundle(withInit(["sh", "-c", script]));
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("0");
  });

  test("SIGTERM from `runc kill` reaches the program, whose status becomes the container's", async () => {
    const { id, pid } = runDetached(withInit(["sh", "-c", "trap 'exit 15' TERM; while true; do sleep 0.1; done"]));
    // Wait until the init has started the program.
    await waitFor(() => readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim() !== "");
    runcOk(["kill", id, "TERM"]);
    expect(await waitFor(() => state(id).status === "stopped", 5000)).toBe(true);
  });

  test("a program that does not exist: tini's message and 127", () => {
    const b = makeBundle(withInit(["no-such-program"]));
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/\[FATAL tini \(\d+\)\] exec no-such-program failed: No such file or directory/);
  });

  test("a bind mount of some other binary at /sbin/docker-init is just executed", () => {
    const b = makeBundle((s) => {
      s.mounts.push({ destination: "/sbin/docker-init", type: "bind", source: "/bin/busybox", options: ["bind", "ro"] });
      s.process.args = ["/sbin/docker-init", "--", "echo", "not run"];
    });
    const r = runc(["run", "--bundle", b.dir, newId()]);
    // busybox, called as "docker-init", looks for an applet of that name: proof it was exec'd.
    expect(r.stdout + r.stderr).toContain("applet not found");
    expect(r.stdout).not.toContain("not run");
  });
});
