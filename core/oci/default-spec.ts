// The config.json that `runc spec` and `runc spec --rootless` write (runc 1.1.5,
// libcontainer/specconv/example.go). specJSON keeps object insertion order, while Go's encoder
// emits struct fields in declaration order, so every object here is built in the field order of
// runtime-spec's specs-go structs; that is what makes the output byte-identical to runc's.

import type { Linux, Mount, Namespace, Spec } from "./types";

/** The runtime-spec version runc 1.1.5 stamps into the files it generates. */
export const OCI_VERSION = "1.0.2-dev";

const DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

const MASKED_PATHS = [
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
  "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
];

const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/** Builds a mount in specs-go field order; options are left out when absent, as omitempty does. */
function mount(destination: string, type: string, source: string, options?: string[]): Mount {
  return options ? { destination, type, source, options } : { destination, type, source };
}

function defaultMounts(): Mount[] {
  return [
    mount("/proc", "proc", "proc"),
    mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
    mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
    mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
    mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
    mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
    mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
  ];
}

const namespaces = (...types: string[]): Namespace[] => types.map((type) => ({ type }));

/** `runc spec`: a fresh, mutable copy each call. */
export function defaultSpec(): Spec {
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ["sh"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
      cwd: "/",
      // No inheritable set since runc 1.1.2 (CVE-2022-29162): inheritable caps let programs with
      // file capabilities gain them across execve.
      capabilities: {
        bounding: [...DEFAULT_CAPS],
        effective: [...DEFAULT_CAPS],
        permitted: [...DEFAULT_CAPS],
        ambient: [...DEFAULT_CAPS],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "runc",
    mounts: defaultMounts(),
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: namespaces("pid", "network", "ipc", "uts", "mount"),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}

/**
 * Mirrors runc's specconv.ToRootless: an unprivileged user can neither mount a fresh sysfs
 * (no network namespace of its own) nor map gid 5 for devpts, so /sys becomes a read-only rbind
 * and uid=/gid= mount options go.
 */
function rootlessMount(m: Mount): Mount {
  if (m.destination === "/sys") return mount("/sys", "none", "/sys", ["rbind", "nosuid", "noexec", "nodev", "ro"]);
  const { options, ...rest } = m;
  const kept = options?.filter((o) => !o.startsWith("uid=") && !o.startsWith("gid="));
  return kept?.length ? { ...rest, options: kept } : rest;
}

export interface HostIds {
  uid: number;
  gid: number;
}

/** The effective ids runc maps to root, as it reads them with os.Geteuid/os.Getegid. */
function effectiveIds(): HostIds {
  return { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 };
}

/**
 * `runc spec --rootless`. The calling user's effective uid/gid become container root, so the
 * result depends on who runs it unless `ids` is given. Cgroup resources are dropped because an
 * unprivileged user usually cannot write to the cgroup tree.
 */
export function rootlessSpec(ids: HostIds = effectiveIds()): Spec {
  const spec = defaultSpec();
  const base = spec.linux!;
  // Rebuilt rather than patched so uidMappings/gidMappings precede namespaces, as in specs-go.
  const linux: Linux = {
    uidMappings: [{ containerID: 0, hostID: ids.uid, size: 1 }],
    gidMappings: [{ containerID: 0, hostID: ids.gid, size: 1 }],
    namespaces: [...base.namespaces!.filter((ns) => ns.type !== "network" && ns.type !== "user"), { type: "user" }],
    maskedPaths: base.maskedPaths,
    readonlyPaths: base.readonlyPaths,
  };
  return { ...spec, mounts: spec.mounts!.map(rootlessMount), linux };
}

// Go's encoder escapes what JSON.stringify leaves alone (HTML-sensitive characters and the JS
// line separators) and spells \b and \f as \u escapes. Escape pairs are matched as whole tokens
// so the "b" in an escaped backslash followed by "b" is never mistaken for \b.
const GO_ESCAPES: Record<string, string> = {
  "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029",
  "\\b": "\\u0008", "\\f": "\\u000c",
};

function goEscape(json: string): string {
  return json.replace(/\\.|[<>&\u2028\u2029]/g, (tok) => GO_ESCAPES[tok] ?? tok);
}

/**
 * Serialises like runc's json.MarshalIndent(spec, "", "\t"): tab indentation, Go's escaping and
 * no trailing newline. Key order is the object's own, so build specs in specs-go field order.
 */
export function specJSON(spec: Spec): string {
  return goEscape(JSON.stringify(spec, null, "\t"));
}
