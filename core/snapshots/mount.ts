// Applying containerd Mount lists (containerd 1.6 mount/mount.go, mount/mount_linux.go) with our
// own mount(2) binding: fstab-style options become flags + data exactly like mount.Mount.Mount,
// read-only binds get their remount, propagation changes get their own call, and overlay option
// strings too long for one page are shortened by mounting from the lowerdirs' common directory.
// Used by the snapshotters' users: `ctr images mount`, the diff service, container rootfs setup.
import { existsSync, mkdtempSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { chdir, close, fchdir, mount as sysMount, open, statvfsFlags, umount2 } from "../../ffi/libc";
import { SyscallError } from "../../ffi/errno";
import { MS, O } from "../../ffi/consts";
import { pageSize, runningInUserNS } from "./sys";
import type { Mount } from "./types";

export type { Mount };

const EINVAL = 22, EBUSY = 16;

/** mount_linux.go's table: option -> [clear?, flag]. Unknown options (and "defaults") are data. */
const FLAGS: Record<string, [boolean, number]> = {
  async: [true, MS.SYNCHRONOUS],
  atime: [true, MS.NOATIME],
  bind: [false, MS.BIND],
  defaults: [false, 0],
  dev: [true, MS.NODEV],
  diratime: [true, MS.NODIRATIME],
  dirsync: [false, MS.DIRSYNC],
  exec: [true, MS.NOEXEC],
  mand: [false, MS.MANDLOCK],
  noatime: [false, MS.NOATIME],
  nodev: [false, MS.NODEV],
  nodiratime: [false, MS.NODIRATIME],
  noexec: [false, MS.NOEXEC],
  nomand: [true, MS.MANDLOCK],
  norelatime: [true, MS.RELATIME],
  nostrictatime: [true, MS.STRICTATIME],
  nosuid: [false, MS.NOSUID],
  rbind: [false, MS.BIND | MS.REC],
  relatime: [false, MS.RELATIME],
  remount: [false, MS.REMOUNT],
  ro: [false, MS.RDONLY],
  rw: [true, MS.RDONLY],
  strictatime: [false, MS.STRICTATIME],
  suid: [true, MS.NOSUID],
  sync: [false, MS.SYNCHRONOUS],
};

/** parseMountOptions: fstab options -> mount(2) flags and the comma-joined data string. */
export function parseMountOptions(options: string[] = []): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAGS[o];
    if (f && f[1] !== 0) {
      if (f[0]) flags &= ~f[1];
      else flags |= f[1];
    } else {
      data.push(o);
    }
  }
  return { flags, data: data.join(",") };
}

function optionsSize(opts: string[]): number {
  return opts.reduce((n, o) => n + Buffer.byteLength(o), 0);
}

function longestCommonPrefix(strs: string[]): string {
  if (!strs.length) return "";
  let min = strs[0]!, max = strs[0]!;
  for (const s of strs.slice(1)) {
    if (s < min) min = s;
    if (s > max) max = s;
  }
  let i = 0;
  while (i < min.length && min[i] === max[i]) i++;
  return min.slice(0, i);
}

/**
 * compactLowerdirOption: lowerdirs relative to their common directory (one level above the
 * common prefix, as snapshot ids are digits: <root>/snapshots/). Returns [dir, options]; dir ""
 * when nothing could be compacted.
 */
export function compactLowerdirOption(opts: string[]): [string, string[]] {
  const idx = opts.findIndex((o) => o.startsWith("lowerdir="));
  if (idx === -1) return ["", opts];
  const dirs = opts[idx]!.slice("lowerdir=".length).split(":");
  if (dirs.length === 1) return ["", opts];
  let common = longestCommonPrefix(dirs);
  if (common === "") return ["", opts];
  common = dirname(common);
  if (common === "/" || common === ".") return ["", opts];
  common += "/";
  const rel = dirs.map((d) => d.slice(common.length));
  const out = opts.filter((_, i) => i !== idx);
  out.push(`lowerdir=${rel.join(":")}`);
  return [common, out];
}

/** mount(2) with relative paths resolved from `dir` (containerd forks and fchdirs; we chdir and come back). */
function mountAt(dir: string, source: string, target: string, fstype: string, flags: number, data: string): void {
  if (!dir) {
    sysMount(source, target, fstype, flags, data);
    return;
  }
  // target is absolute below, so only the overlay's relative lowerdirs use the new cwd. JS runs on
  // one thread and this is synchronous: nothing else of ours sees the temporary cwd.
  const here = open(".", O.RDONLY | O.DIRECTORY);
  try {
    chdir(dir);
    try {
      sysMount(source, target, fstype, flags, data);
    } finally {
      fchdir(here);
    }
  } finally {
    close(here);
  }
}

/** statvfs flags a bind remount in a user namespace must keep (the kernel locks them). */
function lockedFlags(target: string): number {
  const f = statvfsFlags(target);
  const map: [number, number][] = [[1, MS.RDONLY], [2, MS.NOSUID], [4, MS.NODEV], [8, MS.NOEXEC], [1024, MS.NOATIME], [2048, MS.NODIRATIME], [4096, MS.RELATIME]];
  return map.reduce((acc, [st, ms]) => (f & st ? acc | ms : acc), 0);
}

/** mount.Mount.Mount(target) for Linux. */
export function mountOne(m: Mount, target: string): void {
  if (m.type.startsWith("fuse.") || m.type.startsWith("fuse3.")) {
    throw new Error(`mount type ${m.type} needs a mount helper binary, which bunker does not run`);
  }
  let chdirTo = "";
  let options = m.options ?? [];
  const abs = target.startsWith("/") ? target : join(process.cwd(), target);
  // Avoid hitting the one-page limit of mount(2)'s data (512 bytes of slack, like containerd).
  if (m.type === "overlay" && optionsSize(options) >= pageSize() - 512) {
    [chdirTo, options] = compactLowerdirOption(options);
  }
  const { flags, data } = parseMountOptions(options);
  if (Buffer.byteLength(data) > pageSize()) throw new Error("mount options is too long");

  const ptypes = MS.SHARED | MS.PRIVATE | MS.SLAVE | MS.UNBINDABLE;
  const oflags = flags & ~ptypes;
  // A remount with changed data needs the full call (moby/moby#34077).
  if ((flags & MS.REMOUNT) === 0 || data !== "") {
    mountAt(chdirTo, m.source, abs, m.type, oflags, data);
  }
  if (flags & ptypes) {
    const pflags = ptypes | MS.REC | MS.SILENT;
    sysMount("", abs, "", flags & pflags, "");
  }
  const bro = MS.BIND | MS.RDONLY;
  if ((oflags & bro) === bro) {
    // The kernel ignores MS_RDONLY on the bind itself: remount the bind read-only.
    const unpriv = runningInUserNS() ? lockedFlags(abs) : 0;
    sysMount("", abs, "", oflags | MS.REMOUNT | unpriv, "");
  }
}

/** mount.All: every mount onto the same target, in order (later ones stack on earlier ones). */
export function mountAll(mounts: Mount[], target: string): void {
  for (const m of mounts) mountOne(m, target);
}

/** One umount2 with containerd's EBUSY retries (50 x 50 ms); false when target is not a mount point. */
function unmountOnce(target: string, flags: number): boolean {
  for (let i = 0; i < 50; i++) {
    try {
      umount2(target, flags);
      return true;
    } catch (e) {
      const n = (e as SyscallError).errno;
      if (n === EINVAL) return false;
      if (n !== EBUSY) throw e;
      Bun.sleepSync(50);
    }
  }
  throw new Error(`failed to unmount target ${target}: device or resource busy`);
}

/** mount.Unmount: umount2; EINVAL (not a mount point) is no error, EBUSY is retried. */
export function unmount(target: string, flags = 0): void {
  unmountOnce(target, flags);
}

/**
 * mount.UnmountAll: unmount `target` until nothing is mounted there any more (EINVAL), undoing a
 * stack of mounts. No-op for "" and for a target that does not exist.
 */
export function unmountAll(target: string, flags = 0): void {
  if (!target || !existsSync(target)) return;
  while (unmountOnce(target, flags));
}

/**
 * mount.WithTempMount: mounts on a fresh temp dir for the duration of fn, then unmounted and the
 * dir removed (rmdir only: a failed unmount must never delete the mounted files).
 */
export async function withTempMount<T>(mounts: Mount[], fn: (root: string) => Promise<T> | T, base = tmpdir()): Promise<T> {
  const root = mkdtempSync(join(base, "containerd-mount"));
  let result: T;
  try {
    mountAll(mounts, root);
    result = await fn(root);
  } finally {
    try {
      unmountAll(root, 0);
    } finally {
      try {
        rmdirSync(root);
      } catch {}
    }
  }
  return result;
}
