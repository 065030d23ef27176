// `runc update`: change a running (or paused, or created) container's resource limits. The request
// (flags, or linux.resources JSON from -r FILE / -r -) is merged into the resources saved at create
// time, the whole merged set is written to the cgroup again (some limits depend on each other:
// memory vs memory+swap, CFS quota vs period), and the saved state is updated on success. Flags,
// value syntax, messages and cgroup writes are runc 1.1's; the saved state keeps the values an update
// did not name (runc 1.1 stores 0, "leave as is", for them; later runc merges as we do).
import { readFileSync } from "node:fs";
import type { Resources } from "../oci/types";
import { applyResources } from "./cgroups/resources";
import { StateDir } from "./state";

export { UPDATE_ABOUT, UPDATE_FLAGS, UPDATE_USAGE } from "./resource-flags";

// ---- value parsing as Go does it ---------------------------------------------------------------

const U64_MAX = (1n << 64n) - 1n;
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);

/** strconv.ParseUint(s, 10, 64), with its error text. */
export function parseUint(s: string): number {
  if (!/^\d+$/.test(s)) throw new Error(`strconv.ParseUint: parsing ${JSON.stringify(s)}: invalid syntax`);
  if (BigInt(s) > U64_MAX) throw new Error(`strconv.ParseUint: parsing ${JSON.stringify(s)}: value out of range`);
  return Number(s);
}

/** strconv.ParseInt(s, 10, 64), with its error text. */
export function parseInt64(s: string): number {
  if (!/^[+-]?\d+$/.test(s)) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`);
  const v = BigInt(s);
  if (v > I64_MAX || v < I64_MIN) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: value out of range`);
  return Number(s);
}

/** go-units RAMInBytes: "512m", "1g", "64KiB", "100" (binary multiples, case-insensitive). */
export function ramInBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (!m) throw new Error(`invalid size: '${s}'`);
  if (!/^\d+(\.\d+)?$/.test(m[1]!)) throw new Error(`strconv.ParseFloat: parsing ${JSON.stringify(m[1])}: invalid syntax`);
  const mul: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.trunc(Number(m[1]) * (m[2] ? mul[m[2].toLowerCase()]! : 1));
}

// ---- the request ------------------------------------------------------------------------------

/**
 * The update request from `runc update`'s parsed flags: with --resources/-r, the linux.resources
 * JSON from that file ("-": standard input) and nothing else; otherwise the individual flags. Fields
 * present in the result are the ones to change.
 */
export function parseUpdateFlags(flags: Record<string, any>, readStdin: () => string = () => readFileSync(0, "utf8")): Resources {
  const r: Resources = {};
  if (flags.resources) {
    const text = flags.resources === "-" ? readStdin() : readResourcesFile(String(flags.resources));
    const parsed = parseResourcesJSON(text);
    checkRdt(flags);
    return parsed;
  }
  const mem: NonNullable<Resources["memory"]> = {};
  const cpu: NonNullable<Resources["cpu"]> = {};
  const weight = Number(flags["blkio-weight"] ?? 0);
  if (weight) r.blockIO = { weight: weight & 0xffff };
  if (flags["cpuset-cpus"]) cpu.cpus = String(flags["cpuset-cpus"]);
  if (flags["cpuset-mems"]) cpu.mems = String(flags["cpuset-mems"]);
  const field = <T>(opt: string, parse: (s: string) => T, set: (v: T) => void) => {
    const val = flags[opt];
    if (val === undefined || val === "") return;
    try {
      set(parse(String(val)));
    } catch (e: any) {
      throw new Error(`invalid value for ${opt}: ${e?.message ?? e}`);
    }
  };
  field("cpu-period", parseUint, (v) => (cpu.period = v));
  field("cpu-rt-period", parseUint, (v) => (cpu.realtimePeriod = v));
  field("cpu-share", parseUint, (v) => (cpu.shares = v));
  field("cpu-quota", parseInt64, (v) => (cpu.quota = v));
  field("cpu-rt-runtime", parseInt64, (v) => (cpu.realtimeRuntime = v));
  const bytes = (s: string) => (s === "-1" ? -1 : ramInBytes(s));
  field("memory", bytes, (v) => (mem.limit = v));
  field("memory-swap", bytes, (v) => (mem.swap = v));
  field("memory-reservation", bytes, (v) => (mem.reservation = v));
  field("kernel-memory", bytes, (v) => (mem.kernel = v));
  field("kernel-memory-tcp", bytes, (v) => (mem.kernelTCP = v));
  if (Object.keys(mem).length) r.memory = mem;
  if (Object.keys(cpu).length) r.cpu = cpu;
  const pids = Number(flags["pids-limit"] ?? 0);
  if (pids) r.pids = { limit: pids };
  checkRdt(flags);
  return r;
}

/** Intel RDT (resctrl) is not supported: its schemata flags fail as on a host without it. */
function checkRdt(flags: Record<string, any>): void {
  if (flags["l3-cache-schema"]) throw new Error("Intel RDT/CAT: l3 cache schema is not enabled");
  if (flags["mem-bw-schema"]) throw new Error("Intel RDT/MBA: memory bandwidth schema is not enabled");
}

function readResourcesFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e: any) {
    const msg: Record<string, string> = { ENOENT: "no such file or directory", EACCES: "permission denied", EISDIR: "is a directory" };
    throw new Error(`open ${path}: ${msg[e?.code] ?? e?.code ?? e?.message}`);
  }
}

// The Go types json.Decoder fills for specs.LinuxResources; mismatches are reported as Go does.
type Kind = "int64" | "uint64" | "uint16" | "uint32" | "string" | "bool" | "any" | "stringMap" | { array: Kind; goType: string } | Struct;
interface Struct {
  name: string;
  goType: string;
  fields: Record<string, Kind>;
}
const S = (name: string, fields: Record<string, Kind>): Struct => ({ name, goType: "specs." + name, fields });
const throttle = { array: S("LinuxThrottleDevice", { major: "int64", minor: "int64", rate: "uint64" }), goType: "[]specs.LinuxThrottleDevice" } as const;
const RESOURCES: Struct = S("LinuxResources", {
  devices: { array: S("LinuxDeviceCgroup", { allow: "bool", type: "string", major: "int64", minor: "int64", access: "string" }), goType: "[]specs.LinuxDeviceCgroup" },
  memory: S("LinuxMemory", { limit: "int64", reservation: "int64", swap: "int64", kernel: "int64", kernelTCP: "int64", swappiness: "uint64", disableOOMKiller: "bool", useHierarchy: "bool" }),
  cpu: S("LinuxCPU", { shares: "uint64", quota: "int64", period: "uint64", realtimeRuntime: "int64", realtimePeriod: "uint64", cpus: "string", mems: "string", idle: "int64" }),
  pids: S("LinuxPids", { limit: "int64" }),
  blockIO: S("LinuxBlockIO", {
    weight: "uint16",
    leafWeight: "uint16",
    weightDevice: { array: S("LinuxWeightDevice", { major: "int64", minor: "int64", weight: "uint16", leafWeight: "uint16" }), goType: "[]specs.LinuxWeightDevice" },
    throttleReadBpsDevice: throttle,
    throttleWriteBpsDevice: throttle,
    throttleReadIOPSDevice: throttle,
    throttleWriteIOPSDevice: throttle,
  }),
  hugepageLimits: { array: S("LinuxHugepageLimit", { pageSize: "string", limit: "uint64" }), goType: "[]specs.LinuxHugepageLimit" },
  network: "any",
  rdma: "any",
  unified: "stringMap",
});

function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (typeof v === "boolean") return "bool";
  return typeof v; // string, number, object
}

/** Decodes linux.resources JSON as runc's json.Decoder would, with Go's error messages. */
export function parseResourcesJSON(text: string): Resources {
  if (!text.trim()) throw new Error("EOF");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e: any) {
    throw new Error(/end|EOF/i.test(String(e?.message)) ? "unexpected EOF" : `invalid character in JSON input: ${e?.message ?? e}`);
  }
  if (v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new Error(`json: cannot unmarshal ${jsonKind(v)} into Go value of type specs.LinuxResources`);
  return decode(v, RESOURCES, RESOURCES.name, "") as Resources;
}

/**
 * Checks a decoded JSON value against the Go type and returns it with nulls dropped and keys in
 * their canonical spelling (Go matches field names case-insensitively; unknown fields are ignored).
 * Errors are Go's: the struct holding the field and the field's full path.
 */
function decode(v: unknown, kind: Kind, struct: string, path: string): unknown {
  if (v === null) return undefined;
  const mismatch = (goType: string, num = false): never => {
    const what = num ? `number ${String(v)}` : jsonKind(v);
    throw new Error(`json: cannot unmarshal ${what} into Go struct field ${struct}.${path} of type ${goType}`);
  };
  if (typeof kind === "string") {
    switch (kind) {
      case "any":
        return v;
      case "string":
        if (typeof v !== "string") mismatch("string");
        return v;
      case "bool":
        if (typeof v !== "boolean") mismatch("bool");
        return v;
      case "stringMap": {
        if (typeof v !== "object" || Array.isArray(v)) mismatch("map[string]string");
        const out: Record<string, string> = {};
        for (const [k, x] of Object.entries(v as object)) {
          const d = decode(x, "string", struct, path ? `${path}.${k}` : k);
          if (d !== undefined) out[k] = d as string;
        }
        return out;
      }
      default: {
        if (typeof v !== "number") mismatch(kind);
        const n = v as number;
        const ok = Number.isInteger(n) && (kind === "int64" ? true : n >= 0 && (kind === "uint16" ? n <= 0xffff : kind === "uint32" ? n <= 0xffffffff : true));
        if (!ok) mismatch(kind, true);
        return n;
      }
    }
  }
  if ("array" in kind) {
    if (!Array.isArray(v)) mismatch(kind.goType);
    return (v as unknown[]).map((x) => decode(x, kind.array, struct, path)).filter((x) => x !== undefined);
  }
  if (typeof v !== "object" || Array.isArray(v)) mismatch(kind.goType);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const name = kind.fields[k] !== undefined ? k : Object.keys(kind.fields).find((f) => f.toLowerCase() === k.toLowerCase());
    if (name === undefined) continue;
    const d = decode(x, kind.fields[name]!, kind.name, path ? `${path}.${name}` : name);
    if (d !== undefined) out[name] = d;
  }
  return out;
}

// ---- applying ------------------------------------------------------------------------------------

/** The saved resources with the request merged in, as runc's update merges into its config. */
export function mergeResources(cur: Resources, r: Resources): Resources {
  const out: Resources = structuredClone(cur ?? {});
  if (r.blockIO?.weight != null) out.blockIO = { ...out.blockIO, weight: r.blockIO.weight };
  const c = r.cpu ?? {};
  const cpu = { ...out.cpu };
  if (c.period != null) cpu.period = c.period;
  if (c.quota != null) cpu.quota = c.quota;
  if (c.shares != null) cpu.shares = c.shares;
  if (c.realtimePeriod != null) cpu.realtimePeriod = c.realtimePeriod;
  if (c.realtimeRuntime != null) cpu.realtimeRuntime = c.realtimeRuntime;
  if (c.cpus) cpu.cpus = c.cpus;
  if (c.mems) cpu.mems = c.mems;
  if (c.idle != null) cpu.idle = c.idle;
  if (Object.keys(cpu).length) out.cpu = cpu;
  const m = r.memory ?? {};
  const mem = { ...out.memory };
  if (m.limit != null) {
    mem.limit = m.limit;
    // As cgroup v1 behaves: "no memory limit" with swap not given lifts the swap limit as well.
    if (m.limit === -1 && m.swap == null) mem.swap = -1;
  }
  if (m.reservation != null) mem.reservation = m.reservation;
  if (m.swap != null) mem.swap = m.swap;
  delete mem.kernel;
  delete mem.kernelTCP;
  if (Object.keys(mem).length) out.memory = mem;
  else delete out.memory;
  if (r.pids?.limit) out.pids = { limit: r.pids.limit };
  if (r.unified && Object.keys(r.unified).length) out.unified = { ...out.unified, ...r.unified };
  return out;
}

/**
 * Applies an update request to a container and saves the merged resources in its state
 * (state.config.linux.resources), holding the container's lock. Fails with "container not running"
 * for a stopped container. On a failed write the previous resources are written back (a warning if
 * that fails too), as runc does.
 */
export async function update(sd: StateDir, id: string, r: Resources, warn: (msg: string) => void = () => {}): Promise<void> {
  await sd.withLock(id, async () => {
    const st = sd.load(id);
    if (sd.status(st) === "stopped") throw new Error("container not running");
    if (r.memory && (r.memory.kernel != null || r.memory.kernelTCP != null)) warn("Kernel memory settings are ignored and will be removed");
    const old: Resources = st.config.linux?.resources ?? {};
    const merged = mergeResources(old, r);
    const { devices: _devices, ...toApply } = merged; // runc update never touches device rules
    try {
      applyResources(st.cgroupPaths, toApply);
    } catch (e: any) {
      const { devices: _d, ...back } = old;
      try {
        applyResources(st.cgroupPaths, back);
      } catch (e2: any) {
        warn(`Setting back cgroup configs failed due to error: ${e2?.message ?? e2}, your state.json and actual configs might be inconsistent.`);
      }
      throw e;
    }
    st.config.linux ??= {};
    st.config.linux.resources = merged;
    sd.save(st);
  });
}
