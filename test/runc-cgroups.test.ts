// Resource limits through runc's command line: linux.resources written to the container's cgroup
// and enforced (memory OOM kill, pids), `runc update` (flags and -r JSON) with the saved state,
// `runc events` (--stats shape, the stream, OOM events), pause/resume with the freezer, device rules.
// Cgroup v1 (and hybrid) files are checked, or their cgroup v2 counterparts on a pure v2 host.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CGROUP_PREFIX,
  CGROUP_ROOT,
  ctx,
  errMsg,
  IS_REAL_RUNC,
  makeBundle,
  newId,
  rand,
  runc,
  runcOk,
  runDetached,
  runShell,
  sleep,
  spawnBackground,
  state,
  waitFor,
  type Bundle,
  RUNC,
  useHarness,
  type Spec,
} from "./harness";

useHarness();

const MiB = 1024 * 1024;
/** Pure cgroup v2 host (no v1 controllers). */
const V2 = existsSync(join(CGROUP_ROOT, "cgroup.controllers"));
const V1_UNLIMITED = "9223372036854771712";

/** The container's directory for a v1 controller (or the unified directory on a pure v2 host). */
function cgDir(b: Bundle, controller: string): string {
  return V2 ? join(CGROUP_ROOT, b.cgroupsPath!) : join(CGROUP_ROOT, controller, b.cgroupsPath!);
}

function cgRead(b: Bundle, controller: string, file: string): string {
  return readFileSync(join(cgDir(b, controller), file), "utf8").trim();
}

/** v1 has the memsw files only with swap accounting; memory+swap = memory then means "no swap". */
const HAS_MEMSW = V2 || existsSync(join(CGROUP_ROOT, "memory", "memory.memsw.limit_in_bytes"));

/** The resources runc saved in state.json, in a common shape (libcontainer's for the real runc). */
function savedResources(id: string): { memory?: number; swap?: number; pids?: number; shares?: number; quota?: number; period?: number } {
  const st = JSON.parse(readFileSync(join(ctx().root, id, "state.json"), "utf8"));
  if (IS_REAL_RUNC) {
    const c = st.config.cgroups;
    return { memory: c.memory, swap: c.memory_swap, pids: c.pids_limit, shares: c.cpu_shares, quota: c.cpu_quota, period: c.cpu_period };
  }
  const r = st.config.linux?.resources ?? {};
  return { memory: r.memory?.limit, swap: r.memory?.swap, pids: r.pids?.limit, shares: r.cpu?.shares, quota: r.cpu?.quota, period: r.cpu?.period };
}

/** Probes (in a scratch cgroup) which blkio weight file this kernel has, if any. */
function blkioWeightFile(): string | undefined {
  if (V2) return undefined;
  const dir = join(CGROUP_ROOT, "blkio", `${CGROUP_PREFIX.slice(1)}probe-${rand()}`);
  if (!existsSync(join(CGROUP_ROOT, "blkio"))) return undefined;
  mkdirSync(dir);
  try {
    return ["blkio.weight", "blkio.bfq.weight"].find((f) => existsSync(join(dir, f)));
  } finally {
    rmdirSync(dir);
  }
}

describe("linux.resources at create", () => {
  test("memory limit and reservation are written to the container's cgroup", () => {
    const { bundle: b } = runDetached((s: Spec) => {
      s.linux.resources.memory = { limit: 96 * MiB, reservation: 32 * MiB };
    });
    if (V2) {
      expect(cgRead(b, "memory", "memory.max")).toBe(String(96 * MiB));
      expect(cgRead(b, "memory", "memory.low")).toBe(String(32 * MiB));
    } else {
      expect(cgRead(b, "memory", "memory.limit_in_bytes")).toBe(String(96 * MiB));
      expect(cgRead(b, "memory", "memory.soft_limit_in_bytes")).toBe(String(32 * MiB));
    }
  });

  test("a process growing past the memory limit is OOM-killed", () => {
    // The shell keeps a command substitution's output in its own (anonymous) memory.
    const r = runShell('x=$(yes | head -c 64000000); echo "survived ${#x}"', (s: Spec) => {
      s.linux.resources.memory = { limit: 24 * MiB, ...(HAS_MEMSW ? { swap: 24 * MiB } : {}) };
    });
    expect(r.stdout).not.toContain("survived");
    expect(r.code).toBe(137);
  });

  test("cpu shares, CFS quota and period, cpuset cpus", () => {
    const { bundle: b } = runDetached((s: Spec) => {
      s.linux.resources.cpu = { shares: 512, quota: 50000, period: 100000, cpus: "0" };
    });
    if (V2) {
      expect(cgRead(b, "cpu", "cpu.weight")).toBe("20"); // 1 + (512-2)*9999/262142
      expect(cgRead(b, "cpu", "cpu.max")).toBe("50000 100000");
      expect(cgRead(b, "cpuset", "cpuset.cpus")).toBe("0");
    } else {
      expect(cgRead(b, "cpu", "cpu.shares")).toBe("512");
      expect(cgRead(b, "cpu", "cpu.cfs_quota_us")).toBe("50000");
      expect(cgRead(b, "cpu", "cpu.cfs_period_us")).toBe("100000");
      expect(cgRead(b, "cpuset", "cpuset.cpus")).toBe("0");
    }
  });

  test("a quota of -1 means no CFS limit", () => {
    const { bundle: b } = runDetached((s: Spec) => {
      s.linux.resources.cpu = { quota: -1, period: 200000 };
    });
    if (V2) expect(cgRead(b, "cpu", "cpu.max")).toBe("max 200000");
    else {
      expect(cgRead(b, "cpu", "cpu.cfs_quota_us")).toBe("-1");
      expect(cgRead(b, "cpu", "cpu.cfs_period_us")).toBe("200000");
    }
  });

  test("the pids limit is written and enforced: forks past it fail", () => {
    // The shell and 4 sleeps make 5 tasks; the 5th fork fails and busybox sh gives up (status 2).
    const r = runShell("i=0; while [ $i -lt 12 ]; do sleep 30 & echo started; i=$((i+1)); done; echo all-forked", (s: Spec) => {
      s.linux.resources.pids = { limit: 5 };
    });
    expect(r.stderr).toContain("can't fork");
    expect(r.stdout).not.toContain("all-forked");
    expect(r.stdout.split("\n").filter((l) => l === "started").length).toBe(4);
    const { bundle: b } = runDetached((s: Spec) => {
      s.linux.resources.pids = { limit: 7 };
    });
    expect(cgRead(b, "pids", "pids.max")).toBe("7");
  });

  // Our runtime's init is a multi-threaded ~40 MB Bun process until it execs the program: limits
  // smaller than that must still let every container start.
  test("tight limits (16 MiB of memory, 2 pids) still start the container, every time", () => {
    for (let i = 0; i < 5; i++) {
      const r = runShell("echo ok; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max", (s: Spec) => {
        s.linux.resources.memory = { limit: 16 * 1024 * 1024 };
        s.linux.resources.pids = { limit: 2 };
      });
      expect(r.code).toBe(0);
      expect(r.stdout.split("\n")[0]).toBe("ok");
    }
    const { bundle: b, id } = runDetached((s: Spec) => {
      s.linux.resources.memory = { limit: 16 * 1024 * 1024 };
      s.linux.resources.pids = { limit: 2 };
    });
    expect(cgRead(b, "pids", "pids.max")).toBe("2");
    expect(cgRead(b, "memory", "memory.limit_in_bytes")).toBe(String(16 * 1024 * 1024));
    // exec into it (one process running, one more allowed). Real runc 1.1 fails this: its exec
    // init can't start its own threads inside the full pids cgroup. Ours joins after starting.
    if (!IS_REAL_RUNC) for (let i = 0; i < 3; i++) expect(runcOk(["exec", id, "echo", "exec-ok"])).toBe("exec-ok\n");
  });

  test("blkio weight, where the kernel has a weight file", () => {
    const file = blkioWeightFile();
    if (!file) return; // no proportional-weight I/O scheduler here
    const { bundle: b } = runDetached((s: Spec) => {
      s.linux.resources.blockIO = { weight: 300 };
    });
    expect(cgRead(b, "blkio", file)).toMatch(/(^|\s)300$/m);
  });

  test("unified (cgroup v2) keys are refused on a cgroup v1 host", () => {
    if (V2) return;
    const b = makeBundle((s: Spec) => {
      s.linux.resources.unified = { "memory.max": "100000000" };
    });
    const r = runc(["run", "-d", "--bundle", b.dir, newId()]);
    expect(r.code).not.toBe(0);
    expect(errMsg(r.stderr)).toContain("cannot use unified on cgroup v1");
  });
});

describe("runc update", () => {
  const base = (s: Spec) => {
    s.linux.resources.memory = { limit: 100 * MiB };
    s.linux.resources.pids = { limit: 20 };
    s.linux.resources.cpu = { shares: 512 };
  };

  function memLimit(b: Bundle): string {
    return V2 ? cgRead(b, "memory", "memory.max") : cgRead(b, "memory", "memory.limit_in_bytes");
  }

  test("flags change memory, pids and cpu files and the saved state", () => {
    const { id, bundle: b } = runDetached(base);
    runcOk(["update", "--memory", "200m", "--pids-limit", "30", "--cpu-share", "256", "--cpu-quota", "20000", "--cpu-period", "100000", id]);
    expect(memLimit(b)).toBe(String(200 * MiB));
    expect(cgRead(b, "pids", "pids.max")).toBe("30");
    if (V2) {
      expect(cgRead(b, "cpu", "cpu.weight")).toBe("10");
      expect(cgRead(b, "cpu", "cpu.max")).toBe("20000 100000");
    } else {
      expect(cgRead(b, "cpu", "cpu.shares")).toBe("256");
      expect(cgRead(b, "cpu", "cpu.cfs_quota_us")).toBe("20000");
      expect(cgRead(b, "cpu", "cpu.cfs_period_us")).toBe("100000");
    }
    const saved = savedResources(id);
    expect(saved.memory).toBe(200 * MiB);
    expect(saved.pids).toBe(30);
    expect(saved.shares).toBe(256);
    expect(saved.quota).toBe(20000);
    expect(saved.period).toBe(100000);
    // A later update of something else keeps what the earlier one set.
    // (runc 1.1 saves 0 for everything the update did not name, and 0 means "leave as is"; bunker
    // keeps the values that stay in force.)
    runcOk(["update", "--memory-reservation", "16m", id]);
    expect(memLimit(b)).toBe(String(200 * MiB));
    if (!IS_REAL_RUNC) expect(savedResources(id).memory).toBe(200 * MiB);
    expect(V2 ? cgRead(b, "memory", "memory.low") : cgRead(b, "memory", "memory.soft_limit_in_bytes")).toBe(String(16 * MiB));
  });

  test("-r - reads linux.resources JSON from stdin; -r FILE from a file", () => {
    const { id, bundle: b } = runDetached(base);
    runcOk(["update", "-r", "-", id], { stdin: JSON.stringify({ memory: { limit: 150 * MiB }, pids: { limit: 44 } }) });
    expect(memLimit(b)).toBe(String(150 * MiB));
    expect(cgRead(b, "pids", "pids.max")).toBe("44");
    expect(savedResources(id).memory).toBe(150 * MiB);
    expect(savedResources(id).pids).toBe(44);
    const file = join(ctx().dir, "res.json");
    writeFileSync(file, JSON.stringify({ cpu: { shares: 1024 } }));
    // Flags are ignored when -r is given.
    runcOk(["update", "-r", file, "--pids-limit", "99", id]);
    expect(V2 ? cgRead(b, "cpu", "cpu.weight") : cgRead(b, "cpu", "cpu.shares")).toBe(V2 ? "39" : "1024");
    expect(cgRead(b, "pids", "pids.max")).toBe("44");
    expect(savedResources(id).shares).toBe(1024);
  });

  test("-1 lifts limits; pids-limit 0 leaves the limit alone", () => {
    const { id, bundle: b } = runDetached(base);
    runcOk(["update", "--pids-limit", "0", id]);
    expect(cgRead(b, "pids", "pids.max")).toBe("20");
    runcOk(["update", "--pids-limit", "-1", "--memory", "-1", id]);
    expect(cgRead(b, "pids", "pids.max")).toBe("max");
    expect(memLimit(b)).toBe(V2 ? "max" : V1_UNLIMITED);
    expect(savedResources(id).memory).toBe(-1);
  });

  test("memory and memory+swap are written in an order the kernel accepts, both ways", () => {
    if (!HAS_MEMSW || V2) return;
    const { id, bundle: b } = runDetached(base);
    runcOk(["update", "--memory", "300m", "--memory-swap", "400m", id]);
    expect(cgRead(b, "memory", "memory.limit_in_bytes")).toBe(String(300 * MiB));
    expect(cgRead(b, "memory", "memory.memsw.limit_in_bytes")).toBe(String(400 * MiB));
    runcOk(["update", "--memory", "50m", "--memory-swap", "60m", id]);
    expect(cgRead(b, "memory", "memory.limit_in_bytes")).toBe(String(50 * MiB));
    expect(cgRead(b, "memory", "memory.memsw.limit_in_bytes")).toBe(String(60 * MiB));
    // memory above memory+swap: the kernel refuses, and the error names the file and value.
    const r = runc(["update", "--memory", "100m", id]);
    expect(r.code).not.toBe(0);
    expect(errMsg(r.stderr)).toContain(`failed to write "${100 * MiB}"`);
    expect(errMsg(r.stderr)).toContain("memory.limit_in_bytes");
  });

  test("bad values, unknown containers, stopped containers", async () => {
    const { id } = runDetached(base);
    let r = runc(["update", "--memory", "1x", id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("invalid value for memory: invalid size: '1x'");
    r = runc(["update", "--cpu-share", "abc", id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("invalid value for cpu-share");
    r = runc(["update", "-r", "-", id], { stdin: '{"memory":{"limit":"x"}}' });
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("cannot unmarshal string into Go struct field LinuxMemory.memory.limit of type int64");
    r = runc(["update", "--memory", "64m", "nonexistent-" + rand()]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("container does not exist");
    r = runc(["update", "--kernel-memory", "10m", id]);
    expect(r.code).toBe(0);
    expect(errMsg(r.stderr)).toContain("Kernel memory settings are ignored and will be removed");
    runcOk(["kill", id, "KILL"]);
    await waitFor(() => state(id).status === "stopped");
    r = runc(["update", "--memory", "64m", id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("container not running");
  });

  test("update works on a paused container", () => {
    const { id, bundle: b } = runDetached(base);
    runcOk(["pause", id]);
    runcOk(["update", "--pids-limit", "25", id]);
    expect(cgRead(b, "pids", "pids.max")).toBe("25");
    runcOk(["resume", id]);
  });
});

describe("runc events", () => {
  test("--stats prints one stats event with runc's shape", () => {
    const { id } = runDetached((s: Spec) => {
      s.process.args = ["sh", "-c", "sleep 300 & sleep 300"];
      s.linux.resources.memory = { limit: 64 * MiB };
      s.linux.resources.pids = { limit: 20 };
    });
    const out = runcOk(["events", "--stats", id]);
    const lines = out.trim().split("\n");
    expect(lines.length).toBe(1);
    const ev = JSON.parse(lines[0]!);
    expect(ev.type).toBe("stats");
    expect(ev.id).toBe(id);
    const d = ev.data;
    expect(Object.keys(d)).toEqual(expect.arrayContaining(["cpu", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]));
    expect(typeof d.cpu.usage.total).toBe("number");
    expect(d.cpu.usage.total).toBeGreaterThan(0);
    expect(typeof d.cpu.usage.kernel).toBe("number");
    expect(typeof d.cpu.usage.user).toBe("number");
    expect(typeof d.cpu.throttling).toBe("object");
    expect(d.memory.usage.limit).toBe(64 * MiB);
    expect(d.memory.usage.usage).toBeGreaterThan(0);
    expect(typeof d.memory.usage.failcnt).toBe("number");
    expect(typeof d.memory.swap).toBe("object");
    expect(typeof d.memory.raw).toBe("object");
    expect(d.pids.current).toBeGreaterThanOrEqual(2);
    expect(d.pids.limit).toBe(20);
    expect(typeof d.blkio).toBe("object");
    expect(typeof d.hugetlb).toBe("object");
    expect(d.intel_rdt).toEqual({});
    expect(d.network_interfaces).toBeNull();
    if (!V2) {
      expect(Array.isArray(d.cpu.usage.percpu)).toBe(true);
      expect(typeof d.memory.kernel.limit).toBe("number");
    }
  });

  test("on a stopped container it fails", async () => {
    const { id } = runDetached();
    runcOk(["kill", id, "KILL"]);
    await waitFor(() => state(id).status === "stopped");
    const r = runc(["events", "--stats", id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain(`container with id ${id} is not running`);
    const r2 = runc(["events", "--interval", "0s", id]);
    expect(r2.code).toBe(1);
  });

  test("streams stats every --interval and ends once the container is gone", async () => {
    const { id } = runDetached();
    const ev = spawnBackground([RUNC, "--root", ctx().root, "events", "--interval", "300ms", id]);
    await sleep(1500);
    runcOk(["kill", id, "KILL"]);
    await waitFor(() => state(id).status === "stopped");
    runcOk(["delete", id]);
    const r = await ev.finish(8000);
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) {
      expect(l.type).toBe("stats");
      expect(l.id).toBe(id);
      expect(typeof l.data.cpu.usage.total).toBe("number");
    }
  });

  test("an OOM kill in the container is reported as an oom event", async () => {
    if (V2 && !existsSync(join(CGROUP_ROOT, "cgroup.subtree_control"))) return;
    const { id, bundle: b } = runDetached((s: Spec) => {
      s.process.args = ["sh", "-c", 'while [ ! -e /tmp/go ]; do sleep 0.05; done; sh -c "x=\\$(yes | head -c 64000000)"; echo inner=$?; sleep 300'];
      s.linux.resources.memory = { limit: 24 * MiB, ...(HAS_MEMSW ? { swap: 24 * MiB } : {}) };
    });
    const ev = spawnBackground([RUNC, "--root", ctx().root, "events", "--interval", "10s", id]);
    await sleep(700); // let events register for OOM notifications
    writeFileSync(join(b.rootfs, "tmp/go"), "");
    const oomKills = () => {
      try {
        const f = V2 ? "memory.events" : "memory.oom_control";
        return Number(/oom_kill (\d+)/.exec(cgRead(b, "memory", f))?.[1] ?? 0);
      } catch {
        return 0;
      }
    };
    expect(await waitFor(() => oomKills() > 0, 10000, 50)).toBe(true);
    await sleep(500);
    runcOk(["delete", "--force", id]);
    const r = await ev.finish(8000);
    const events = r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
    expect(events).toContainEqual({ type: "oom", id });
  });
});

describe("pause and resume", () => {
  test("state goes paused and back to running; ps still lists the frozen processes", () => {
    const { id, pid, bundle: b } = runDetached((s: Spec) => {
      s.process.args = ["sh", "-c", "sleep 300 & exec sleep 301"];
    });
    runcOk(["pause", id]);
    expect(state(id).status).toBe("paused");
    if (V2) expect(cgRead(b, "freezer", "cgroup.freeze")).toBe("1");
    else expect(cgRead(b, "freezer", "freezer.state")).toBe("FROZEN");
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^State:\s+[DS]/m);
    const pids: number[] = JSON.parse(runcOk(["ps", "--format", "json", id]));
    expect(pids).toContain(pid);
    expect(pids.length).toBe(2);
    const table = runcOk(["ps", id]);
    expect(table).toContain("sleep 300");
    expect(table).toContain("sleep 301");
    // Pausing twice, or resuming a running container, fails.
    expect(runc(["pause", id]).code).not.toBe(0);
    runcOk(["resume", id]);
    expect(state(id).status).toBe("running");
    if (V2) expect(cgRead(b, "freezer", "cgroup.freeze")).toBe("0");
    else expect(cgRead(b, "freezer", "freezer.state")).toBe("THAWED");
    const r = runc(["resume", id]);
    expect(r.code).not.toBe(0);
    expect(errMsg(r.stderr)).toContain("container not paused");
  });

  test("a paused container can be force-deleted", () => {
    const { id, pid } = runDetached();
    runcOk(["pause", id]);
    runcOk(["delete", "--force", id]);
    expect(runc(["state", id]).code).not.toBe(0);
    expect(existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"))).toBe(false);
  });
});

describe("device rules", () => {
  // /dev/loop0 (b 7:0): made in the container from linux.devices; whether it may be opened is up to
  // the device cgroup (EPERM) and, once allowed, the loop driver (works, or ENXIO without it).
  const loop = (allow: boolean) => (s: Spec) => {
    s.linux.devices = [{ path: "/dev/loop0", type: "b", major: 7, minor: 0, fileMode: 0o660, uid: 0, gid: 0 }];
    if (allow) s.linux.resources.devices.push({ allow: true, type: "b", major: 7, minor: 0, access: "rw" });
  };

  test("the always-allowed devices work; others are denied unless a rule allows them", () => {
    const denied = runShell("head -c 4 /dev/zero | wc -c; true < /dev/null && echo null-ok; true < /dev/loop0 && echo loop-ok; true", loop(false));
    expect(denied.code).toBe(0);
    expect(denied.stdout).toContain("4");
    expect(denied.stdout).toContain("null-ok");
    expect(denied.stdout).not.toContain("loop-ok");
    expect(denied.stderr).toContain("Operation not permitted");
    const allowed = runShell("true < /dev/loop0 && echo loop-ok; true", loop(true));
    expect(allowed.code).toBe(0);
    expect(allowed.stderr).not.toContain("Operation not permitted");
  });

  test("v1: devices.list holds the config's rules and runc's defaults", () => {
    if (V2) return;
    const { bundle: b } = runDetached(loop(true));
    const list = cgRead(b, "devices", "devices.list").split("\n");
    for (const want of ["c 1:3 rwm", "c 1:5 rwm", "c 136:* rwm", "c 5:2 rwm", "c *:* m", "b *:* m", "b 7:0 rw"]) expect(list).toContain(want);
    expect(list).not.toContain("a *:* rwm");
  });
});
