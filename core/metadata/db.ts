// containerd's metadata store in SQLite (bun:sqlite): namespaces and their labels, images, leases
// and their resources, each namespace's view of the content store (blob labels, ingests) and of
// each snapshotter (keys, parents, labels). The blobs and the snapshot directories themselves live
// with the content store and the snapshotters; this database only says which namespace has what.
//
// Durability: WAL journal, synchronous=FULL, every change in a transaction (BEGIN IMMEDIATE). A kill
// at any moment leaves either the whole transaction or none of it, and an acknowledged call is on
// disk. The schema is versioned by the `schema_migrations` table: append a migration to MIGRATIONS
// to change it (never edit one that shipped).
//
// Layout: <root>/io.containerd.metadata.v1.sqlite/meta.db (the path the introspection service
// exports for the plugin io.containerd.metadata.v1 "sqlite").
import { Database } from "bun:sqlite";
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Code, q, status } from "../containerd/errdefs";
import { formatRFC3339, now, parseRFC3339, type Time } from "../containerd/types";

export const METADATA_PLUGIN_DIR = "io.containerd.metadata.v1.sqlite";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Times are RFC 3339 text in UTC with nanoseconds (sortable, exact); labels and annotations are
 * JSON objects; every table is keyed by namespace first. Deleting a namespace is refused while
 * it holds images, blobs, containers or snapshots (RESTRICT); its leases go with it (CASCADE).
 */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "namespaces, images, leases, content, ingests, snapshots, containers",
    sql: `
CREATE TABLE namespaces (
  name        TEXT PRIMARY KEY,
  labels      TEXT NOT NULL DEFAULT '{}',
  created_at  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE images (
  namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE RESTRICT,
  name        TEXT NOT NULL,
  media_type  TEXT NOT NULL,
  digest      TEXT NOT NULL,
  size        INTEGER NOT NULL,
  annotations TEXT NOT NULL DEFAULT '{}',
  labels      TEXT NOT NULL DEFAULT '{}',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
CREATE INDEX images_by_digest ON images(digest);

CREATE TABLE leases (
  namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
  id          TEXT NOT NULL,
  labels      TEXT NOT NULL DEFAULT '{}',
  created_at  TEXT NOT NULL,
  PRIMARY KEY (namespace, id)
) WITHOUT ROWID;

-- type: "content" (id = digest), "ingests" (id = ref), "snapshots/<snapshotter>" (id = key)
CREATE TABLE lease_resources (
  namespace   TEXT NOT NULL,
  lease       TEXT NOT NULL,
  type        TEXT NOT NULL,
  id          TEXT NOT NULL,
  PRIMARY KEY (namespace, lease, type, id),
  FOREIGN KEY (namespace, lease) REFERENCES leases(namespace, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX lease_resources_by_resource ON lease_resources(namespace, type, id);

-- A namespace's reference to a committed blob of the (shared) content store, with its labels.
CREATE TABLE content (
  namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE RESTRICT,
  digest      TEXT NOT NULL,
  size        INTEGER NOT NULL,
  labels      TEXT NOT NULL DEFAULT '{}',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;
CREATE INDEX content_by_digest ON content(digest);

-- Writes in progress (content Write refs) per namespace; the data is in the content store's ingest dir.
CREATE TABLE ingests (
  namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
  ref         TEXT NOT NULL,
  expected    TEXT NOT NULL DEFAULT '',
  total       INTEGER NOT NULL DEFAULT 0,
  started_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (namespace, ref)
) WITHOUT ROWID;

-- A namespace's snapshot keys for one snapshotter. backing_key is the key in the snapshotter
-- itself (unique across namespaces); parent is the parent's key in this namespace ('' for none).
-- kind: 'active', 'view' or 'committed'.
CREATE TABLE snapshots (
  namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE RESTRICT,
  snapshotter TEXT NOT NULL,
  key         TEXT NOT NULL,
  backing_key TEXT NOT NULL,
  parent      TEXT NOT NULL DEFAULT '',
  kind        TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
  labels      TEXT NOT NULL DEFAULT '{}',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (namespace, snapshotter, key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX snapshots_by_backing_key ON snapshots(snapshotter, backing_key);
CREATE INDEX snapshots_by_parent ON snapshots(namespace, snapshotter, parent);

-- Container records (containers.v1). Any fields are kept as (type URL, encoded value).
CREATE TABLE containers (
  namespace       TEXT NOT NULL REFERENCES namespaces(name) ON DELETE RESTRICT,
  id              TEXT NOT NULL,
  labels          TEXT NOT NULL DEFAULT '{}',
  image           TEXT NOT NULL DEFAULT '',
  runtime_name    TEXT NOT NULL DEFAULT '',
  runtime_options_type  TEXT,
  runtime_options BLOB,
  spec_type       TEXT,
  spec            BLOB,
  snapshotter     TEXT NOT NULL DEFAULT '',
  snapshot_key    TEXT NOT NULL DEFAULT '',
  extensions      TEXT NOT NULL DEFAULT '{}',
  sandbox         TEXT NOT NULL DEFAULT '',
  created_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL,
  PRIMARY KEY (namespace, id)
) WITHOUT ROWID;
`,
  },
  {
    version: 2,
    name: "snapshot key sequences",
    sql: `
-- containerd names a backing snapshot "<namespace>/<n>/<key>", n the next value of a sequence of
-- the namespace's snapshotter bucket (one step per Prepare, View and Commit that succeeded). Error
-- messages of the snapshotters quote these names, so ours count the same way.
CREATE TABLE snapshot_sequences (
  namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
  snapshotter TEXT NOT NULL,
  seq         INTEGER NOT NULL,
  PRIMARY KEY (namespace, snapshotter)
) WITHOUT ROWID;
`,
  },
];

/**
 * containerd's boltutil.WriteLabels skips empty values and puts the rest in a bucket, which refuses
 * an empty key: `failed to set label ""="v": key required`, code Unknown (no errdefs class), with
 * `context` in front when the caller wraps it ("writing labels for image x").
 */
export function checkLabelKeys(labels: Record<string, string> | undefined, context?: string): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (k !== "" || v === "") continue;
    const msg = `failed to set label ${q(k)}=${q(v)}: key required`;
    throw status(Code.UNKNOWN, context ? `${context}: ${msg}` : msg);
  }
}

/** A labels/annotations JSON column. */
export function parseMap(s: string | null | undefined): Record<string, string> {
  if (!s) return {};
  try {
    const v = JSON.parse(s);
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

/** Labels as stored: keys sorted, empty values dropped (containerd never stores an empty label). */
export function stringifyMap(m: Record<string, string> | undefined | null, opts: { keepEmpty?: boolean } = {}): string {
  const out: Record<string, string> = {};
  for (const k of Object.keys(m ?? {}).sort()) {
    const v = m![k]!;
    if (v !== "" || opts.keepEmpty) out[k] = v;
  }
  return JSON.stringify(out);
}

export const timeText = (t: Time = now()) => formatRFC3339(t);
export const textTime = (s: string) => parseRFC3339(s);

/**
 * containerd's metadata "wlock" (metadata.DB.wlock): an operation that does snapshotter work between
 * checking records and writing its own (snapshot Prepare/View, Commit, Remove: async, the event
 * loop runs other requests meanwhile) holds it shared from the check to the record; a garbage
 * collection holds it exclusively from its mark to its last removal from disk. So a collection
 * never sweeps, say, the parent an in-flight Prepare already looked up, nor removes the backing
 * snapshot of a key about to be recorded: it runs before the operation started or after it
 * recorded (and added to its lease) what it made. Writer-preferring: once a collection waits, new
 * operations queue behind it, so a stream of them cannot starve it. Not reentrant: code holding
 * it must not wait for a collection (images/leases Delete with sync do not hold it).
 */
export class GCLock {
  private readers = 0;
  private writer = false;
  private readonly queue: { exclusive: boolean; wake: () => void }[] = [];

  async shared<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.writer || this.queue.length) await new Promise<void>((wake) => this.queue.push({ exclusive: false, wake }));
    else this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.drain();
    }
  }

  async exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.writer || this.readers || this.queue.length) await new Promise<void>((wake) => this.queue.push({ exclusive: true, wake }));
    else this.writer = true;
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.drain();
    }
  }

  /** Hand the lock to the waiters in order (counts are taken for them before they wake). */
  private drain(): void {
    while (!this.writer && this.queue.length) {
      const next = this.queue[0]!;
      if (next.exclusive) {
        if (this.readers) return;
        this.queue.shift();
        this.writer = true;
      } else {
        this.queue.shift();
        this.readers++;
      }
      next.wake();
    }
  }
}

export class MetadataDB {
  readonly db: Database;
  /** Held shared by snapshot operations across their snapshotter work, exclusively by the GC. */
  readonly gcLock = new GCLock();

  private constructor(readonly path: string) {
    this.db = new Database(path, { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL");
    this.db.exec("PRAGMA synchronous = FULL");
    this.db.exec("PRAGMA foreign_keys = ON");
    this.db.exec("PRAGMA busy_timeout = 5000");
    this.migrate();
  }

  /** Open (creating it and its directory) the database under a containerd root. */
  static open(root: string): MetadataDB {
    const dir = join(root, METADATA_PLUGIN_DIR);
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    const path = join(dir, "meta.db");
    const m = new MetadataDB(path);
    try {
      chmodSync(path, 0o600);
    } catch {}
    return m;
  }

  /** Open a database file directly (tests, tools). */
  static openFile(path: string): MetadataDB {
    return new MetadataDB(path);
  }

  /** Applied schema version. */
  version(): number {
    const r = this.db.query<{ v: number | null }, []>("SELECT max(version) AS v FROM schema_migrations").get();
    return r?.v ?? 0;
  }

  private migrate(): void {
    this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
    const have = this.version();
    const latest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
    if (have > latest) throw new Error(`metadata database ${this.path} has schema version ${have}, newer than this binary's ${latest}`);
    for (const m of MIGRATIONS) {
      if (m.version <= have) continue;
      this.write(() => {
        this.db.exec(m.sql);
        this.db.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(m.version, m.name, timeText());
      });
    }
  }

  /** Run fn in a write transaction (BEGIN IMMEDIATE); nested calls become savepoints. */
  write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /** Run fn in a read transaction (a consistent snapshot of the database). */
  read<T>(fn: () => T): T {
    return this.db.transaction(fn).deferred();
  }

  /** PRAGMA integrity_check's verdict ("ok" when sound). */
  integrityCheck(): string {
    return this.db.query<{ integrity_check: string }, []>("PRAGMA integrity_check").all().map((r) => r.integrity_check).join("\n");
  }

  close(): void {
    try {
      this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch {}
    this.db.close();
  }
}
