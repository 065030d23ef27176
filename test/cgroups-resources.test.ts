// The cgroup modules used directly, without going through the runc command line: runc's value
// conversions, applyResources/readStats on scratch cgroups, `update` and `events` against a
// hand-made container state, flag and JSON parsing, and the cgroup v2 eBPF device filter (attached
// to a scratch directory of the unified hierarchy with a process moved into it).
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ALWAYS_ALLOWED } from "../core/runtime/cgroups/devices";
import { attachDeviceFilter, attachedDeviceFilters, deviceFilterProgram, DeviceEmulator, encodeProgram } from "../core/runtime/cgroups/devices-bpf";
import { hierarchies, isPureV2 } from "../core/runtime/cgroups/layout";
import { cgroupDirs, createCgroups, joinCgroups } from "../core/runtime/cgroups/manager";
import { applyResources, applyV2, readStatsV2, blkioToIOWeight, goJSON, parseCpuList, readStats, resolveDirs, sharesToWeight, statsData, swapToV2 } from "../core/runtime/cgroups/resources";
import { eventsMain, parseDuration } from "../core/runtime/events";
import { processStartTime } from "../core/runtime/proc";
import { StateDir, type ContainerState } from "../core/runtime/state";
import { mergeResources, parseResourcesJSON, parseUpdateFlags, ramInBytes, update } from "../core/runtime/update";
import { CGROUP_PREFIX, ctx, rand, registerCgroup, useHarness, waitFor } from "./harness";

useHarness();

const MiB = 1024 * 1024;
const V2 = isPureV2();

/** A scratch cgroup in every hierarchy (removed by the harness), holding a sleeping process. */
async function scratch(): Promise<{ path: string; dirs: string[]; proc: Bun.Subprocess }> {
  const path = registerCgroup(`${CGROUP_PREFIX}${ctx().tag}-unit-${rand(4)}`);
  const dirs = cgroupDirs(path, "unit");
  createCgroups(dirs);
  const proc = Bun.spawn(["sleep", "300"], { stdio: ["ignore", "ignore", "ignore"] });
  ctx().pids.add(proc.pid);
  joinCgroups(dirs, proc.pid);
  return { path, dirs, proc };
}

function read(dir: string | undefined, file: string): string {
  return readFileSync(join(dir!, file), "utf8").trim();
}

describe("runc's conversions", () => {
  test("cpu shares to cpu.weight, blkio weight to io.weight", () => {
    expect(sharesToWeight(0)).toBe(0);
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(512)).toBe(20);
    expect(sharesToWeight(262144)).toBe(10000);
    expect(blkioToIOWeight(0)).toBe(0);
    expect(blkioToIOWeight(10)).toBe(1);
    expect(blkioToIOWeight(500)).toBe(4950);
    expect(blkioToIOWeight(1000)).toBe(10000);
  });

  test("memory+swap to cgroup v2's swap-only limit", () => {
    expect(swapToV2(0, -1)).toBe(-1);
    expect(swapToV2(-1, 100)).toBe(-1);
    expect(swapToV2(0, 100)).toBe(0);
    expect(swapToV2(300, 100)).toBe(200);
    expect(swapToV2(100, 100)).toBe(0);
    expect(() => swapToV2(50, 100)).toThrow("memory+swap limit should be >= memory limit");
    expect(() => swapToV2(50, 0)).toThrow("unable to set swap limit without memory limit");
  });

  test("go-units sizes, Go durations, cpu lists", () => {
    expect(ramInBytes("512m")).toBe(512 * MiB);
    expect(ramInBytes("1g")).toBe(1024 * MiB);
    expect(ramInBytes("1GiB")).toBe(1024 * MiB);
    expect(ramInBytes("64 KB")).toBe(65536);
    expect(ramInBytes("100")).toBe(100);
    expect(ramInBytes("1.5k")).toBe(1536);
    expect(() => ramInBytes("1x")).toThrow("invalid size: '1x'");
    expect(() => ramInBytes("-5")).toThrow("invalid size: '-5'");
    expect(parseDuration("5s")).toBe(5000);
    expect(parseDuration("1m30s")).toBe(90000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseDuration("0")).toBe(0);
    expect(() => parseDuration("1")).toThrow('invalid value "1" for flag -interval: parse error');
    expect(() => parseDuration("5x")).toThrow("parse error");
    expect(parseCpuList("0-3,5")).toEqual([0, 1, 2, 3, 5]);
    expect(parseCpuList("")).toEqual([]);
  });

  test("Go-style JSON: exact 64-bit numbers, omitted members, escaped HTML", () => {
    expect(goJSON({ a: 18446744073709551615n, b: undefined, c: [1n], d: "<&>", e: null })).toBe('{"a":18446744073709551615,"c":[1],"d":"\\u003c\\u0026\\u003e","e":null}');
  });
});

describe("runc update: request parsing and merging", () => {
  test("flags", () => {
    const r = parseUpdateFlags({ memory: "256m", "memory-swap": "-1", "cpu-share": "512", "cpu-quota": "-1", "cpuset-cpus": "0", "pids-limit": 10, "blkio-weight": 0, "kernel-memory": "1m" });
    expect(r).toEqual({ memory: { limit: 256 * MiB, swap: -1, kernel: MiB }, cpu: { shares: 512, quota: -1, cpus: "0" }, pids: { limit: 10 } });
    expect(() => parseUpdateFlags({ "cpu-period": "-5" })).toThrow('invalid value for cpu-period: strconv.ParseUint: parsing "-5": invalid syntax');
    expect(() => parseUpdateFlags({ "cpu-quota": "1.5" })).toThrow('invalid value for cpu-quota: strconv.ParseInt: parsing "1.5": invalid syntax');
    expect(() => parseUpdateFlags({ "l3-cache-schema": "L3:0=f" })).toThrow("Intel RDT/CAT: l3 cache schema is not enabled");
  });

  test("-r: JSON from stdin or a file; other flags ignored", () => {
    const r = parseUpdateFlags({ resources: "-", memory: "1g" }, () => '{"memory":{"Limit":1000},"cpu":{"shares":null},"unknown":1}');
    expect(r).toEqual({ memory: { limit: 1000 }, cpu: {} });
    const f = join(ctx().dir, "r.json");
    writeFileSync(f, '{"pids":{"limit":3}}');
    expect(parseUpdateFlags({ resources: f })).toEqual({ pids: { limit: 3 } });
    expect(() => parseUpdateFlags({ resources: "/nonexistent/x" })).toThrow("open /nonexistent/x: no such file or directory");
  });

  test("-r: Go's type errors", () => {
    expect(() => parseResourcesJSON('{"memory":{"limit":"x"}}')).toThrow("json: cannot unmarshal string into Go struct field LinuxMemory.memory.limit of type int64");
    expect(() => parseResourcesJSON('{"cpu":{"shares":-1}}')).toThrow("json: cannot unmarshal number -1 into Go struct field LinuxCPU.cpu.shares of type uint64");
    expect(() => parseResourcesJSON('{"memory":5}')).toThrow("json: cannot unmarshal number into Go struct field LinuxResources.memory of type specs.LinuxMemory");
    expect(() => parseResourcesJSON("[]")).toThrow("json: cannot unmarshal array into Go value of type specs.LinuxResources");
    expect(() => parseResourcesJSON('{"blockIO":{"weightDevice":[{"weight":"x"}]}}')).toThrow("Go struct field LinuxWeightDevice.blockIO.weightDevice.weight of type uint16");
    expect(() => parseResourcesJSON("")).toThrow("EOF");
  });

  test("merge keeps what the request does not name; memory -1 lifts swap too", () => {
    const cur = { memory: { limit: 100, swap: 200, kernel: 5 }, cpu: { shares: 512, quota: 1000, period: 100000, cpus: "0" }, pids: { limit: 20 }, devices: [{ allow: false, access: "rwm" }] };
    expect(mergeResources(cur, { cpu: { period: 50000 }, pids: { limit: 0 } })).toEqual({
      memory: { limit: 100, swap: 200 },
      cpu: { shares: 512, quota: 1000, period: 50000, cpus: "0" },
      pids: { limit: 20 },
      devices: [{ allow: false, access: "rwm" }],
    });
    expect(mergeResources(cur, { memory: { limit: -1 } }).memory).toEqual({ limit: -1, swap: -1 });
    expect(mergeResources({}, { blockIO: { weight: 300 }, unified: { "memory.high": "1" } })).toEqual({ blockIO: { weight: 300 }, unified: { "memory.high": "1" } });
  });
});

describe("applyResources and readStats on a scratch cgroup", () => {
  test("resolveDirs maps each directory to its controllers", async () => {
    const { dirs } = await scratch();
    const set = resolveDirs(dirs);
    if (V2) expect(set.v2).toBe(dirs[0]);
    else {
      expect(set.v1.get("memory")).toContain("/memory/");
      expect(set.v1.get("cpuacct")).toContain("/cpuacct/");
      expect(set.v1.get("name=systemd")).toBeDefined();
    }
  });

  test("memory, cpu, pids, cpuset are written; errors name the file and value", async () => {
    const { dirs } = await scratch();
    const set = resolveDirs(dirs);
    applyResources(dirs, { memory: { limit: 64 * MiB, reservation: 16 * MiB }, cpu: { shares: 512, quota: 20000, period: 100000, cpus: "0" }, pids: { limit: 9 } });
    if (V2) {
      expect(read(set.v2, "memory.max")).toBe(String(64 * MiB));
      expect(read(set.v2, "cpu.weight")).toBe("20");
      expect(read(set.v2, "cpu.max")).toBe("20000 100000");
      expect(read(set.v2, "pids.max")).toBe("9");
    } else {
      expect(read(set.v1.get("memory"), "memory.limit_in_bytes")).toBe(String(64 * MiB));
      expect(read(set.v1.get("memory"), "memory.soft_limit_in_bytes")).toBe(String(16 * MiB));
      expect(read(set.v1.get("cpu"), "cpu.shares")).toBe("512");
      expect(read(set.v1.get("cpu"), "cpu.cfs_quota_us")).toBe("20000");
      expect(read(set.v1.get("cpuset"), "cpuset.cpus")).toBe("0");
      expect(read(set.v1.get("pids"), "pids.max")).toBe("9");
      // Raising memory above memory+swap and lowering both: the order of the writes adapts.
      if (existsSync(join(set.v1.get("memory")!, "memory.memsw.limit_in_bytes"))) {
        applyResources(dirs, { memory: { limit: 200 * MiB, swap: 300 * MiB } });
        applyResources(dirs, { memory: { limit: 20 * MiB, swap: 30 * MiB } });
        expect(read(set.v1.get("memory"), "memory.memsw.limit_in_bytes")).toBe(String(30 * MiB));
        expect(() => applyResources(dirs, { memory: { limit: 40 * MiB } })).toThrow(`failed to write "${40 * MiB}": write ${set.v1.get("memory")}/memory.limit_in_bytes: invalid argument`);
      }
      expect(() => applyResources(dirs, { cpu: { shares: 1 } })).toThrow("the minimum allowed cpu-shares is 2");
      expect(() => applyResources(dirs, { unified: { "memory.max": "1" } })).toThrow("invalid configuration: cannot use unified on cgroup v1");
      applyResources(dirs, { memory: { limit: -1 }, pids: { limit: -1 }, cpu: { quota: -1 } });
      expect(read(set.v1.get("memory"), "memory.limit_in_bytes")).toBe("9223372036854771712");
      expect(read(set.v1.get("pids"), "pids.max")).toBe("max");
      expect(read(set.v1.get("cpu"), "cpu.cfs_quota_us")).toBe("-1");
    }
    if (!V2) expect(() => applyResources(dirs, { memory: { swappiness: 101 } })).toThrow("invalid value:101. valid memory swappiness range is 0-100");
  });

  test("kernel memory is ignored with runc's warning", async () => {
    const { dirs } = await scratch();
    const warnings: string[] = [];
    applyResources(dirs, { memory: { kernel: 1000000 } }, { warn: (m) => warnings.push(m) });
    expect(warnings).toEqual(["Kernel memory settings are ignored and will be removed"]);
  });

  test("readStats: runc's stats shape with the container's numbers", async () => {
    const { dirs } = await scratch();
    applyResources(dirs, { memory: { limit: 64 * MiB }, pids: { limit: 9 } });
    const data = JSON.parse(goJSON(statsData(readStats(dirs))));
    expect(Object.keys(data)).toEqual(["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]);
    expect(Object.keys(data.cpu)).toEqual(["usage", "throttling"]);
    expect(data.memory.usage.limit).toBe(64 * MiB);
    expect(data.pids).toEqual({ current: 1, limit: 9 });
    expect(data.network_interfaces).toBeNull();
    if (!V2) {
      expect(Object.keys(data.memory)).toEqual(expect.arrayContaining(["usage", "swap", "kernel", "kernelTCP", "raw"]));
      expect(data.memory.raw.hierarchical_memory_limit).toBe(64 * MiB);
      expect(data.cpu.usage.percpu.length).toBeGreaterThan(0);
    }
  });
});

describe("the cgroup v2 driver on a directory of the unified hierarchy", () => {
  const v2mount = hierarchies().find((h) => h.version === 2)?.mount;

  test.skipIf(!v2mount)("unified keys are written; missing controllers are named; stats from cpu.stat and cgroup.procs", () => {
    const dir = join(v2mount!, `${CGROUP_PREFIX.slice(1)}${ctx().tag}-v2`);
    registerCgroup(dir.slice(v2mount!.length));
    mkdirSync(dir);
    const proc = Bun.spawn(["sleep", "300"], { stdio: ["ignore", "ignore", "ignore"] });
    ctx().pids.add(proc.pid);
    writeFileSync(join(dir, "cgroup.procs"), String(proc.pid));
    applyV2(dir, { unified: { "cgroup.max.descendants": "5" } });
    expect(read(dir, "cgroup.max.descendants")).toBe("5");
    const ctrls = read(v2mount, "cgroup.subtree_control").split(" ");
    if (!ctrls.includes("memory")) {
      expect(() => applyV2(dir, { unified: { "memory.max": "1" } })).toThrow('unified resource "memory.max" can\'t be set: controller "memory" not available');
      expect(() => applyV2(dir, { memory: { limit: MiB } })).toThrow(`openat2 ${dir}/memory.max: no such file or directory`);
    }
    expect(() => applyV2(dir, { unified: { "../x": "1" } })).toThrow('unified resource "../x" must be a file name (no slashes)');
    expect(() => applyV2(dir, { memory: { limit: MiB, swap: MiB / 2 } })).toThrow("memory+swap limit should be >= memory limit");
    const st = readStatsV2(dir);
    expect(st.pids.current).toBe(1n);
    expect(st.cpu.total).toBeGreaterThanOrEqual(0n);
    proc.kill(9);
  });
});

describe("update and events on a hand-made container state", () => {
  async function container(): Promise<{ sd: StateDir; id: string; st: ContainerState; dirs: string[]; proc: Bun.Subprocess }> {
    const { dirs, proc } = await scratch();
    const sd = new StateDir(ctx().root);
    const id = `unit-${rand(6)}`;
    sd.claim(id);
    const st: ContainerState = {
      id, pid: proc.pid, pidStart: processStartTime(proc.pid), bundle: ctx().dir, rootfs: ctx().dir, created: new Date().toISOString(), owner: "",
      config: { ociVersion: "1.0.2", linux: { resources: { memory: { limit: 100 * MiB }, pids: { limit: 20 }, devices: [{ allow: false, access: "rwm" }] } } },
      cgroupPaths: dirs,
    };
    sd.save(st);
    applyResources(dirs, st.config.linux!.resources);
    return { sd, id, st, dirs, proc };
  }

  test("update writes the merged resources and saves them; stopped containers are refused", async () => {
    const { sd, id, dirs, proc } = await container();
    const set = resolveDirs(dirs);
    await update(sd, id, { memory: { limit: 200 * MiB }, cpu: { shares: 256 } });
    const saved = sd.load(id).config.linux!.resources!;
    expect(saved.memory).toEqual({ limit: 200 * MiB });
    expect(saved.pids).toEqual({ limit: 20 });
    expect(saved.cpu).toEqual({ shares: 256 });
    expect(saved.devices).toEqual([{ allow: false, access: "rwm" }]);
    if (V2) expect(read(set.v2, "memory.max")).toBe(String(200 * MiB));
    else expect(read(set.v1.get("memory"), "memory.limit_in_bytes")).toBe(String(200 * MiB));
    const warnings: string[] = [];
    await update(sd, id, { memory: { kernelTCP: 5 } }, (m) => warnings.push(m));
    expect(warnings).toEqual(["Kernel memory settings are ignored and will be removed"]);
    expect(sd.load(id).config.linux!.resources!.memory).toEqual({ limit: 200 * MiB });
    // A failing write: nothing is saved.
    if (!V2) {
      await expect(update(sd, id, { cpu: { shares: 1 } })).rejects.toThrow("the minimum allowed cpu-shares is 2");
      expect(sd.load(id).config.linux!.resources!.cpu).toEqual({ shares: 256 });
    }
    proc.kill(9);
    await proc.exited;
    await expect(update(sd, id, { pids: { limit: 5 } })).rejects.toThrow("container not running");
  });

  test("events --stats prints one line; the stream ends when the container stops", async () => {
    const { sd, id, proc } = await container();
    const lines: string[] = [];
    expect(await eventsMain(sd, id, { stats: true }, (l) => lines.push(l))).toBe(0);
    expect(lines.length).toBe(1);
    expect(lines[0]!.endsWith("\n")).toBe(true);
    const ev = JSON.parse(lines[0]!);
    expect(ev.type).toBe("stats");
    expect(ev.id).toBe(id);
    expect(ev.data.pids.limit).toBe(20);
    lines.length = 0;
    const done = eventsMain(sd, id, { intervalMs: 100 }, (l) => lines.push(l));
    await waitFor(() => lines.length >= 2, 3000, 20);
    proc.kill(9);
    await proc.exited;
    expect(await done).toBe(0);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) expect(JSON.parse(l).type).toBe("stats");
    await expect(eventsMain(sd, id, { stats: true }, () => {})).rejects.toThrow(`container with id ${id} is not running`);
    await expect(eventsMain(sd, id, { intervalMs: 0 }, () => {})).rejects.toThrow("duration interval must be greater than 0");
  });

  test("events reports an OOM kill", async () => {
    const { sd, id, dirs, proc } = await container();
    applyResources(dirs, { memory: { limit: 16 * MiB } });
    const lines: string[] = [];
    const done = eventsMain(sd, id, { intervalMs: 60_000 }, (l) => lines.push(l));
    await Bun.sleep(200);
    // A memory hog joins the container's memory cgroup and is OOM-killed; the "init" keeps running.
    const memDir = V2 ? dirs[0]! : resolveDirs(dirs).v1.get("memory")!;
    const hog = Bun.spawn(["sh", "-c", `echo $$ > ${memDir}/cgroup.procs; x=$(yes | head -c 64000000)`], { stdio: ["ignore", "ignore", "ignore"] });
    ctx().pids.add(hog.pid);
    await hog.exited;
    expect(hog.signalCode).toBe("SIGKILL");
    await waitFor(() => lines.some((l) => l.includes('"oom"')), 3000, 20);
    proc.kill(9);
    await proc.exited;
    expect(await done).toBe(0);
    expect(lines.map((l) => JSON.parse(l))).toContainEqual({ type: "oom", id });
  });
});

describe("cgroup v2 device filter (eBPF)", () => {
  const v2mount = hierarchies().find((h) => h.version === 2)?.mount;

  test("the program: default action, then one block per exception", () => {
    const p = deviceFilterProgram([{ allow: false, access: "rwm" }, ...ALWAYS_ALLOWED]);
    expect(p.defaultAllow).toBe(false);
    // b *:* m and c *:* m, then the specific char devices, sorted by (major, minor, type).
    expect(p.exceptions.map((e) => `${e.type} ${e.major}:${e.minor}`)).toEqual(["b -1:-1", "c -1:-1", "c 1:3", "c 1:5", "c 1:7", "c 1:8", "c 1:9", "c 5:0", "c 5:2", "c 10:200", "c 136:-1"]);
    const code = encodeProgram(p.insns);
    expect(code.byteLength).toBe(p.insns.length * 8);
    // Ends with "r0 = 0; exit" (deny by default).
    expect([...code.subarray(code.length - 16)]).toEqual([0xb4, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
  });

  test("the emulator: allow-all with denials; no holes punched in wildcard rules", () => {
    const e = new DeviceEmulator();
    e.apply({ allow: true, type: "a" });
    e.apply({ allow: false, type: "c", major: 1, minor: 5, access: "rw" });
    expect(e.defaultAllow).toBe(true);
    expect(e.exceptions()).toEqual([{ type: "c", major: 1, minor: 5, access: 6, allow: false }]);
    const w = new DeviceEmulator();
    w.apply({ allow: true, type: "c", major: 1, minor: null, access: "rwm" });
    expect(() => w.apply({ allow: false, type: "c", major: 1, minor: 3, access: "r" })).toThrow("cannot punch hole in existing wildcard rule");
  });

  test.skipIf(!v2mount)("attached to a cgroup: /dev/null opens, /dev/zero is denied when not allowed", () => {
    const dir = join(v2mount!, `${CGROUP_PREFIX.slice(1)}${ctx().tag}-bpf`);
    registerCgroup(dir.slice(v2mount!.length));
    mkdirSync(dir);
    try {
      const probe = (): string => {
        const r = Bun.spawnSync(["sh", "-c", `echo $$ > ${dir}/cgroup.procs && { cat /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null && echo zero-ok; true; }`]);
        return r.stdout.toString() + r.stderr.toString();
      };
      attachDeviceFilter(dir, [{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }]);
      expect(attachedDeviceFilters(dir).length).toBe(1);
      let out = probe();
      expect(out).toContain("null-ok");
      expect(out).not.toContain("zero-ok");
      expect(out).toContain("Operation not permitted");
      // Replacing the filter (runc's always-allowed list has /dev/zero) leaves one program attached.
      attachDeviceFilter(dir, [{ allow: false, access: "rwm" }, ...ALWAYS_ALLOWED]);
      expect(attachedDeviceFilters(dir).length).toBe(1);
      out = probe();
      expect(out).toContain("null-ok");
      expect(out).toContain("zero-ok");
      // Access bits: read-only /dev/zero refuses writes.
      attachDeviceFilter(dir, [{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 5, access: "r" }, { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }]);
      const r = Bun.spawnSync(["sh", "-c", `echo $$ > ${dir}/cgroup.procs && { head -c1 /dev/zero >/dev/null && echo read-ok; echo x > /dev/zero && echo write-ok; true; }`]);
      const o = r.stdout.toString();
      expect(o).toContain("read-ok");
      expect(o).not.toContain("write-ok");
    } finally {
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          Bun.sleepSync(20);
        }
      }
    }
  });
});
