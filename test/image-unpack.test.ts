// Layer unpacking (core/image/unpack.ts), the tar reader/writer (core/image/tar.ts), compression
// (core/image/compression.ts) and export (core/image/tar-export.ts).
//
// Fixtures are built here: trees made with node:fs and our libc wrappers, archived by the host's
// GNU tar, gzip and zstd (independent implementations), and hostile archives written block by
// block with the encoder from tar.ts (which does not judge names) plus hand-patched header bytes.
// Every hostile case runs next to a sentinel directory outside the target whose complete state
// (content, mode, owner, link count, ctime) must be unchanged afterwards.
//
// Each test gets /tmp/bunker-test-<rand>/ and it is removed afterwards, pass or fail.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { S_IFCHR } from "../ffi/consts";
import * as libc from "../ffi/libc";
import { compressionOfMediaType, CompressionError } from "../core/image/compression";
import { byteString, encodeHeader, END_OF_ARCHIVE, paddingFor, TarError, TarReader, type TarEntryType } from "../core/image/tar";
import { diffDirs, tarStream, writeTar } from "../core/image/tar-export";
import { applyLayer, DigestMismatchError, UnpackError, type ApplyOptions } from "../core/image/unpack";
import { exec, hasTool, rand, TMP_PREFIX } from "./harness";

const BUN = join(import.meta.dir, "..", "node_modules", ".bin", "bun");
const IS_ROOT = process.geteuid?.() === 0;

// ---------------------------------------------------------------------------------------------
// Per-test temp dir

let T = "";
beforeEach(() => {
  T = `${TMP_PREFIX}unpack-${rand()}`;
  mkdirSync(T, { recursive: true });
});
afterEach(() => {
  const d = T;
  T = "";
  if (d) {
    // A failed overlay test may have left its mount behind.
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const mp = line.split(" ")[4];
      if (mp && mp.startsWith(d)) {
        try {
          libc.umount2(mp, 2);
        } catch {}
      }
    }
    rmSync(d, { recursive: true, force: true });
  }
});

function dir(name: string): string {
  const d = join(T, `${name}-${rand(4)}`);
  mkdirSync(d, { recursive: true });
  return d;
}

/**
 * zstd-compress a file with the host's zstd (an implementation independent of ours); where the
 * zstd package is missing, with Bun's streaming CompressionStream instead.
 */
async function zstdFile(src: string, dst: string, level = 3): Promise<void> {
  if (HAVE_ZSTD) {
    sh(`zstd -q -${level} ${src} -o ${dst}`);
    return;
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  await Bun.write(dst, new Response(Bun.file(src).stream().pipeThrough(new CompressionStream("zstd" as any) as any)));
}
const HAVE_ZSTD = hasTool("zstd");
if (!HAVE_ZSTD) console.warn("image-unpack tests: no host zstd (apt-get install zstd): zstd fixtures are made with Bun's own compressor");

function sh(cmd: string, cwd?: string): string {
  const r = exec(["sh", "-c", cmd], { cwd, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// Building archives

interface E {
  name: string;
  type?: TarEntryType;
  data?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string | Uint8Array>;
}

/** An archive from entries (and raw byte pieces, for malformed ones). */
function tarOf(entries: (E | Uint8Array)[], { end = true } = {}): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    if (e instanceof Uint8Array) {
      parts.push(e);
      continue;
    }
    const data = typeof e.data === "string" ? Buffer.from(e.data) : e.data ?? new Uint8Array(0);
    const type = e.type ?? "file";
    parts.push(
      encodeHeader({
        name: e.name,
        type,
        mode: e.mode ?? (type === "dir" ? 0o755 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        size: data.byteLength,
        mtime: { sec: e.mtime ?? 1_600_000_000, nsec: 0 },
        linkname: e.linkname,
        devmajor: e.devmajor,
        devminor: e.devminor,
        xattrs: e.xattrs ? new Map(Object.entries(e.xattrs).map(([k, v]) => [k, typeof v === "string" ? Buffer.from(v) : v])) : undefined,
      }),
    );
    if (type === "file" && data.byteLength) parts.push(data, paddingFor(data.byteLength));
  }
  if (end) parts.push(END_OF_ARCHIVE);
  return new Uint8Array(Buffer.concat(parts));
}

/** A single header block, patched: `patch` gets the block and may change any byte; the checksum is redone unless keepChecksum. */
function rawHeader(e: E, patch: (b: Uint8Array) => void, { keepChecksum = false } = {}): Uint8Array {
  const b = new Uint8Array(encodeHeader({ name: e.name, type: e.type ?? "file", mode: e.mode ?? 0o644, size: typeof e.data === "string" ? e.data.length : 0 }).subarray(-512));
  patch(b);
  if (!keepChecksum) {
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const c of b) sum += c;
    b.set(Buffer.from(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  }
  return b;
}

/** A PAX 'x' (or 'g') header with the given records (values as given, bytes). */
function paxHeader(records: [string, string | Uint8Array][], flag = "x"): Uint8Array {
  const body = Buffer.concat(
    records.map(([k, v]) => {
      const val = typeof v === "string" ? Buffer.from(v, "latin1") : Buffer.from(v);
      const n = Buffer.byteLength(k) + val.byteLength + 3;
      let len = n + String(n).length;
      if (String(len).length !== String(n).length) len = n + String(len).length;
      return Buffer.concat([Buffer.from(`${len} ${k}=`), val, Buffer.from("\n")]);
    }),
  );
  const h = rawHeader({ name: "PaxHeaders/x" }, (b) => {
    b[156] = flag.charCodeAt(0);
    b.set(Buffer.from(body.byteLength.toString(8).padStart(11, "0")), 124);
  });
  return Buffer.concat([h, body, paddingFor(body.byteLength)]);
}

/** Chunks of `size` bytes (exercises every boundary case of the reader). */
async function* chunks(b: Uint8Array, size = 4093): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.byteLength; i += size) yield b.subarray(i, Math.min(i + size, b.byteLength));
}

const apply = (b: Uint8Array, target: string, opts: ApplyOptions = {}, chunk?: number) => applyLayer(chunks(b, chunk), target, opts);

async function applyError(b: Uint8Array, target: string, opts: ApplyOptions = {}): Promise<Error> {
  try {
    await apply(b, target, opts);
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected applyLayer to fail, it succeeded");
}

const sha256 = (b: Uint8Array | string) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;

// ---------------------------------------------------------------------------------------------
// Looking at trees

interface Node {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  mtime?: string;
  ctime?: string;
  nlink?: number;
  sha?: string;
  link?: string;
  rdev?: string;
  xattrs?: Record<string, string>;
}

type StatLike = { isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isFIFO(): boolean };
function typeName(st: StatLike): string {
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "other";
}

/**
 * Everything below `root` keyed by relative path. mtime: "ns", "s" (rounded to whole seconds, as
 * Go's and our tar writers do), "floor" (truncated, as GNU tar's non-PAX formats do) or false.
 */
function snapshot(root: string, opts: { mtime?: "ns" | "s" | "floor" | false; ctime?: boolean; dirMtime?: boolean } = {}): Record<string, Node> {
  const out: Record<string, Node> = {};
  const walk = (rel: string) => {
    const p = rel ? Buffer.concat([Buffer.from(root + "/"), Buffer.from(rel, "latin1")]) : Buffer.from(root);
    for (const nb of (readdirSync(p, { encoding: "buffer" }) as Buffer[]).sort(Buffer.compare)) {
      const r = rel ? `${rel}/${nb.toString("latin1")}` : nb.toString("latin1");
      const cp = Buffer.concat([Buffer.from(root + "/"), Buffer.from(r, "latin1")]);
      const st = lstatSync(cp, { bigint: true });
      const t = typeName(st);
      const n: Node = { type: t, mode: (Number(st.mode) & 0o7777).toString(8), uid: Number(st.uid), gid: Number(st.gid) };
      const m = opts.mtime ?? "ns";
      // "s": rounded to whole seconds the way tar writers (Go's, ours) do.
      if (m && (t !== "dir" || opts.dirMtime !== false)) n.mtime = m === "ns" ? String(st.mtimeNs) : String((st.mtimeNs + (m === "s" ? 500_000_000n : 0n)) / 1_000_000_000n);
      if (opts.ctime) n.ctime = String(st.ctimeNs);
      if (t === "file") {
        n.sha = sha256(readFileSync(cp));
        n.nlink = Number(st.nlink);
      }
      if (t === "symlink") n.link = (readlinkSync(cp, { encoding: "buffer" }) as Buffer).toString("latin1");
      if (t === "char" || t === "block") n.rdev = String(st.rdev);
      if (t === "symlink") delete (n as any).mode;
      const xs: Record<string, string> = {};
      for (const k of libc.llistxattr(cp)) if (!k.startsWith("security.selinux")) xs[k] = libc.lgetxattr(cp, k)!.toString("hex");
      if (Object.keys(xs).length) n.xattrs = xs;
      out[r] = n;
      if (t === "dir") walk(r);
    }
  };
  walk("");
  return out;
}

/** A directory outside the target whose state must never change. */
function sentinel(): { path: string; name: string; state: () => string } {
  const s = dir("sentinel");
  writeFileSync(join(s, "secret"), "s3cret");
  chmodSync(join(s, "secret"), 0o600);
  mkdirSync(join(s, "sub"));
  writeFileSync(join(s, "sub", "inner"), "inner");
  const state = () => JSON.stringify({ self: String(lstatSync(s, { bigint: true }).ctimeNs), tree: snapshot(s, { ctime: true }) });
  return { path: s, name: s.slice(T.length + 1), state };
}

/** A valid security.capability value (VFS_CAP_REVISION_2, effective, CAP_NET_BIND_SERVICE permitted). */
const CAP_NET_BIND = (() => {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(0x02000001, 0);
  b.writeUInt32LE(1 << 10, 4);
  return b;
})();

function setTimes(p: string, sec: number, nsec: number): void {
  libc.utimensat(libc.AT_FDCWD, p, { sec, nsec }, { sec, nsec }, libc.AT_SYMLINK_NOFOLLOW);
}

/** A tree with every entry type and the metadata we care about. */
function richTree(root: string): void {
  mkdirSync(join(root, "etc/conf.d"), { recursive: true });
  writeFileSync(join(root, "etc/hostname"), "bunker\n");
  writeFileSync(join(root, "etc/conf.d/empty"), "");
  mkdirSync(join(root, "bin"));
  writeFileSync(join(root, "bin/suid"), "#!/bin/sh\necho hi\n");
  chmodSync(join(root, "bin/suid"), 0o4755);
  writeFileSync(join(root, "bin/sgid"), "x");
  chmodSync(join(root, "bin/sgid"), 0o2711);
  writeFileSync(join(root, "bin/ping"), "ping");
  chmodSync(join(root, "bin/ping"), 0o755);
  libc.lsetxattr(join(root, "bin/ping"), "security.capability", CAP_NET_BIND);
  libc.lsetxattr(join(root, "etc/hostname"), "user.comment", Buffer.from([0, 1, 2, 255, 10, 61]));
  mkdirSync(join(root, "tmp"));
  chmodSync(join(root, "tmp"), 0o1777);
  linkSync(join(root, "bin/suid"), join(root, "bin/suid-hardlink"));
  symlinkSync("../etc/hostname", join(root, "bin/rel-link"));
  symlinkSync("/etc/hostname", join(root, "bin/abs-link"));
  symlinkSync("nowhere/at/all", join(root, "bin/dangling"));
  mkdirSync(join(root, "dev"));
  libc.mknod(join(root, "dev/null"), S_IFCHR | 0o666, libc.makedev(1, 3));
  libc.mknod(join(root, "dev/sda"), 0o060000 | 0o660, libc.makedev(8, 0));
  libc.mkfifo(join(root, "dev/fifo"), 0o640);
  chmodSync(join(root, "dev/fifo"), 0o640);
  mkdirSync(join(root, "home/user"), { recursive: true });
  writeFileSync(join(root, "home/user/notes"), "mine");
  chownSync(join(root, "home/user/notes"), 1000, 1001);
  chownSync(join(root, "home/user"), 1000, 1000);
  chmodSync(join(root, "home/user"), 0o700);
  // Long names (ustar prefix/name overflow) and a long symlink target.
  const long = `deep/${"d".repeat(120)}/${"e".repeat(90)}`;
  mkdirSync(join(root, long), { recursive: true });
  writeFileSync(join(root, long, `${"f".repeat(110)}.txt`), "long name");
  symlinkSync(`${long}/${"f".repeat(110)}.txt`, join(root, "long-target-link"));
  linkSync(join(root, long, `${"f".repeat(110)}.txt`), join(root, `hard-${"h".repeat(120)}`));
  // Non-ASCII names: UTF-8 and bytes that are not UTF-8.
  writeFileSync(join(root, "héllo-日本.txt"), "utf8");
  writeFileSync(Buffer.concat([Buffer.from(root + "/latin1-"), Buffer.from([0xe9, 0xff])]), "bytes");
  // A file bigger than a few chunks, with some structure.
  const big = Buffer.alloc(3 * 1024 * 1024 + 123);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
  writeFileSync(join(root, "big.bin"), big);
  // Times: with nanoseconds, and before 1970 is clamped by containerd, so stay after.
  for (const p of ["etc/hostname", "bin/suid", "bin/rel-link", "dev/fifo", "etc/conf.d", "etc", "home/user"]) setTimes(join(root, p), 1_234_567_890, 123_456_789);
}

// ---------------------------------------------------------------------------------------------
// Reading real archives

describe("applying archives made by GNU tar", () => {
  test("every entry type, owners, modes, setuid/sticky, xattrs, ns mtimes: the tree comes back identical (PAX)", async () => {
    const src = dir("src");
    richTree(src);
    const layer = join(T, "layer.tar");
    sh(`tar --xattrs --xattrs-include='*' --format=pax --numeric-owner -cpf ${layer} -C ${src} .`);
    const target = dir("target");
    const bytes = readFileSync(layer);
    const r = await apply(bytes, target);
    expect(r.digest).toBe(sha256(bytes));
    expect(r.diffID).toBe(r.digest);
    expect(r.size).toBe(bytes.byteLength);
    expect(r.compression).toBe("none");
    expect(r.warnings).toEqual([]);
    expect(snapshot(target)).toEqual(snapshot(src));
    // Spot checks that the comparison really looked at what matters.
    const s = snapshot(target);
    expect(s["bin/suid"]).toMatchObject({ mode: "4755", nlink: 2 });
    expect(s["tmp"]!.mode).toBe("1777");
    expect(s["bin/ping"]!.xattrs).toEqual({ "security.capability": CAP_NET_BIND.toString("hex") });
    expect(s["home/user/notes"]).toMatchObject({ uid: 1000, gid: 1001 });
    expect(s["etc/hostname"]!.mtime).toBe("1234567890123456789");
    expect(s["dev/null"]!.rdev).toBe(String(libc.makedev(1, 3)));
  });

  test("GNU format: long names and long link targets come as 'L'/'K' records", async () => {
    const src = dir("src");
    richTree(src);
    const layer = join(T, "layer.tar");
    sh(`tar --format=gnu --numeric-owner -cpf ${layer} -C ${src} .`);
    // Make sure the fixture really uses the GNU records.
    const raw = readFileSync(layer);
    expect(raw.includes(Buffer.from("././@LongLink"))).toBe(true);
    const target = dir("target");
    await apply(raw, target);
    // GNU format has whole-second mtimes and no xattrs.
    const strip = (s: Record<string, Node>) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, { ...v, xattrs: undefined }]));
    expect(strip(snapshot(target, { mtime: "floor" }))).toEqual(strip(snapshot(src, { mtime: "floor" })));
  });

  test("chunk boundaries do not matter: 1-byte, odd and huge chunks give the same tree and digests", async () => {
    const src = dir("src");
    writeFileSync(join(src, "a"), "a".repeat(1000));
    mkdirSync(join(src, `${"x".repeat(150)}`));
    writeFileSync(join(src, `${"x".repeat(150)}/${"y".repeat(150)}`), "long");
    libc.lsetxattr(join(src, "a"), "user.k", Buffer.from("v"));
    const layer = join(T, "layer.tar");
    sh(`tar --xattrs --xattrs-include='*' --format=pax -cpf ${layer} -C ${src} .`);
    const bytes = readFileSync(layer);
    const want = snapshot(src);
    for (const size of [1, 7, 511, 512, 513, 1 << 20]) {
      const target = dir(`target-${size}`);
      const r = await apply(bytes, target, {}, size);
      expect(r.diffID).toBe(sha256(bytes));
      expect(snapshot(target)).toEqual(want);
    }
  });

  test("gzip and zstd layers: digest of the compressed bytes, diffID of the tar, both verified", async () => {
    const src = dir("src");
    richTree(src);
    const layer = join(T, "layer.tar");
    sh(`tar --xattrs --xattrs-include='*' --format=pax -cpf ${layer} -C ${src} .`);
    sh(`gzip -k -6 ${layer}`);
    await zstdFile(layer, `${layer}.zst`);
    const tarBytes = readFileSync(layer);
    for (const [ext, kind, mediaType] of [
      ["gz", "gzip", "application/vnd.oci.image.layer.v1.tar+gzip"],
      ["zst", "zstd", "application/vnd.oci.image.layer.v1.tar+zstd"],
    ] as const) {
      const file = readFileSync(`${layer}.${ext}`);
      const target = dir(`target-${ext}`);
      const r = await applyLayer(Bun.file(`${layer}.${ext}`).stream(), target, { mediaType, expectDigest: sha256(file), expectDiffID: sha256(tarBytes) });
      expect(r).toMatchObject({ compression: kind, digest: sha256(file), diffID: sha256(tarBytes), size: file.byteLength, uncompressedSize: tarBytes.byteLength });
      expect(snapshot(target)).toEqual(snapshot(src));
    }
  });

  test("multi-member gzip (pigz/concatenated) is read to the end", async () => {
    const a = tarOf([{ name: "one", data: "1" }], { end: false });
    const b = tarOf([{ name: "two", data: "2" }]);
    const gz = Buffer.concat([Bun.gzipSync(a), Bun.gzipSync(b)]);
    const target = dir("target");
    const r = await apply(gz, target);
    expect(r.diffID).toBe(sha256(Buffer.concat([a, b])));
    expect(readdirSync(target).sort()).toEqual(["one", "two"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Our own encoder's PAX records

describe("PAX and names", () => {
  test("PAX path/linkpath/uid/gid/xattrs, UTF-8 names, big ids, fractional mtimes, global headers ignored", async () => {
    const utf = byteString("répertoire/日本語.txt");
    const longDir = "p".repeat(200);
    const layer = tarOf([
      { name: "répertoire", type: "dir" },
      { name: utf, data: "utf", uid: 3_000_000, gid: 4_000_000, xattrs: { "user.a": "1", "user.bin": new Uint8Array([0, 255, 0]) } },
      { name: `${longDir}/`, type: "dir", mode: 0o750 },
      { name: `${longDir}/${"q".repeat(200)}`, data: "deep" },
      { name: "ln", type: "symlink", linkname: `${longDir}/${"q".repeat(200)}` },
      paxHeader([["comment", "global stuff"], ["uid", "77"]], "g"),
      paxHeader([["mtime", "1500000000.987654321"], ["atime", "1500000001.5"]]),
      { name: "frac", data: "f" },
    ]);
    const target = dir("target");
    await apply(layer, target);
    // Before anything reads the file (reading updates atime).
    const st = lstatSync(join(target, "frac"), { bigint: true });
    expect(st.mtimeNs).toBe(1_500_000_000_987_654_321n);
    expect(st.atimeNs).toBe(1_500_000_001_500_000_000n);
    expect(st.uid).toBe(0n); // the global header's uid is not applied (as containerd)
    const s = snapshot(target);
    expect(s[utf]).toMatchObject({ uid: 3_000_000, gid: 4_000_000, xattrs: { "user.a": "31", "user.bin": "00ff00" } });
    expect(existsSync(join(target, "répertoire", "日本語.txt"))).toBe(true);
    expect(readFileSync(join(target, longDir, "q".repeat(200)), "utf8")).toBe("deep");
    expect(s[longDir]!.mode).toBe("750");
    expect(readlinkSync(join(target, "ln"))).toBe(`${longDir}/${"q".repeat(200)}`);
  });

  test("the reader parses what the encoder writes, field by field", async () => {
    const layer = tarOf([
      { name: "d", type: "dir", mode: 0o2755, uid: 5, gid: 6, mtime: 42 },
      { name: "d/f", data: "hello", mode: 0o4711 },
      { name: "d/l", type: "link", linkname: "d/f" },
      { name: "c", type: "char", devmajor: 4095, devminor: 1048575 },
      { name: "x".repeat(300), data: "" },
    ]);
    const r = new TarReader(chunks(layer, 100));
    const seen: unknown[] = [];
    for (let h; (h = await r.next()); ) {
      let body = "";
      for await (const p of r.body()) body += Buffer.from(p).toString();
      seen.push({ name: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, size: h.size, mtime: h.mtime.sec, linkname: h.linkname, dev: [h.devmajor, h.devminor], body });
    }
    expect(await r.finish()).toBe(512); // the second zero block
    expect(seen).toEqual([
      { name: "d/", type: "dir", mode: 0o2755, uid: 5, gid: 6, size: 0, mtime: 42, linkname: "", dev: [0, 0], body: "" },
      { name: "d/f", type: "file", mode: 0o4711, uid: 0, gid: 0, size: 5, mtime: 1_600_000_000, linkname: "", dev: [0, 0], body: "hello" },
      { name: "d/l", type: "link", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1_600_000_000, linkname: "d/f", dev: [0, 0], body: "" },
      { name: "c", type: "char", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1_600_000_000, linkname: "", dev: [4095, 1048575], body: "" },
      { name: "x".repeat(300), type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1_600_000_000, linkname: "", dev: [0, 0], body: "" },
    ]);
  });

  test("GNU tar lists what our encoder writes", () => {
    const layer = join(T, "ours.tar");
    writeFileSync(layer, tarOf([{ name: byteString("ünï/"), type: "dir" }, { name: byteString(`ünï/${"z".repeat(180)}`), data: "ok", uid: 3_000_000 }]));
    const out = sh(`tar --numeric-owner -tvf ${layer}`);
    expect(out).toContain(`ünï/${"z".repeat(180)}`);
    expect(out).toContain("3000000/0");
  });
});

// ---------------------------------------------------------------------------------------------
// Whiteouts, replacement, opaque directories

const lower = () =>
  tarOf([
    { name: "keep", data: "keep" },
    { name: "gone", data: "gone" },
    { name: "dir/", type: "dir" },
    { name: "dir/a", data: "a" },
    { name: "dir/sub/", type: "dir" },
    { name: "dir/sub/b", data: "b" },
    { name: "opq/", type: "dir" },
    { name: "opq/old1", data: "1" },
    { name: "opq/olddir/", type: "dir" },
    { name: "opq/olddir/x", data: "x" },
    { name: "late/", type: "dir" },
    { name: "late/old", data: "old" },
    { name: "late/new-before-marker", data: "lower version" },
    { name: "file-then-dir", data: "f" },
    { name: "dir-then-file/", type: "dir" },
    { name: "dir-then-file/child", data: "c" },
    { name: "merge/", type: "dir", mode: 0o700 },
    { name: "merge/child", data: "c" },
  ]);

const upper = () =>
  tarOf([
    { name: ".wh.gone", uid: 7, gid: 8 },
    { name: "dir/.wh.sub" },
    { name: "opq/", type: "dir" },
    { name: "opq/.wh..wh..opq" },
    { name: "opq/new", data: "new" },
    { name: "late/new-before-marker", data: "upper version" },
    { name: "late/.wh..wh..opq" },
    { name: "file-then-dir/", type: "dir" },
    { name: "file-then-dir/inside", data: "i" },
    { name: "dir-then-file", data: "now a file" },
    { name: "merge/", type: "dir", mode: 0o755, uid: 3 },
    { name: "newdir/deeper/file", data: "parents made" },
    { name: ".wh..wh.plnk/123", data: "aufs" },
  ]);

describe("whiteouts", () => {
  test("plain mode: whiteouts delete, opaque dirs lose lower content (even when the marker comes late), types replace, dirs merge", async () => {
    const target = dir("target");
    await apply(lower(), target);
    const r = await apply(upper(), target);
    expect(r.warnings).toEqual(['skipped AUFS metadata entry ".wh..wh.plnk/123"']);
    const files = Object.entries(snapshot(target, { mtime: false })).map(([k, v]) => `${k}:${v.type}${v.sha ? ":" + readFileSync(join(target, k), "utf8") : ""}`);
    expect(files).toEqual([
      "dir:dir",
      "dir/a:file:a",
      "dir-then-file:file:now a file",
      "file-then-dir:dir",
      "file-then-dir/inside:file:i",
      "keep:file:keep",
      "late:dir",
      "late/new-before-marker:file:upper version",
      "merge:dir",
      "merge/child:file:c",
      "newdir:dir",
      "newdir/deeper:dir",
      "newdir/deeper/file:file:parents made",
      "opq:dir",
      "opq/new:file:new",
    ]);
    const st = lstatSync(join(target, "merge"));
    expect([st.mode & 0o7777, st.uid]).toEqual([0o755, 3]);
    expect(lstatSync(join(target, "newdir")).mode & 0o7777).toBe(0o755);
  });

  test("overlay mode: 0:0 char devices, trusted.overlay.opaque, whiteout owner; nothing else deleted", async () => {
    const upperDir = dir("upper");
    await apply(upper(), upperDir, { mode: "overlay" });
    const s = snapshot(upperDir, { mtime: false });
    expect(s["gone"]).toMatchObject({ type: "char", rdev: "0", uid: 7, gid: 8, mode: "0" });
    expect(s["dir/sub"]).toMatchObject({ type: "char", rdev: "0" });
    expect(s["opq"]!.xattrs).toEqual({ "trusted.overlay.opaque": Buffer.from("y").toString("hex") });
    expect(s["late"]!.xattrs).toEqual({ "trusted.overlay.opaque": Buffer.from("y").toString("hex") });
    expect(s["opq/new"]!.type).toBe("file");
    expect(s[".wh.gone"]).toBeUndefined();
    expect(Object.keys(s).some((k) => k.includes(".wh."))).toBe(false);
  });

  test("overlay mode: the layers mounted with overlayfs show what plain mode produces", async () => {
    const lowerDir = dir("lower"), upperDir = dir("upper"), work = dir("work"), merged = dir("merged"), plain = dir("plain");
    await apply(lower(), lowerDir);
    await apply(upper(), upperDir, { mode: "overlay" });
    await apply(lower(), plain);
    await apply(upper(), plain);
    try {
      libc.mount("overlay", merged, "overlay", 0, `lowerdir=${lowerDir},upperdir=${upperDir},workdir=${work}`);
    } catch (e) {
      console.warn(`overlay mount not possible here, skipping the comparison: ${e}`);
      return;
    }
    try {
      expect(snapshot(merged, { mtime: false })).toEqual(snapshot(plain, { mtime: false }));
    } finally {
      libc.umount2(merged, 2);
    }
  });

  test("overlay mode: parents missing from the layer take the lower layer's metadata", async () => {
    const lowerDir = dir("lower"), upperDir = dir("upper");
    await apply(tarOf([{ name: "usr/", type: "dir", mode: 0o751, uid: 11, gid: 12, mtime: 1000 }, { name: "usr/lib/", type: "dir", mode: 0o710, mtime: 2000 }]), lowerDir);
    await apply(tarOf([{ name: "usr/lib/new", data: "n" }, { name: "other/x", data: "x" }]), upperDir, { mode: "overlay", parents: [lowerDir] });
    const s = snapshot(upperDir);
    expect(s["usr"]).toMatchObject({ mode: "751", uid: 11, gid: 12, mtime: "1000000000000" });
    expect(s["usr/lib"]).toMatchObject({ mode: "710", mtime: "2000000000000" });
    expect(s["other"]).toMatchObject({ mode: "755", uid: 0 });
  });

  test("invalid whiteout names are refused", async () => {
    for (const name of [".wh.", "a/.wh..", ".wh.."]) {
      const e = await applyError(tarOf([{ name }]), dir("t"));
      expect(e).toBeInstanceOf(UnpackError);
      expect(e.message).toMatch(/invalid whiteout name|escapes/);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile layers

describe("hostile layers never touch anything outside the target", () => {
  /** Apply; returns the error (or undefined), having checked the sentinel is unchanged. */
  async function hostile(entries: (E | Uint8Array)[] | Uint8Array, opts: ApplyOptions = {}) {
    const s = sentinel();
    const before = s.state();
    const target = dir("target");
    let err: Error | undefined;
    try {
      await apply(entries instanceof Uint8Array ? entries : tarOf(entries), target, opts);
    } catch (e) {
      err = e as Error;
    }
    expect(s.state()).toBe(before);
    return { err, target, sentinel: s.path, rel: s.path.slice(1), name: s.name };
  }

  test("../ names are refused, naming the entry", async () => {
    for (const name of ["../escape", "a/../../escape", "./../escape", "a/b/../../../escape"]) {
      const { err, target } = await hostile([{ name: "a/", type: "dir" }, { name, data: "x" }]);
      expect(err).toBeInstanceOf(UnpackError);
      expect(err!.message).toContain(`"${name}"`);
      expect(err!.message).toContain("escapes the target directory");
      expect(existsSync(join(target, "..", "escape"))).toBe(false);
    }
  });

  test("absolute names land inside the target", async () => {
    const s = sentinel();
    const before = s.state();
    const target = dir("target");
    await apply(tarOf([{ name: `${s.path}/secret`, data: "pwned" }, { name: "/etc/passwd", data: "pwned" }]), target);
    expect(readFileSync(join(target, s.path, "secret"), "utf8")).toBe("pwned");
    expect(readFileSync(join(target, "etc/passwd"), "utf8")).toBe("pwned");
    expect(s.state()).toBe(before);
  });

  test("writing through a symlink to an absolute path outside stays inside", async () => {
    const s = sentinel();
    const before = s.state();
    const t2 = dir("target2");
    await apply(tarOf([{ name: "evil", type: "symlink", linkname: s.path }, { name: "evil/secret", data: "pwned" }, { name: "evil/sub/inner", data: "pwned" }, { name: "evil/new", data: "new" }]), t2);
    expect(s.state()).toBe(before);
    expect(readFileSync(join(t2, s.path, "secret"), "utf8")).toBe("pwned");
    expect(readFileSync(join(t2, s.path, "new"), "utf8")).toBe("new");
    expect(readlinkSync(join(t2, "evil"))).toBe(s.path);
  });

  test("relative symlinks climbing out are clamped at the target's root", async () => {
    const s = sentinel();
    const before = s.state();
    const target = dir("target");
    const rel = s.path.slice(1);
    await apply(
      tarOf([
        { name: "evil", type: "symlink", linkname: "../../../../../../../../.." },
        { name: `evil/${rel}/secret`, data: "pwned" },
        { name: "a/b/evil2", type: "symlink", linkname: "../../../../.." },
        { name: `a/b/evil2/${rel}/sub/inner`, data: "pwned" },
        { name: "up", type: "symlink", linkname: `../${s.name}` },
        { name: "up/secret", data: "pwned" },
      ]),
      target,
    );
    expect(s.state()).toBe(before);
    expect(readFileSync(join(target, rel, "secret"), "utf8")).toBe("pwned");
    expect(readFileSync(join(target, rel, "sub/inner"), "utf8")).toBe("pwned");
    expect(readFileSync(join(target, s.name, "secret"), "utf8")).toBe("pwned");
  });

  test("a symlinked directory swapped in mid-layer is still resolved inside", async () => {
    const s = sentinel();
    const before = s.state();
    const target = dir("target");
    await apply(tarOf([{ name: "d/", type: "dir" }, { name: "d/f", data: "1" }, { name: "d", type: "symlink", linkname: s.path }, { name: "d/secret", data: "pwned" }]), target);
    expect(s.state()).toBe(before);
    expect(lstatSync(join(target, "d")).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(target, s.path, "secret"), "utf8")).toBe("pwned");
  });

  test("a file entry replaces a symlink instead of writing through it", async () => {
    const s = sentinel();
    const before = s.state();
    const t2 = dir("t2");
    await apply(tarOf([{ name: "x", type: "symlink", linkname: `${s.path}/secret` }, { name: "x", data: "pwned", mode: 0o777 }, { name: "y", type: "symlink", linkname: `${s.path}/sub` }, { name: "y/", type: "dir", mode: 0o777 }]), t2);
    expect(s.state()).toBe(before);
    expect(lstatSync(join(t2, "x")).isFile()).toBe(true);
    expect(lstatSync(join(t2, "y")).isDirectory()).toBe(true);
  });

  test("hardlinks to files outside are refused (absolute, ../, through a symlink)", async () => {
    for (const [entries, msg] of [
      [[{ name: "h", type: "link", linkname: "SENTINEL/secret" }], /hardlink target .* not found/],
      [[{ name: "h", type: "link", linkname: "../NAME/secret" }], /escapes the target directory/],
      [[{ name: "h", type: "link", linkname: "a/../../NAME/secret" }], /escapes the target directory/],
      [[{ name: "evil", type: "symlink", linkname: "SENTINEL" }, { name: "h", type: "link", linkname: "evil/secret" }], /hardlink target .* not found/],
      [[{ name: "evil", type: "symlink", linkname: "../NAME" }, { name: "h", type: "link", linkname: "evil/secret" }], /hardlink target .* not found/],
      [[{ name: "h", type: "link", linkname: "" }], /hardlink to the target directory itself/],
    ] as [E[], RegExp][]) {
      const s = sentinel();
      const before = s.state();
      const e = await applyError(tarOf(entries.map((x) => ({ ...x, linkname: x.linkname?.replace("SENTINEL", s.path).replace("NAME", s.name) }))), dir("target"));
      expect(e).toBeInstanceOf(UnpackError);
      expect(e.message).toMatch(/layer entry "h"|"h"/);
      expect(e.message).toMatch(msg);
      expect(s.state()).toBe(before);
      rmSync(s.path, { recursive: true });
    }
  });

  test("a hardlink to a symlink that points outside links the symlink, not its target", async () => {
    const s = sentinel();
    const before = s.state();
    const target = dir("target");
    await apply(tarOf([{ name: "sl", type: "symlink", linkname: `${s.path}/secret` }, { name: "h", type: "link", linkname: "sl", mode: 0o777, uid: 1234 }]), target);
    expect(s.state()).toBe(before);
    expect(lstatSync(join(target, "h")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(target, "h")).nlink).toBe(2);
  });

  test("device nodes and fifos are created inside, even through symlinks", async () => {
    const s = sentinel();
    const before = s.state();
    const target = dir("target");
    await apply(
      tarOf([
        { name: "evil", type: "symlink", linkname: s.path },
        { name: "evil/kmem", type: "char", devmajor: 1, devminor: 2 },
        { name: "evil/sub", type: "block", devmajor: 8, devminor: 0 },
        { name: "evil/fifo", type: "fifo" },
      ]),
      target,
    );
    expect(s.state()).toBe(before);
    const st = lstatSync(join(target, s.path, "kmem"), { bigint: true });
    expect(st.isCharacterDevice() && st.rdev === libc.makedev(1, 2)).toBe(true);
    expect(lstatSync(join(target, s.path, "sub")).isBlockDevice()).toBe(true);
    expect(lstatSync(join(target, s.path, "fifo")).isFIFO()).toBe(true);
    const e = await applyError(tarOf([{ name: "../kmem", type: "char", devmajor: 1, devminor: 2 }]), dir("t2"));
    expect(e.message).toContain("escapes the target directory");
    expect(s.state()).toBe(before);
  });

  test("whiteouts and opaque markers through symlinks delete nothing outside (both modes)", async () => {
    for (const mode of ["plain", "overlay"] as const) {
      const s = sentinel();
      const before = s.state();
      const target = dir("target");
      await apply(
        tarOf([
          { name: "evil", type: "symlink", linkname: s.path },
          { name: "evil/.wh.secret" },
          { name: "evil/.wh.sub" },
          { name: "evil/.wh..wh..opq" },
          { name: "rel", type: "symlink", linkname: `../${s.name}` },
          { name: "rel/.wh.secret" },
          { name: "rel/.wh..wh..opq" },
          { name: `${s.path}/.wh.secret` },
        ]),
        target,
        { mode },
      );
      expect(s.state()).toBe(before);
      if (mode === "overlay") expect(lstatSync(join(target, s.path, "secret")).isCharacterDevice()).toBe(true);
      const e = await applyError(tarOf([{ name: `../${s.name}/.wh.secret` }]), dir("t2"), { mode });
      expect(e.message).toContain("escapes the target directory");
      expect(s.state()).toBe(before);
      rmSync(s.path, { recursive: true });
    }
  });

  test("symlink loops fail cleanly", async () => {
    const { err } = await hostile([{ name: "a", type: "symlink", linkname: "a" }, { name: "a/x", data: "x" }]);
    expect(err).toBeInstanceOf(UnpackError);
    expect(err!.message).toMatch(/layer entry "a\/x": too many levels of symbolic links/);
  });

  test("a path through a regular file is refused; sameOwner: false keeps our own ids", async () => {
    const { err } = await hostile([{ name: "f", data: "f" }, { name: "f/x", data: "x" }]);
    expect(err).toBeInstanceOf(UnpackError);
    expect(err!.message).toBe('layer entry "f/x": "f" is not a directory');
    const target = dir("target");
    const r = await apply(tarOf([{ name: "d/", type: "dir", uid: 123, gid: 456 }, { name: "d/f", data: "x", uid: 123, gid: 456, mode: 0o4755 }]), target, { sameOwner: false });
    expect(r.entries).toBe(2);
    const s = snapshot(target);
    expect([s["d"]!.uid, s["d/f"]!.uid, s["d/f"]!.gid, s["d/f"]!.mode]).toEqual([process.getuid!(), process.getuid!(), process.getgid!(), "4755"]);
  });

  test("overlay xattrs in the archive are dropped", async () => {
    const target = dir("target");
    const r = await apply(tarOf([{ name: "d/", type: "dir", xattrs: { "trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc", "user.ok": "1" } }]), target, { mode: "overlay" });
    expect(snapshot(target)["d"]!.xattrs).toEqual({ "user.ok": "31" });
    expect(r.warnings.length).toBe(2);
  });

  test("a NUL byte in a PAX path is refused (it would cut the name short)", async () => {
    const { err } = await hostile([paxHeader([["path", "ok\0/../../sentinel/secret"]]), { name: "placeholder", data: "x" }]);
    expect(err).toBeInstanceOf(TarError);
    expect(err!.message).toContain("NUL byte in name");
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed and truncated archives

describe("malformed archives", () => {
  const file = { name: "f", data: "x".repeat(2000) };

  test("truncated in the middle of a file: error, and the partial file is removed", async () => {
    const full = tarOf([{ name: "before", data: "b" }, file]);
    const target = dir("target");
    const e = await applyError(full.subarray(0, 512 * 3 + 700), target);
    expect(e).toBeInstanceOf(TarError);
    expect(e.message).toBe('unexpected end of archive: the layer is truncated (in entry "f")');
    expect(readdirSync(target)).toEqual(["before"]);
  });

  test("truncated at an entry boundary (no end-of-archive marker), empty stream, truncated header", async () => {
    let e = await applyError(tarOf([file], { end: false }), dir("t1"));
    expect(e.message).toContain("no end-of-archive marker");
    e = await applyError(new Uint8Array(0), dir("t2"));
    expect(e.message).toContain("the layer is empty");
    e = await applyError(tarOf([file]).subarray(0, 100), dir("t3"));
    expect(e.message).toContain("truncated");
  });

  test("truncated gzip and zstd streams", async () => {
    const data = new Uint8Array(200_000);
    for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
    const tar = tarOf([{ name: "small", data: "s" }, { name: "big", data }]);
    for (const [kind, z] of [["gzip", Bun.gzipSync(tar)], ["zstd", Bun.zstdCompressSync(tar)]] as const) {
      const target = dir(`t-${kind}`);
      // Cut in the middle of big's data: the partial file is removed.
      let e = await applyError(z.subarray(0, z.byteLength >> 1), target);
      expect(e.message).toMatch(new RegExp(`^${kind}: .*\\(the layer is truncated\\)$`));
      expect(readdirSync(target)).toEqual(["small"]);
      // Cut in the compression trailer: the data is all there, but it is still an error.
      e = await applyError(z.subarray(0, z.byteLength - 4), dir(`t3-${kind}`));
      expect(e.message).toMatch(new RegExp(`^${kind}: .*\\(the layer is truncated\\)$`));
      // Garbage that looks compressed.
      const bad = new Uint8Array(z);
      bad.fill(0x55, 20, 60);
      const e2 = await applyError(bad, dir(`t2-${kind}`));
      expect(e2).toBeInstanceOf(Error);
    }
  });

  test("bad checksum, bad octal, negative and huge sizes, oversized metadata, sparse files", async () => {
    const cases: [Uint8Array, RegExp][] = [
      [rawHeader({ name: "cs" }, (b) => (b[0] = 0x41), { keepChecksum: true }), /^invalid tar header checksum \(entry "As"\) at offset 0$/],
      [rawHeader({ name: "oct" }, (b) => b.set(Buffer.from("0000z44\0"), 100)), /invalid octal number in mode field/],
      // GNU base-256: 0xff... is negative.
      [rawHeader({ name: "neg" }, (b) => b.fill(0xff, 124, 136)), /negative size -1 .*"neg"/],
      // 2^62 bytes.
      [rawHeader({ name: "huge" }, (b) => (b.fill(0, 124, 136), (b[124] = 0x80), (b[128] = 0x40))), /size 4611686018427387904 out of range .*"huge"/],
      [Buffer.concat([paxHeader([["size", "-5"]]), rawHeader({ name: "p" }, () => {})]), /invalid PAX size "-5"/],
      [Buffer.concat([paxHeader([["size", "99999999999999999999"]]), rawHeader({ name: "p" }, () => {})]), /PAX size 99999999999999999999 out of range/],
      [Buffer.concat([paxHeader([["uid", "abc"]]), rawHeader({ name: "p" }, () => {})]), /invalid PAX uid/],
      [rawHeader({ name: "ext" }, (b) => ((b[156] = 0x78), b.set(Buffer.from("77777777777\0"), 124))), /PAX header of 8589934591 bytes exceeds the 1048576-byte limit/],
      [rawHeader({ name: "ln" }, (b) => ((b[156] = 0x4c), b.set(Buffer.from("00010000000\0"), 124))), /GNU long name of 2097152 bytes exceeds/],
      [rawHeader({ name: "sparse" }, (b) => (b[156] = 0x53)), /GNU sparse files are not supported/],
      [Buffer.concat([paxHeader([["GNU.sparse.major", "1"]]), rawHeader({ name: "p" }, () => {})]), /PAX sparse files are not supported/],
      [rawHeader({ name: "vol" }, (b) => (b[156] = 0x56)), /unsupported tar entry type "V"/],
      [Buffer.concat([paxHeader([["path", "x"]]), END_OF_ARCHIVE]), /end of archive right after an extended header/],
    ];
    for (const [bytes, msg] of cases) {
      const target = dir("t");
      const e = await applyError(Buffer.concat([bytes, new Uint8Array(4096)]), target);
      expect(e).toBeInstanceOf(TarError);
      expect(e.message).toMatch(msg);
      expect(readdirSync(target)).toEqual([]);
      rmSync(target, { recursive: true });
    }
  });

  test("unsupported media types and compressions are refused clearly", async () => {
    expect(compressionOfMediaType("application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe("gzip");
    expect(compressionOfMediaType("application/vnd.oci.image.layer.v1.tar")).toBe("none");
    expect(compressionOfMediaType("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")).toBe("zstd");
    expect(compressionOfMediaType("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")).toBe("gzip");
    let e = await applyError(tarOf([]), dir("t1"), { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip+encrypted" });
    expect(e.message).toContain("encrypted layers are not supported");
    e = await applyError(tarOf([]), dir("t2"), { mediaType: "application/vnd.oci.image.config.v1+json" });
    expect(e.message).toBe("unsupported layer media type application/vnd.oci.image.config.v1+json");
    e = await applyError(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]), dir("t3"));
    expect(e).toBeInstanceOf(CompressionError);
    expect(e.message).toBe("xz-compressed layers are not supported");
  });

  test("digest and diffID mismatches are reported (after the fact)", async () => {
    const tar = tarOf([{ name: "a", data: "a" }]);
    const gz = Bun.gzipSync(tar);
    const wrong = `sha256:${"0".repeat(64)}`;
    let e = await applyError(gz, dir("t1"), { expectDigest: wrong });
    expect(e).toBeInstanceOf(DigestMismatchError);
    expect(e.message).toBe(`layer digest mismatch: expected ${wrong}, got ${sha256(gz)}`);
    e = await applyError(gz, dir("t2"), { expectDigest: sha256(gz), expectDiffID: wrong });
    expect(e.message).toBe(`layer diffID mismatch: expected ${wrong}, got ${sha256(tar)}`);
    e = await applyError(gz, dir("t3"), { expectDigest: "md5:abc" });
    expect(e.message).toContain("invalid expected digest");
    // Bytes after the end-of-archive marker are part of the diffID.
    const padded = Buffer.concat([tar, new Uint8Array(10_240)]);
    const r = await apply(padded, dir("t4"), { expectDiffID: sha256(padded) });
    expect(r.uncompressedSize).toBe(padded.byteLength);
  });

  test("a target that does not exist, and aborting", async () => {
    let e = await applyError(tarOf([]), join(T, "missing"));
    expect(e.message).toMatch(/target directory .*missing: open\(.*\): ENOENT/);
    const ac = new AbortController();
    ac.abort();
    e = await applyError(tarOf([{ name: "a", data: "a" }]), dir("t"), { signal: ac.signal });
    expect(e.name).toBe("AbortError");
  });
});

// ---------------------------------------------------------------------------------------------
// Export

describe("writeTar and diffDirs", () => {
  async function tarBytes(fn: (sink: (c: Uint8Array) => void) => Promise<{ diffID: string }>): Promise<{ bytes: Uint8Array; diffID: string }> {
    const parts: Uint8Array[] = [];
    const r = await fn((c) => void parts.push(new Uint8Array(c)));
    const bytes = Buffer.concat(parts);
    expect(r.diffID).toBe(sha256(bytes));
    return { bytes, diffID: r.diffID };
  }

  test("writeTar: deterministic, GNU tar extracts it to the same tree, and applyLayer too", async () => {
    const src = dir("src");
    richTree(src);
    const a = await tarBytes((s) => writeTar(src, s));
    const b = await tarBytes((s) => writeTar(src, s));
    expect(a.diffID).toBe(b.diffID);
    const want = snapshot(src, { mtime: "s" });
    // Ours; writeTar carries only security.capability by default.
    const ours = dir("ours");
    await apply(a.bytes, ours);
    const noUserXattrs = (s: Record<string, Node>) =>
      Object.fromEntries(Object.entries(s).map(([k, v]) => [k, { ...v, xattrs: v.xattrs?.["security.capability"] ? { "security.capability": v.xattrs["security.capability"] } : undefined }]));
    expect(noUserXattrs(snapshot(ours, { mtime: "s" }))).toEqual(noUserXattrs(want));
    // GNU tar's reading of it.
    writeFileSync(join(T, "w.tar"), a.bytes);
    const gnu = dir("gnu");
    sh(`tar --xattrs --xattrs-include='*' --numeric-owner -xpf ${join(T, "w.tar")} -C ${gnu}`);
    expect(noUserXattrs(snapshot(gnu, { mtime: "s", dirMtime: false }))).toEqual(noUserXattrs(snapshot(src, { mtime: "s", dirMtime: false })));
    // All xattrs on request; and the streaming variant gives the same bytes.
    const all = await tarBytes((s) => writeTar(src, s, { xattrs: "all" }));
    const t3 = dir("all");
    await apply(all.bytes, t3);
    expect(snapshot(t3, { mtime: "s" })).toEqual(want);
    expect(sha256(new Uint8Array(await new Response(tarStream(src)).arrayBuffer()))).toBe(a.diffID);
  });

  test("writeTar with compression into a WritableStream", async () => {
    const src = dir("src");
    writeFileSync(join(src, "f"), "data".repeat(1000));
    const out = join(T, "out.tar.zst");
    const w = Bun.file(out).writer();
    const r = await writeTar(src, new WritableStream({ write: (c) => void w.write(c), close: async () => void (await w.end()) }), { compression: "zstd" });
    const file = readFileSync(out);
    expect(r.digest).toBe(sha256(file));
    const t = dir("t");
    const a = await applyLayer(Bun.file(out).stream(), t, { expectDigest: r.digest, expectDiffID: r.diffID });
    expect(a.compression).toBe("zstd");
    expect(readFileSync(join(t, "f"), "utf8")).toBe("data".repeat(1000));
  });

  test("diffDirs: an overlay upper dir becomes a layer with whiteouts that reproduces the merged view", async () => {
    const lowerDir = dir("lower"), upperDir = dir("upper");
    await apply(lower(), lowerDir);
    await apply(upper(), upperDir, { mode: "overlay" });
    // A whiteout for something no lower has is left out.
    libc.mknod(join(upperDir, "never-existed"), S_IFCHR, 0n);
    const { bytes } = await tarBytes((s) => diffDirs([lowerDir], upperDir, s));
    const names: string[] = [];
    const r = new TarReader(chunks(bytes));
    for (let h; (h = await r.next()); ) names.push(h.name);
    expect(names).toContain(".wh.gone");
    expect(names).toContain("dir/.wh.sub");
    expect(names.indexOf("opq/.wh..wh..opq")).toBe(names.indexOf("opq/") + 1);
    expect(names).not.toContain(".wh.never-existed");
    // Applying the diff on the lower (plain) gives what applying the original upper layer gives.
    const viaDiff = dir("via-diff"), viaLayer = dir("via-layer");
    await apply(lower(), viaDiff);
    await apply(bytes, viaDiff);
    await apply(lower(), viaLayer);
    await apply(upper(), viaLayer);
    expect(snapshot(viaDiff, { mtime: false })).toEqual(snapshot(viaLayer, { mtime: false }));
    // And in overlay mode it reproduces the upper dir.
    rmSync(join(upperDir, "never-existed"));
    const again = dir("again");
    await apply(bytes, again, { mode: "overlay" });
    // Whiteouts come back as containerd writes deletions: owned by root, dated by the diff.
    const whiteoutsAsWritten = (t: Record<string, any>) =>
      Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.type === "char" && v.rdev === "0" ? { ...v, uid: 0, gid: 0, mtime: "<diff>" } : v]));
    expect(whiteoutsAsWritten(snapshot(again, { mtime: "s" }))).toEqual(whiteoutsAsWritten(snapshot(upperDir, { mtime: "s" })));
  });
});

// ---------------------------------------------------------------------------------------------
// Memory

describe("memory", () => {
  test("a 300 MB layer (gzip and zstd) unpacks with flat memory (peak RSS < 150 MB, measured in a child)", async () => {
    const src = dir("src");
    sh(`truncate -s 300M ${src}/zeros && printf 'tail' >> ${src}/zeros`);
    sh(`tar -cf - -C ${src} zeros | tee ${T}/big.tar | gzip -1 > ${T}/big.tar.gz`);
    await zstdFile(`${T}/big.tar`, `${T}/big.tar.zst`, 1);
    // Hashed by the host tool: reading 300 MB here would grow this process, and a child's
    // ru_maxrss starts from its parent's high-water mark (Linux keeps it across fork+exec).
    const diffID = `sha256:${sh(`sha256sum ${T}/big.tar`).split(" ")[0]}`;
    rmSync(`${T}/big.tar`);
    rmSync(src, { recursive: true });
    const script = join(T, "child.ts");
    writeFileSync(
      script,
      `import { applyLayer } from ${JSON.stringify(join(import.meta.dir, "../core/image/unpack"))};
       const [file, target] = process.argv.slice(2);
       const r = await applyLayer(Bun.file(file).stream(), target);
       // VmHWM: this process's own peak RSS (ru_maxrss would include the parent's, see above).
       const hwm = Number(/VmHWM:\\s+(\\d+) kB/.exec(require("fs").readFileSync("/proc/self/status", "utf8"))[1]);
       console.log(JSON.stringify({ ...r, maxRSS: hwm }));`,
    );
    for (const ext of ["gz", "zst"]) {
      const target = dir(`target-${ext}`);
      const res = exec([BUN, script, `${T}/big.tar.${ext}`, target], { timeoutMs: 60_000 });
      expect(res.stderr).toBe("");
      const out = JSON.parse(res.stdout);
      expect(out.diffID).toBe(diffID);
      expect(out.digest).toBe(`sha256:${sh(`sha256sum ${T}/big.tar.${ext}`).split(" ")[0]}`);
      const st = lstatSync(join(target, "zeros"));
      expect(st.size).toBe(300 * 1024 * 1024 + 4);
      // maxRSS is in KiB.
      expect(out.maxRSS / 1024).toBeLessThan(150);
      console.log(`${ext}: peak RSS ${(out.maxRSS / 1024).toFixed(0)} MiB for a ${(st.size / 2 ** 20).toFixed(0)} MiB layer`);
      rmSync(target, { recursive: true });
    }
  }, 60_000);
});

void IS_ROOT;
