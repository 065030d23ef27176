// containerd's local content store (content/local), on disk exactly as containerd lays it out:
//
//   <root>/blobs/sha256/<hex>                         committed blobs (read-only, 0444)
//   <root>/ingest/<sha256(ref)>/{data,ref,startedat,updatedat,total}   writes in progress
//
// A Writer holds the ref's lock until closed (a second writer of the same ref gets Unavailable
// `ref ... locked for <duration> (since <time>)`, after the few short retries containerd's
// local store makes); an ingest left behind (client gone) is resumed by the next writer of the
// ref: its data is re-hashed and the write continues at its end. Commit verifies the size and the
// digest first and only then renames the data into blobs/. This store knows nothing of
// namespaces: which namespace sees which blob (and its labels) is the metadata DB's business
// (core/metadata/content.ts; the service layer combines both).
import { createHash } from "node:crypto";
import { chmodSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync, ftruncateSync, fsyncSync } from "node:fs";
import { join } from "node:path";
import { alreadyExists, Code, ErrDef, failedPrecondition, invalidArgument, notFound, unavailable } from "../containerd/errdefs";
import { formatRFC3339, fromDate, now, parseRFC3339, type Time } from "../containerd/types";
import { formatDuration } from "../ctr/units";

export interface BlobInfo {
  digest: string;
  size: number;
  createdAt: Time;
  updatedAt: Time;
}

export interface IngestStatus {
  ref: string;
  offset: number;
  total: number;
  expected: string;
  startedAt: Time;
  updatedAt: Time;
}

const DIGEST_RE = /^sha256:([0-9a-f]{64})$/;

export function parseDigest(d: string): string {
  const m = DIGEST_RE.exec(d);
  if (!m) throw invalidArgument(`invalid digest ${JSON.stringify(d)}`);
  return m[1]!;
}

/** Go's time.Time String() of a lock's start: "2006-01-02 15:04:05.999999999 +0000 UTC m=+1.5". */
function goTimeString(t: Time, monoMs: number): string {
  const d = new Date(t.seconds * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  let s = `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
  if (t.nanos > 0) s += "." + p(t.nanos, 9).replace(/0+$/, "");
  return `${s} +0000 UTC m=+${(monoMs / 1000).toFixed(9)}`;
}

interface Lock {
  since: Time;
  /** performance.now() when taken (Go's monotonic reading, "m=+..."). */
  mono: number;
}

export class ContentStore {
  private readonly locks = new Map<string, Lock>();

  constructor(readonly root: string) {
    mkdirSync(join(root, "blobs", "sha256"), { recursive: true, mode: 0o755 });
    mkdirSync(join(root, "ingest"), { recursive: true, mode: 0o755 });
  }

  blobPath(digest: string): string {
    return join(this.root, "blobs", "sha256", parseDigest(digest));
  }

  ingestDir(ref: string): string {
    return join(this.root, "ingest", createHash("sha256").update(ref).digest("hex"));
  }

  exists(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** NotFound `content digest sha256:...: not found`. */
  info(digest: string): BlobInfo {
    let st;
    try {
      st = statSync(this.blobPath(digest));
    } catch {
      throw notFound(`content digest ${digest}`);
    }
    return { digest, size: st.size, createdAt: fromDate(st.birthtime.getTime() ? st.birthtime : st.ctime), updatedAt: fromDate(st.mtime) };
  }

  walk(): BlobInfo[] {
    const dir = join(this.root, "blobs", "sha256");
    return readdirSync(dir)
      .filter((n) => /^[0-9a-f]{64}$/.test(n))
      .map((n) => this.info(`sha256:${n}`));
  }

  /** Read `size` bytes (0 or negative: to the end) at `offset`. */
  readAt(digest: string, offset: number, size: number): Buffer {
    const info = this.info(digest);
    if (offset > info.size) throw invalidArgument(`offset ${offset} beyond size ${info.size}`);
    const n = size > 0 ? Math.min(size, info.size - offset) : info.size - offset;
    const buf = Buffer.alloc(n);
    const fd = openSync(this.blobPath(digest), "r");
    try {
      let got = 0;
      while (got < n) {
        const r = readSync(fd, buf, got, n - got, offset + got);
        if (r === 0) break;
        got += r;
      }
      return buf.subarray(0, got);
    } finally {
      closeSync(fd);
    }
  }

  /** The blob as chunks of at most `chunk` bytes from `offset`. */
  async *chunks(digest: string, offset = 0, size = 0, chunk = 1 << 20): AsyncGenerator<{ offset: number; data: Buffer }> {
    const info = this.info(digest);
    const end = size > 0 ? Math.min(info.size, offset + size) : info.size;
    const fd = openSync(this.blobPath(digest), "r");
    try {
      let off = offset;
      while (off < end) {
        const buf = Buffer.alloc(Math.min(chunk, end - off));
        const r = readSync(fd, buf, 0, buf.length, off);
        if (r === 0) break;
        yield { offset: off, data: buf.subarray(0, r) };
        off += r;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** The whole blob as chunks, read synchronously. */
  *chunksSync(digest: string, chunk = 1 << 20): Generator<Buffer> {
    const fd = openSync(this.blobPath(digest), "r");
    try {
      for (;;) {
        const buf = Buffer.alloc(chunk);
        const r = readSync(fd, buf, 0, chunk, null);
        if (r <= 0) return;
        yield buf.subarray(0, r);
      }
    } finally {
      closeSync(fd);
    }
  }

  delete(digest: string): void {
    try {
      rmSync(this.blobPath(digest));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw notFound(`content digest ${digest}`);
      throw e;
    }
  }

  /** Status of an ingest by ref; NotFound `<ref>: not found`. */
  status(ref: string): IngestStatus {
    const dir = this.ingestDir(ref);
    if (!existsSync(join(dir, "ref"))) throw notFound(`${ref}`);
    return this.readStatus(dir);
  }

  private readStatus(dir: string): IngestStatus {
    const read = (n: string) => {
      try {
        return readFileSync(join(dir, n), "utf8");
      } catch {
        return "";
      }
    };
    const time = (n: string) => {
      const s = read(n).trim();
      try {
        return s ? parseRFC3339(s) : now();
      } catch {
        return now();
      }
    };
    let offset = 0;
    try {
      offset = statSync(join(dir, "data")).size;
    } catch {}
    return { ref: read("ref"), offset, total: Number(read("total") || 0), expected: read("expected"), startedAt: time("startedat"), updatedAt: time("updatedat") };
  }

  listStatuses(): IngestStatus[] {
    const base = join(this.root, "ingest");
    const out: IngestStatus[] = [];
    for (const n of readdirSync(base)) {
      const dir = join(base, n);
      if (existsSync(join(dir, "ref"))) out.push(this.readStatus(dir));
    }
    return out;
  }

  /**
   * Remove an ingest; NotFound when there is none. As containerd's, it doesn't wait for a writer
   * that holds the ref: that writer's data is gone and its commit fails.
   */
  abort(ref: string): void {
    const dir = this.ingestDir(ref);
    if (!existsSync(dir)) throw notFound(`ingest ref ${JSON.stringify(ref)}`);
    rmSync(dir, { recursive: true, force: true });
  }

  isLocked(ref: string): boolean {
    return this.locks.has(ref);
  }

  /**
   * Open (or resume) the ingest of `ref`. AlreadyExists when `expected` is already a blob;
   * Unavailable `ref <ref> locked for <duration> (since <time>)` while another writer holds it.
   */
  writer(ref: string, opts: { total?: number; expected?: string } = {}): Writer {
    if (!ref) throw invalidArgument("ref must not be empty");
    if (opts.expected) {
      parseDigest(opts.expected);
      if (this.exists(opts.expected)) throw alreadyExists(`content ${opts.expected}`);
    }
    const lock = this.locks.get(ref);
    if (lock) {
      // Go's tryLock: how long it has been held helps tell a dead lock from contention.
      const held = formatDuration(performance.now() - lock.mono);
      throw unavailable(`ref ${ref} locked for ${held} (since ${goTimeString(lock.since, lock.mono)})`);
    }
    this.locks.set(ref, { since: now(), mono: performance.now() });
    try {
      return new Writer(this, ref, this.ingestDir(ref), opts);
    } catch (e) {
      this.locks.delete(ref);
      throw e;
    }
  }

  /**
   * As writer(), but while the ref is locked retries a few times with short random sleeps
   * (containerd's local store: 10 tries, up to 2^n ms each) before giving up with Unavailable.
   */
  async writerRetrying(ref: string, opts: { total?: number; expected?: string } = {}): Promise<Writer> {
    for (let count = 0; ; count++) {
      try {
        return this.writer(ref, opts);
      } catch (e) {
        if (!(e instanceof ErrDef && e.code === Code.UNAVAILABLE) || count >= 9) throw e;
      }
      await Bun.sleep(Math.floor(Math.random() * (1 << count)));
    }
  }

  /** @internal */
  unlock(ref: string): void {
    this.locks.delete(ref);
  }
}

export class Writer {
  private fd: number;
  private hash = createHash("sha256");
  offset = 0;
  total: number;
  expected: string;
  startedAt: Time;
  updatedAt: Time;
  private closed = false;

  constructor(
    private readonly store: ContentStore,
    readonly ref: string,
    private readonly dir: string,
    opts: { total?: number; expected?: string },
  ) {
    const fresh = !existsSync(join(dir, "ref"));
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const t = now();
    if (fresh) {
      writeFileSync(join(dir, "ref"), ref);
      writeFileSync(join(dir, "startedat"), formatRFC3339(t));
      writeFileSync(join(dir, "updatedat"), formatRFC3339(t));
    }
    const st = store.status(ref);
    this.startedAt = fresh ? t : st.startedAt;
    this.updatedAt = fresh ? t : st.updatedAt;
    this.total = opts.total || st.total || 0;
    this.expected = opts.expected || st.expected || "";
    if (this.total) writeFileSync(join(dir, "total"), String(this.total));
    if (this.expected) writeFileSync(join(dir, "expected"), this.expected);
    this.fd = openSync(join(dir, "data"), "a+");
    // Resume: re-hash what is already there.
    const size = fstatSync(this.fd).size;
    const buf = Buffer.alloc(1 << 20);
    let off = 0;
    while (off < size) {
      const r = readSync(this.fd, buf, 0, Math.min(buf.length, size - off), off);
      if (r === 0) break;
      this.hash.update(buf.subarray(0, r));
      off += r;
    }
    this.offset = off;
  }

  digest(): string {
    return `sha256:${this.hash.copy().digest("hex")}`;
  }

  setTotal(total: number): void {
    if (total > 0 && total !== this.total) {
      this.total = total;
      writeFileSync(join(this.dir, "total"), String(total));
    }
  }

  write(data: Uint8Array): number {
    let done = 0;
    while (done < data.length) done += writeSync(this.fd, data, done, data.length - done, this.offset + done);
    this.hash.update(data);
    this.offset += data.length;
    this.updatedAt = now();
    // The file is what Status reads: kept within a second of the last write (containerd's local
    // writer only writes it when the writer closes), not rewritten for every 1 MiB message.
    const t = performance.now();
    if (t - this.stamped >= 1000) this.stamp(t);
    else this.unstamped = true;
    return data.length;
  }

  /** performance.now() when updatedat was last written, and whether a write came after. */
  private stamped = -Infinity;
  private unstamped = false;

  private stamp(t = performance.now()): void {
    writeFileSync(join(this.dir, "updatedat"), formatRFC3339(this.updatedAt));
    this.stamped = t;
    this.unstamped = false;
  }

  truncate(size: number): void {
    if (size !== 0) throw invalidArgument("truncate to non-zero size is not supported");
    ftruncateSync(this.fd, 0);
    this.hash = createHash("sha256");
    this.offset = 0;
  }

  /**
   * Verify size (when given) and digest (when given), then move the data into blobs/ and remove
   * the ingest. FailedPrecondition `unexpected commit size/digest ...`; AlreadyExists when the
   * blob appeared meanwhile (the ingest is removed either way).
   */
  commit(size: number, expected: string): string {
    fsyncSync(this.fd);
    if (size > 0 && size !== this.offset) throw failedPrecondition(`unexpected commit size ${this.offset}, expected ${size}`);
    const dgst = this.digest();
    if (expected && expected !== dgst) throw failedPrecondition(`unexpected commit digest ${dgst}, expected ${expected}`);
    const target = this.store.blobPath(dgst);
    const data = join(this.dir, "data");
    if (existsSync(target)) {
      this.close();
      rmSync(this.dir, { recursive: true, force: true });
      throw alreadyExists(`content ${dgst}`);
    }
    chmodSync(data, 0o444);
    renameSync(data, target);
    this.unstamped = false;
    this.close();
    rmSync(this.dir, { recursive: true, force: true });
    return dgst;
  }

  /** Release the lock; the ingest stays for a later writer to resume. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.unstamped) {
      try {
        this.stamp();
      } catch {} // committed or aborted: the ingest is gone
    }
    try {
      closeSync(this.fd);
    } catch {}
    this.store.unlock(this.ref);
  }
}
