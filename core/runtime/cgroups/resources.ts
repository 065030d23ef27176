// OCI linux.resources written to a container's cgroup files, and the statistics read back from them
// (`runc events`), following runc 1.1: the v1 "fs" driver for v1 and hybrid hosts, the "fs2" driver
// for pure cgroup v2. Zero means "leave as is"; -1 means "no limit" (written "-1" to v1 files, "max"
// to v2 ones). Device rules are not here: see devices.ts.
import { closeSync, constants, existsSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { errnoMessage } from "../../../ffi/errno";
import type { BlockIO, CpuResources, MemoryResources, Resources } from "../../oci/types";
import { hierarchies, isPureV2 } from "./layout";

const MAX_U64 = (1n << 64n) - 1n;

// ---- locating the controllers ------------------------------------------------------------------

export interface CgroupSet {
  /** v1 controller name ("memory", "cpu", "name=systemd") -> the container's directory. */
  v1: Map<string, string>;
  /** The container's directory in the unified (v2) hierarchy, if any. */
  v2?: string;
  /** Pure cgroup v2 host: resources go to `v2`; otherwise they go to the v1 controllers. */
  pureV2: boolean;
}

/** Which controller each of the container's cgroup directories belongs to (by mount point). */
export function resolveDirs(dirs: string[]): CgroupSet {
  const hs = [...hierarchies()].sort((a, b) => b.mount.length - a.mount.length);
  const set: CgroupSet = { v1: new Map(), pureV2: isPureV2() };
  for (const d of dirs) {
    const h = hs.find((h) => d === h.mount || d.startsWith(h.mount.endsWith("/") ? h.mount : h.mount + "/"));
    if (!h) continue;
    if (h.version === 2) set.v2 = d;
    else for (const c of h.controllers) set.v1.set(c, d);
  }
  return set;
}

// ---- file access -------------------------------------------------------------------------------

/** A failed cgroup file write, worded as runc's: failed to write "VALUE": write PATH: REASON. */
export class CgroupWriteError extends Error {
  constructor(
    readonly path: string,
    readonly value: string,
    readonly code: string,
  ) {
    super(code === "ENOENT" ? `openat2 ${path}: ${errnoMessage(code)}` : `failed to write ${JSON.stringify(value)}: write ${path}: ${errnoMessage(code)}`);
  }
}

/** Writes a cgroup file as runc does: O_WRONLY (no O_CREAT/O_TRUNC), one write(2). */
export function writeCgroupFile(dir: string, file: string, value: string): void {
  const path = join(dir, file);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY);
  } catch (e: any) {
    throw new CgroupWriteError(path, value, e?.code ?? "EIO");
  }
  try {
    writeSync(fd, value);
  } catch (e: any) {
    throw new CgroupWriteError(path, value, e?.code ?? "EIO");
  } finally {
    closeSync(fd);
  }
}

function readText(dir: string, file: string): string {
  return readFileSync(join(dir, file), "utf8");
}

function tryRead(dir: string, file: string): string | undefined {
  try {
    return readText(dir, file);
  } catch {
    return undefined;
  }
}

/** fscommon.ParseUint: negative values read as 0, "max" as MaxUint64. */
export function parseCgroupUint(s: string): bigint {
  const t = s.trim();
  if (t === "max") return MAX_U64;
  if (/^-\d+$/.test(t)) return 0n;
  if (!/^\d+$/.test(t)) throw new Error(`unable to parse ${JSON.stringify(t)} as a uint`);
  const v = BigInt(t);
  if (v > MAX_U64) throw new Error(`unable to parse ${JSON.stringify(t)} as a uint: value out of range`);
  return v;
}

function readUint(dir: string, file: string): bigint {
  try {
    return parseCgroupUint(readText(dir, file));
  } catch (e: any) {
    if (e?.code) throw e;
    throw new Error(`unable to parse ${join(dir, file)}: ${e?.message ?? e}`);
  }
}

const exists = (dir: string, file: string) => existsSync(join(dir, file));
const nz = (n: number | undefined | null): number => (typeof n === "number" ? n : 0);
const str = (n: number) => (Number.isSafeInteger(n) ? String(n) : BigInt(Math.trunc(n)).toString());

// ---- conversions shared with runc ----------------------------------------------------------------

/** cgroups.ConvertCPUSharesToCgroupV2Value: [2-262144] -> [1-10000]. */
export function sharesToWeight(shares: number): number {
  if (!shares) return 0;
  if (shares < 2) shares = 2;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** cgroups.ConvertBlkIOToIOWeightValue: [10-1000] -> [1-10000]. */
export function blkioToIOWeight(weight: number): number {
  if (!weight) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/** cgroups.ConvertMemorySwapToCgroupV2Value: v1's memory+swap total to v2's swap-only limit. */
export function swapToV2(swap: number, memory: number): number {
  if (memory === -1 && swap === 0) return -1;
  if (swap === -1 || swap === 0) return swap;
  if (memory === 0 || memory === -1) throw new Error("unable to set swap limit without memory limit");
  if (memory < 0) throw new Error(`invalid memory value: ${memory}`);
  if (swap < memory) throw new Error("memory+swap limit should be >= memory limit");
  return swap - memory;
}

/** fs2's numToStr: 0 is "unset" (""), -1 is "max". */
function v2Num(n: number): string {
  return n === 0 ? "" : n === -1 ? "max" : str(n);
}

// ---- applying ------------------------------------------------------------------------------------

export interface ApplyOptions {
  /** Warnings runc logs and goes on (kernel memory settings). */
  warn?: (msg: string) => void;
}

/**
 * Writes linux.resources (except devices) to the container's cgroup directories, in runc's order.
 * Call after createCgroups and before the init joins (realtime CPU limits must be in place before a
 * task enters the cpu cgroup). Errors name the file and the value.
 */
export function applyResources(dirs: string[], r: Resources = {}, opts: ApplyOptions = {}): void {
  const set = resolveDirs(dirs);
  if (r.memory && (r.memory.kernel != null || r.memory.kernelTCP != null)) opts.warn?.("Kernel memory settings are ignored and will be removed");
  if (set.pureV2) {
    if (set.v2) applyV2(set.v2, r);
    return;
  }
  if (r.unified && Object.keys(r.unified).length) throw new Error("invalid configuration: cannot use unified on cgroup v1");
  applyV1(set.v1, r);
}

function applyV1(c: Map<string, string>, r: Resources): void {
  // runc's subsystem order: cpuset, devices, memory, cpu, cpuacct, pids, blkio, hugetlb, ...
  const cpuset = c.get("cpuset");
  if (cpuset && r.cpu) {
    if (r.cpu.cpus) writeCgroupFile(cpuset, "cpuset.cpus", r.cpu.cpus);
    if (r.cpu.mems) writeCgroupFile(cpuset, "cpuset.mems", r.cpu.mems);
  }
  const memory = c.get("memory");
  if (memory && r.memory) setMemoryV1(memory, r.memory);
  const cpu = c.get("cpu");
  if (cpu && r.cpu) setCpuV1(cpu, r.cpu);
  const pids = c.get("pids");
  if (pids && r.pids) setPids(pids, nz(r.pids.limit));
  const blkio = c.get("blkio");
  if (blkio && r.blockIO) setBlkioV1(blkio, r.blockIO);
  const hugetlb = c.get("hugetlb");
  if (hugetlb) for (const l of r.hugepageLimits ?? []) writeCgroupFile(hugetlb, `hugetlb.${l.pageSize}.limit_in_bytes`, str(l.limit));
}

function setMemoryV1(dir: string, m: MemoryResources): void {
  let limit = nz(m.limit);
  let swap = nz(m.swap);
  // -1 for memory with swap unset means "no limit at all": lift memsw too (when the kernel has it).
  if (limit === -1 && swap === 0 && exists(dir, "memory.memsw.limit_in_bytes")) swap = -1;
  let swapFirst = false;
  if (limit !== 0 && swap !== 0) {
    // The kernel insists on memory <= memory+swap at every step: raise memsw first when growing.
    const cur = readUint(dir, "memory.limit_in_bytes");
    swapFirst = swap === -1 || cur < BigInt(Math.trunc(swap));
  }
  const setLimit = () => {
    if (limit === 0) return;
    try {
      writeCgroupFile(dir, "memory.limit_in_bytes", str(limit));
    } catch (e) {
      if (!(e instanceof CgroupWriteError) || e.code !== "EBUSY") throw e;
      const usage = readUint(dir, "memory.usage_in_bytes");
      const max = readUint(dir, "memory.max_usage_in_bytes");
      throw new Error(`unable to set memory limit to ${str(limit)} (current usage: ${usage}, peak usage: ${max})`);
    }
  };
  const setSwap = () => {
    if (swap !== 0) writeCgroupFile(dir, "memory.memsw.limit_in_bytes", str(swap));
  };
  if (swapFirst) {
    setSwap();
    setLimit();
  } else {
    setLimit();
    setSwap();
  }
  if (nz(m.reservation) !== 0) writeCgroupFile(dir, "memory.soft_limit_in_bytes", str(m.reservation!));
  if (m.disableOOMKiller) writeCgroupFile(dir, "memory.oom_control", "1");
  if (m.swappiness != null && m.swappiness !== -1) {
    if (m.swappiness < 0 || m.swappiness > 100) throw new Error(`invalid value:${m.swappiness}. valid memory swappiness range is 0-100`);
    writeCgroupFile(dir, "memory.swappiness", str(m.swappiness));
  }
}

function setCpuV1(dir: string, c: CpuResources): void {
  const shares = nz(c.shares);
  if (shares !== 0) {
    writeCgroupFile(dir, "cpu.shares", str(shares));
    // The kernel clamps out-of-range shares; say so instead of silently running with another value.
    const got = Number(readUint(dir, "cpu.shares"));
    if (shares > got) throw new Error(`the maximum allowed cpu-shares is ${got}`);
    if (shares < got) throw new Error(`the minimum allowed cpu-shares is ${got}`);
  }
  const quota = nz(c.quota);
  let period = nz(c.period) !== 0 ? str(c.period!) : "";
  if (period) {
    try {
      writeCgroupFile(dir, "cpu.cfs_period_us", period);
      period = "";
    } catch (e) {
      // A shorter period can exceed the parent's quota until the new quota is in: retry after it.
      if (!(e instanceof CgroupWriteError) || e.code !== "EINVAL" || quota === 0) throw e;
    }
  }
  if (quota !== 0) {
    writeCgroupFile(dir, "cpu.cfs_quota_us", str(quota));
    if (period) writeCgroupFile(dir, "cpu.cfs_period_us", period);
  }
  if (c.idle != null) writeCgroupFile(dir, "cpu.idle", str(c.idle));
  if (nz(c.realtimePeriod) !== 0) writeCgroupFile(dir, "cpu.rt_period_us", str(c.realtimePeriod!));
  if (nz(c.realtimeRuntime) !== 0) writeCgroupFile(dir, "cpu.rt_runtime_us", str(c.realtimeRuntime!));
}

function setPids(dir: string, limit: number): void {
  if (limit === 0) return;
  writeCgroupFile(dir, "pids.max", limit > 0 ? str(limit) : "max");
}

function setBlkioV1(dir: string, b: BlockIO): void {
  const bfq = !exists(dir, "blkio.weight");
  const weightFile = bfq ? "blkio.bfq.weight" : "blkio.weight";
  const weightDeviceFile = bfq ? "blkio.bfq.weight_device" : "blkio.weight_device";
  if (nz(b.weight) !== 0) writeCgroupFile(dir, weightFile, str(b.weight!));
  if (nz(b.leafWeight) !== 0) writeCgroupFile(dir, "blkio.leaf_weight", str(b.leafWeight!));
  for (const wd of b.weightDevice ?? []) {
    if (nz(wd.weight) !== 0) writeCgroupFile(dir, weightDeviceFile, `${wd.major}:${wd.minor} ${wd.weight}`);
    if (nz(wd.leafWeight) !== 0) writeCgroupFile(dir, "blkio.leaf_weight_device", `${wd.major}:${wd.minor} ${wd.leafWeight}`);
  }
  const throttles: [keyof BlockIO, string][] = [
    ["throttleReadBpsDevice", "blkio.throttle.read_bps_device"],
    ["throttleWriteBpsDevice", "blkio.throttle.write_bps_device"],
    ["throttleReadIOPSDevice", "blkio.throttle.read_iops_device"],
    ["throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"],
  ];
  for (const [key, file] of throttles) {
    for (const t of (b[key] as BlockIO["throttleReadBpsDevice"]) ?? []) writeCgroupFile(dir, file, `${t.major}:${t.minor} ${str(t.rate)}`);
  }
}

function v2Controllers(dir: string): Set<string> {
  return new Set((tryRead(dir, "cgroup.controllers") ?? "").split(/\s+/).filter(Boolean));
}

/** The fs2 driver on one cgroup v2 directory (what applyResources does on a pure v2 host). */
export function applyV2(dir: string, r: Resources): void {
  const m = r.memory ?? {};
  const limit = nz(m.limit), swap = nz(m.swap), reservation = nz(m.reservation);
  // The validator's check, made before anything is written.
  if (limit !== 0 || swap !== 0 || reservation !== 0) swapToV2(swap, limit);
  // fs2's order: pids, memory, io, cpu, (devices), cpuset, hugetlb, unified.
  if (r.pids) setPids(dir, nz(r.pids.limit));
  if (limit !== 0 || swap !== 0 || reservation !== 0) {
    const s = swapToV2(swap, limit);
    let swapStr = v2Num(s);
    if (swapStr === "" && s === 0 && swap > 0) swapStr = "0"; // memory == memory+swap: no swap at all
    if (swapStr) writeCgroupFile(dir, "memory.swap.max", swapStr);
    if (v2Num(limit)) writeCgroupFile(dir, "memory.max", v2Num(limit));
    if (v2Num(reservation)) writeCgroupFile(dir, "memory.low", v2Num(reservation));
  }
  if (r.blockIO) setIoV2(dir, r.blockIO);
  const c = r.cpu ?? {};
  const weight = sharesToWeight(nz(c.shares));
  const quota = nz(c.quota), period = nz(c.period);
  if (c.idle != null) writeCgroupFile(dir, "cpu.idle", str(c.idle));
  if (weight !== 0) writeCgroupFile(dir, "cpu.weight", String(weight));
  if (quota !== 0 || period !== 0) {
    let v = quota > 0 ? str(quota) : "max";
    if (period !== 0) v += " " + str(period);
    writeCgroupFile(dir, "cpu.max", v);
  }
  if (c.cpus) writeCgroupFile(dir, "cpuset.cpus", c.cpus);
  if (c.mems) writeCgroupFile(dir, "cpuset.mems", c.mems);
  if (r.hugepageLimits?.length && v2Controllers(dir).has("hugetlb")) {
    for (const l of r.hugepageLimits) writeCgroupFile(dir, `hugetlb.${l.pageSize}.max`, str(l.limit));
  }
  for (const [k, v] of Object.entries(r.unified ?? {})) {
    if (k.includes("/")) throw new Error(`unified resource "${k}" must be a file name (no slashes)`);
    try {
      writeCgroupFile(dir, k, v);
    } catch (e) {
      if (e instanceof CgroupWriteError && (e.code === "EPERM" || e.code === "EACCES" || e.code === "ENOENT")) {
        const dot = k.indexOf(".");
        if (dot < 0) throw new Error(`unified resource "${k}" must be in the form CONTROLLER.PARAMETER`);
        const ctrl = k.slice(0, dot);
        if (ctrl !== "cgroup" && !v2Controllers(dir).has(ctrl)) throw new Error(`unified resource "${k}" can't be set: controller "${ctrl}" not available`);
      }
      throw e;
    }
  }
}

function setIoV2(dir: string, b: BlockIO): void {
  const weight = nz(b.weight);
  const bfqFile = exists(dir, "io.bfq.weight");
  if (weight !== 0) {
    if (bfqFile) writeCgroupFile(dir, "io.bfq.weight", str(weight));
    else writeCgroupFile(dir, "io.weight", String(blkioToIOWeight(weight)));
  }
  // Per-device BFQ weights exist since Linux 5.4: the file then reads "default N" rather than "N".
  if (bfqFile && b.weightDevice?.length && !/^\s*\d+\s*$/.test(tryRead(dir, "io.bfq.weight") ?? "")) {
    for (const wd of b.weightDevice) if (nz(wd.weight) !== 0) writeCgroupFile(dir, "io.bfq.weight", `${wd.major}:${wd.minor} ${wd.weight}\n`);
  }
  const throttles: [keyof BlockIO, string][] = [
    ["throttleReadBpsDevice", "rbps"],
    ["throttleWriteBpsDevice", "wbps"],
    ["throttleReadIOPSDevice", "riops"],
    ["throttleWriteIOPSDevice", "wiops"],
  ];
  for (const [key, name] of throttles) {
    for (const t of (b[key] as BlockIO["throttleReadBpsDevice"]) ?? []) writeCgroupFile(dir, "io.max", `${t.major}:${t.minor} ${name}=${str(t.rate)}`);
  }
}

// ---- statistics ----------------------------------------------------------------------------------

export interface MemoryEntry {
  limit: bigint;
  usage: bigint;
  max: bigint;
  failcnt: bigint;
}

export interface BlkioEntry {
  major: bigint;
  minor: bigint;
  op: string;
  value: bigint;
}

/** libcontainer's cgroups.Stats, the fields runc 1.1's `events` reports. */
export interface CgroupStats {
  cpu: {
    total: bigint;
    percpu: bigint[];
    percpuKernel: bigint[];
    percpuUser: bigint[];
    kernel: bigint;
    user: bigint;
    periods: bigint;
    throttledPeriods: bigint;
    throttledTime: bigint;
  };
  cpuset: {
    cpus: number[];
    cpuExclusive: bigint;
    mems: number[];
    memHardwall: bigint;
    memExclusive: bigint;
    memoryMigrate: bigint;
    memorySpreadPage: bigint;
    memorySpreadSlab: bigint;
    memoryPressure: bigint;
    schedLoadBalance: bigint;
    schedRelaxDomainLevel: bigint;
  };
  memory: { cache: bigint; usage: MemoryEntry; swap: MemoryEntry; kernel: MemoryEntry; kernelTCP: MemoryEntry; raw: Map<string, bigint> };
  pids: { current: bigint; limit: bigint };
  blkio: Record<BlkioTable, BlkioEntry[]>;
  hugetlb: Map<string, { usage: bigint; max: bigint; failcnt: bigint }>;
}

export type BlkioTable = "ioServiceBytesRecursive" | "ioServicedRecursive" | "ioQueueRecursive" | "ioServiceTimeRecursive" | "ioWaitTimeRecursive" | "ioMergedRecursive" | "ioTimeRecursive" | "sectorsRecursive";

const emptyEntry = (): MemoryEntry => ({ limit: 0n, usage: 0n, max: 0n, failcnt: 0n });

function newStats(): CgroupStats {
  return {
    cpu: { total: 0n, percpu: [], percpuKernel: [], percpuUser: [], kernel: 0n, user: 0n, periods: 0n, throttledPeriods: 0n, throttledTime: 0n },
    cpuset: { cpus: [], cpuExclusive: 0n, mems: [], memHardwall: 0n, memExclusive: 0n, memoryMigrate: 0n, memorySpreadPage: 0n, memorySpreadSlab: 0n, memoryPressure: 0n, schedLoadBalance: 0n, schedRelaxDomainLevel: 0n },
    memory: { cache: 0n, usage: emptyEntry(), swap: emptyEntry(), kernel: emptyEntry(), kernelTCP: emptyEntry(), raw: new Map() },
    pids: { current: 0n, limit: 0n },
    blkio: { ioServiceBytesRecursive: [], ioServicedRecursive: [], ioQueueRecursive: [], ioServiceTimeRecursive: [], ioWaitTimeRecursive: [], ioMergedRecursive: [], ioTimeRecursive: [], sectorsRecursive: [] },
    hugetlb: new Map(),
  };
}

function keyValues(text: string): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^-?\d+$/.test(v)) m.set(k, parseCgroupUint(v));
  }
  return m;
}

/** "0-3,5" -> [0,1,2,3,5]. */
export function parseCpuList(s: string): number[] {
  const out: number[] = [];
  for (const part of s.trim().split(",").filter(Boolean)) {
    const [a, b] = part.split("-").map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let i = a; i <= (b ?? a); i++) out.push(i);
  }
  return out;
}

/** Huge page sizes as runc names them ("2MB", "1GB"), from /sys/kernel/mm/hugepages. */
export function hugePageSizes(): string[] {
  let names: string[] = [];
  try {
    names = readdirSync("/sys/kernel/mm/hugepages");
  } catch {
    return [];
  }
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  const out: string[] = [];
  for (const n of names) {
    const m = /^hugepages-(\d+)kB$/.exec(n);
    if (!m) continue;
    let size = Number(m[1]) * 1024, i = 0;
    while (size >= 1024 && i < units.length - 1) {
      size /= 1024;
      i++;
    }
    out.push(`${size}${units[i]}`);
  }
  return out;
}

/** Reads the container's cgroup statistics (runc's Manager.GetStats) from v1 or v2 files. */
export function readStats(dirs: string[]): CgroupStats {
  const set = resolveDirs(dirs);
  const st = newStats();
  if (set.pureV2) {
    if (set.v2) statsV2(set.v2, st);
  } else statsV1(set.v1, st);
  return st;
}

function ignoreMissing(fn: () => void): void {
  try {
    fn();
  } catch (e: any) {
    if (e?.code !== "ENOENT") throw e;
  }
}

function memoryData(dir: string, name: string): MemoryEntry {
  const mod = name ? `memory.${name}` : "memory";
  if (name && !exists(dir, `${mod}.usage_in_bytes`)) return emptyEntry();
  return {
    usage: readUint(dir, `${mod}.usage_in_bytes`),
    max: readUint(dir, `${mod}.max_usage_in_bytes`),
    failcnt: readUint(dir, `${mod}.failcnt`),
    limit: readUint(dir, `${mod}.limit_in_bytes`),
  };
}

function blkioFile(dir: string, file: string): BlkioEntry[] | undefined {
  const text = tryRead(dir, file);
  if (text === undefined) return undefined;
  const out: BlkioEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 2 || !/^\d+:\d+$/.test(f[0]!)) continue; // "Total N"
    const [maj, min] = f[0]!.split(":");
    if (f.length === 3) out.push({ major: BigInt(maj!), minor: BigInt(min!), op: f[1]!, value: parseCgroupUint(f[2]!) });
    else out.push({ major: BigInt(maj!), minor: BigInt(min!), op: "", value: parseCgroupUint(f[1]!) });
  }
  return out;
}

function statsV1(c: Map<string, string>, st: CgroupStats): void {
  const cpuset = c.get("cpuset");
  if (cpuset && existsSync(cpuset)) {
    const s = st.cpuset;
    ignoreMissing(() => (s.cpus = parseCpuList(readText(cpuset, "cpuset.cpus"))));
    const u = (f: string, set: (v: bigint) => void) => ignoreMissing(() => set(readUint(cpuset, f)));
    u("cpuset.cpu_exclusive", (v) => (s.cpuExclusive = v));
    ignoreMissing(() => (s.mems = parseCpuList(readText(cpuset, "cpuset.mems"))));
    u("cpuset.mem_hardwall", (v) => (s.memHardwall = v));
    u("cpuset.mem_exclusive", (v) => (s.memExclusive = v));
    u("cpuset.memory_migrate", (v) => (s.memoryMigrate = v));
    u("cpuset.memory_spread_page", (v) => (s.memorySpreadPage = v));
    u("cpuset.memory_spread_slab", (v) => (s.memorySpreadSlab = v));
    u("cpuset.memory_pressure", (v) => (s.memoryPressure = v));
    u("cpuset.sched_load_balance", (v) => (s.schedLoadBalance = v));
    ignoreMissing(() => (s.schedRelaxDomainLevel = BigInt(readText(cpuset, "cpuset.sched_relax_domain_level").trim())));
  }
  const memory = c.get("memory");
  if (memory && exists(memory, "memory.stat")) {
    st.memory.raw = keyValues(readText(memory, "memory.stat"));
    st.memory.cache = st.memory.raw.get("cache") ?? 0n;
    st.memory.usage = memoryData(memory, "");
    st.memory.swap = memoryData(memory, "memsw");
    st.memory.kernel = memoryData(memory, "kmem");
    st.memory.kernelTCP = memoryData(memory, "kmem.tcp");
  }
  const cpu = c.get("cpu");
  if (cpu) {
    const text = tryRead(cpu, "cpu.stat");
    if (text !== undefined) {
      const kv = keyValues(text);
      st.cpu.periods = kv.get("nr_periods") ?? 0n;
      st.cpu.throttledPeriods = kv.get("nr_throttled") ?? 0n;
      st.cpu.throttledTime = kv.get("throttled_time") ?? 0n;
    }
  }
  const cpuacct = c.get("cpuacct");
  if (cpuacct && existsSync(cpuacct)) {
    // cpuacct.stat counts USER_HZ ticks (100 a second).
    const kv = keyValues(readText(cpuacct, "cpuacct.stat"));
    st.cpu.user = ((kv.get("user") ?? 0n) * 1_000_000_000n) / 100n;
    st.cpu.kernel = ((kv.get("system") ?? 0n) * 1_000_000_000n) / 100n;
    st.cpu.total = readUint(cpuacct, "cpuacct.usage");
    st.cpu.percpu = readText(cpuacct, "cpuacct.usage_percpu").trim().split(/\s+/).filter(Boolean).map(parseCgroupUint);
    const all = tryRead(cpuacct, "cpuacct.usage_all");
    if (all !== undefined) {
      for (const line of all.split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 3) continue;
        st.cpu.percpuUser.push(parseCgroupUint(f[1]!));
        st.cpu.percpuKernel.push(parseCgroupUint(f[2]!));
      }
    }
  }
  const pids = c.get("pids");
  if (pids && exists(pids, "pids.current")) {
    st.pids.current = readUint(pids, "pids.current");
    const max = readText(pids, "pids.max").trim();
    st.pids.limit = max === "max" ? 0n : parseCgroupUint(max);
  }
  const blkio = c.get("blkio");
  if (blkio && existsSync(blkio)) statsBlkioV1(blkio, st);
  const hugetlb = c.get("hugetlb");
  if (hugetlb && existsSync(hugetlb)) {
    for (const ps of hugePageSizes()) {
      st.hugetlb.set(ps, {
        usage: readUint(hugetlb, `hugetlb.${ps}.usage_in_bytes`),
        max: readUint(hugetlb, `hugetlb.${ps}.max_usage_in_bytes`),
        failcnt: readUint(hugetlb, `hugetlb.${ps}.failcnt`),
      });
    }
  }
}

function statsBlkioV1(dir: string, st: CgroupStats): void {
  // runc tries the statistics groups in this order and keeps the first whose first file has data.
  const debug: [string, BlkioTable][] = [
    ["sectors_recursive", "sectorsRecursive"],
    ["io_service_time_recursive", "ioServiceTimeRecursive"],
    ["io_wait_time_recursive", "ioWaitTimeRecursive"],
    ["io_merged_recursive", "ioMergedRecursive"],
    ["io_queued_recursive", "ioQueueRecursive"],
    ["time_recursive", "ioTimeRecursive"],
    ["io_serviced_recursive", "ioServicedRecursive"],
    ["io_service_bytes_recursive", "ioServiceBytesRecursive"],
  ];
  const groups: [string, BlkioTable][][] = [
    debug.map(([f, t]) => [`blkio.bfq.${f}`, t]),
    [["blkio.bfq.io_serviced_recursive", "ioServicedRecursive"], ["blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"]],
    debug.map(([f, t]) => [`blkio.${f}`, t]),
    [["blkio.throttle.io_serviced_recursive", "ioServicedRecursive"], ["blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive"]],
    [["blkio.throttle.io_serviced", "ioServicedRecursive"], ["blkio.throttle.io_service_bytes", "ioServiceBytesRecursive"]],
  ];
  for (const g of groups) {
    const first = blkioFile(dir, g[0]![0]);
    if (first === undefined) continue; // group not available: try the next one
    if (!first.length) return; // available but empty: runc stops here with nothing
    st.blkio[g[0]![1]] = first;
    for (const [file, table] of g.slice(1)) st.blkio[table] = blkioFile(dir, file) ?? [];
    return;
  }
}

/** The fs2 driver's statistics of one cgroup v2 directory (readStats on a pure v2 host). */
export function readStatsV2(dir: string): CgroupStats {
  const st = newStats();
  statsV2(dir, st);
  return st;
}

function statsV2(dir: string, st: CgroupStats): void {
  // pids
  if (exists(dir, "pids.current")) {
    st.pids.current = readUint(dir, "pids.current");
    const max = readUint(dir, "pids.max");
    st.pids.limit = max === MAX_U64 ? 0n : max;
  } else {
    st.pids.current = BigInt((tryRead(dir, "cgroup.procs") ?? "").split("\n").filter(Boolean).length);
  }
  // memory
  const memStat = tryRead(dir, "memory.stat");
  if (memStat !== undefined) {
    st.memory.raw = keyValues(memStat);
    st.memory.cache = st.memory.raw.get("file") ?? 0n;
    ignoreMissing(() => {
      st.memory.usage = { ...emptyEntry(), usage: readUint(dir, "memory.current"), limit: readUint(dir, "memory.max") };
      if (exists(dir, "memory.swap.current")) {
        const usage = readUint(dir, "memory.swap.current") + st.memory.usage.usage;
        let limit = readUint(dir, "memory.swap.max");
        if (limit !== MAX_U64) limit = (limit + st.memory.usage.limit) & MAX_U64;
        st.memory.swap = { ...emptyEntry(), usage, limit };
      }
    });
  }
  // io
  const io = tryRead(dir, "io.stat");
  if (io !== undefined) {
    for (const line of io.split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f.length < 2 || !/^\d+:\d+$/.test(f[0]!)) continue;
      const [maj, min] = f[0]!.split(":").map((x) => BigInt(x));
      for (const item of f.slice(1)) {
        const [op, v] = item.split("=");
        const map: Record<string, [string, BlkioTable]> = {
          rbytes: ["Read", "ioServiceBytesRecursive"],
          wbytes: ["Write", "ioServiceBytesRecursive"],
          rios: ["Read", "ioServicedRecursive"],
          wios: ["Write", "ioServicedRecursive"],
        };
        const t = map[op!];
        if (!t || v === undefined) continue;
        st.blkio[t[1]].push({ major: maj!, minor: min!, op: t[0], value: parseCgroupUint(v) });
      }
    }
  }
  // cpu (cpu.stat exists even without the cpu controller enabled)
  const cpu = tryRead(dir, "cpu.stat");
  if (cpu !== undefined) {
    const kv = keyValues(cpu);
    st.cpu.total = (kv.get("usage_usec") ?? 0n) * 1000n;
    st.cpu.user = (kv.get("user_usec") ?? 0n) * 1000n;
    st.cpu.kernel = (kv.get("system_usec") ?? 0n) * 1000n;
    st.cpu.periods = kv.get("nr_periods") ?? 0n;
    st.cpu.throttledPeriods = kv.get("nr_throttled") ?? 0n;
    st.cpu.throttledTime = (kv.get("throttled_usec") ?? 0n) * 1000n;
  }
  // hugetlb
  if (v2Controllers(dir).has("hugetlb")) {
    for (const ps of hugePageSizes()) {
      const cur = tryRead(dir, `hugetlb.${ps}.current`);
      if (cur === undefined) break;
      const events = keyValues(tryRead(dir, `hugetlb.${ps}.events`) ?? "");
      st.hugetlb.set(ps, { usage: parseCgroupUint(cur), max: 0n, failcnt: events.get("max") ?? 0n });
    }
  }
}

// ---- runc's JSON shape (types/events.go, as runc 1.1 encodes it) ---------------------------------

const omit0 = (v: bigint) => (v === 0n ? undefined : v);
const omitEmpty = <T>(a: T[]) => (a.length ? a : undefined);
const sortedMap = <V, W>(m: Map<string, V>, f: (v: V) => W) => Object.fromEntries([...m.keys()].sort().map((k) => [k, f(m.get(k)!)]));

function memoryEntryJSON(e: MemoryEntry) {
  return { limit: e.limit, usage: omit0(e.usage), max: omit0(e.max), failcnt: e.failcnt };
}

/** The "data" of a stats event, keys in Go's order and Go's omitempty applied. */
export function statsData(s: CgroupStats): Record<string, unknown> {
  const blkio: Record<string, unknown> = {};
  for (const [k, list] of Object.entries(s.blkio)) {
    if (list.length) blkio[k] = list.map((e) => ({ major: omit0(e.major), minor: omit0(e.minor), op: e.op || undefined, value: omit0(e.value) }));
  }
  return {
    cpu: {
      usage: {
        total: omit0(s.cpu.total),
        percpu: omitEmpty(s.cpu.percpu),
        percpu_kernel: omitEmpty(s.cpu.percpuKernel),
        percpu_user: omitEmpty(s.cpu.percpuUser),
        kernel: s.cpu.kernel,
        user: s.cpu.user,
      },
      throttling: { periods: omit0(s.cpu.periods), throttledPeriods: omit0(s.cpu.throttledPeriods), throttledTime: omit0(s.cpu.throttledTime) },
    },
    cpuset: {
      cpus: omitEmpty(s.cpuset.cpus),
      cpu_exclusive: s.cpuset.cpuExclusive,
      mems: omitEmpty(s.cpuset.mems),
      mem_hardwall: s.cpuset.memHardwall,
      mem_exclusive: s.cpuset.memExclusive,
      memory_migrate: s.cpuset.memoryMigrate,
      memory_spread_page: s.cpuset.memorySpreadPage,
      memory_spread_slab: s.cpuset.memorySpreadSlab,
      memory_pressure: s.cpuset.memoryPressure,
      sched_load_balance: s.cpuset.schedLoadBalance,
      sched_relax_domain_level: s.cpuset.schedRelaxDomainLevel,
    },
    memory: {
      cache: omit0(s.memory.cache),
      usage: memoryEntryJSON(s.memory.usage),
      swap: memoryEntryJSON(s.memory.swap),
      kernel: memoryEntryJSON(s.memory.kernel),
      kernelTCP: memoryEntryJSON(s.memory.kernelTCP),
      raw: s.memory.raw.size ? sortedMap(s.memory.raw, (v) => v) : undefined,
    },
    pids: { current: omit0(s.pids.current), limit: omit0(s.pids.limit) },
    blkio,
    hugetlb: sortedMap(s.hugetlb, (h) => ({ usage: omit0(h.usage), max: omit0(h.max), failcnt: h.failcnt })),
    intel_rdt: {},
    network_interfaces: null,
  };
}

/** JSON as Go's encoder writes it: bigints as exact numbers, undefined members left out, <>& escaped. */
export function goJSON(v: unknown): string {
  if (v === null || v === undefined) return "null";
  switch (typeof v) {
    case "bigint":
      return v.toString();
    case "number":
      return Number.isFinite(v) ? String(v) : "null";
    case "boolean":
      return String(v);
    case "string":
      return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }
  if (Array.isArray(v)) return "[" + v.map(goJSON).join(",") + "]";
  const parts: string[] = [];
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x !== undefined) parts.push(JSON.stringify(k) + ":" + goJSON(x));
  return "{" + parts.join(",") + "}";
}
