// config.json root / mounts / maskedPaths / readonlyPaths / devices: checked from inside (busybox)
// and from outside (/proc/<pid>/mountinfo).
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec, parseMountinfo, procMountinfo, runDetached, runShell, sleep, tempDir, useHarness, waitFor, type MountInfo, type Spec } from "./harness";

useHarness();

function mountAt(ms: MountInfo[], point: string): MountInfo | undefined {
  // The last one wins when mounts are stacked.
  return ms.filter((m) => m.mountPoint === point).at(-1);
}

function opts(m: MountInfo | undefined): string[] {
  return m ? m.options.split(",") : [];
}

function superOpts(m: MountInfo | undefined): string[] {
  return m ? m.superOptions.split(",") : [];
}

/** `cat /proc/self/mountinfo` run inside a container with these edits, parsed. */
function insideMountinfo(mutate?: (s: Spec) => void): MountInfo[] {
  const r = runShell("cat /proc/self/mountinfo", mutate);
  expect(r.code).toBe(0);
  return parseMountinfo(r.stdout);
}

describe("root", () => {
  test("readonly: true -> writes fail, / mounted ro", () => {
    const r = runShell("touch /newfile", (s) => (s.root.readonly = true));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Read-only file system");
    const { pid } = runDetached((s) => (s.root.readonly = true));
    expect(opts(mountAt(procMountinfo(pid), "/"))).toContain("ro");
  });

  test("readonly: false -> writes land in the bundle's rootfs", () => {
    const r = runShell("echo data > /newfile", (s) => (s.root.readonly = false));
    expect(r.code).toBe(0);
    expect(readFileSync(join(r.bundle.rootfs, "newfile"), "utf8")).toBe("data\n");
  });

  test("root.path may be absolute", () => {
    const r = runShell("echo ok", (s, rootfs) => (s.root.path = rootfs));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("ok\n");
  });

  test("the container does not see the host's root", () => {
    const r = runShell("ls /");
    const entries = r.stdout.split("\n").filter(Boolean);
    expect(entries).toContain("bin");
    expect(entries).not.toContain("work");
    expect(entries).not.toContain("boot");
  });

  test("the root mount in the container comes from the bundle's rootfs", () => {
    const { pid, bundle } = runDetached();
    const root = mountAt(procMountinfo(pid), "/");
    expect(root).toBeDefined();
    expect(root!.root.endsWith(bundle.rootfs.replace(/^\/tmp/, "")) || root!.root === bundle.rootfs).toBe(true);
  });
});

describe("default spec mounts", () => {
  test("proc, /dev tmpfs, devpts, shm, mqueue, sysfs ro, cgroup", () => {
    const { pid } = runDetached();
    const ms = procMountinfo(pid);
    const fs = (p: string) => mountAt(ms, p)?.fstype;
    expect(fs("/proc")).toBe("proc");
    expect(fs("/dev")).toBe("tmpfs");
    expect(fs("/dev/pts")).toBe("devpts");
    expect(fs("/dev/shm")).toBe("tmpfs");
    expect(fs("/dev/mqueue")).toBe("mqueue");
    expect(fs("/sys")).toBe("sysfs");
    expect(opts(mountAt(ms, "/sys"))).toContain("ro");
    expect(opts(mountAt(ms, "/sys"))).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
    // /dev: nosuid, mode=755, size=65536k
    expect(opts(mountAt(ms, "/dev"))).toContain("nosuid");
    expect(superOpts(mountAt(ms, "/dev"))).toEqual(expect.arrayContaining(["mode=755", "size=65536k"]));
    // devpts: newinstance,ptmxmode=0666,mode=0620,gid=5
    expect(superOpts(mountAt(ms, "/dev/pts"))).toEqual(expect.arrayContaining(["gid=5", "mode=620", "ptmxmode=666"]));
    expect(opts(mountAt(ms, "/dev/pts"))).toEqual(expect.arrayContaining(["nosuid", "noexec"]));
    expect(opts(mountAt(ms, "/dev/shm"))).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
    expect(opts(mountAt(ms, "/dev/mqueue"))).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
  });

  test("the devpts is a new instance (its own ptmx, no host ptys)", () => {
    const r = runShell("ls /dev/pts");
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(["ptmx"]);
  });

  test("cgroup mount: the container's own cgroup at /sys/fs/cgroup, read-only", () => {
    const { pid, bundle } = runDetached();
    const ms = procMountinfo(pid);
    const cg = ms.filter((m) => m.mountPoint === "/sys/fs/cgroup" || m.mountPoint.startsWith("/sys/fs/cgroup/"));
    expect(cg.length).toBeGreaterThan(0);
    const cgroupMounts = cg.filter((m) => m.fstype === "cgroup" || m.fstype === "cgroup2");
    expect(cgroupMounts.length).toBeGreaterThan(0);
    for (const m of cgroupMounts) {
      expect(opts(m)).toContain("ro");
      // Each hierarchy shows the container's cgroup as its root.
      expect(m.root).toBe(bundle.cgroupsPath!);
    }
    const v1 = existsSync("/sys/fs/cgroup/memory/cgroup.procs");
    if (v1) {
      // cgroup v1: a tmpfs at /sys/fs/cgroup with one mount per hierarchy.
      expect(mountAt(ms, "/sys/fs/cgroup")?.fstype).toBe("tmpfs");
      expect(mountAt(ms, "/sys/fs/cgroup/memory")?.fstype).toBe("cgroup");
      expect(mountAt(ms, "/sys/fs/cgroup/pids")?.fstype).toBe("cgroup");
    }
    const r = runShell("touch /sys/fs/cgroup/x 2>&1; ls /sys/fs/cgroup");
    if (v1) expect(r.stdout.split("\n")).toEqual(expect.arrayContaining(["memory", "pids", "devices", "freezer"]));
  });

  test("/proc is the container's pid namespace", () => {
    const r = runShell("ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '");
    // sh (1), and the pipeline's processes; pid 1 is our shell.
    expect(r.stdout.split(" ")[0]).toBe("1");
  });
});

describe("mounts", () => {
  test("tmpfs with size/mode and nosuid/nodev/noexec options", () => {
    const m = { destination: "/data", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", "size=4m", "mode=1770"] };
    const r = runShell("stat -c %a /data; cp /bin/busybox /data/busybox && /data/busybox true; echo exec=$?", (s) => s.mounts.push(m));
    expect(r.stdout.split("\n")[0]).toBe("1770");
    expect(r.stdout).toContain("exec=126");
    const { pid } = runDetached((s) => s.mounts.push(m));
    const mi = mountAt(procMountinfo(pid), "/data");
    expect(mi?.fstype).toBe("tmpfs");
    expect(opts(mi)).toEqual(expect.arrayContaining(["rw", "nosuid", "nodev", "noexec"]));
    expect(superOpts(mi)).toEqual(expect.arrayContaining(["size=4096k", "mode=1770"]));
  });

  test("a tmpfs size limit is enforced", () => {
    const r = runShell("dd if=/dev/zero of=/small/f bs=1k count=200 2>&1; echo rc=$?", (s) =>
      s.mounts.push({ destination: "/small", type: "tmpfs", source: "tmpfs", options: ["size=64k"] }),
    );
    expect(r.stdout).toContain("No space left on device");
  });

  test("ro tmpfs", () => {
    const r = runShell("touch /rot/x", (s) => s.mounts.push({ destination: "/rot", type: "tmpfs", source: "tmpfs", options: ["ro"] }));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Read-only file system");
  });

  test("missing mount destinations are created (nested, on a read-only root)", () => {
    const r = runShell("mount | grep ' /a/b/c '", (s) => {
      s.root.readonly = true;
      s.mounts.push({ destination: "/a/b/c", type: "tmpfs", source: "tmpfs" });
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("tmpfs on /a/b/c type tmpfs");
  });

  test("proc and sysfs at other places", () => {
    const r = runShell("test -e /p2/self/status && echo proc-ok; test -d /s2/kernel && echo sys-ok", (s) => {
      s.mounts.push({ destination: "/p2", type: "proc", source: "proc" });
      s.mounts.push({ destination: "/s2", type: "sysfs", source: "sysfs", options: ["ro", "nosuid", "nodev", "noexec"] });
    });
    expect(r.stdout).toBe("proc-ok\nsys-ok\n");
  });

  test("mqueue: POSIX message queue fs at /dev/mqueue", () => {
    const { pid } = runDetached();
    const m = mountAt(procMountinfo(pid), "/dev/mqueue");
    expect(m?.fstype).toBe("mqueue");
  });

  test("bind ro: readable, not writable; seen ro from outside", () => {
    const src = tempDir("src");
    writeFileSync(join(src, "file"), "from-host\n");
    const m = { destination: "/mnt/ro", type: "bind", source: src, options: ["bind", "ro"] };
    const r = runShell("cat /mnt/ro/file; touch /mnt/ro/new", (s) => s.mounts.push(m));
    expect(r.stdout).toBe("from-host\n");
    expect(r.stderr).toContain("Read-only file system");
    expect(existsSync(join(src, "new"))).toBe(false);
    const { pid } = runDetached((s) => s.mounts.push(m));
    const mi = mountAt(procMountinfo(pid), "/mnt/ro");
    expect(opts(mi)).toContain("ro");
    expect(mi?.root.endsWith(src.replace(/^\/tmp/, "")) || mi?.root === src).toBe(true);
  });

  test("bind rw: writes reach the host directory", () => {
    const src = tempDir("src");
    const r = runShell("echo hello > /mnt/rw/out", (s) => s.mounts.push({ destination: "/mnt/rw", type: "bind", source: src, options: ["rbind", "rw"] }));
    expect(r.code).toBe(0);
    expect(readFileSync(join(src, "out"), "utf8")).toBe("hello\n");
  });

  test("bind of a single file", () => {
    const dir = tempDir("src");
    const f = join(dir, "single");
    writeFileSync(f, "one file\n");
    const r = runShell("cat /etc/single-file", (s) => s.mounts.push({ destination: "/etc/single-file", type: "bind", source: f, options: ["bind", "ro"] }));
    expect(r.stdout).toBe("one file\n");
  });

  test("nosuid/nodev/noexec on a bind mount", () => {
    const src = tempDir("src");
    exec(["cp", "/bin/busybox", join(src, "busybox")]);
    const m = { destination: "/mnt/x", type: "bind", source: src, options: ["rbind", "nosuid", "nodev", "noexec"] };
    const r = runShell("/mnt/x/busybox true; echo rc=$?", (s) => s.mounts.push(m));
    expect(r.stdout).toBe("rc=126\n");
    expect(r.stderr).toContain("Permission denied");
    const { pid } = runDetached((s) => s.mounts.push(m));
    expect(opts(mountAt(procMountinfo(pid), "/mnt/x"))).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
    // Without noexec the same binary runs.
    const ok = runShell("/mnt/x/busybox true; echo rc=$?", (s) => s.mounts.push({ destination: "/mnt/x", type: "bind", source: src, options: ["rbind"] }));
    expect(ok.stdout).toBe("rc=0\n");
  });

  test("rbind takes submounts along, bind does not", () => {
    const src = tempDir("src");
    mkdirSync(join(src, "sub"));
    expect(exec(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", join(src, "sub")]).code).toBe(0);
    writeFileSync(join(src, "sub", "insub"), "x");
    const r = runShell("ls /rb/sub; echo ---; ls /b/sub", (s) => {
      s.mounts.push({ destination: "/rb", type: "bind", source: src, options: ["rbind"] });
      s.mounts.push({ destination: "/b", type: "bind", source: src, options: ["bind"] });
    });
    expect(r.stdout).toBe("insub\n---\n");
  });

  test("propagation: rslave receives host mounts made later, rprivate does not", async () => {
    // The source must be a shared mount for anything to propagate.
    const src = tempDir("src");
    mkdirSync(join(src, "later"));
    expect(exec(["mount", "--bind", src, src]).code).toBe(0);
    expect(exec(["mount", "--make-shared", src]).code).toBe(0);
    const { pid, bundle } = runDetached((s) => {
      s.root.readonly = false;
      s.mounts.push({ destination: "/slave", type: "bind", source: src, options: ["rbind", "rslave"] });
      s.mounts.push({ destination: "/private", type: "bind", source: src, options: ["rbind", "rprivate"] });
    });
    const before = procMountinfo(pid);
    expect(mountAt(before, "/slave")?.optional.some((o) => o.startsWith("master:"))).toBe(true);
    expect(mountAt(before, "/private")?.optional.filter((o) => /^(shared|master):/.test(o))).toEqual([]);
    // Now mount something on the host below the source.
    expect(exec(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", join(src, "later")]).code).toBe(0);
    writeFileSync(join(src, "later", "marker"), "x");
    await sleep(50);
    const after = procMountinfo(pid);
    expect(mountAt(after, "/slave/later")?.fstype).toBe("tmpfs");
    expect(mountAt(after, "/private/later")).toBeUndefined();
    // And the other way round: the container's own mounts do not leak to the host.
    expect(mountsOnHostUnder(bundle.rootfs)).toEqual([]);
  });

  test("container mounts are not visible on the host", () => {
    const { bundle } = runDetached((s) => s.mounts.push({ destination: "/data", type: "tmpfs", source: "tmpfs" }));
    expect(mountsOnHostUnder(bundle.rootfs)).toEqual([]);
  });
});

function mountsOnHostUnder(dir: string): string[] {
  return parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"))
    .map((m) => m.mountPoint)
    .filter((p) => p === dir || p.startsWith(dir + "/"));
}

describe("linux.maskedPaths", () => {
  function withSecrets(s: Spec, rootfs: string) {
    writeFileSync(join(rootfs, "etc/secret"), "top secret\n");
    mkdirSync(join(rootfs, "secretdir"));
    writeFileSync(join(rootfs, "secretdir/inside"), "hidden\n");
    s.root.readonly = false;
    s.linux.maskedPaths = ["/etc/secret", "/secretdir", "/proc/timer_list", "/does/not/exist", "/proc/kcore"];
  }

  test("a masked file reads empty, a masked directory is empty and read-only", () => {
    const r = runShell(
      "echo $(cat /etc/secret | wc -c) $(ls -A /secretdir | wc -l) $(cat /proc/timer_list | wc -c); touch /secretdir/x",
      withSecrets,
    );
    expect(r.stdout).toBe("0 0 0\n");
    expect(r.stderr).toContain("Read-only file system");
  });

  test("masked files are /dev/null, seen from inside", () => {
    const r = runShell("stat -c '%F %t:%T' /etc/secret /proc/timer_list", withSecrets);
    expect(r.stdout).toBe("character special file 1:3\ncharacter special file 1:3\n");
  });

  test("without masking the same paths have content (control)", () => {
    const r = runShell("echo $(cat /etc/secret | wc -c) $(ls -A /secretdir | wc -l) $(cat /proc/timer_list | wc -c)", (s, rootfs) => {
      withSecrets(s, rootfs);
      s.linux.maskedPaths = [];
    });
    const [secret, dir, timer] = r.stdout.trim().split(" ").map(Number);
    expect(secret).toBe(11);
    expect(dir).toBe(1);
    expect(timer).toBeGreaterThan(0);
  });

  test("a masked path that does not exist is ignored", () => {
    const r = runShell("echo ok", (s) => (s.linux.maskedPaths = ["/no/such/path", "/proc/no-such-file"]));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("ok\n");
  });

  test("the masks are mounts in the container, not on the host", () => {
    const { pid, bundle } = runDetached(withSecrets);
    const ms = procMountinfo(pid);
    expect(mountAt(ms, "/etc/secret")).toBeDefined();
    expect(mountAt(ms, "/secretdir")).toBeDefined();
    expect(opts(mountAt(ms, "/secretdir"))).toContain("ro");
    expect(readFileSync(join(bundle.rootfs, "etc/secret"), "utf8")).toBe("top secret\n");
  });
});

describe("linux.readonlyPaths", () => {
  test("/proc/sys is read-only (default spec)", () => {
    const r = runShell("cat /proc/sys/kernel/hostname; echo foo > /proc/sys/kernel/hostname; sysctl -w kernel.hostname=foo");
    expect(r.stdout.split("\n")[0]).toBe("runc");
    expect(r.stderr).toContain("Read-only file system");
    const { pid } = runDetached();
    const ms = procMountinfo(pid);
    for (const p of ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"]) {
      const m = mountAt(ms, p);
      if (existsSync(p)) expect(opts(m)).toContain("ro");
    }
  });

  test("a read-only path in a writable rootfs: readable, not writable; elsewhere writable", () => {
    const r = runShell("cat /rodir/f; touch /rodir/new; touch /tmp/ok && echo tmp-ok", (s, rootfs) => {
      mkdirSync(join(rootfs, "rodir"));
      writeFileSync(join(rootfs, "rodir/f"), "content\n");
      s.root.readonly = false;
      s.linux.readonlyPaths = ["/rodir", "/no/such/path"];
    });
    expect(r.stdout).toBe("content\ntmp-ok\n");
    expect(r.stderr).toContain("Read-only file system");
    expect(existsSync(join(r.bundle.rootfs, "rodir/new"))).toBe(false);
  });
});

describe("devices", () => {
  const DEFAULTS: [string, string][] = [
    ["/dev/null", "1:3"],
    ["/dev/zero", "1:5"],
    ["/dev/full", "1:7"],
    ["/dev/random", "1:8"],
    ["/dev/urandom", "1:9"],
    ["/dev/tty", "5:0"],
  ];

  test("default devices exist as char devices with the right major:minor and mode 0666", () => {
    const r = runShell(`stat -c '%n|%F|%t:%T|%a|%u:%g' ${DEFAULTS.map(([p]) => p).join(" ")}`);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n").filter(Boolean);
    expect(lines).toEqual(DEFAULTS.map(([p, mm]) => `${p}|character special file|${mm}|666|0:0`));
  });

  test("default symlinks: /dev/fd, stdin, stdout, stderr, ptmx", () => {
    const r = runShell("for l in fd stdin stdout stderr ptmx; do echo $l=$(readlink /dev/$l); done");
    expect(r.stdout).toBe("fd=/proc/self/fd\nstdin=/proc/self/fd/0\nstdout=/proc/self/fd/1\nstderr=/proc/self/fd/2\nptmx=pts/ptmx\n");
  });

  test("default devices work (read /dev/zero, write /dev/null, /dev/full is full)", () => {
    const r = runShell("head -c 4 /dev/zero | od -An -tx1; echo x > /dev/null && echo null-ok; echo x > /dev/full; head -c 8 /dev/urandom | wc -c");
    expect(r.stdout).toBe(" 00 00 00 00\nnull-ok\n8\n");
    expect(r.stderr).toContain("No space left on device");
  });

  test("only the expected device nodes are in /dev (no host devices)", () => {
    const r = runShell("ls /dev");
    const entries = r.stdout.split("\n").filter(Boolean).sort();
    expect(entries).toEqual(["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"]);
  });

  test("linux.devices: created with type, major:minor, fileMode, uid, gid", () => {
    const r = runShell("stat -c '%n|%F|%t:%T|%a|%u:%g' /dev/mydev /dev/myblk /dev/sub/dir/dev", (s) => {
      s.linux.devices = [
        { path: "/dev/mydev", type: "c", major: 1, minor: 3, fileMode: 0o640, uid: 1000, gid: 1001 },
        { path: "/dev/myblk", type: "b", major: 7, minor: 200 },
        { path: "/dev/sub/dir/dev", type: "c", major: 1, minor: 5, fileMode: 0o600 },
      ];
    });
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual([
      "/dev/mydev|character special file|1:3|640|1000:1001",
      "/dev/myblk|block special file|7:c8|666|0:0", // busybox prints the minor in hex
      "/dev/sub/dir/dev|character special file|1:5|600|0:0",
    ]);
  });

  test("device cgroup: a listed device is unusable unless resources.devices allows it", () => {
    // 240:0 is in the "local/experimental" range: no driver, so once the device cgroup lets the
    // open through, it fails with ENXIO instead of EPERM.
    const dev = { path: "/dev/mydev", type: "c", major: 240, minor: 0, fileMode: 0o666 };
    const denied = runShell("echo x > /dev/mydev", (s) => (s.linux.devices = [dev]));
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain("Operation not permitted");
    const allowed = runShell("echo x > /dev/mydev", (s) => {
      s.linux.devices = [dev];
      s.linux.resources.devices.push({ allow: true, type: "c", major: 240, minor: 0, access: "rw" });
    });
    expect(allowed.code).not.toBe(0);
    expect(allowed.stderr).toContain("No such device or address");
    // A default device (/dev/null, 1:3) under another name is allowed by runc's default rules.
    const dflt = runShell("echo x > /dev/mynull && echo written", (s) => {
      s.linux.devices = [{ path: "/dev/mynull", type: "c", major: 1, minor: 3, fileMode: 0o666 }];
    });
    expect(dflt.stdout).toBe("written\n");
  });

  test("mknod of a device is denied by the default device cgroup rules", () => {
    const r = runShell("mknod /tmp/sda b 8 0 && echo made; cat /tmp/sda", (s) => {
      s.root.readonly = false;
      s.process.capabilities.bounding.push("CAP_MKNOD");
      s.process.capabilities.effective.push("CAP_MKNOD");
      s.process.capabilities.permitted.push("CAP_MKNOD");
    });
    expect(r.stderr).toContain("Operation not permitted");
  });
});
