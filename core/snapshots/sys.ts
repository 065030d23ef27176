// libc calls the snapshotters need beyond ffi/libc.ts: extended attributes, nanosecond timestamps on
// symlinks, statfs and the page size. Bound lazily (one trampoline per symbol, on first use).
import { type FFIFunction } from "bun:ffi";
import { readFileSync } from "node:fs";
import { cstr, errno, lazyLibc } from "../../ffi/libc";
import { SyscallError } from "../../ffi/errno";

const DEFS = {
  llistxattr: { args: ["ptr", "ptr", "u64"], returns: "i64" },
  lgetxattr: { args: ["ptr", "ptr", "ptr", "u64"], returns: "i64" },
  lsetxattr: { args: ["ptr", "ptr", "ptr", "u64", "i32"], returns: "i32" },
  utimensat: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
  statfs: { args: ["ptr", "ptr"], returns: "i32" },
  getpagesize: { args: [], returns: "i32" },
  mknod: { args: ["ptr", "u32", "u64"], returns: "i32" },
} satisfies Record<string, FFIFunction>;

const S = lazyLibc(DEFS);

/** Paths may be Buffers: file names in layers need not be UTF-8. */
export type PathArg = string | Buffer;
function cpath(p: PathArg): Buffer {
  return typeof p === "string" ? cstr(p) : Buffer.concat([p, Buffer.from([0])]);
}
const shown = (p: PathArg) => (typeof p === "string" ? p : p.toString());

const ERANGE = 34, ENODATA = 61, EOPNOTSUPP = 95, EINTR = 4;
const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;

/** The names of a path's extended attributes (not following symlinks); [] when the fs has none. */
export function llistxattr(path: PathArg): string[] {
  const p = cpath(path);
  for (let size = 1024; ; ) {
    const buf = Buffer.alloc(size);
    const n = Number(S.llistxattr(p, buf, BigInt(size)));
    if (n >= 0) return buf.subarray(0, n).toString("latin1").split("\0").filter(Boolean);
    const e = errno();
    if (e === EOPNOTSUPP) return [];
    if (e === EINTR) continue;
    if (e !== ERANGE) throw new SyscallError("llistxattr", [shown(path)], e);
    const need = Number(S.llistxattr(p, null, 0n));
    size = Math.max(need, size * 2);
  }
}

/** The value of one extended attribute, or undefined when it is not set. */
export function lgetxattr(path: PathArg, name: string): Buffer | undefined {
  const p = cpath(path), nm = Buffer.from(name + "\0", "latin1");
  for (let size = 4096; ; ) {
    const buf = Buffer.alloc(size);
    const n = Number(S.lgetxattr(p, nm, buf, BigInt(size)));
    if (n >= 0) return buf.subarray(0, n);
    const e = errno();
    if (e === ENODATA) return undefined;
    if (e === EINTR) continue;
    if (e !== ERANGE) throw new SyscallError("lgetxattr", [shown(path), name], e);
    const need = Number(S.lgetxattr(p, nm, null, 0n));
    size = Math.max(need, size * 2);
  }
}

export function lsetxattr(path: PathArg, name: string, value: Uint8Array, flags = 0): void {
  const v = value.byteLength ? value : Buffer.alloc(1);
  if (S.lsetxattr(cpath(path), Buffer.from(name + "\0", "latin1"), v, BigInt(value.byteLength), flags) < 0) {
    throw new SyscallError("lsetxattr", [shown(path), name], errno());
  }
}

/** utimensat(AT_FDCWD, path, [atime, mtime], AT_SYMLINK_NOFOLLOW) with nanosecond times. */
export function lutimesNs(path: PathArg, atimeNs: bigint, mtimeNs: bigint): void {
  const ts = new BigInt64Array([atimeNs / 1_000_000_000n, atimeNs % 1_000_000_000n, mtimeNs / 1_000_000_000n, mtimeNs % 1_000_000_000n]);
  if (S.utimensat(AT_FDCWD, cpath(path), ts, AT_SYMLINK_NOFOLLOW) < 0) throw new SyscallError("utimensat", [shown(path)], errno());
}

/** mknod(2): devices, FIFOs and sockets; mode carries the file type bits. */
export function mknodAt(path: PathArg, mode: number, dev: bigint): void {
  if (S.mknod(cpath(path), mode, dev) < 0) throw new SyscallError("mknod", [shown(path)], errno());
}

/** statfs(2) f_type (the filesystem's magic number). */
export function statfsType(path: string): number {
  const b = new BigInt64Array(15); // struct statfs is 120 bytes on x86_64 and aarch64; f_type first
  if (S.statfs(cstr(path), b) < 0) throw new SyscallError("statfs", [path], errno());
  return Number(b[0]! & 0xffffffffn);
}
export const TMPFS_MAGIC = 0x01021994;

let pagesize = 0;
export function pageSize(): number {
  return (pagesize ||= S.getpagesize());
}

/** Are we in a user namespace other than the initial one (uid_map is not the identity over 2^32-1)? */
let inUserNS: boolean | undefined;
export function runningInUserNS(): boolean {
  if (inUserNS !== undefined) return inUserNS;
  try {
    const text = readFileSync("/proc/self/uid_map", "utf8").trim();
    const f = text.split(/\s+/);
    inUserNS = !(f.length === 3 && f[0] === "0" && f[1] === "0" && f[2] === "4294967295");
  } catch {
    inUserNS = false;
  }
  return inUserNS;
}
