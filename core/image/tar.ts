// A streaming tar reader and writer: ustar, GNU (long names 'L', long links 'K') and PAX ('x', 'g')
// archives, the formats image layers come in. Memory does not depend on the archive's size: file
// data is handed on in the pieces it arrives in, and only metadata blocks (PAX records, GNU long
// names) are held, capped at 1 MiB each like Go's archive/tar.
//
// Names are byte strings: every character of `name`/`linkname` is one byte of the archive
// (latin1), because tar names are bytes and need not be UTF-8. Turn them into bytes with
// Buffer.from(s, "latin1"), and show them with displayName(). byteString() converts a UTF-8
// string into that form.

/** A point in time: whole seconds since the epoch (may be negative) and nanoseconds. */
export interface TarTime {
  sec: number;
  nsec: number;
}

export type TarEntryType = "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";

export interface TarHeader {
  /** Path as a byte string, PAX `path` / GNU long name applied. */
  name: string;
  /** What the entry is; unknown typeflags are refused by the reader. */
  type: TarEntryType;
  /** The raw typeflag character ('0', '5', ...). */
  typeflag: string;
  /** Permission bits including setuid/setgid/sticky (& 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Bytes of data following the header (0 for header-only types). */
  size: number;
  mtime: TarTime;
  atime?: TarTime;
  /** Hardlink / symlink target as a byte string. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from PAX SCHILY.xattr.<name> records: name -> raw value. */
  xattrs: Map<string, Uint8Array>;
  /** Offset of the entry's first header block in the tar stream (for error messages). */
  offset: number;
}

/** A malformed or unsupported archive. `entry` names the offending entry when there is one. */
export class TarError extends Error {
  readonly entry?: string;
  readonly offset?: number;
  constructor(message: string, entry?: string, offset?: number) {
    super(message);
    this.name = "TarError";
    this.entry = entry;
    this.offset = offset;
  }
}

/** A byte-string name shown as text (decoded as UTF-8). */
export function displayName(s: string): string {
  return Buffer.from(s, "latin1").toString("utf8");
}
/** A UTF-8 string as a byte string (the form names take here). */
export function byteString(s: string): string {
  return Buffer.from(s, "utf8").toString("latin1");
}

const BLOCK = 512;
/** Cap on PAX extended headers and GNU long names/links (Go's archive/tar uses the same). */
export const MAX_META_SIZE = 1 << 20;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

// ---------------------------------------------------------------------------------------------
// Reading

/** Pull-based reader over an async sequence of byte chunks. */
class ChunkReader {
  private it: AsyncIterator<Uint8Array>;
  private cur: Uint8Array = new Uint8Array(0);
  private off = 0;
  private done = false;
  /** Bytes handed out so far. */
  pos = 0;

  constructor(src: AsyncIterable<Uint8Array>) {
    this.it = src[Symbol.asyncIterator]();
  }

  /** Make at least one unread byte available; false at end of stream. */
  private async more(): Promise<boolean> {
    while (this.off >= this.cur.byteLength) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      this.cur = r.value;
      this.off = 0;
    }
    return true;
  }

  /** Up to `max` bytes (at least one), or null at end of stream. Zero-copy. */
  async some(max: number): Promise<Uint8Array | null> {
    if (!(await this.more())) return null;
    const n = Math.min(max, this.cur.byteLength - this.off);
    const out = this.cur.subarray(this.off, this.off + n);
    this.off += n;
    this.pos += n;
    return out;
  }

  /** Exactly n bytes; null if the stream ends before any; `short` is thrown if it ends part-way. */
  async exact(n: number, short: () => Error): Promise<Uint8Array | null> {
    const first = await this.some(n);
    if (!first) return n === 0 ? new Uint8Array(0) : null;
    if (first.byteLength === n) return first;
    const out = new Uint8Array(n);
    out.set(first);
    let got = first.byteLength;
    while (got < n) {
      const p = await this.some(n - got);
      if (!p) throw short();
      out.set(p, got);
      got += p.byteLength;
    }
    return out;
  }

  async skip(n: number, short: () => Error): Promise<void> {
    while (n > 0) {
      const p = await this.some(n);
      if (!p) throw short();
      n -= p.byteLength;
    }
  }

  /** Read everything that is left; returns the number of bytes. */
  async drain(): Promise<number> {
    let n = 0;
    for (;;) {
      const p = await this.some(Infinity);
      if (!p) return n;
      n += p.byteLength;
    }
  }

  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}

const dec = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A NUL-terminated string field as a byte string. */
function str(b: Uint8Array, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const z = f.indexOf(0);
  return dec(z < 0 ? f : f.subarray(0, z)).toString("latin1");
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.byteLength; i++) if (b[i] !== 0) return false;
  return true;
}

/** A numeric field: octal text, or GNU base-256 (top bit of the first byte set). BigInt. */
function num(b: Uint8Array, off: number, len: number, field: string, bad: (m: string) => Error): bigint {
  const f = b.subarray(off, off + len);
  if (f.byteLength && f[0]! & 0x80) {
    const neg = (f[0]! & 0x40) !== 0;
    let x = 0n;
    for (let i = 0; i < f.byteLength; i++) {
      let c = f[i]!;
      if (neg) c ^= 0xff;
      if (i === 0) c &= 0x7f;
      x = (x << 8n) | BigInt(c);
    }
    return neg ? -x - 1n : x;
  }
  let s = 0, e = f.byteLength;
  while (s < e && (f[s] === 0x20 || f[s] === 0)) s++;
  while (e > s && (f[e - 1] === 0x20 || f[e - 1] === 0)) e--;
  let x = 0n;
  for (let i = s; i < e; i++) {
    const c = f[i]!;
    if (c < 0x30 || c > 0x37) throw bad(`invalid octal number in ${field} field`);
    x = x * 8n + BigInt(c - 0x30);
  }
  return x;
}

function checksumOk(b: Uint8Array, stored: bigint): boolean {
  let u = 0, s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    u += c;
    s += c > 127 ? c - 256 : c;
  }
  return stored === BigInt(u) || stored === BigInt(s);
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file", "\0": "file", "7": "file", "1": "link", "2": "symlink", "3": "char", "4": "block", "5": "dir", "6": "fifo",
};
/** Types whose size field does not announce data (Go's isHeaderOnlyType). */
const HEADER_ONLY = new Set<TarEntryType>(["link", "symlink", "char", "block", "dir", "fifo"]);

type PaxRecords = Map<string, Uint8Array>;

/** Parse PAX records "<len> <key>=<value>\n"; values stay bytes (xattr values are binary). */
export function parsePax(data: Uint8Array, bad: (m: string) => Error): PaxRecords {
  const out: PaxRecords = new Map();
  let pos = 0;
  const end = data.byteLength;
  while (pos < end) {
    // A block may be padded with NULs after the last record.
    if (data[pos] === 0) break;
    const sp = data.indexOf(0x20, pos);
    if (sp < 0 || sp - pos > 20) throw bad("invalid PAX record length");
    const lenText = dec(data.subarray(pos, sp)).toString("latin1");
    if (!/^[0-9]+$/.test(lenText)) throw bad("invalid PAX record length");
    const len = Number(lenText);
    if (len < 5 || pos + len > end || sp + 1 > pos + len - 1 || data[pos + len - 1] !== 0x0a) throw bad("invalid PAX record");
    const rec = data.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw bad("invalid PAX record");
    const key = dec(rec.subarray(0, eq)).toString("utf8");
    out.set(key, rec.subarray(eq + 1));
    pos += len;
  }
  return out;
}

/** PAX time "[-]sec[.frac]". */
function paxTime(v: string, bad: (m: string) => Error): TarTime {
  const m = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(v);
  if (!m) throw bad(`invalid PAX time ${JSON.stringify(v)}`);
  const sec = Number(m[2]);
  if (!Number.isSafeInteger(sec)) throw bad(`PAX time out of range ${JSON.stringify(v)}`);
  const nsec = Number(((m[3] ?? "") + "000000000").slice(0, 9));
  if (m[1] === "-") return nsec ? { sec: -sec - 1, nsec: 1e9 - nsec } : { sec: -sec, nsec: 0 };
  return { sec, nsec };
}

/**
 * Reads a tar stream entry by entry:
 *
 *   const r = new TarReader(chunks);
 *   for (let h; (h = await r.next()); ) { for await (const piece of r.body()) ...; }
 *   await r.finish();   // reads what follows the end-of-archive marker
 *
 * A body not read (or read part-way) is skipped by the next call to next(). Errors are TarError.
 * The archive must end with an end-of-archive block: a stream that stops at an entry boundary
 * without one is reported as truncated. PAX global headers ('g') are parsed and kept in `globals`
 * but, as in containerd, not applied to the entries. Sparse files are refused.
 */
export class TarReader {
  private r: ChunkReader;
  /** Data bytes of the current entry not yet read, and the padding after them. */
  private remaining = 0;
  private padding = 0;
  private current: TarHeader | undefined;
  private ended = false;
  /** The last PAX global header's records. */
  globals: PaxRecords = new Map();

  constructor(src: AsyncIterable<Uint8Array>) {
    this.r = new ChunkReader(src);
  }

  /** Bytes of the tar stream consumed so far. */
  get position(): number {
    return this.r.pos;
  }

  private bad(entry?: string, offset?: number) {
    return (m: string) => new TarError(`${m}${entry !== undefined ? ` (entry ${JSON.stringify(displayName(entry))})` : ""} at offset ${offset ?? this.r.pos}`, entry, offset);
  }
  private truncated(entry?: string) {
    return () => new TarError(`unexpected end of archive: the layer is truncated${entry !== undefined ? ` (in entry ${JSON.stringify(displayName(entry))})` : ""}`, entry);
  }

  /** The next entry's header, or null after the end-of-archive marker. */
  async next(): Promise<TarHeader | null> {
    if (this.ended) return null;
    if (this.remaining + this.padding > 0) {
      await this.r.skip(this.remaining + this.padding, this.truncated(this.current?.name));
      this.remaining = this.padding = 0;
    }
    this.current = undefined;
    let pax: PaxRecords | undefined;
    let longName: string | undefined;
    let longLink: string | undefined;
    let start = -1;
    for (;;) {
      const offset = this.r.pos;
      if (start < 0) start = offset;
      const blk = await this.r.exact(BLOCK, this.truncated());
      if (!blk) {
        throw new TarError(
          offset === 0 ? "unexpected end of archive: the layer is empty (not even an end-of-archive marker)" : "unexpected end of archive: the layer is truncated (no end-of-archive marker)",
        );
      }
      if (isZero(blk)) {
        if (pax || longName !== undefined || longLink !== undefined) throw this.bad(undefined, offset)("end of archive right after an extended header");
        // The second zero block is optional in practice (Go accepts one).
        this.ended = true;
        return null;
      }
      const bad = this.bad(longName ?? (str(blk, 0, 100) || undefined), offset);
      if (!checksumOk(blk, num(blk, 148, 8, "checksum", bad))) throw bad("invalid tar header checksum");
      const flag = String.fromCharCode(blk[156]!);
      const rawSize = num(blk, 124, 12, "size", bad);
      if (rawSize < 0n) throw bad(`negative size ${rawSize}`);
      if (rawSize > MAX_SAFE) throw bad(`size ${rawSize} out of range`);
      const size = Number(rawSize);

      if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
        if (size > MAX_META_SIZE) throw bad(`${flag === "L" || flag === "K" ? "GNU long name" : "PAX header"} of ${size} bytes exceeds the ${MAX_META_SIZE}-byte limit`);
        const data = (await this.r.exact(size, this.truncated()))!;
        // Copy: `data` may be a view into a chunk, and we keep values past the next read.
        const own = new Uint8Array(data);
        await this.r.skip(pad(size), this.truncated());
        if (flag === "x") pax = parsePax(own, bad);
        else if (flag === "g") this.globals = parsePax(own, bad);
        else {
          const z = own.indexOf(0);
          const s = dec(z < 0 ? own : own.subarray(0, z)).toString("latin1");
          if (flag === "L") longName = s;
          else longLink = s;
        }
        continue;
      }
      if (flag === "S") throw bad("GNU sparse files are not supported");
      let type = TYPES[flag];
      if (!type) throw bad(`unsupported tar entry type ${JSON.stringify(flag)}`);

      const magic = str(blk, 257, 6);
      const version = str(blk, 263, 2);
      let name = str(blk, 0, 100);
      if (magic === "ustar" && version === "00") {
        // POSIX ustar (and star, whose prefix field is shorter: it ends with "tar\0" at 508).
        const star = blk[508] === 0x74 && blk[509] === 0x61 && blk[510] === 0x72 && blk[511] === 0;
        const prefix = str(blk, 345, star ? 131 : 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      if (flag === "\0" && name.endsWith("/")) type = "dir";
      const int = (off: number, len: number, field: string): number => {
        const v = num(blk, off, len, field, bad);
        if (v < 0n || v > MAX_SAFE) throw bad(`${field} ${v} out of range`);
        return Number(v);
      };
      const mt = num(blk, 136, 12, "mtime", bad);
      const h: TarHeader = {
        name: longName ?? name,
        type,
        typeflag: flag,
        mode: int(100, 8, "mode") & 0o7777,
        uid: int(108, 8, "uid"),
        gid: int(116, 8, "gid"),
        uname: str(blk, 265, 32),
        gname: str(blk, 297, 32),
        size,
        mtime: { sec: mt < -MAX_SAFE || mt > MAX_SAFE ? 0 : Number(mt), nsec: 0 },
        linkname: longLink ?? str(blk, 157, 100),
        devmajor: type === "char" || type === "block" ? int(329, 8, "devmajor") : 0,
        devminor: type === "char" || type === "block" ? int(337, 8, "devminor") : 0,
        xattrs: new Map(),
        offset: start,
      };
      if (pax) applyPax(h, pax, this.bad(h.name, start));
      if (h.name.includes("\0") || h.linkname.includes("\0")) throw this.bad(h.name, start)("NUL byte in name");
      if (HEADER_ONLY.has(h.type)) h.size = 0;
      this.current = h;
      this.remaining = h.size;
      this.padding = pad(h.size);
      return h;
    }
  }

  /** The current entry's data, in the pieces it arrives in (views: copy what you keep). */
  async *body(): AsyncGenerator<Uint8Array> {
    const h = this.current;
    while (this.remaining > 0) {
      const p = await this.r.some(this.remaining);
      if (!p) throw this.truncated(h?.name)();
      this.remaining -= p.byteLength;
      yield p;
    }
  }

  /** After next() returned null: consume whatever follows the end-of-archive marker. */
  async finish(): Promise<number> {
    return this.r.drain();
  }

  /** Stop reading (releases the source). */
  async close(): Promise<void> {
    await this.r.close();
  }
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

const XATTR_PREFIX = "SCHILY.xattr.";

function applyPax(h: TarHeader, pax: PaxRecords, bad: (m: string) => Error): void {
  const text = (v: Uint8Array) => dec(v).toString("latin1");
  const id = (k: string, v: string): number => {
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) throw bad(`invalid PAX ${k} ${JSON.stringify(v)}`);
    return Number(v);
  };
  for (const [k, raw] of pax) {
    // An empty value deletes the record: the header field stands.
    if (raw.byteLength === 0 && !k.startsWith(XATTR_PREFIX)) continue;
    const v = text(raw);
    switch (k) {
      case "path":
        h.name = v;
        break;
      case "linkpath":
        h.linkname = v;
        break;
      case "size":
        if (!/^[0-9]+$/.test(v)) throw bad(`invalid PAX size ${JSON.stringify(v)}`);
        if (!Number.isSafeInteger(Number(v))) throw bad(`PAX size ${v} out of range`);
        h.size = Number(v);
        break;
      case "uid":
        h.uid = id(k, v);
        break;
      case "gid":
        h.gid = id(k, v);
        break;
      case "uname":
        h.uname = v;
        break;
      case "gname":
        h.gname = v;
        break;
      case "mtime":
        h.mtime = paxTime(v, bad);
        break;
      case "atime":
        h.atime = paxTime(v, bad);
        break;
      default:
        if (k.startsWith(XATTR_PREFIX)) {
          h.xattrs.set(k.slice(XATTR_PREFIX.length), raw);
        } else if (k.startsWith("GNU.sparse.")) {
          throw bad("PAX sparse files are not supported");
        }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface TarWriteHeader {
  /** Byte string; directories get a trailing "/" if they lack one. */
  name: string;
  type: TarEntryType;
  mode: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  size?: number;
  /** Written in whole seconds (rounded, like Go's tar.Writer does by default). */
  mtime?: TarTime;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Uint8Array>;
}

const FLAGS: Record<TarEntryType, string> = { file: "0", link: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" };

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

function putStr(b: Uint8Array, off: number, len: number, s: string): void {
  b.set(Buffer.from(s, "latin1").subarray(0, len), off);
}
function putOctal(b: Uint8Array, off: number, len: number, v: number): void {
  putStr(b, off, len - 1, v.toString(8).padStart(len - 1, "0"));
}
function fitsOctal(v: number, len: number): boolean {
  return v >= 0 && v < 8 ** (len - 1);
}

/** ustar splits a long name at a "/" into prefix (<=155) and name (<=100). */
function splitUstar(name: string): [string, string] | null {
  if (name.length <= 100) return ["", name];
  for (let i = Math.min(name.length - 1, 155); i > 0; i--) {
    if (name[i] === "/" && name.length - i - 1 <= 100 && name.length - i - 1 > 0) return [name.slice(0, i), name.slice(i + 1)];
  }
  return null;
}

function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const k = Buffer.from(key, "utf8");
  const body = k.byteLength + value.byteLength + 3; // " " "=" "\n"
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} `), k, Buffer.from("="), value, Buffer.from("\n")]);
}

function block(h: { name: string; flag: string; mode: number; uid: number; gid: number; size: number; mtime: number; linkname: string; uname: string; gname: string; devmajor: number; devminor: number; prefix: string }): Uint8Array {
  const b = new Uint8Array(BLOCK);
  putStr(b, 0, 100, h.name);
  putOctal(b, 100, 8, h.mode);
  putOctal(b, 108, 8, h.uid);
  putOctal(b, 116, 8, h.gid);
  putOctal(b, 124, 12, h.size);
  putOctal(b, 136, 12, h.mtime);
  b[156] = h.flag.charCodeAt(0);
  putStr(b, 157, 100, h.linkname);
  putStr(b, 257, 8, "ustar\x0000");
  putStr(b, 265, 32, h.uname);
  putStr(b, 297, 32, h.gname);
  putOctal(b, 329, 8, h.devmajor);
  putOctal(b, 337, 8, h.devminor);
  putStr(b, 345, 155, h.prefix);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  putStr(b, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

/**
 * The header block(s) of one entry: a ustar header, preceded by a PAX extended header when
 * something does not fit ustar (long or non-ASCII names, big ids or sizes, xattrs). Deterministic:
 * the same header always encodes to the same bytes.
 */
export function encodeHeader(h: TarWriteHeader): Uint8Array {
  let name = h.name;
  if (h.type === "dir" && !name.endsWith("/")) name += "/";
  const size = h.type === "file" ? h.size ?? 0 : 0;
  const mtime = h.mtime ? h.mtime.sec + (h.mtime.nsec >= 5e8 ? 1 : 0) : 0;
  const linkname = h.linkname ?? "";
  const uid = h.uid ?? 0, gid = h.gid ?? 0;
  const records: [string, Uint8Array][] = [];
  const latin = (s: string) => Buffer.from(s, "latin1");

  let prefix = "", short = name;
  const split = isAscii(name) ? splitUstar(name) : null;
  if (split) [prefix, short] = split;
  else {
    records.push(["path", latin(name)]);
    short = name.slice(0, 100);
  }
  let shortLink = linkname;
  if (linkname.length > 100 || !isAscii(linkname)) {
    records.push(["linkpath", latin(linkname)]);
    shortLink = linkname.slice(0, 100);
  }
  if (!fitsOctal(uid, 8)) records.push(["uid", latin(String(uid))]);
  if (!fitsOctal(gid, 8)) records.push(["gid", latin(String(gid))]);
  if (!fitsOctal(size, 12)) records.push(["size", latin(String(size))]);
  const uname = h.uname ?? "", gname = h.gname ?? "";
  if (uname.length > 32 || !isAscii(uname)) records.push(["uname", latin(uname)]);
  if (gname.length > 32 || !isAscii(gname)) records.push(["gname", latin(gname)]);
  if (!fitsOctal(mtime, 12)) records.push(["mtime", latin(String(mtime))]);
  for (const k of [...(h.xattrs?.keys() ?? [])].sort()) records.push([XATTR_PREFIX + k, h.xattrs!.get(k)!]);
  // PAX wants sorted keys for determinism; Go sorts them too.
  records.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

  const main = block({
    name: short, flag: FLAGS[h.type], mode: h.mode & 0o7777,
    uid: fitsOctal(uid, 8) ? uid : 0, gid: fitsOctal(gid, 8) ? gid : 0,
    size: fitsOctal(size, 12) ? size : 0, mtime: fitsOctal(mtime, 12) ? mtime : 0,
    linkname: shortLink, uname: uname.slice(0, 32), gname: gname.slice(0, 32),
    devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0, prefix,
  });
  if (!records.length) return main;
  const data = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  const base = name.replace(/\/+$/, "");
  const slash = base.lastIndexOf("/");
  const paxName = (slash >= 0 ? `${base.slice(0, slash)}/PaxHeaders.0/${base.slice(slash + 1)}` : `PaxHeaders.0/${base}`).slice(0, 100);
  const ext = block({
    name: isAscii(paxName) ? paxName : "PaxHeaders.0/entry", flag: "x", mode: 0o644, uid: 0, gid: 0, size: data.byteLength,
    mtime: 0, linkname: "", uname: "", gname: "", devmajor: 0, devminor: 0, prefix: "",
  });
  return Buffer.concat([ext, data, new Uint8Array(pad(data.byteLength)), main]);
}

/** Zero bytes that complete a file's data to a whole block. */
export function paddingFor(size: number): Uint8Array {
  return new Uint8Array(pad(size));
}

/** Two zero blocks: the end-of-archive marker. */
export const END_OF_ARCHIVE = new Uint8Array(2 * BLOCK);
