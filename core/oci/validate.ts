// config.json validation before runc acts on a bundle: a hand-written, typed walk over the shapes
// in runtime-spec's JSON schema, then the semantic checks runc's libcontainer validator makes.
// Failing here names the offending field; failing later would surface as an opaque EINVAL from
// deep inside container init.
//
// Two deliberate leniencies follow Go's decoder, which runc uses: unknown fields are ignored (so
// newer specs still load), and `null` means "absent". Nulls are deleted in place and the Go zero
// values our types rely on (process.user, user.uid, user.gid) are filled in, so the returned Spec
// is the same object as the input.

import { readFileSync } from "node:fs";
import { CAPABILITIES, RLIMITS } from "../../ffi/consts";
import {
  HOOK_KINDS,
  type Capabilities,
  type Device,
  type DeviceRule,
  type Hook,
  type Hooks,
  type IdMapping,
  type Linux,
  type Mount,
  type Namespace,
  type Process,
  type Resources,
  type Rlimit,
  type Spec,
  type User,
} from "./types";

export class ConfigError extends Error {
  /** `field` is a JSON-path-like name (`linux.namespaces[2].type`); absent for file-level errors. */
  constructor(
    readonly detail: string,
    readonly field?: string,
  ) {
    super(`config.json: ${field ? `${field}: ` : ""}${detail}`);
    this.name = "ConfigError";
  }
}

export interface ValidateOptions {
  /** For `runc create`/`run`: a process and a root are then mandatory, as runc demands. */
  create?: boolean;
}

// ---- primitives -------------------------------------------------------------------------------

type Obj = Record<string, unknown>;
/** Checks `v`, found at field `at`, and returns it typed; throws ConfigError naming `at`. */
type Check<T> = (v: unknown, at: string) => T;

function fail(at: string, detail: string): never {
  throw new ConfigError(detail, at || undefined);
}

const child = (at: string, key: string): string => (at ? `${at}.${key}` : key);
const item = (at: string, i: number): string => `${at}[${i}]`;
// Sysctl names contain dots, so map entries use a quoted index to stay unambiguous.
const entry = (at: string, key: string): string => `${at}[${JSON.stringify(key)}]`;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

const object: Check<Obj> = (v, at) => (isObj(v) ? v : fail(at, "must be an object"));
const string: Check<string> = (v, at) => (typeof v === "string" ? v : fail(at, "must be a string"));
const boolean: Check<boolean> = (v, at) => (typeof v === "boolean" ? v : fail(at, "must be a boolean"));

/** For sub-objects this module does not inspect: the cgroup and seccomp code own their values. */
const opaque = <T>(): Check<T> => object as Check<T>;

function integer(min: number, max: number, description: string): Check<number> {
  return (v, at) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? v : fail(at, `must be ${description}`);
}

const uint32 = integer(0, 0xffff_ffff, "a non-negative 32-bit integer");
// 2^64-1 (RLIM_INFINITY) is not representable in a double; any non-negative integer is accepted.
const uint64 = integer(0, Infinity, "a non-negative integer");
const int64 = integer(-Infinity, Infinity, "an integer");
const positive = integer(1, Infinity, "a positive integer");
const oomScoreAdj = integer(-1000, 1000, "an integer between -1000 and 1000");
const fileMode = integer(0, 0o7777, "a file mode between 0 and 4095 (07777)");

/** A string satisfying `ok`; `problem` words the failure for the value found. */
function stringThat(ok: (s: string) => boolean, problem: (s: string) => string): Check<string> {
  return (v, at) => {
    const s = string(v, at);
    return ok(s) ? s : fail(at, problem(s));
  };
}

const absPath = stringThat((s) => s.startsWith("/"), () => "must be an absolute path");

function oneOf<T extends string>(allowed: readonly T[], what: string): Check<T> {
  const set = new Set<string>(allowed);
  return stringThat((s) => set.has(s), (s) => `unknown ${what} ${JSON.stringify(s)}`) as Check<T>;
}

function arrayOf<T>(check: Check<T>): Check<T[]> {
  return (v, at) => {
    if (!Array.isArray(v)) fail(at, "must be an array");
    v.forEach((x, i) => check(x, item(at, i)));
    return v as T[];
  };
}

function mapOf<T>(check: Check<T>): Check<Record<string, T>> {
  return (v, at) => {
    for (const [k, x] of Object.entries(object(v, at))) check(x, entry(at, k));
    return v as Record<string, T>;
  };
}

const strings = arrayOf(string);
const stringMap = mapOf(string);

/** Rejects a second element with the same `key`, naming the later one. */
function unique<T>(check: Check<T[]>, key: keyof T & string, what: string): Check<T[]> {
  return (v, at) => {
    const seen = new Set<unknown>();
    check(v, at).forEach((x, i) => {
      if (seen.has(x[key])) fail(child(item(at, i), key), `duplicate ${what} ${JSON.stringify(x[key])}`);
      seen.add(x[key]);
    });
    return v as T[];
  };
}

/** Runs `check`, then a cross-field rule on the typed result. */
function refine<T>(check: Check<T>, rule: (x: T, at: string) => void): Check<T> {
  return (v, at) => {
    const x = check(v, at);
    rule(x, at);
    return x;
  };
}

/**
 * An object check with one entry per field of T, so the compiler flags a field added to types.ts
 * but forgotten here. `zero` supplies the Go zero value for fields our types treat as present.
 */
function record<T>(fields: { [K in keyof T]-?: Check<T[K]> }, required: (keyof T & string)[] = [], zero: Partial<T> = {}): Check<T> {
  return (v, at) => {
    const o = object(v, at);
    for (const key of Object.keys(fields) as (keyof T & string)[]) {
      if (o[key] === null) delete o[key];
      if (o[key] === undefined && key in zero) o[key] = structuredClone(zero[key]);
      if (o[key] !== undefined) fields[key](o[key], child(at, key));
      else if (required.includes(key)) fail(child(at, key), "is required");
    }
    return o as T;
  };
}

// ---- shapes -----------------------------------------------------------------------------------

const NAMESPACE_TYPES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"] as const;
const ROOTFS_PROPAGATIONS = ["", "shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"];

const idMapping = record<IdMapping>({ containerID: uint32, hostID: uint32, size: uint32 }, ["containerID", "hostID", "size"]);
const idMappings = arrayOf(idMapping);

const ociVersion = stringThat((s) => s.startsWith("1."), (s) => `unsupported version ${JSON.stringify(s)}, want 1.x`);

// The same rules runc's init applies before execve, caught before anything is created.
const envVar: Check<string> = (v, at) => {
  const s = string(v, at);
  const eq = s.indexOf("=");
  if (eq < 0) fail(at, `must have the form KEY=VALUE, got ${JSON.stringify(s)}`);
  if (eq === 0) fail(at, "variable name must not be empty");
  if (s.includes("\0")) fail(at, "must not contain a NUL byte");
  return s;
};

const args: Check<string[]> = (v, at) =>
  Array.isArray(v) && v.length > 0 ? strings(v, at) : fail(at, "must be a non-empty array of strings");

// runc ignores (with a warning) capability names this kernel or runtime doesn't know, so that a
// config written for a newer kernel still runs; only the shape is checked here.
const capabilitySet = strings;
const capabilities = record<Capabilities>({
  bounding: capabilitySet,
  effective: capabilitySet,
  inheritable: capabilitySet,
  permitted: capabilitySet,
  ambient: capabilitySet,
});

// setrlimit(2) would fail with EINVAL in the container's init instead.
const rlimit = refine(
  record<Rlimit>({ type: oneOf(Object.keys(RLIMITS), "rlimit type"), hard: uint64, soft: uint64 }, ["type", "hard", "soft"]),
  (r, at) => {
    if (r.soft > r.hard) fail(child(at, "soft"), `must not exceed hard (${r.hard})`);
  },
);

const user = record<User>(
  { uid: uint32, gid: uint32, umask: uint32, additionalGids: arrayOf(uint32), username: string },
  [],
  { uid: 0, gid: 0 },
);

const processShape = record<Process>(
  {
    terminal: boolean,
    consoleSize: record<{ height: number; width: number }>({ height: uint32, width: uint32 }, ["height", "width"]),
    user,
    args,
    commandLine: string,
    env: arrayOf(envVar),
    cwd: absPath,
    capabilities,
    rlimits: unique(arrayOf(rlimit), "type", "rlimit"),
    noNewPrivileges: boolean,
    apparmorProfile: string,
    oomScoreAdj,
    selinuxLabel: string,
  },
  // runc refuses to start a process without args (`args must not be empty`) or cwd.
  ["args", "cwd"],
  { user: { uid: 0, gid: 0 } },
);

// runc 1.1 still accepts relative destinations (resolving them against "/" with a warning) for
// old bundles, although the spec wants absolute ones; only an empty one is meaningless.
const mountDestination = stringThat((s) => s !== "", () => "must not be empty");

const mount = record<Mount>(
  { destination: mountDestination, type: string, source: string, options: strings, uidMappings: idMappings, gidMappings: idMappings },
  ["destination"],
);

const hook = record<Hook>({ path: absPath, args: strings, env: strings, timeout: positive }, ["path"]);
const hooks = record<Hooks>(Object.fromEntries(HOOK_KINDS.map((kind) => [kind, arrayOf(hook)])) as Record<keyof Hooks, Check<Hook[]>>);

const namespace = record<Namespace>({ type: oneOf(NAMESPACE_TYPES, "namespace type"), path: absPath }, ["type"]);

// Only "p" (fifo) has no device number; mknod(2) needs one for the others.
const device = refine(
  record<Device>(
    { type: oneOf(["c", "b", "u", "p"], "device type"), path: absPath, major: int64, minor: int64, fileMode, uid: uint32, gid: uint32 },
    ["type", "path"],
  ),
  (d, at) => {
    if (d.type === "p") return;
    for (const key of ["major", "minor"] as const)
      if (d[key] === undefined) fail(child(at, key), `is required for device type "${d.type}"`);
  },
);

const deviceAccess = stringThat((s) => /^[rwm]*$/.test(s), () => `must be a combination of "r", "w" and "m"`);

const deviceRule = record<DeviceRule>(
  { allow: boolean, type: oneOf(["a", "b", "c"], "device rule type"), major: int64, minor: int64, access: deviceAccess },
  ["allow"],
);

const resources = record<Resources>({
  devices: arrayOf(deviceRule),
  memory: opaque(),
  cpu: opaque(),
  pids: opaque(),
  blockIO: opaque(),
  hugepageLimits: arrayOf(opaque()),
  unified: stringMap,
});

const linux = record<Linux>({
  namespaces: unique(arrayOf(namespace), "type", "namespace"),
  uidMappings: idMappings,
  gidMappings: idMappings,
  devices: arrayOf(device),
  cgroupsPath: string,
  resources,
  rootfsPropagation: oneOf(ROOTFS_PROPAGATIONS, "rootfs propagation"),
  maskedPaths: arrayOf(absPath),
  readonlyPaths: arrayOf(absPath),
  sysctl: stringMap,
  seccomp: opaque(),
  mountLabel: string,
  personality: opaque(),
});

const root = record<NonNullable<Spec["root"]>>({ path: string, readonly: boolean }, ["path"]);

function specShape(opts: ValidateOptions): Check<Spec> {
  return record<Spec>(
    {
      ociVersion,
      process: processShape,
      root,
      hostname: string,
      domainname: string,
      mounts: arrayOf(mount),
      hooks,
      annotations: stringMap,
      linux,
    },
    opts.create ? ["ociVersion", "process", "root"] : ["ociVersion"],
  );
}

// ---- semantics (runc's libcontainer/configs/validate) -------------------------------------------

// /proc/sys is only partly namespaced; these are the IPC-namespaced entries runc lets through.
const IPC_SYSCTLS = new Set([
  "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
  "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
]);

/** Why `name` may not be set given the namespaces, or undefined when it may. */
function sysctlProblem(name: string, has: (ns: string) => boolean): string | undefined {
  const q = JSON.stringify(name);
  if (IPC_SYSCTLS.has(name) || name.startsWith("fs.mqueue.")) {
    return has("ipc") ? undefined : `sysctl ${q} is not allowed in the hosts ipc namespace`;
  }
  // A joined network namespace (one with a path) might still be the host's; runc stats it at
  // create time, which a static check cannot do.
  if (name.startsWith("net.")) return has("network") ? undefined : `sysctl ${q} not allowed in host network namespace`;
  if (has("uts") && name === "kernel.domainname") return undefined;
  if (has("uts") && name === "kernel.hostname") return `sysctl ${q} is not allowed as it conflicts with the OCI "hostname" field`;
  return `sysctl ${q} is not in a separate kernel namespace`;
}

function checkSemantics(spec: Spec): void {
  const l = spec.linux ?? {};
  const types = new Set((l.namespaces ?? []).map((ns) => ns.type));
  const newUserNs = (l.namespaces ?? []).some((ns) => ns.type === "user" && !ns.path);
  const has = (ns: string): boolean => types.has(ns);

  for (const field of ["hostname", "domainname"] as const) {
    if (spec[field] && !has("uts")) fail(field, `unable to set ${field} without a private UTS namespace`);
  }
  for (const field of ["maskedPaths", "readonlyPaths"] as const) {
    if (l[field]?.length && !has("mount")) fail(child("linux", field), "unable to restrict sys entries without a private MNT namespace");
  }
  for (const [field, kind] of [["uidMappings", "uid"], ["gidMappings", "gid"]] as const) {
    if (newUserNs && !l[field]?.length) fail(child("linux", field), `user namespaces enabled, but no ${kind} mappings found`);
    if (!has("user") && l[field]?.length) {
      fail(child("linux", field), "user namespace mappings specified, but USER namespace isn't enabled in the config");
    }
  }
  for (const name of Object.keys(l.sysctl ?? {})) {
    // runc accepts "net/ipv4/ip_forward" as well as "net.ipv4.ip_forward".
    const problem = sysctlProblem(name.replace(/\//g, "."), has);
    if (problem) fail(entry("linux.sysctl", name), problem);
  }
}

// ---- entry points -------------------------------------------------------------------------------

/** Validates a parsed config.json, returning it typed (nulls removed, Go zero values filled in). */
export function validateSpec(raw: unknown, opts: ValidateOptions = {}): Spec {
  if (!isObj(raw)) fail("", "must be a JSON object");
  const spec = specShape(opts)(raw, "");
  checkSemantics(spec);
  return spec;
}

// Go-style wording for the errno values a read of config.json can realistically meet.
const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  ENOTDIR: "not a directory",
  ELOOP: "too many levels of symbolic links",
  EISDIR: "is a directory",
};

function readConfig(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Go opens a directory fine and only the read fails, hence the verb.
    const op = err.code === "EISDIR" ? "read" : "open";
    throw new ConfigError(`${op} ${path}: ${ERRNO_TEXT[err.code ?? ""] ?? err.message}`);
  }
}

/** Reads, parses and validates a bundle's config.json. */
export function parseConfigFile(path: string, opts: ValidateOptions = {}): Spec {
  const text = readConfig(path);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`invalid JSON: ${(e as Error).message}`);
  }
  return validateSpec(raw, opts);
}

/** Validates a process.json (`runc exec --process`): the same rules as config.json's process. */
export function validateProcess(raw: unknown, file = "process.json"): Process {
  try {
    if (!isObj(raw)) fail("", "must be a JSON object");
    return processShape(raw, "");
  } catch (e) {
    if (e instanceof ConfigError) throw new Error(`${file}: ${e.field ? `${e.field}: ` : ""}${e.detail}`);
    throw e;
  }
}
