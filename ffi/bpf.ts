// bpf(2) for cgroup device programs (load, attach, query, detach) and eventfd(2) for cgroup v1
// memory notifications. Errors are SyscallError: bpf(BPF_PROG_LOAD): EPERM (operation not permitted).
import { ptr, type FFIFunction } from "bun:ffi";
import { SyscallError } from "./errno";
import { errno, lazyLibc } from "./libc";

const DEFS = {
  syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64"], returns: "i64" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
} satisfies Record<string, FFIFunction>;

const S = lazyLibc(DEFS);

const SYS_BPF: Record<string, number> = { x64: 321, arm64: 280 };

export const BPF_CMD = { PROG_LOAD: 5, PROG_ATTACH: 8, PROG_DETACH: 9, PROG_GET_FD_BY_ID: 13, PROG_QUERY: 16 } as const;
export const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
export const BPF_CGROUP_DEVICE = 6;
export const BPF_F_ALLOW_MULTI = 2;
const CMD_NAMES: Record<number, string> = { 5: "BPF_PROG_LOAD", 8: "BPF_PROG_ATTACH", 9: "BPF_PROG_DETACH", 13: "BPF_PROG_GET_FD_BY_ID", 16: "BPF_PROG_QUERY" };

/** union bpf_attr is 120+ bytes on current kernels; unused trailing bytes must be zero. */
const ATTR_SIZE = 128;

function bpf(cmd: number, attr: Uint8Array, ...what: (string | number)[]): number {
  const nr = SYS_BPF[process.arch];
  if (nr === undefined) throw new Error(`bpf: unsupported architecture ${process.arch}`);
  for (;;) {
    const r = Number(S.syscall(BigInt(nr), BigInt(cmd), BigInt(ptr(attr)), BigInt(attr.byteLength), 0n, 0n));
    if (r >= 0) return r;
    const e = errno();
    if (e === 4 || (e === 11 && cmd === BPF_CMD.PROG_LOAD)) continue; // EINTR; EAGAIN from the verifier
    throw new SyscallError(`bpf(${CMD_NAMES[cmd] ?? cmd})`, what, e);
  }
}

export class BpfLoadError extends SyscallError {
  constructor(errno: number, readonly log: string) {
    super("bpf(BPF_PROG_LOAD)", [], errno);
    if (log.trim()) this.message += `\nverifier log:\n${log.trim()}`;
  }
}

/**
 * Loads a program (insns: 8 bytes per instruction). Returns its fd. On failure the load is retried
 * with the verifier's log enabled and the log is attached to the error.
 */
export function progLoad(progType: number, insns: Uint8Array, license: string, expectedAttachType = 0): number {
  const lic = Buffer.from(license + "\0");
  const attempt = (logBuf: Uint8Array | null): number => {
    const attr = new Uint8Array(ATTR_SIZE);
    const v = new DataView(attr.buffer);
    v.setUint32(0, progType, true);
    v.setUint32(4, insns.byteLength / 8, true);
    v.setBigUint64(8, BigInt(ptr(insns)), true);
    v.setBigUint64(16, BigInt(ptr(lic)), true);
    if (logBuf) {
      v.setUint32(24, 1, true); // log_level
      v.setUint32(28, logBuf.byteLength, true);
      v.setBigUint64(32, BigInt(ptr(logBuf)), true);
    }
    v.setUint32(68, expectedAttachType, true);
    const nr = SYS_BPF[process.arch];
    if (nr === undefined) throw new Error(`bpf: unsupported architecture ${process.arch}`);
    for (;;) {
      const r = Number(S.syscall(BigInt(nr), BigInt(BPF_CMD.PROG_LOAD), BigInt(ptr(attr)), BigInt(ATTR_SIZE), 0n, 0n));
      if (r >= 0) return r;
      const e = errno();
      if (e === 4 || e === 11) continue;
      return -e;
    }
  };
  const r = attempt(null);
  if (r >= 0) return r;
  const log = new Uint8Array(1 << 16);
  const r2 = attempt(log);
  if (r2 >= 0) return r2;
  const end = log.indexOf(0);
  throw new BpfLoadError(-r2, Buffer.from(log.subarray(0, end < 0 ? log.length : end)).toString());
}

export function progAttach(targetFd: number, progFd: number, attachType: number, flags: number, replaceFd = 0): void {
  const attr = new Uint8Array(ATTR_SIZE);
  const v = new DataView(attr.buffer);
  v.setUint32(0, targetFd, true);
  v.setUint32(4, progFd, true);
  v.setUint32(8, attachType, true);
  v.setUint32(12, flags, true);
  v.setUint32(16, replaceFd, true);
  bpf(BPF_CMD.PROG_ATTACH, attr, targetFd, progFd);
}

export function progDetach(targetFd: number, progFd: number, attachType: number): void {
  const attr = new Uint8Array(ATTR_SIZE);
  const v = new DataView(attr.buffer);
  v.setUint32(0, targetFd, true);
  v.setUint32(4, progFd, true);
  v.setUint32(8, attachType, true);
  bpf(BPF_CMD.PROG_DETACH, attr, targetFd, progFd);
}

/** Ids of the programs attached to a cgroup fd for one attach type (not the effective ones). */
export function progQuery(targetFd: number, attachType: number): number[] {
  for (let cap = 64; ; cap *= 4) {
    const ids = new Uint32Array(cap);
    const attr = new Uint8Array(ATTR_SIZE);
    const v = new DataView(attr.buffer);
    v.setUint32(0, targetFd, true);
    v.setUint32(4, attachType, true);
    v.setBigUint64(16, BigInt(ptr(ids)), true);
    v.setUint32(24, cap, true);
    try {
      bpf(BPF_CMD.PROG_QUERY, attr, targetFd);
    } catch (e: any) {
      if (e?.code === "ENOSPC" && cap < 1 << 16) continue;
      throw e;
    }
    const n = v.getUint32(24, true);
    return Array.from(ids.subarray(0, Math.min(n, cap)));
  }
}

export function progGetFdById(id: number): number {
  const attr = new Uint8Array(ATTR_SIZE);
  new DataView(attr.buffer).setUint32(0, id, true);
  return bpf(BPF_CMD.PROG_GET_FD_BY_ID, attr, id);
}

export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

export function eventfd(initval: number, flags: number): number {
  const fd = S.eventfd(initval, flags);
  if (fd < 0) throw new SyscallError("eventfd", [], errno());
  return fd;
}
