// Snapshot metadata (containerd's snapshots/storage, a bolt db per snapshotter) in SQLite.
//
// <root>/metadata.db holds one row per snapshot: a numeric id (never reused: AUTOINCREMENT), the
// key (active) or name (committed), the kind, the parent's id, timestamps and, for committed
// snapshots, the usage computed at commit; labels live in their own table. The id names the
// snapshot's directory (<root>/snapshots/<id>), exactly like containerd's bolt sequence.
//
// Concurrency and crash safety:
//  - WAL journal, synchronous=FULL: a transaction is durable once COMMIT returns, and a process
//    killed at any moment leaves the last committed state (the WAL is replayed on open).
//  - Writes run one at a time (an in-process queue) inside BEGIN IMMEDIATE, which also holds
//    SQLite's write lock against other processes; the snapshotter does its directory work
//    (mkdir new-*, copy, rename into place) *inside* that transaction, before COMMIT. A crash
//    before COMMIT therefore leaves at most a directory no row points at, and those orphans are
//    removed at start-up (under the same write lock, so never while another process is midway).
//  - Reads use a second connection: they see committed data only, never a write in progress.
import { Database } from "bun:sqlite";
import { resolve } from "node:path";
import { alreadyExists, failedPrecondition, goQuote, invalidArgument, notFound } from "./errors";
import { always, parseAll, type Adaptor } from "./filters";
import { Kind, type Info, type InfoUpdate, type Labels, type Usage } from "./types";

/** storage.Snapshot: what mounts() needs. parentIDs run from the nearest parent to the base. */
export interface StoredSnapshot {
  id: string;
  kind: Kind;
  parentIDs: string[];
}

interface Row {
  id: number;
  key: string;
  kind: number;
  parent: number | null;
  created: number;
  updated: number;
  size: number;
  inodes: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  key     TEXT    NOT NULL UNIQUE,
  kind    INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
  parent  INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  size    INTEGER NOT NULL DEFAULT 0,
  inodes  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
CREATE TABLE IF NOT EXISTS labels (
  id    INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  name  TEXT    NOT NULL,
  value TEXT    NOT NULL,
  PRIMARY KEY (id, name)
) WITHOUT ROWID;
`;

function configure(db: Database): void {
  db.exec("PRAGMA busy_timeout = 30000");
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  db.exec("PRAGMA foreign_keys = ON");
}

/** A connection handle inside a transaction; the storage functions below take one. */
export type Tx = Database;

const queues = new Map<string, Promise<unknown>>();

export class MetaStore {
  readonly path: string;
  private w: Database;
  private r: Database;
  private closed = false;

  constructor(path: string) {
    this.path = resolve(path);
    this.w = new Database(path, { create: true, strict: true });
    configure(this.w);
    this.w.exec("BEGIN IMMEDIATE");
    try {
      const v = (this.w.query("PRAGMA user_version").get() as { user_version: number }).user_version;
      if (v > SCHEMA_VERSION) throw new Error(`${path}: schema version ${v} is newer than this program's (${SCHEMA_VERSION})`);
      this.w.exec(SCHEMA);
      this.w.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      this.w.exec("COMMIT");
    } catch (e) {
      this.w.exec("ROLLBACK");
      this.w.close();
      throw e;
    }
    this.r = new Database(path, { strict: true });
    configure(this.r);
  }

  /** A consistent read (one deferred transaction on the read connection). */
  read<T>(fn: (tx: Tx) => T): T {
    if (this.closed) throw new Error("snapshotter is closed");
    return this.r.transaction(() => fn(this.r))();
  }

  /**
   * A write transaction: queued behind the other writes of this process, then BEGIN IMMEDIATE;
   * COMMIT when fn resolves, ROLLBACK when it throws. fn may await (file system work).
   */
  write<T>(fn: (tx: Tx) => Promise<T> | T): Promise<T> {
    const run = async () => {
      if (this.closed) throw new Error("snapshotter is closed");
      this.w.exec("BEGIN IMMEDIATE");
      let result: T;
      try {
        result = await fn(this.w);
      } catch (e) {
        this.w.exec("ROLLBACK");
        throw e;
      }
      try {
        this.w.exec("COMMIT");
      } catch (e) {
        if (this.w.inTransaction) this.w.exec("ROLLBACK");
        throw e;
      }
      return result;
    };
    // One queue per database file, shared by every MetaStore of this process on it: a second
    // connection's BEGIN IMMEDIATE would otherwise block the (only) thread while the first
    // transaction waits for it to do its file system work.
    const prev = queues.get(this.path) ?? Promise.resolve();
    const p = prev.then(run, run);
    const tail = p.catch(() => {});
    queues.set(this.path, tail);
    void tail.then(() => {
      if (queues.get(this.path) === tail) queues.delete(this.path);
    });
    return p;
  }

  /** Waits for queued writes, then closes both connections. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Pending writes see `closed` and fail; nothing is left half-done (each write is one tx).
    try {
      this.r.close();
    } catch {}
    try {
      if (this.w.inTransaction) this.w.exec("ROLLBACK");
      this.w.close();
    } catch {}
  }
}

// ---------------------------------------------------------------------------------------------
// Operations (storage.GetInfo, CreateSnapshot, ...). Texts follow containerd's bolt.go.

/** bolt's ErrBucketNameRequired, what containerd's storage says to an empty key or name. */
const BUCKET_NAME_REQUIRED = "bucket name required";

function nowMs(): number {
  return Date.now();
}

function rowByKey(tx: Tx, key: string): Row | null {
  return tx.query("SELECT * FROM snapshots WHERE key = ?").get(key) as Row | null;
}
function rowById(tx: Tx, id: number): Row | null {
  return tx.query("SELECT * FROM snapshots WHERE id = ?").get(id) as Row | null;
}

function labelsOf(tx: Tx, id: number): Labels {
  const out: Labels = {};
  for (const r of tx.query("SELECT name, value FROM labels WHERE id = ? ORDER BY name").all(id) as { name: string; value: string }[]) {
    out[r.name] = r.value;
  }
  return out;
}

/** boltutil.WriteLabels: replaces all labels; empty values are not stored (that removes them). */
function writeLabels(tx: Tx, id: number, labels: Labels | undefined): Labels {
  tx.query("DELETE FROM labels WHERE id = ?").run(id);
  const kept: Labels = {};
  const ins = tx.query("INSERT INTO labels (id, name, value) VALUES (?, ?, ?)");
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (v === "" || v === undefined || v === null) continue;
    ins.run(id, k, String(v));
    kept[k] = String(v);
  }
  return kept;
}

function parentKeyOf(tx: Tx, row: Row): string {
  if (row.parent === null) return "";
  const p = tx.query("SELECT key FROM snapshots WHERE id = ?").get(row.parent) as { key: string } | null;
  return p?.key ?? "";
}

function infoOf(tx: Tx, row: Row, labels?: Labels): Info {
  return {
    kind: row.kind as Kind,
    name: row.key,
    parent: parentKeyOf(tx, row),
    labels: labels ?? labelsOf(tx, row.id),
    created: new Date(row.created),
    updated: new Date(row.updated),
  };
}

/** Ids of the parent chain starting at `parent` (nearest first). */
function parentChain(tx: Tx, parent: number | null): string[] {
  const ids: string[] = [];
  const seen = new Set<number>();
  while (parent !== null) {
    if (seen.has(parent)) throw new Error(`parent loop at snapshot id ${parent}`);
    seen.add(parent);
    const r = rowById(tx, parent);
    if (!r) throw notFound("missing parent");
    ids.push(String(r.id));
    parent = r.parent;
  }
  return ids;
}

/** storage.GetInfo: id, info and stored usage of a snapshot by key. */
export function getInfo(tx: Tx, key: string): { id: string; info: Info; usage: Usage } {
  const row = rowByKey(tx, key);
  if (!row) throw notFound("snapshot does not exist");
  return { id: String(row.id), info: infoOf(tx, row), usage: { size: row.size, inodes: row.inodes } };
}

/** storage.GetSnapshot: id, kind and parent chain of an active (Active or View) snapshot. */
export function getSnapshot(tx: Tx, key: string): StoredSnapshot {
  const row = rowByKey(tx, key);
  if (!row) throw notFound("snapshot does not exist");
  if (row.kind !== Kind.Active && row.kind !== Kind.View) {
    throw failedPrecondition(`requested snapshot ${key} not active or view`);
  }
  return { id: String(row.id), kind: row.kind as Kind, parentIDs: parentChain(tx, row.parent) };
}

/** storage.CreateSnapshot: a new Active or View record on a committed parent. */
export function createSnapshot(tx: Tx, kind: Kind, key: string, parent: string, labels?: Labels): StoredSnapshot {
  if (kind !== Kind.Active && kind !== Kind.View) {
    throw invalidArgument(`snapshot type ${kind} invalid; only snapshots of type Active or View can be created`);
  }
  let prow: Row | null = null;
  if (parent !== "") {
    prow = rowByKey(tx, parent);
    if (!prow) throw notFound(`missing parent ${goQuote(parent)} bucket`);
    if (prow.kind !== Kind.Committed) throw invalidArgument(`parent ${goQuote(parent)} is not committed snapshot`);
  }
  if (key === "") throw new Error(BUCKET_NAME_REQUIRED);
  if (rowByKey(tx, key)) throw alreadyExists(`snapshot ${key}`);
  const t = nowMs();
  const { id } = tx
    .query("INSERT INTO snapshots (key, kind, parent, created, updated) VALUES (?, ?, ?, ?, ?) RETURNING id")
    .get(key, kind, prow?.id ?? null, t, t) as { id: number };
  writeLabels(tx, id, labels);
  return { id: String(id), kind, parentIDs: prow ? parentChain(tx, prow.id) : [] };
}

/** storage.CommitActive: active `key` becomes committed `name` (same id); returns the id. */
export function commitActive(tx: Tx, key: string, name: string, usage: Usage, labels?: Labels): string {
  if (name === "") throw new Error(`committed snapshot ${name}: ${BUCKET_NAME_REQUIRED}`);
  if (rowByKey(tx, name)) throw alreadyExists(`committed snapshot ${name}`);
  const row = rowByKey(tx, key);
  if (!row) throw notFound(`failed to get active snapshot ${goQuote(key)}`);
  if (row.kind !== Kind.Active) throw failedPrecondition(`snapshot ${goQuote(key)} is not active`);
  const t = nowMs();
  tx.query("UPDATE snapshots SET key = ?, kind = ?, created = ?, updated = ?, size = ?, inodes = ? WHERE id = ?").run(
    name,
    Kind.Committed,
    t,
    t,
    Math.trunc(usage.size),
    Math.trunc(usage.inodes),
    row.id,
  );
  // Labels are replaced, not inherited.
  writeLabels(tx, row.id, labels);
  return String(row.id);
}

/** storage.Remove: deletes the record; refused while children exist. Returns id and kind. */
export function removeSnapshot(tx: Tx, key: string): { id: string; kind: Kind } {
  const row = rowByKey(tx, key);
  if (!row) throw notFound(`snapshot ${key}`);
  if (tx.query("SELECT 1 FROM snapshots WHERE parent = ? LIMIT 1").get(row.id)) {
    throw failedPrecondition("cannot remove snapshot with child");
  }
  tx.query("DELETE FROM snapshots WHERE id = ?").run(row.id);
  return { id: String(row.id), kind: row.kind as Kind };
}

/** storage.UpdateInfo: labels only ("labels", "labels.<key>", or everything mutable). */
export function updateInfo(tx: Tx, info: InfoUpdate, fieldpaths: string[] = []): Info {
  const row = rowByKey(tx, info.name);
  if (!row) throw notFound("snapshot does not exist");
  let labels: Labels = labelsOf(tx, row.id);
  if (fieldpaths.length) {
    for (const path of fieldpaths) {
      if (path.startsWith("labels.")) {
        const k = path.slice("labels.".length);
        labels[k] = info.labels?.[k] ?? "";
        continue;
      }
      if (path === "labels") {
        labels = { ...(info.labels ?? {}) };
        continue;
      }
      throw invalidArgument(`cannot update ${goQuote(path)} field on snapshot ${goQuote(info.name)}`);
    }
  } else {
    labels = { ...(info.labels ?? {}) };
  }
  const t = nowMs();
  tx.query("UPDATE snapshots SET updated = ? WHERE id = ?").run(t, row.id);
  const kept = writeLabels(tx, row.id, labels);
  return infoOf(tx, { ...row, updated: t }, kept);
}

/** The filter adaptor of storage.adaptSnapshot. */
export function adaptInfo(info: Info): Adaptor {
  return (fp) => {
    if (!fp.length) return ["", false];
    switch (fp[0]) {
      case "kind":
        switch (info.kind) {
          case Kind.Active:
            return ["active", true];
          case Kind.View:
            return ["view", true];
          case Kind.Committed:
            return ["committed", true];
        }
        return ["", false];
      case "name":
        return [info.name, true];
      case "parent":
        return [info.parent, true];
      case "labels": {
        const k = fp.slice(1).join(".");
        if (!Object.keys(info.labels).length || !(k in info.labels)) return ["", false];
        return [info.labels[k]!, true];
      }
    }
    return ["", false];
  };
}

/** storage.WalkInfo: every snapshot matching the filters, ordered by key (bolt's byte order). */
export function walkInfo(tx: Tx, filters: string[] = []): Info[] {
  const filter = filters.length ? parseAll(filters) : always;
  const rows = tx.query("SELECT * FROM snapshots ORDER BY key").all() as Row[];
  const keys = new Map<number, string>(rows.map((r) => [r.id, r.key]));
  const labels = new Map<number, Labels>();
  for (const l of tx.query("SELECT id, name, value FROM labels ORDER BY id, name").all() as { id: number; name: string; value: string }[]) {
    let m = labels.get(l.id);
    if (!m) labels.set(l.id, (m = {}));
    m[l.name] = l.value;
  }
  const out: Info[] = [];
  for (const r of rows) {
    const info: Info = {
      kind: r.kind as Kind,
      name: r.key,
      parent: r.parent === null ? "" : (keys.get(r.parent) ?? ""),
      labels: labels.get(r.id) ?? {},
      created: new Date(r.created),
      updated: new Date(r.updated),
    };
    if (filter(adaptInfo(info))) out.push(info);
  }
  return out;
}

/** storage.IDMap: id -> key of every snapshot. */
export function idMap(tx: Tx): Map<string, string> {
  const m = new Map<string, string>();
  for (const r of tx.query("SELECT id, key FROM snapshots").all() as { id: number; key: string }[]) m.set(String(r.id), r.key);
  return m;
}

/** Every record with its parent id (for integrity checks). */
export function allRecords(tx: Tx): { id: string; key: string; kind: Kind; parentId: string | null }[] {
  return (tx.query("SELECT id, key, kind, parent FROM snapshots ORDER BY id").all() as Row[]).map((r) => ({
    id: String(r.id),
    key: r.key,
    kind: r.kind as Kind,
    parentId: r.parent === null ? null : String(r.parent),
  }));
}
