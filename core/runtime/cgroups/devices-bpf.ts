// Device access rules for cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE, generated
// from the OCI rules and attached to the container's cgroup (as runc's devicefilter, after crun).
//
// The rules first go through an emulation of cgroup v1's devices controller (runc's
// devices.Emulator): the result is a default action (allow or deny everything) plus exceptions that
// all have the opposite action, so the program's blocks never depend on each other's order.
import { O, RLIMITS } from "../../../ffi/consts";
import * as libc from "../../../ffi/libc";
import { BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_PROG_TYPE_CGROUP_DEVICE, progAttach, progDetach, progGetFdById, progLoad, progQuery } from "../../../ffi/bpf";
import type { DeviceRule } from "../../oci/types";

// Access bits as struct bpf_cgroup_dev_ctx encodes them (BPF_DEVCG_ACC_*).
const ACC_MKNOD = 1, ACC_READ = 2, ACC_WRITE = 4, ACC_ALL = 7;
const DEV_BLOCK = 1, DEV_CHAR = 2;

export interface CleanRule {
  type: "b" | "c";
  /** -1: any. */
  major: number;
  minor: number;
  /** ACC_* bits. */
  access: number;
  allow: boolean;
}

function parseAccess(s: string | undefined): number {
  let a = 0;
  for (const ch of s || "rwm") {
    if (ch === "r") a |= ACC_READ;
    else if (ch === "w") a |= ACC_WRITE;
    else if (ch === "m") a |= ACC_MKNOD;
    else throw new Error(`invalid device access "${s}": unknown mode ${JSON.stringify(ch)}`);
  }
  return a;
}

export function accessString(a: number): string {
  return (a & ACC_READ ? "r" : "") + (a & ACC_WRITE ? "w" : "") + (a & ACC_MKNOD ? "m" : "");
}

const num = (n: number | null | undefined) => (n == null || n < 0 ? -1 : n);

/** The v1 devices-controller emulation: default action plus the exceptions to it. */
export class DeviceEmulator {
  defaultAllow = false;
  private rules = new Map<string, { type: "b" | "c"; major: number; minor: number; access: number }>();

  apply(r: DeviceRule): void {
    const type = r.type || "a";
    if (type !== "a" && type !== "b" && type !== "c") throw new Error(`invalid device rule type "${type}"`);
    const access = parseAccess(r.access);
    if (type === "a") {
      // "a" resets everything: allow-all (black-list mode) or deny-all (white-list mode).
      this.defaultAllow = r.allow;
      this.rules.clear();
      return;
    }
    const meta = { type: type as "b" | "c", major: num(r.major), minor: num(r.minor) };
    if (r.allow === this.defaultAllow) this.remove(meta, access);
    else this.add(meta, access);
  }

  private key(m: { type: string; major: number; minor: number }): string {
    return `${m.type} ${m.major}:${m.minor}`;
  }

  private add(meta: { type: "b" | "c"; major: number; minor: number }, access: number): void {
    const k = this.key(meta);
    const old = this.rules.get(k);
    this.rules.set(k, { ...meta, access: access | (old?.access ?? 0) });
  }

  private remove(meta: { type: "b" | "c"; major: number; minor: number }, access: number): void {
    // Punching a hole in a wildcard exception is silently ignored by cgroup v1; refuse it instead.
    for (const partial of [
      { type: meta.type, major: -1, minor: meta.minor },
      { type: meta.type, major: meta.major, minor: -1 },
      { type: meta.type, major: -1, minor: -1 },
    ]) {
      if (partial.major === meta.major && partial.minor === meta.minor) continue;
      const p = this.rules.get(this.key(partial));
      if (p && p.access & access) {
        throw new Error(`requested rule [${this.key(meta)} ${accessString(access)}] not supported by devices cgroupv1 (cannot punch hole in existing wildcard rule [${this.key(partial)} ${accessString(p.access)}])`);
      }
    }
    const k = this.key(meta);
    const old = this.rules.get(k);
    if (!old) return;
    const left = old.access & ~access;
    if (left) this.rules.set(k, { ...old, access: left });
    else this.rules.delete(k);
  }

  /** Exceptions sorted by (major, minor, type), as runc orders them. */
  exceptions(): CleanRule[] {
    return [...this.rules.values()]
      .sort((a, b) => a.major - b.major || a.minor - b.minor || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0))
      .map((r) => ({ ...r, allow: !this.defaultAllow }));
  }
}

// --- eBPF assembly ----------------------------------------------------------------------------

const OP = {
  LDXW: 0x61, // BPF_LDX | BPF_MEM | BPF_W
  AND32_K: 0x54, // BPF_ALU | BPF_AND | BPF_K
  RSH32_K: 0x74, // BPF_ALU | BPF_RSH | BPF_K
  MOV32_K: 0xb4, // BPF_ALU | BPF_MOV | BPF_K
  MOV32_X: 0xbc, // BPF_ALU | BPF_MOV | BPF_X
  JNE_K: 0x55, // BPF_JMP | BPF_JNE | BPF_K
  JNE_X: 0x5d, // BPF_JMP | BPF_JNE | BPF_X
  EXIT: 0x95, // BPF_JMP | BPF_EXIT
} as const;

interface Insn {
  op: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** For jumps: jump to the end of the current block. */
  toNext?: boolean;
}

const ins = (op: number, dst: number, src: number, off: number, imm: number, toNext = false): Insn => ({ op, dst, src, off, imm, toNext });

/** The program for a rule list (OCI order: the config's rules, then the always-allowed ones). */
export function deviceFilterProgram(rules: DeviceRule[]): { insns: Insn[]; defaultAllow: boolean; exceptions: CleanRule[] } {
  const emu = new DeviceEmulator();
  for (const r of rules) emu.apply(r);
  const exceptions = emu.exceptions();
  // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: R1 points at it.
  const insns: Insn[] = [
    ins(OP.LDXW, 2, 1, 0, 0), // r2 = access_type
    ins(OP.AND32_K, 2, 0, 0, 0xffff), // r2 &= 0xffff: device type
    ins(OP.LDXW, 3, 1, 0, 0), // r3 = access_type
    ins(OP.RSH32_K, 3, 0, 0, 16), // r3 >>= 16: access
    ins(OP.LDXW, 4, 1, 4, 0), // r4 = major
    ins(OP.LDXW, 5, 1, 8, 0), // r5 = minor
  ];
  for (const r of exceptions) {
    const block: Insn[] = [ins(OP.JNE_K, 2, 0, 0, r.type === "c" ? DEV_CHAR : DEV_BLOCK, true)];
    if (r.access !== ACC_ALL) {
      // if ((access & allowed) != access) goto next
      block.push(ins(OP.MOV32_X, 1, 3, 0, 0), ins(OP.AND32_K, 1, 0, 0, r.access), ins(OP.JNE_X, 1, 3, 0, 0, true));
    }
    if (r.major >= 0) block.push(ins(OP.JNE_K, 4, 0, 0, r.major | 0, true));
    if (r.minor >= 0) block.push(ins(OP.JNE_K, 5, 0, 0, r.minor | 0, true));
    block.push(ins(OP.MOV32_K, 0, 0, 0, r.allow ? 1 : 0), ins(OP.EXIT, 0, 0, 0, 0));
    block.forEach((b, i) => {
      if (b.toNext) b.off = block.length - i - 1;
    });
    insns.push(...block);
  }
  insns.push(ins(OP.MOV32_K, 0, 0, 0, emu.defaultAllow ? 1 : 0), ins(OP.EXIT, 0, 0, 0, 0));
  return { insns, defaultAllow: emu.defaultAllow, exceptions };
}

export function encodeProgram(insns: Insn[]): Uint8Array {
  const buf = new Uint8Array(insns.length * 8);
  const v = new DataView(buf.buffer);
  insns.forEach((x, i) => {
    v.setUint8(i * 8, x.op);
    v.setUint8(i * 8 + 1, ((x.src & 0xf) << 4) | (x.dst & 0xf));
    v.setInt16(i * 8 + 2, x.off, true);
    v.setInt32(i * 8 + 4, x.imm, true);
  });
  return buf;
}

export const DEVICE_FILTER_LICENSE = "Apache";

/**
 * Loads the device filter for `rules` and attaches it to the cgroup v2 directory `dir`
 * (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI); programs attached there before are detached afterwards,
 * so there is no moment without a filter.
 */
export function attachDeviceFilter(dir: string, rules: DeviceRule[]): void {
  const { insns } = deviceFilterProgram(rules);
  const code = encodeProgram(insns);
  const dirFd = libc.open(dir, O.RDONLY | O.DIRECTORY);
  try {
    let old: number[] = [];
    try {
      old = progQuery(dirFd, BPF_CGROUP_DEVICE);
    } catch {}
    let progFd: number;
    try {
      progFd = progLoad(BPF_PROG_TYPE_CGROUP_DEVICE, code, DEVICE_FILTER_LICENSE);
    } catch (e: any) {
      // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
      if (e?.code !== "EPERM") throw e;
      try {
        libc.setrlimit(RLIMITS.RLIMIT_MEMLOCK!, libc.RLIM_INFINITY, libc.RLIM_INFINITY, "RLIMIT_MEMLOCK");
      } catch {
        throw e;
      }
      progFd = progLoad(BPF_PROG_TYPE_CGROUP_DEVICE, code, DEVICE_FILTER_LICENSE);
    }
    try {
      try {
        progAttach(dirFd, progFd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI);
      } catch (e: any) {
        throw new Error(`failed to call BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) on ${dir}: ${e?.message ?? e}`);
      }
      for (const id of old) {
        let fd: number;
        try {
          fd = progGetFdById(id);
        } catch {
          continue; // gone meanwhile
        }
        try {
          progDetach(dirFd, fd, BPF_CGROUP_DEVICE);
        } catch (e: any) {
          throw new Error(`failed to call BPF_PROG_DETACH (BPF_CGROUP_DEVICE) on old filter program: ${e?.message ?? e}`);
        } finally {
          libc.close(fd);
        }
      }
    } finally {
      // The attachment holds its own reference to the program.
      libc.close(progFd);
    }
  } finally {
    libc.close(dirFd);
  }
}

/** Ids of the device programs attached to a cgroup v2 directory (for tests and diagnostics). */
export function attachedDeviceFilters(dir: string): number[] {
  const dirFd = libc.open(dir, O.RDONLY | O.DIRECTORY);
  try {
    return progQuery(dirFd, BPF_CGROUP_DEVICE);
  } finally {
    libc.close(dirFd);
  }
}
