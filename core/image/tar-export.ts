// The reverse of unpack: a layer tar from a directory tree (export, commit). Streamed: file data is
// read in 256 KiB pieces as the consumer pulls, so memory does not depend on the tree's size.
//
//   writeTar(dir, out)            every entry below dir (dir itself is not an entry)
//   diffDirs(lowerDirs, upperDir) an overlayfs upper dir as a layer: whiteout devices (0:0 char)
//                                 become ".wh.<name>" (mode 0, owner 0, the time of the diff,
//                                 as containerd writes deletions), opaque dirs (trusted.overlay.opaque=y)
//                                 get a ".wh..wh..opq" entry right after their own entry
//
// The output is deterministic for a given tree: entries in depth-first order with each
// directory's children sorted by name (bytes), ustar headers with PAX records only where needed,
// mtimes rounded to whole seconds and no atime/ctime (what Go's tar.Writer does by default),
// empty uname/gname. Hardlinked files: the first path met is written as the file, later ones as
// hardlinks to it. Sockets are skipped. Only the security.capability xattr is written unless
// `xattrs: "all"` (containerd and Docker write only that one).
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import { lgetxattr, llistxattr } from "../../ffi/libc";
import { compress, type Compression } from "./compression";
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarEntryType, type TarWriteHeader } from "./tar";

export interface WriteTarOptions {
  /** Which xattrs to carry: "capability" (default: security.capability only) or "all" (but overlayfs' own). */
  xattrs?: "capability" | "all";
  /** Compress the output. The returned diffID is always of the uncompressed tar. */
  compression?: Compression;
  signal?: AbortSignal;
}

export interface DiffOptions extends WriteTarOptions {
  /** Write whiteouts only for paths that exist in some lower dir (default true when lowerDirs is not empty). */
  pruneWhiteouts?: boolean;
}

export interface WriteTarResult {
  /** sha256 of the uncompressed tar (the diffID). */
  diffID: string;
  /** sha256 of the bytes written (equal to diffID when not compressed). */
  digest: string;
  /** Bytes written. */
  size: number;
  /** Bytes of the uncompressed tar. */
  uncompressedSize: number;
}

/** Where the tar goes: a WritableStream, or a function called with each chunk (awaited). */
export type TarSink = WritableStream<Uint8Array> | ((chunk: Uint8Array) => unknown);

const CHUNK = 256 * 1024;
const pathOf = (dir: string, rel: string) => (rel ? Buffer.concat([Buffer.from(dir + "/"), Buffer.from(rel, "latin1")]) : Buffer.from(dir));

function major(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}
function minor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}

type Stat = ReturnType<typeof lstatSync> & { ino: bigint; dev: bigint; rdev: bigint; mode: bigint; uid: bigint; gid: bigint; size: bigint; nlink: bigint; mtimeNs: bigint };

function typeOf(st: Stat): TarEntryType | "socket" | "whiteout" {
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return st.rdev === 0n ? "whiteout" : "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "socket";
}

function xattrsOf(p: Buffer, which: "capability" | "all"): Map<string, Uint8Array> | undefined {
  const out = new Map<string, Uint8Array>();
  if (which === "capability") {
    const v = lgetxattr(p, "security.capability");
    if (v) out.set("security.capability", v);
  } else {
    for (const k of llistxattr(p).sort()) {
      if (/^(trusted|user)\.overlay\./.test(k)) continue;
      const v = lgetxattr(p, k);
      if (v) out.set(k, v);
    }
  }
  return out.size ? out : undefined;
}

interface Walk {
  root: string;
  xattrs: "capability" | "all";
  /** overlay upper: whiteout devices and opaque dirs are translated. */
  overlay: boolean;
  /** For pruning whiteouts: does rel exist in a lower dir? */
  inLower?: (rel: string) => boolean;
  /** The time written for whiteouts (containerd's: when the diff started). */
  whiteoutTime?: { sec: number; nsec: number };
  signal?: AbortSignal;
}

/** Block-sized pieces are gathered into larger chunks before they are handed on. */
class Gather {
  private parts: Uint8Array[] = [];
  private n = 0;
  add(b: Uint8Array): Uint8Array | undefined {
    this.parts.push(b);
    this.n += b.byteLength;
    return this.n >= CHUNK ? this.flush() : undefined;
  }
  flush(): Uint8Array | undefined {
    if (!this.n) return undefined;
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.n = 0;
    return out;
  }
}

/** The tar stream of a tree, as chunks. */
async function* tarChunks(w: Walk): AsyncGenerator<Uint8Array> {
  const g = new Gather();
  const links = new Map<string, string>(); // "dev:ino" -> first name
  const buf = Buffer.alloc(CHUNK);

  async function* entry(rel: string, st: Stat): AsyncGenerator<Uint8Array> {
    w.signal?.throwIfAborted();
    const p = pathOf(w.root, rel);
    const t = typeOf(st);
    if (t === "socket") return;
    const base = rel.slice(rel.lastIndexOf("/") + 1);
    const dir = rel.slice(0, rel.lastIndexOf("/") + 1);
    const mtime = { sec: Number(st.mtimeNs / 1_000_000_000n), nsec: Number(st.mtimeNs % 1_000_000_000n) };
    if (t === "whiteout" && w.overlay) {
      if (w.inLower && !w.inLower(rel)) return;
      // As containerd's change writer writes a deletion: mode 0, owner 0, the diff's start time.
      const out = g.add(encodeHeader({ name: `${dir}.wh.${base}`, type: "file", mode: 0, uid: 0, gid: 0, mtime: w.whiteoutTime ?? mtime }));
      if (out) yield out;
      return;
    }
    if (w.overlay) {
      for (const k of ["trusted.overlay.metacopy", "trusted.overlay.redirect"]) {
        if (lgetxattr(p, k) !== null) throw new Error(`${p.toString()}: overlayfs ${k.slice(18)} entries are not supported (mount overlay without metacopy/redirect_dir)`);
      }
    }
    const h: TarWriteHeader = {
      name: rel,
      type: t === "whiteout" ? "char" : t,
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime,
      xattrs: t === "symlink" && w.xattrs === "capability" ? undefined : xattrsOf(p, w.xattrs),
    };
    if (t === "symlink") {
      h.linkname = (readlinkSync(p, { encoding: "buffer" }) as Buffer).toString("latin1");
    } else if (t === "char" || t === "block" || t === "whiteout") {
      h.devmajor = major(st.rdev);
      h.devminor = minor(st.rdev);
    } else if (t === "file") {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? links.get(key) : undefined;
      if (first !== undefined) {
        h.type = "link";
        h.linkname = first;
      } else {
        if (st.nlink > 1n) links.set(key, rel);
        h.size = Number(st.size);
      }
    }
    let out = g.add(encodeHeader(h));
    if (out) yield out;
    if (h.type === "file" && h.size) {
      const fd = openSync(p, "r");
      try {
        let left = h.size;
        while (left > 0) {
          w.signal?.throwIfAborted();
          const n = readSync(fd, buf, 0, Math.min(CHUNK, left), null);
          if (n === 0) throw new Error(`${pathOf(w.root, rel).toString()}: file shrank while it was being archived`);
          left -= n;
          const pending = g.flush();
          if (pending) yield pending;
          yield Buffer.from(buf.subarray(0, n));
        }
      } finally {
        closeSync(fd);
      }
      out = g.add(paddingFor(h.size));
      if (out) yield out;
    }
    if (t === "dir") {
      if (w.overlay && isOpaque(p)) {
        out = g.add(encodeHeader({ name: `${rel}/.wh..wh..opq`, type: "file", mode: 0o644, mtime }));
        if (out) yield out;
      }
      yield* children(rel);
    }
  }

  async function* children(rel: string): AsyncGenerator<Uint8Array> {
    const names = (readdirSync(pathOf(w.root, rel) as unknown as string, { encoding: "buffer" }) as Buffer[]).map((b) => b.toString("latin1")).sort();
    for (const n of names) {
      const child = rel ? `${rel}/${n}` : n;
      yield* entry(child, lstatSync(pathOf(w.root, child), { bigint: true }) as unknown as Stat);
    }
  }

  yield* children("");
  const last = g.add(END_OF_ARCHIVE);
  yield last ?? g.flush()!;
}

function isOpaque(p: Buffer): boolean {
  for (const k of ["trusted.overlay.opaque", "user.overlay.opaque"]) {
    try {
      const v = lgetxattr(p, k);
      if (v && v.toString() === "y") return true;
    } catch {}
  }
  return false;
}

async function emit(chunks: AsyncIterable<Uint8Array>, out: TarSink, compression: Compression): Promise<WriteTarResult> {
  const tarHash = new Bun.CryptoHasher("sha256");
  const outHash = new Bun.CryptoHasher("sha256");
  let uncompressedSize = 0, size = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const c of chunks) {
      tarHash.update(c);
      uncompressedSize += c.byteLength;
      yield c;
    }
  }
  const writer = typeof out === "function" ? undefined : out.getWriter();
  try {
    for await (const c of compress(counted(), compression)) {
      outHash.update(c);
      size += c.byteLength;
      if (writer) await writer.write(c);
      else await (out as (chunk: Uint8Array) => unknown)(c);
    }
    if (writer) await writer.close();
  } catch (e) {
    if (writer) await writer.abort(e).catch(() => {});
    throw e;
  } finally {
    writer?.releaseLock();
  }
  const diffID = `sha256:${tarHash.digest("hex")}`;
  return { diffID, digest: compression === "none" ? diffID : `sha256:${outHash.digest("hex")}`, size, uncompressedSize };
}

/** A layer tar of everything below `dir`. */
export async function writeTar(dir: string, out: TarSink, opts: WriteTarOptions = {}): Promise<WriteTarResult> {
  return emit(tarChunks({ root: dir, xattrs: opts.xattrs ?? "capability", overlay: false, signal: opts.signal }), out, opts.compression ?? "none");
}

/**
 * A layer tar of an overlayfs upper dir: what changed relative to the lower dirs. Lower dirs are
 * only consulted to leave out whiteouts of paths no lower has (pruneWhiteouts).
 */
export async function diffDirs(lowerDirs: string[], upperDir: string, out: TarSink, opts: DiffOptions = {}): Promise<WriteTarResult> {
  const prune = opts.pruneWhiteouts ?? lowerDirs.length > 0;
  const inLower = prune
    ? (rel: string) =>
        lowerDirs.some((l) => {
          try {
            lstatSync(pathOf(l, rel));
            return true;
          } catch {
            return false;
          }
        })
    : undefined;
  const t = Date.now();
  const whiteoutTime = { sec: Math.floor(t / 1000), nsec: (t % 1000) * 1_000_000 };
  return emit(tarChunks({ root: upperDir, xattrs: opts.xattrs ?? "capability", overlay: true, inLower, whiteoutTime, signal: opts.signal }), out, opts.compression ?? "none");
}

/** The tar of a tree as a ReadableStream (pull-driven). */
export function tarStream(dir: string, opts: Omit<WriteTarOptions, "compression"> = {}): ReadableStream<Uint8Array> {
  const it = tarChunks({ root: dir, xattrs: opts.xattrs ?? "capability", overlay: false, signal: opts.signal });
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const r = await it.next();
        if (r.done) c.close();
        else c.enqueue(r.value);
      },
      async cancel() {
        await it.return(undefined);
      },
    },
    { highWaterMark: 0 },
  );
}
