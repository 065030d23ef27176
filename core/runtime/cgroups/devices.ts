// Device access rules: the config's rules, then the devices every container gets (as runc's
// AllowedDevices). cgroup v1 has the devices controller's files; pure cgroup v2 gets an eBPF program
// (devices-bpf.ts) attached to the container's cgroup.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DeviceRule } from "../../oci/types";
import { attachDeviceFilter } from "./devices-bpf";
import { hierarchies, isPureV2 } from "./layout";

export const ALWAYS_ALLOWED: DeviceRule[] = [
  { allow: true, type: "c", major: null, minor: null, access: "m" },
  { allow: true, type: "b", major: null, minor: null, access: "m" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, // null
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" }, // random
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" }, // full
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" }, // tty
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }, // zero
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" }, // urandom
  { allow: true, type: "c", major: 136, minor: null, access: "rwm" }, // /dev/pts/*
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" }, // ptmx
  { allow: true, type: "c", major: 10, minor: 200, access: "rwm" }, // tun
];

function ruleLine(r: DeviceRule): string {
  const type = r.type || "a";
  if (type === "a" && r.major == null && r.minor == null) return "a";
  const num = (n: number | null | undefined) => (n == null || n < 0 ? "*" : String(n));
  return `${type} ${num(r.major)}:${num(r.minor)} ${r.access || "rwm"}`;
}

export function applyDeviceRules(dirs: string[], rules: DeviceRule[] = []): void {
  if (isPureV2()) {
    const mount = hierarchies()[0]!.mount;
    const v2 = dirs.find((d) => d === mount || d.startsWith(mount.endsWith("/") ? mount : mount + "/"));
    if (v2) attachDeviceFilter(v2, [...rules, ...ALWAYS_ALLOWED]);
    return;
  }
  const dir = dirs.find((d) => d.includes("/devices/"));
  if (!dir || !existsSync(join(dir, "devices.allow"))) return;
  for (const r of [...rules, ...ALWAYS_ALLOWED]) {
    const file = join(dir, r.allow ? "devices.allow" : "devices.deny");
    try {
      writeFileSync(file, ruleLine(r));
    } catch (e: any) {
      throw new Error(`write ${file} "${ruleLine(r)}": ${e.code ?? e.message}`);
    }
  }
}
