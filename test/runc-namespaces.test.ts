// config.json linux.namespaces (new and joined), hostname, sysctl, user namespace mappings,
// cgroupsPath.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cgroupDirs,
  ctx,
  errMsg,
  exec,
  hasTool,
  hostNs,
  IS_REAL_RUNC,
  makeBundle,
  newId,
  nsId,
  nsInode,
  procStatus,
  registerCgroup,
  runc,
  runcOk,
  tempDir,
  runDetached,
  runShell,
  state,
  useHarness,
  type Spec,
} from "./harness";

useHarness();

// spec type -> /proc/<pid>/ns name
const NS: Record<string, string> = { pid: "pid", network: "net", ipc: "ipc", uts: "uts", mount: "mnt", cgroup: "cgroup" };
const ALL = Object.keys(NS);

function setNamespaces(s: Spec, types: string[]) {
  s.linux.namespaces = types.map((type) => ({ type }));
}

describe("new namespaces", () => {
  test("every requested namespace differs from the host's", () => {
    const { pid } = runDetached((s) => setNamespaces(s, ALL));
    for (const t of ALL) {
      expect(nsId(pid, NS[t]!)).not.toBe(hostNs(NS[t]!));
      expect(nsId(pid, NS[t]!)).toMatch(new RegExp(`^${NS[t]}:\\[\\d+\\]$`));
    }
  });

  test("namespaces not requested are shared with the host", () => {
    const { pid } = runDetached((s) => {
      setNamespaces(s, ["mount"]);
      delete s.hostname; // needs a uts namespace
    });
    expect(nsId(pid, "mnt")).not.toBe(hostNs("mnt"));
    for (const ns of ["pid", "net", "ipc", "uts", "cgroup"]) expect(nsId(pid, ns)).toBe(hostNs(ns));
  });

  test("two containers get different namespaces", () => {
    const a = runDetached((s) => setNamespaces(s, ALL));
    const b = runDetached((s) => setNamespaces(s, ALL));
    for (const t of ALL) expect(nsId(a.pid, NS[t]!)).not.toBe(nsId(b.pid, NS[t]!));
  });

  test("pid namespace: the program is pid 1 and sees only its own processes", () => {
    const r = runShell("echo $$; ps -o pid | tail -n +2 | wc -l", (s) => {
      setNamespaces(s, ["pid", "mount"]);
      delete s.hostname;
    });
    expect(r.stdout.split("\n")[0]).toBe("1");
    expect(Number(r.stdout.split("\n")[1])).toBeLessThanOrEqual(4);
  });

  test("network namespace: only a loopback device, brought up by the runtime", () => {
    const r = runShell("ls /sys/class/net");
    expect(r.stdout).toBe("lo\n");
    const ip = runShell("ip -o link");
    expect(ip.stdout.trim().split("\n").length).toBe(1);
    expect(ip.stdout).toContain("lo:");
    // runc configures the loopback interface of a new network namespace (ip link set lo up).
    expect(ip.stdout).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    const ping = runShell("ping -c 1 -W 2 127.0.0.1 >/dev/null && echo reachable", (s) => {
      s.process.capabilities.bounding.push("CAP_NET_RAW");
      s.process.capabilities.effective.push("CAP_NET_RAW");
      s.process.capabilities.permitted.push("CAP_NET_RAW");
    });
    expect(ping.stdout).toBe("reachable\n");
  });

  test("cgroup namespace: the container sees its cgroup as /", () => {
    const r = runShell("cat /proc/self/cgroup", (s) => s.linux.namespaces.push({ type: "cgroup" }));
    const lines = r.stdout.split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l.split(":")[2]).toBe("/");
    const r2 = runShell("cat /proc/self/cgroup");
    expect(r2.stdout).toContain(r2.bundle.cgroupsPath!);
  });
});

describe("joining namespaces by path", () => {
  test("another container's /proc/<pid>/ns/net gives the same inode", () => {
    const a = runDetached();
    const path = `/proc/${a.pid}/ns/net`;
    const b = runDetached((s) => {
      s.linux.namespaces = s.linux.namespaces.map((n: { type: string }) => (n.type === "network" ? { type: "network", path } : n));
    });
    expect(nsId(b.pid, "net")).toBe(nsId(a.pid, "net"));
    expect(nsInode(`/proc/${b.pid}/ns/net`)).toBe(nsInode(path));
    // ...while the others are still new
    expect(nsId(b.pid, "uts")).not.toBe(nsId(a.pid, "uts"));
    expect(nsId(b.pid, "pid")).not.toBe(nsId(a.pid, "pid"));
  });

  test("joining ipc, uts and pid of another container", () => {
    const a = runDetached();
    const join_ = (t: string) => ({ type: t, path: `/proc/${a.pid}/ns/${NS[t]}` });
    const b = runDetached((s) => {
      s.linux.namespaces = [join_("ipc"), join_("uts"), join_("pid"), { type: "mount" }, { type: "network" }];
      delete s.hostname; // do not rename the other container's uts namespace
    });
    for (const t of ["ipc", "uts", "pid"]) expect(nsId(b.pid, NS[t]!)).toBe(nsId(a.pid, NS[t]!));
    expect(nsId(b.pid, "net")).not.toBe(nsId(a.pid, "net"));
  });

  test.skipIf(!hasTool("unshare"))("a network namespace bind-mounted by `unshare --net=FILE`", () => {
    const file = join(ctx().dir, "netns");
    writeFileSync(file, "");
    const u = exec(["unshare", `--net=${file}`, "true"]);
    expect(u.code).toBe(0);
    const ino = nsInode(file);
    const { pid } = runDetached((s) => {
      s.linux.namespaces = s.linux.namespaces.map((n: { type: string }) => (n.type === "network" ? { type: "network", path: file } : n));
    });
    expect(nsInode(`/proc/${pid}/ns/net`)).toBe(ino);
    expect(nsId(pid, "net")).toBe(`net:[${ino}]`);
    // the harness unmounts the nsfs bind mount afterwards
  });

  test("a namespace path that does not exist fails create, nothing left behind", () => {
    const b = makeBundle((s) => {
      s.linux.namespaces = s.linux.namespaces.map((n: { type: string }) => (n.type === "network" ? { type: "network", path: "/nonexistent/ns" } : n));
    });
    const id = newId();
    const r = runc(["create", "--bundle", b.dir, id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("/nonexistent/ns");
    expect(errMsg(r.stderr)).toContain("no such file or directory");
    expect(runc(["state", id]).code).toBe(1);
    expect(cgroupDirs(b.cgroupsPath!)).toEqual([]);
  });

  test("a path to the wrong kind of namespace is rejected", () => {
    const a = runDetached();
    const b = makeBundle((s) => {
      s.linux.namespaces = s.linux.namespaces.map((n: { type: string }) => (n.type === "network" ? { type: "network", path: `/proc/${a.pid}/ns/uts` } : n));
    });
    const r = runc(["create", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(1);
  });
});

describe("hostname", () => {
  test("is set in the new uts namespace, the host's is untouched", () => {
    const host = readFileSync("/proc/sys/kernel/hostname", "utf8");
    const r = runShell("hostname; cat /proc/sys/kernel/hostname", (s) => (s.hostname = "box-1"));
    expect(r.stdout).toBe("box-1\nbox-1\n");
    expect(readFileSync("/proc/sys/kernel/hostname", "utf8")).toBe(host);
    const { pid } = runDetached((s) => (s.hostname = "box-2"));
    expect(nsId(pid, "uts")).not.toBe(hostNs("uts"));
  });

  test("the default spec's hostname is runc", () => {
    expect(runShell("hostname").stdout).toBe("runc\n");
  });

  test("without hostname the new uts namespace keeps the host's name", () => {
    const host = readFileSync("/proc/sys/kernel/hostname", "utf8").trim();
    const r = runShell("hostname", (s) => delete s.hostname);
    expect(r.stdout).toBe(`${host}\n`);
  });
});

describe("linux.sysctl", () => {
  test("net.ipv4.ip_forward in a new network namespace", () => {
    const host = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8");
    const r = runShell("cat /proc/sys/net/ipv4/ip_forward; sysctl -n net.ipv4.ip_forward", (s) => (s.linux.sysctl = { "net.ipv4.ip_forward": "1" }));
    expect(r.stdout).toBe("1\n1\n");
    const r0 = runShell("cat /proc/sys/net/ipv4/ip_forward", (s) => (s.linux.sysctl = { "net.ipv4.ip_forward": "0" }));
    expect(r0.stdout).toBe("0\n");
    expect(readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8")).toBe(host);
  });

  test("kernel.shmmax and kernel.msgmax in a new ipc namespace", () => {
    const host = readFileSync("/proc/sys/kernel/shmmax", "utf8");
    const r = runShell("sysctl -n kernel.shmmax; cat /proc/sys/kernel/msgmax", (s) => (s.linux.sysctl = { "kernel.shmmax": "12345678", "kernel.msgmax": "4096" }));
    expect(r.stdout).toBe("12345678\n4096\n");
    expect(readFileSync("/proc/sys/kernel/shmmax", "utf8")).toBe(host);
  });

  test("several at once, with slash or dot separators", () => {
    const r = runShell("cat /proc/sys/net/ipv4/ip_default_ttl /proc/sys/net/ipv4/conf/all/forwarding", (s) => {
      s.linux.sysctl = { "net.ipv4.ip_default_ttl": "42", "net/ipv4/conf/all/forwarding": "1" };
    });
    expect(r.stdout).toBe("42\n1\n");
  });
});

// Ours clones the init into the new user namespace (a Bun process can't unshare one: it has
// threads); runc does it in C before Go starts. From outside, the two must look the same.
const USERNS = (s: any) => {
  s.linux.namespaces.push({ type: "user" });
  s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
};

describe("user namespace", () => {
  test("uid/gid mappings: root inside is the mapped host uid outside", () => {
    const { pid } = runDetached(USERNS);
    expect(nsId(pid, "user")).not.toBe(hostNs("user"));
    const st = procStatus(pid);
    expect(st.Uid!.split(/\s+/)).toEqual(["100000", "100000", "100000", "100000"]);
    expect(st.Gid!.split(/\s+/)).toEqual(["100000", "100000", "100000", "100000"]);
    const norm = (s: string) => s.trim().split(/\s+/).join(" ");
    expect(norm(readFileSync(`/proc/${pid}/uid_map`, "utf8"))).toBe("0 100000 65536");
    expect(norm(readFileSync(`/proc/${pid}/gid_map`, "utf8"))).toBe("0 100000 65536");
  });

  test("every other new namespace belongs to the container's user namespace", () => {
    const { pid } = runDetached(USERNS);
    // NS_GET_USERNS isn't reachable from here; the kernel shows ownership through what root
    // inside may do, so: a fresh proc (pid ns), sysfs (net ns), mqueue (ipc ns) and hostname (uts).
    const r = runShell("ps -o pid,comm | sed -n 2p; hostname; grep -c ' /sys .* - sysfs ' /proc/self/mountinfo; grep -c ' /dev/mqueue .* - mqueue ' /proc/self/mountinfo", (s) => {
      USERNS(s);
      s.hostname = "in-userns";
    });
    expect(r.code).toBe(0);
    const [ps1, host, sysfs, mq] = r.stdout.split("\n");
    expect(ps1!.trim().split(/\s+/)).toEqual(["1", "sh"]);
    expect(host).toBe("in-userns");
    expect(sysfs).toBe("1");
    expect(mq).toBe("1");
    expect(nsId(pid, "pid")).not.toBe(hostNs("pid"));
  });

  test("inside, the process is root", () => {
    const r = runShell("id -u; id -g; cat /proc/self/uid_map", USERNS);
    expect(r.code).toBe(0);
    const [u, g, map] = r.stdout.split("\n");
    expect(u).toBe("0");
    expect(g).toBe("0");
    expect(map!.trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
  });

  test("...but it is nobody to the host's files: a bind-mounted host dir owned by root can't be written", () => {
    const dir = tempDir("host-owned");
    writeFileSync(join(dir, "secret"), "host\n");
    const r = runShell("cat /host/secret; echo x > /host/secret && echo WROTE; touch /host/new && echo CREATED; stat -c %u /host/secret", (s, rootfs) => {
      USERNS(s);
      // The mount point must exist: root in the user namespace can't create it in a host-owned rootfs.
      mkdirSync(join(rootfs, "host"), { recursive: true });
      s.mounts.push({ destination: "/host", type: "bind", source: dir, options: ["rbind", "rw"] });
    });
    expect(r.stdout).toBe("host\n65534\n");
    expect(readFileSync(join(dir, "secret"), "utf8")).toBe("host\n");
    expect(existsSync(join(dir, "new"))).toBe(false);
  });

  test("exec joins the container's user namespace, as root in it", () => {
    const { id, pid } = runDetached(USERNS);
    const out = runcOk(["exec", id, "sh", "-c", "id -u; readlink /proc/self/ns/user"]);
    const [u, ns] = out.split("\n");
    expect(u).toBe("0");
    expect(ns).toBe(nsId(pid, "user"));
    const r = runc(["exec", "--user", "1000:1000", id, "id", "-u"]);
    expect(r.stdout).toBe("1000\n");
  });

  test("a second container joins the first's user and pid namespaces by path", () => {
    const first = runDetached(USERNS);
    const second = runDetached((s) => {
      s.linux.namespaces = s.linux.namespaces.filter((n: any) => n.type !== "pid");
      s.linux.namespaces.push({ type: "user", path: `/proc/${first.pid}/ns/user` }, { type: "pid", path: `/proc/${first.pid}/ns/pid` });
      // runc 1.1 wants the maps even when joining; they must be the namespace's own.
      s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    });
    expect(nsId(second.pid, "user")).toBe(nsId(first.pid, "user"));
    expect(nsId(second.pid, "pid")).toBe(nsId(first.pid, "pid"));
    expect(procStatus(second.pid).Uid!.split(/\s+/)[0]).toBe("100000");
  });

  test("a user namespace without mappings is rejected", () => {
    const b = makeBundle((s) => s.linux.namespaces.push({ type: "user" }));
    const id = newId();
    const r = runc(["create", "--bundle", b.dir, id]);
    expect(r.code).toBe(1);
    if (IS_REAL_RUNC) expect(errMsg(r.stderr)).toBe("runc create failed: User namespaces enabled, but no uid mappings found.");
    else expect(errMsg(r.stderr)).toContain("linux.uidMappings: user namespaces enabled, but no uid mappings found");
    expect(existsSync(join(ctx().root, id))).toBe(false);
  });
});

describe("linux.cgroupsPath", () => {
  test("the container is placed in that cgroup in every hierarchy", () => {
    const cg = `/bunker-test-${ctx().tag}-custom/nested`;
    registerCgroup(`/bunker-test-${ctx().tag}-custom`);
    const { id, pid } = runDetached((s) => (s.linux.cgroupsPath = cg));
    const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").filter(Boolean);
    for (const l of lines) {
      const [, ctrl, path] = l.split(":");
      if (ctrl === "name=systemd" || ctrl === "" || ctrl === undefined) continue; // runc may leave these alone
      expect(path).toBe(cg);
    }
    const dirs = cgroupDirs(cg);
    expect(dirs.length).toBeGreaterThan(0);
    for (const d of dirs) {
      const procs = readFileSync(join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
      expect(procs).toContain(pid);
    }
    runcOk(["delete", "--force", id]);
    expect(cgroupDirs(cg)).toEqual([]);
    expect(existsSync(join("/sys/fs/cgroup/pids", cg))).toBe(false);
  });

  test("state pid is in the pids/memory/devices/freezer cgroups (v1)", () => {
    const { pid, bundle } = runDetached();
    for (const ctrl of ["pids", "memory", "devices", "freezer", "cpu", "blkio"]) {
      const f = join("/sys/fs/cgroup", ctrl, bundle.cgroupsPath!, "cgroup.procs");
      if (!existsSync(join("/sys/fs/cgroup", ctrl, "cgroup.procs"))) continue; // not a v1 hierarchy here
      expect(readFileSync(f, "utf8").split("\n")).toContain(String(pid));
    }
    expect(state(runcOk(["list", "-q"]).trim()).pid).toBe(pid);
  });
});
