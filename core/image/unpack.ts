// Apply an image layer (a tar stream, maybe gzip/zstd compressed) to a directory, streamed: memory
// does not depend on the layer's size. Semantics follow containerd's archive.Apply:
//
//  - Entry names are cleaned: absolute names are made relative to the target ("/etc/x" is
//    "etc/x"), "a/../b" is "b". A ".." that climbs above the target is refused (containerd clamps
//    it silently; Docker's pkg/archive refuses it as a breakout, and so do we).
//  - Parents are resolved inside the target as if it were "/": a symlink "evil -> /etc" followed by
//    "evil/passwd" writes <target>/etc/passwd, never the host's. The walk is fd-based (openat with
//    O_NOFOLLOW one component at a time, symlinks expanded by hand from the target's fd), so no
//    path string is ever resolved by the kernel from "/". Final components are never followed:
//    files are created with O_CREAT|O_EXCL|O_NOFOLLOW, metadata is set with *at calls and
//    AT_SYMLINK_NOFOLLOW, xattrs through /proc/self/fd/<parent fd>/<name> with lsetxattr.
//  - Missing parents are created (0755; in overlay mode with the mode/owner of the same directory
//    in the lower layers when `parents` is given, like containerd's mkparent).
//  - An existing path is removed and replaced, unless both it and the entry are directories: then
//    the entry's metadata is applied to the existing directory.
//  - Whiteouts: ".wh.<name>" deletes <name>; ".wh..wh..opq" makes its directory opaque. In "plain"
//    mode they delete from the target (an opaque directory loses everything not unpacked from this
//    layer); in "overlay" mode they become overlayfs whiteouts in an upper directory (a 0:0
//    character device; the trusted.overlay.opaque=y xattr). Other ".wh..wh." entries (AUFS
//    metadata) are skipped.
//  - Hardlinks must point inside the target (resolved like names). Devices are created with mknod
//    (skipped with a warning inside a user namespace, as containerd does). Owners (when running as
//    root), modes incl. setuid/setgid/sticky, xattrs (SCHILY.xattr.*; ones the filesystem refuses
//    with ENOTSUP/EPERM are skipped with a warning; trusted.overlay.*/user.overlay.* from the
//    archive are always dropped), and mtimes/atimes (directories' after all their contents).
//  - The layer digest (of the compressed bytes) and the diffID (of the tar stream, including what
//    follows the end-of-archive marker) are computed while streaming and can be verified. A
//    mismatch is only known at the end: the target then holds untrusted data and must be thrown
//    away (containerd's unpacker discards the snapshot the same way). Any error leaves the target
//    partially applied; a regular file whose data could not be written completely is removed.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { O, S_IFBLK, S_IFCHR, S_IFIFO } from "../../ffi/consts";
import { SyscallError } from "../../ffi/errno";
import * as libc from "../../ffi/libc";
import { chunksOf, compressionOfMediaType, CompressionError, decompress, peek, sniffCompression, tap, type Compression } from "./compression";
import { displayName, TarError, TarReader, type TarHeader, type TarTime } from "./tar";

export type ApplyMode = "plain" | "overlay";

export interface ApplyOptions {
  /** The layer's media type; refused if it is not a tar layer. The compression is sniffed from the bytes either way. */
  mediaType?: string;
  /** "plain" (default): whiteouts delete from the target; "overlay": they become overlayfs whiteouts in an upper dir. */
  mode?: ApplyMode;
  /** "sha256:<hex>" (or sha512) the compressed stream must hash to. */
  expectDigest?: string;
  /** "sha256:<hex>" (or sha512) the uncompressed tar must hash to. */
  expectDiffID?: string;
  /**
   * Don't hash the bytes as given: the caller knows their digest already (a content store blob,
   * verified when it was committed; containerd's differ only hashes the tar too). The result's
   * `digest` is then "". Not with expectDigest.
   */
  skipDigest?: boolean;
  /** Apply the archive's uid/gid (default: when running as root). */
  sameOwner?: boolean;
  /** Overlay mode: the lower directories, topmost first, whose directories lend their metadata to parents the layer does not carry. */
  parents?: string[];
  signal?: AbortSignal;
}

export interface ApplyResult {
  /** Digest of the bytes as given (the layer/blob digest); "" with skipDigest. */
  digest: string;
  /** Digest of the uncompressed tar (the diffID). Equal to digest for uncompressed layers. */
  diffID: string;
  /** Bytes as given (compressed size). */
  size: number;
  /** Bytes of the uncompressed tar. */
  uncompressedSize: number;
  compression: Compression;
  /** Entries applied (whiteouts included, skipped entries not). */
  entries: number;
  /** Things skipped or not applied (xattrs the filesystem refused, devices in a user namespace...). */
  warnings: string[];
}

/** A layer that could not be applied; `entry` is the tar entry being handled (a display string). */
export class UnpackError extends Error {
  readonly entry?: string;
  constructor(message: string, entry?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UnpackError";
    this.entry = entry;
  }
}

/** The stream hashed to something else than expected. */
export class DigestMismatchError extends Error {
  readonly expected: string;
  readonly actual: string;
  constructor(what: string, expected: string, actual: string) {
    super(`${what} mismatch: expected ${expected}, got ${actual}`);
    this.name = "DigestMismatchError";
    this.expected = expected;
    this.actual = actual;
  }
}

const WH_PREFIX = ".wh.";
const WH_META = ".wh..wh.";
const WH_OPAQUE = ".wh..wh..opq";
const MAX_LINKS = 255;
const MAX_WARNINGS = 100;

/** Parse "algo:hex"; returns the algorithm for Bun.CryptoHasher. */
function digestAlgo(d: string | undefined, what: string): "sha256" | "sha512" | undefined {
  if (d === undefined) return undefined;
  const m = /^(sha256|sha512):([0-9a-f]+)$/.exec(d);
  if (!m || m[2]!.length !== (m[1] === "sha256" ? 64 : 128)) throw new Error(`invalid ${what} ${JSON.stringify(d)}: want sha256:<64 hex digits>`);
  return m[1] as "sha256" | "sha512";
}

/**
 * Apply a layer to `targetDir` (which must exist). See the file comment for the semantics.
 * Resolves with the layer's digest, diffID and sizes; rejects with UnpackError (an entry could not
 * be applied, or was hostile), TarError (malformed archive), CompressionError, or
 * DigestMismatchError.
 */
export async function applyLayer(
  stream: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  targetDir: string,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  const digestAlg = digestAlgo(opts.expectDigest, "expected digest") ?? "sha256";
  const diffAlg = digestAlgo(opts.expectDiffID, "expected diffID") ?? "sha256";
  if (opts.mediaType !== undefined) compressionOfMediaType(opts.mediaType);
  if (opts.skipDigest && opts.expectDigest !== undefined) throw new Error("applyLayer: skipDigest and expectDigest exclude each other");

  const applier = new Applier(targetDir, opts);
  const blobHash = opts.skipDigest ? undefined : new Bun.CryptoHasher(digestAlg);
  let size = 0;
  let reader: TarReader | undefined;
  let compression: Compression = "none";
  let tarHash: InstanceType<typeof Bun.CryptoHasher> | undefined;
  let uncompressedSize = 0;
  let entries = 0;
  try {
    const { head, stream: raw, cancel } = await peek(chunksOf(stream), 6);
    const sniffed = sniffCompression(head);
    if (sniffed === "bzip2" || sniffed === "xz") {
      await cancel();
      throw new CompressionError(`${sniffed}-compressed layers are not supported`);
    }
    compression = sniffed;
    const counted = tap(raw, (c) => {
      blobHash?.update(c);
      size += c.byteLength;
    });
    tarHash = blobHash && compression === "none" && diffAlg === digestAlg ? undefined : new Bun.CryptoHasher(diffAlg);
    const tarBytes = tap(decompress(counted, compression), (c) => {
      tarHash?.update(c);
      uncompressedSize += c.byteLength;
    });
    reader = new TarReader(tarBytes);
    for (;;) {
      opts.signal?.throwIfAborted();
      const h = await reader.next();
      if (!h) break;
      try {
        if (await applier.apply(h, reader)) entries++;
      } catch (e) {
        throw entryError(e, h);
      }
    }
    applier.finish();
    await reader.finish();
  } catch (e) {
    await reader?.close().catch(() => {});
    throw e;
  } finally {
    applier.close();
  }
  const digest = blobHash ? `${digestAlg}:${blobHash.digest("hex")}` : "";
  const diffID = tarHash ? `${diffAlg}:${tarHash.digest("hex")}` : digest;
  if (opts.expectDigest !== undefined && opts.expectDigest !== digest) throw new DigestMismatchError("layer digest", opts.expectDigest, digest);
  if (opts.expectDiffID !== undefined && opts.expectDiffID !== diffID) throw new DigestMismatchError("layer diffID", opts.expectDiffID, diffID);
  return { digest, diffID, size, uncompressedSize, compression, entries, warnings: applier.warnings };
}

function entryError(e: unknown, h: TarHeader): Error {
  if ((e instanceof UnpackError && e.entry !== undefined) || e instanceof TarError || e instanceof CompressionError || (e instanceof Error && e.name === "AbortError")) return e as Error;
  const name = displayName(h.name);
  const msg = e instanceof Error ? e.message : String(e);
  return new UnpackError(`layer entry ${JSON.stringify(name)}: ${msg}`, name, { cause: e });
}

/** Split a cleaned path; ".." above the top is refused. */
function cleanPath(p: string, what: string): string[] {
  const out: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (!out.length) throw new UnpackError(`${what} ${JSON.stringify(displayName(p))} escapes the target directory`);
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out;
}

const bytes = (s: string) => Buffer.from(s, "latin1");
const procPath = (fd: number, name?: Buffer) => (name ? Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), name]) : `/proc/self/fd/${fd}`);
const code = (e: unknown) => (e instanceof SyscallError ? e.code : undefined);

/** containerd's boundTime: times the kernel cannot take become the epoch. */
function bound(t: TarTime): TarTime {
  return t.sec < 0 || t.sec > 9_223_372_035 ? { sec: 0, nsec: 0 } : t;
}
function later(a: TarTime | undefined, b: TarTime): TarTime {
  if (!a) return b;
  return a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec) ? a : b;
}

let userNS: boolean | undefined;
/** Are we in a user namespace (where mknod of devices cannot work)? containerd skips devices then. */
function inUserNS(): boolean {
  if (userNS === undefined) {
    try {
      const m = readFileSync("/proc/self/uid_map", "utf8").trim().split(/\s+/);
      userNS = !(m[0] === "0" && m[1] === "0" && m[2] === "4294967295");
    } catch {
      userNS = false;
    }
  }
  return userNS;
}

/** rm -rf of dirfd/name, never following symlinks. */
export function removeAt(dirfd: number, name: Buffer): void {
  try {
    libc.unlinkat(dirfd, name, 0);
    return;
  } catch (e) {
    const c = code(e);
    if (c === "ENOENT") return;
    if (c !== "EISDIR" && c !== "EPERM") throw e;
  }
  let fd: number;
  try {
    fd = libc.openat(dirfd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
  } catch (e) {
    if (code(e) === "ENOENT") return;
    throw e;
  }
  try {
    for (const child of readdirSync(procPath(fd) as string, { encoding: "buffer" }) as Buffer[]) removeAt(fd, child);
  } finally {
    libc.close(fd);
  }
  libc.unlinkat(dirfd, name, libc.AT_REMOVEDIR);
}

interface Resolved {
  fd: number;
  /** The resolved path below the target, symlinks expanded, as components. */
  path: string[];
}

interface DirTimes {
  parent: string[];
  base: string;
  atime: TarTime;
  mtime: TarTime;
}

class Applier {
  private rootFd: number;
  private mode: ApplyMode;
  private sameOwner: boolean;
  private parents: number[] = [];
  private signal?: AbortSignal;
  /** Resolved paths written by this layer ("a/b/c"), for opaque directories met later. */
  private unpacked = new Set<string>();
  private dirs: DirTimes[] = [];
  /**
   * The last parent directory resolved, reused by the next entry in the same directory (the common
   * case: saves an openat per path component). Anything this applier removes marks it stale, as a
   * removal is the only way an already resolved path can come to resolve differently.
   */
  private cached?: { key: string; r: Resolved; stale: boolean };
  warnings: string[] = [];

  constructor(target: string, opts: ApplyOptions) {
    this.mode = opts.mode ?? "plain";
    if (this.mode !== "plain" && this.mode !== "overlay") throw new Error(`unknown apply mode ${JSON.stringify(this.mode)}`);
    this.sameOwner = opts.sameOwner ?? process.geteuid?.() === 0;
    this.signal = opts.signal;
    try {
      this.rootFd = libc.open(target, O.PATH | O.DIRECTORY);
    } catch (e) {
      throw new UnpackError(`target directory ${target}: ${e instanceof Error ? e.message : e}`);
    }
    try {
      for (const p of opts.mode === "overlay" ? opts.parents ?? [] : []) this.parents.push(libc.open(p, O.PATH | O.DIRECTORY));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  close(): void {
    if (this.cached) libc.close(this.cached.r.fd);
    this.cached = undefined;
    if (this.rootFd >= 0) libc.close(this.rootFd);
    this.rootFd = -1;
    for (const fd of this.parents.splice(0)) libc.close(fd);
  }

  private warn(msg: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(msg);
    else if (this.warnings.length === MAX_WARNINGS) this.warnings.push("(more warnings not shown)");
  }

  /**
   * Open the directory at `comps` below root (O_PATH), resolving symlinks as if root were "/".
   * Missing directories are created when `create` (for parents), else ENOENT is thrown.
   */
  private resolve(root: number, comps: string[], create: boolean): Resolved {
    const fds: number[] = [];
    const names: string[] = [];
    const todo = comps.slice().reverse(); // a stack: next component last
    let links = 0;
    const top = () => (fds.length ? fds[fds.length - 1]! : root);
    try {
      while (todo.length) {
        const c = todo.pop()!;
        if (c === "" || c === ".") continue;
        if (c === "..") {
          if (fds.length) {
            libc.close(fds.pop()!);
            names.pop();
          }
          continue;
        }
        const cur = top();
        const nb = bytes(c);
        let fd: number;
        try {
          fd = libc.openat(cur, nb, O.PATH | O.DIRECTORY | O.NOFOLLOW);
        } catch (e) {
          if (code(e) === "ENOENT" && create) {
            this.mkparent(cur, nb, [...names, c]);
            fd = libc.openat(cur, nb, O.PATH | O.DIRECTORY | O.NOFOLLOW);
          } else if (code(e) === "ENOTDIR") {
            let target: string;
            try {
              target = libc.readlinkat(cur, nb).toString("latin1");
            } catch {
              throw new UnpackError(`${JSON.stringify(displayName([...names, c].join("/")))} is not a directory`);
            }
            if (++links > MAX_LINKS) throw new UnpackError(`too many levels of symbolic links resolving ${JSON.stringify(displayName(comps.join("/")))}`);
            if (target.startsWith("/")) {
              while (fds.length) libc.close(fds.pop()!);
              names.length = 0;
            }
            for (const t of target.split("/").reverse()) todo.push(t);
            continue;
          } else {
            throw e;
          }
        }
        fds.push(fd);
        names.push(c);
      }
      const fd = fds.length ? fds.pop()! : libc.openat(root, ".", O.PATH | O.DIRECTORY);
      return { fd, path: names };
    } finally {
      for (const fd of fds) libc.close(fd);
    }
  }

  /** Create a missing parent directory: 0755, or the metadata of the same directory in a lower layer. */
  private mkparent(dirfd: number, nb: Buffer, path: string[]): void {
    try {
      libc.mkdirat(dirfd, nb, 0o755);
    } catch (e) {
      if (code(e) === "EEXIST") return;
      throw e;
    }
    let mode = 0o755;
    for (const lower of this.parents) {
      let r: Resolved;
      try {
        r = this.resolve(lower, path, false);
      } catch {
        continue; // missing or not a directory there: try the next lower
      }
      try {
        const st = statSync(procPath(r.fd) as string, { bigint: true });
        mode = Number(st.mode) & 0o7777;
        if (this.sameOwner) libc.fchownat(dirfd, nb, Number(st.uid), Number(st.gid), libc.AT_SYMLINK_NOFOLLOW);
        const t = (ns: bigint): TarTime => ({ sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) });
        this.dirs.push({ parent: path.slice(0, -1), base: path[path.length - 1]!, atime: t(st.atimeNs), mtime: t(st.mtimeNs) });
      } finally {
        libc.close(r.fd);
      }
      break;
    }
    libc.fchmodat(dirfd, nb, mode, libc.AT_SYMLINK_NOFOLLOW);
  }

  private parentOf(comps: string[]): Resolved {
    const key = comps.join("/");
    if (this.cached && !this.cached.stale && this.cached.key === key) return this.cached.r;
    if (this.cached) libc.close(this.cached.r.fd);
    this.cached = undefined;
    const r = this.resolve(this.rootFd, comps, true);
    this.cached = { key, r, stale: false };
    return r;
  }

  private remove(dirfd: number, nb: Buffer): void {
    if (this.cached) this.cached.stale = true;
    removeAt(dirfd, nb);
  }

  private isDirAt(dirfd: number, nb: Buffer): boolean {
    try {
      libc.close(libc.openat(dirfd, nb, O.PATH | O.DIRECTORY | O.NOFOLLOW));
      return true;
    } catch {
      return false;
    }
  }

  /** Run `create`; if the name is taken, remove what is there and run it again. */
  private replace<T>(pfd: number, nb: Buffer, create: () => T): T {
    try {
      return create();
    } catch (e) {
      if (code(e) !== "EEXIST") throw e;
    }
    this.remove(pfd, nb);
    return create();
  }

  /** Handle one entry; false when it was skipped. */
  async apply(h: TarHeader, reader: TarReader): Promise<boolean> {
    const comps = cleanPath(h.name, "path");
    if (!comps.length) return false; // the target itself ("./"), as containerd: ignored
    const base = comps.pop()!;
    if (comps.length ? comps[0]!.startsWith(WH_META) : base.startsWith(WH_META) && base !== WH_OPAQUE) {
      this.warn(`skipped AUFS metadata entry ${JSON.stringify(displayName(h.name))}`);
      return false;
    }
    const parent = this.parentOf(comps);
    if (base.startsWith(WH_PREFIX)) {
      this.whiteout(h, parent, base);
      return true;
    }
    const nb = bytes(base);
    const key = [...parent.path, base].join("/");
    const pfd = parent.fd;
    switch (h.type) {
      case "dir": {
        try {
          libc.mkdirat(pfd, nb, 0o700);
        } catch (e) {
          if (code(e) !== "EEXIST") throw e;
          if (!this.isDirAt(pfd, nb)) {
            this.remove(pfd, nb);
            libc.mkdirat(pfd, nb, 0o700);
          }
        }
        const fd = libc.openat(pfd, nb, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
        try {
          this.meta(h, { fd });
        } finally {
          libc.close(fd);
        }
        this.dirs.push({ parent: parent.path, base, atime: bound(later(h.atime, h.mtime)), mtime: bound(h.mtime) });
        break;
      }
      case "file": {
        const fd = this.replace(pfd, nb, () => libc.openat(pfd, nb, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o600));
        try {
          for await (const piece of reader.body()) {
            this.signal?.throwIfAborted();
            libc.writeFd(fd, piece);
          }
          this.meta(h, { fd });
          this.times(h, { fd });
        } catch (e) {
          libc.close(fd);
          try {
            libc.unlinkat(pfd, nb, 0);
          } catch {}
          throw e;
        }
        libc.close(fd);
        break;
      }
      case "symlink": {
        const target = bytes(h.linkname);
        this.replace(pfd, nb, () => libc.symlinkat(target, pfd, nb));
        this.meta(h, { pfd, nb, symlink: true });
        this.times(h, { pfd, nb });
        break;
      }
      case "link": {
        const tcomps = cleanPath(h.linkname, "hardlink target");
        if (!tcomps.length) throw new UnpackError(`hardlink to the target directory itself`);
        const tbase = tcomps.pop()!;
        const notFound = () => new UnpackError(`hardlink target ${JSON.stringify(displayName(h.linkname))} not found in the target directory`);
        let t: Resolved;
        try {
          t = this.resolve(this.rootFd, tcomps, false);
        } catch (e) {
          throw code(e) === "ENOENT" ? notFound() : e;
        }
        try {
          if ([...t.path, tbase].join("/") === key) break; // a link to itself: nothing to do
          this.replace(pfd, nb, () => libc.linkat(t.fd, bytes(tbase), pfd, nb, 0));
        } catch (e) {
          throw code(e) === "ENOENT" ? notFound() : e;
        } finally {
          libc.close(t.fd);
        }
        let symlink = true;
        try {
          libc.readlinkat(pfd, nb);
        } catch {
          symlink = false;
        }
        this.meta(h, { pfd, nb, symlink });
        this.times(h, { pfd, nb });
        break;
      }
      case "char":
      case "block":
      case "fifo": {
        if (h.type !== "fifo" && inUserNS()) {
          this.warn(`skipped device ${JSON.stringify(displayName(h.name))}: cannot create devices in a user namespace`);
          return false;
        }
        const kind = h.type === "char" ? S_IFCHR : h.type === "block" ? S_IFBLK : S_IFIFO;
        const dev = h.type === "fifo" ? 0n : libc.makedev(h.devmajor, h.devminor);
        this.replace(pfd, nb, () => libc.mknodat(pfd, nb, kind | (h.mode & 0o777), dev));
        this.meta(h, { pfd, nb });
        this.times(h, { pfd, nb });
        break;
      }
      default:
        throw new UnpackError(`unsupported entry type ${JSON.stringify(h.typeflag)}`);
    }
    this.unpacked.add(key);
    return true;
  }

  /** Owner, mode, xattrs, in that order (chown clears setuid bits and security.capability). */
  private meta(h: TarHeader, at: { fd: number } | { pfd: number; nb: Buffer; symlink?: boolean }): void {
    if ("fd" in at) {
      if (this.sameOwner) libc.fchown(at.fd, h.uid, h.gid);
      libc.fchmod(at.fd, h.mode);
    } else {
      if (this.sameOwner) libc.fchownat(at.pfd, at.nb, h.uid, h.gid, libc.AT_SYMLINK_NOFOLLOW);
      if (!at.symlink) libc.fchmodat(at.pfd, at.nb, h.mode, libc.AT_SYMLINK_NOFOLLOW);
    }
    for (const [k, v] of h.xattrs) {
      if (/^(trusted|user)\.overlay\./.test(k)) {
        this.warn(`dropped xattr ${k} of ${JSON.stringify(displayName(h.name))}: overlayfs attributes are not taken from layers`);
        continue;
      }
      try {
        if ("fd" in at) libc.fsetxattr(at.fd, k, v);
        else libc.lsetxattr(procPath(at.pfd, at.nb), k, v);
      } catch (e) {
        const c = code(e);
        if (c !== "EOPNOTSUPP" && c !== "EPERM") throw e;
        this.warn(`ignored xattr ${k} of ${JSON.stringify(displayName(h.name))}: ${c}`);
      }
    }
  }

  private times(h: TarHeader, at: { fd: number } | { pfd: number; nb: Buffer }): void {
    const mtime = bound(h.mtime), atime = bound(later(h.atime, h.mtime));
    if ("fd" in at) libc.futimens(at.fd, atime, mtime);
    else libc.utimensat(at.pfd, at.nb, atime, mtime, libc.AT_SYMLINK_NOFOLLOW);
  }

  private whiteout(h: TarHeader, parent: Resolved, base: string): void {
    if (base === WH_OPAQUE) {
      if (this.mode === "overlay") {
        const fd = libc.openat(parent.fd, ".", O.RDONLY | O.DIRECTORY);
        try {
          libc.fsetxattr(fd, "trusted.overlay.opaque", Buffer.from("y"));
        } finally {
          libc.close(fd);
        }
      } else {
        this.clearOpaque(parent.fd, parent.path.join("/"));
      }
      return;
    }
    const name = base.slice(WH_PREFIX.length);
    if (name === "" || name === "." || name === "..") throw new UnpackError(`invalid whiteout name ${JSON.stringify(displayName(base))}`);
    const nb = bytes(name);
    this.remove(parent.fd, nb);
    if (this.mode === "overlay") {
      libc.mknodat(parent.fd, nb, S_IFCHR, 0n);
      if (this.sameOwner) libc.fchownat(parent.fd, nb, h.uid, h.gid, libc.AT_SYMLINK_NOFOLLOW);
    }
  }

  /** Plain-mode opaque directory: remove everything below it not written by this layer. */
  private clearOpaque(dirfd: number, dirPath: string): void {
    for (const child of readdirSync(procPath(dirfd) as string, { encoding: "buffer" }) as Buffer[]) {
      const name = child.toString("latin1");
      const key = dirPath ? `${dirPath}/${name}` : name;
      if (!this.unpacked.has(key)) {
        this.remove(dirfd, child);
        continue;
      }
      let fd: number;
      try {
        fd = libc.openat(dirfd, child, O.PATH | O.DIRECTORY | O.NOFOLLOW);
      } catch {
        continue; // not a directory
      }
      try {
        this.clearOpaque(fd, key);
      } finally {
        libc.close(fd);
      }
    }
  }

  /** Directory times, after everything below them was written. */
  finish(): void {
    for (const d of this.dirs) {
      let r: Resolved;
      try {
        r = this.resolve(this.rootFd, d.parent, false);
      } catch (e) {
        if (code(e) === "ENOENT" || e instanceof UnpackError) continue; // removed by a later entry
        throw e;
      }
      try {
        libc.utimensat(r.fd, bytes(d.base), d.atime, d.mtime, libc.AT_SYMLINK_NOFOLLOW);
      } catch (e) {
        if (code(e) !== "ENOENT") throw e;
      } finally {
        libc.close(r.fd);
      }
    }
  }
}
