// File system helpers of the snapshotters (continuity's fs.CopyDir and fs.DiskUsage, and a removal
// that never walks into a mount), pure Bun: node:fs plus a few libc calls.
import {
  closeSync,
  copyFileSync,
  constants as FS,
  fsyncSync,
  linkSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  chmodSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  type BigIntStats,
} from "node:fs";
import { copyFile } from "node:fs/promises";
import { umount2 } from "../../ffi/libc";
import { MNT_DETACH } from "../../ffi/consts";
import { lgetxattr, llistxattr, lsetxattr, lutimesNs, mknodAt } from "./sys";
import type { Usage } from "./types";

const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000;

/** Let the event loop run now and then during long walks (the daemon keeps serving). */
const YIELD_EVERY = 512;
const tick = () => new Promise<void>((r) => setImmediate(r));

/** Paths are Buffers inside the walks: names in layers need not be valid UTF-8. */
const SLASH = Buffer.from("/");
const bjoin = (dir: Buffer, name: Buffer) => Buffer.concat([dir, SLASH, name]);
const names = (dir: Buffer) => (readdirSync(dir, { encoding: "buffer" }) as Buffer[]).sort(Buffer.compare);

/**
 * continuity fs.DiskUsage: every inode under root (root included, symlinks not followed) once,
 * size = sum of st_blocks * 512.
 */
export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  let n = 0;
  const visit = async (p: Buffer): Promise<void> => {
    const st = lstatSync(p, { bigint: true });
    const k = `${st.dev}:${st.ino}`;
    if (!seen.has(k)) {
      seen.add(k);
      size += Number(st.blocks) * 512;
    }
    if (++n % YIELD_EVERY === 0) await tick();
    if ((Number(st.mode) & S_IFMT) === S_IFDIR) {
      for (const name of names(p)) await visit(bjoin(p, name));
    }
  };
  await visit(Buffer.from(root));
  return { size, inodes: seen.size };
}

export interface CopyOptions {
  /** Called when an xattr can't be copied (e.g. security.* on some kernels); default: ignore. */
  onXattrError?: (path: Buffer, name: string, err: unknown) => void;
}

/**
 * continuity fs.CopyDir(dst, src): a full copy of src's tree into dst (created if missing) that
 * keeps owners, modes (setuid/setgid/sticky too), nanosecond atime/mtime, extended attributes,
 * symlinks, hard links (within the tree), devices, FIFOs and sockets. Directories get their
 * metadata after their contents are in, so their mtime survives. Regular files go through
 * copy_file_range (copyFileSync).
 */
export async function copyDir(dst: string, src: string, opts: CopyOptions = {}): Promise<void> {
  const links = new Map<string, Buffer>(); // "dev:ino" -> first copy, for non-directories with nlink > 1
  let n = 0;
  const top = lstatSync(src, { bigint: true });
  if ((Number(top.mode) & S_IFMT) !== S_IFDIR) throw new Error(`source is not directory: ${src}`);

  const copyTree = async (d: Buffer, s: Buffer, st: BigIntStats): Promise<void> => {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (!lstatSync(d).isDirectory()) throw new Error(`cannot copy to non-directory: ${d}`);
    }
    for (const name of names(s)) {
      if (++n % YIELD_EVERY === 0) await tick();
      const sp = bjoin(s, name), dp = bjoin(d, name);
      const cst = lstatSync(sp, { bigint: true });
      const mode = Number(cst.mode);
      const fmt = mode & S_IFMT;
      if (fmt === S_IFDIR) {
        await copyTree(dp, sp, cst);
        continue;
      }
      if (cst.nlink > 1n) {
        const k = `${cst.dev}:${cst.ino}`;
        const first = links.get(k);
        if (first !== undefined) {
          linkSync(first, dp); // same inode: owner, mode, times and xattrs come along
          continue;
        }
        links.set(k, dp);
      }
      if (fmt === S_IFREG) {
        if (cst.size > 64n << 20n) await copyFile(sp, dp, FS.COPYFILE_EXCL);
        else copyFileSync(sp, dp, FS.COPYFILE_EXCL);
      } else if (fmt === S_IFLNK) {
        symlinkSync(readlinkSync(sp, "buffer"), dp);
      } else {
        // character/block devices, FIFOs, sockets
        mknodAt(dp, mode, cst.rdev);
      }
      copyInfo(dp, cst);
      copyXattrs(dp, sp, opts);
    }
    copyInfo(d, st);
    copyXattrs(d, s, opts);
  };
  await copyTree(Buffer.from(dst), Buffer.from(src), top);
}

/** Owner, then mode (chown clears setuid bits), then times; symlinks keep their mode. */
function copyInfo(p: Buffer, st: BigIntStats): void {
  const uid = Number(st.uid), gid = Number(st.gid);
  try {
    lchownSync(p, uid, gid);
  } catch (e) {
    // Some file systems refuse a no-op chown (NFS): fine when the owner is already right.
    const cur = lstatSync(p);
    if (!((e as NodeJS.ErrnoException).code === "EPERM" && cur.uid === uid && cur.gid === gid)) throw e;
  }
  const mode = Number(st.mode);
  if ((mode & S_IFMT) !== S_IFLNK) chmodSync(p, mode & 0o7777);
  lutimesNs(p, st.atimeNs, st.mtimeNs);
}

function copyXattrs(dst: Buffer, src: Buffer, opts: CopyOptions): void {
  let names: string[];
  try {
    names = llistxattr(src);
  } catch (e) {
    opts.onXattrError?.(src, "", e);
    return;
  }
  for (const name of names) {
    try {
      const v = lgetxattr(src, name);
      if (v !== undefined) lsetxattr(dst, name, v);
    } catch (e) {
      opts.onXattrError?.(dst, name, e);
    }
  }
}

/** fsync a directory, so renames and creations in it are on disk. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, FS.O_RDONLY | FS.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Mounts below a path, and removal that never deletes through a mount.

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points (in our mount namespace) at or below dir, deepest first. */
export function mountPointsUnder(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length < 5) continue;
    const mp = unescapeMount(f[4]!);
    if (mp === dir || mp.startsWith(dir.endsWith("/") ? dir : dir + "/")) out.add(mp);
  }
  return [...out].sort((a, b) => b.split("/").length - a.split("/").length || b.length - a.length);
}

/** Detach every mount at or below dir (deepest first). */
export function detachMountsUnder(dir: string): void {
  for (let round = 0; round < 8; round++) {
    const mps = mountPointsUnder(dir);
    if (!mps.length) return;
    for (const mp of mps) {
      try {
        umount2(mp, MNT_DETACH);
      } catch {}
    }
  }
  const left = mountPointsUnder(dir);
  if (left.length) throw new Error(`cannot remove ${dir}: still mounted: ${left.join(", ")}`);
}

/**
 * os.RemoveAll, except that whatever is mounted inside is detached first: a bind or overlay mount
 * left at a snapshot path must never make us delete the files it shows.
 */
export function removeAll(path: string): void {
  detachMountsUnder(path);
  rmSync(path, { recursive: true, force: true, maxRetries: 3 });
}
