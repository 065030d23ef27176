// Attacks the real runc learned about the hard way, tried against ours.
import { describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { ctx, exec, makeBundle, mountsUnder, newId, RUNC, runc, state, useHarness } from "./harness";

useHarness();

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describe("CVE-2019-5736: the runtime binary can't be overwritten through /proc/<pid>/exe", () => {
  test("an O_PATH handle on the init's exe, reopened for writing after start, can't change the binary", async () => {
    // Work on a private copy: if the protection failed, only the copy would be damaged.
    const dir = join(ctx().dir, "rt");
    mkdirSync(dir);
    const real = realpathSync(RUNC);
    const copy = join(dir, real.endsWith("/bunker") ? "bunker" : "runc");
    copyFileSync(real, copy);
    exec(["chmod", "755", copy]);
    const runcCopy = join(dir, "runc");
    if (copy !== runcCopy) symlinkSync(copy, runcCopy);
    const before = sha(copy);

    const b = makeBundle();
    const id = newId();
    const root = ctx().root;
    const c = exec([runcCopy, "--root", root, "create", "--bundle", b.dir, id]);
    expect(c.code).toBe(0);
    const pid = state(id).pid;
    // The attacker (root, like a container's root) grabs the init's exe while runc init runs it...
    const attacker = Bun.spawn(
      ["python3", "-c", `
import os, sys, errno
fd = os.open("/proc/${pid}/exe", os.O_PATH)
print("held", flush=True)
sys.stdin.readline()
try:
    w = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY)
except OSError as e:
    print("open", errno.errorcode[e.errno]); sys.exit(0)
try:
    os.write(w, b"\\x00")
    print("WROTE")
except OSError as e:
    print("write", errno.errorcode[e.errno])
`],
      { stdin: "pipe", stdout: "pipe", stderr: "pipe" },
    );
    const reader = attacker.stdout.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain("held");
    // ...and once start has made init exec the user program, the binary is no longer busy.
    expect(exec([runcCopy, "--root", root, "start", id]).code).toBe(0);
    attacker.stdin.write("go\n");
    attacker.stdin.end();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    await attacker.exited;
    expect(rest).not.toContain("WROTE");
    expect(sha(copy)).toBe(before);
    exec([runcCopy, "--root", root, "delete", "--force", id]);
  });
});

describe("CVE-2024-21626: no host fd or cwd reaches the container", () => {
  test("a cwd naming a host directory fd is refused", () => {
    const b = makeBundle((s) => {
      s.process.args = ["pwd"];
      s.process.cwd = "/proc/self/fd/3";
    });
    // fd 3 is a host directory handed to runc on purpose; its path must not become the cwd.
    const r = exec(["sh", "-c", `exec 3</etc; exec "${RUNC}" --root "${ctx().root}" run --preserve-fds 1 --bundle "${b.dir}" ${newId()}`]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
  });

  test("the container's first process holds only stdio", () => {
    const b = makeBundle((s) => (s.process.args = ["ls", "/proc/self/fd"]));
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split(/\s+/)).toEqual(["0", "1", "2", "3"]); // 3: ls reading the dir
  });
});

describe("mount targets are resolved inside the rootfs (CVE-2021-30465 class)", () => {
  test("an absolute symlink in the rootfs can't send a mount to the host", () => {
    const hostTarget = join(ctx().dir, "host-target");
    mkdirSync(hostTarget);
    writeFileSync(join(hostTarget, "precious"), "host data\n");
    const b = makeBundle((s, rootfs) => {
      symlinkSync(hostTarget, join(rootfs, "evil"));
      s.mounts.push({ destination: "/evil", type: "tmpfs", source: "tmpfs", options: ["size=1m"] });
      s.process.args = ["sh", "-c", "ls /evil; echo written > /evil/new"];
      s.root.readonly = false;
    });
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    expect(readdirSync(hostTarget)).toEqual(["precious"]);
    expect(mountsUnder(hostTarget)).toEqual([]);
    // The mount landed at the symlink's target as seen from inside the rootfs.
    expect(existsSync(join(b.rootfs, hostTarget))).toBe(true);
    expect(lstatSync(join(b.rootfs, "evil")).isSymbolicLink()).toBe(true);
  });

  test("a relative ../ symlink can't climb out of the rootfs", () => {
    const b = makeBundle((s, rootfs) => {
      symlinkSync("../../../../../../../../tmp", join(rootfs, "climb"));
      s.mounts.push({ destination: "/climb/bunker-escape", type: "tmpfs", source: "tmpfs", options: ["size=1m"] });
      s.process.args = ["true"];
    });
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    expect(existsSync("/tmp/bunker-escape")).toBe(false);
    expect(existsSync(join(b.rootfs, "tmp/bunker-escape"))).toBe(true);
  });

  test("a bind mount through a symlinked destination stays inside too", () => {
    const hostTarget = join(ctx().dir, "bind-target");
    mkdirSync(hostTarget);
    const src = join(ctx().dir, "src");
    mkdirSync(src);
    writeFileSync(join(src, "file"), "from src\n");
    const b = makeBundle((s, rootfs) => {
      symlinkSync(hostTarget, join(rootfs, "evil"));
      s.mounts.push({ destination: "/evil", type: "bind", source: src, options: ["rbind", "ro"] });
      s.process.args = ["cat", "/evil/file"];
    });
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("from src\n");
    expect(readdirSync(hostTarget)).toEqual([]);
    expect(mountsUnder(hostTarget)).toEqual([]);
  });
});

describe("session keyring", () => {
  test("each container gets its own session keyring; --no-new-keyring keeps the caller's", () => {
    const keyrings = () => readFileSync("/proc/keys", "utf8");
    const b = makeBundle();
    const id = newId();
    expect(runc(["run", "-d", "--bundle", b.dir, id]).code).toBe(0);
    expect(keyrings()).toMatch(new RegExp(`keyring\\s+_ses\\.${id}:`));
    const b2 = makeBundle();
    const id2 = newId();
    expect(runc(["run", "-d", "--no-new-keyring", "--bundle", b2.dir, id2]).code).toBe(0);
    expect(keyrings()).not.toContain(`_ses.${id2}`);
  });
});
