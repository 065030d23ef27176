// Each namespace's snapshot keys, per snapshotter. A snapshotter stores snapshots under its own
// keys (`backingKey`, unique across namespaces, e.g. "<namespace>/<n>/<key>"); this table maps a
// namespace's key to it and keeps the parent (a key in the same namespace), the kind and the
// labels. Removing a snapshot that still has children is refused.
import { alreadyExists, ErrDef, failedPrecondition, invalidArgument, notFound, q } from "../containerd/errdefs";
import { type Filter, mapField } from "../containerd/filters";
import { validateLabel } from "../containerd/identifiers";

/** containerd's validateSnapshot: every label within the size limit, errors prefixed "info.Labels". */
export function validateSnapshotLabels(labels: Record<string, string> | undefined): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    try {
      validateLabel(k, v);
    } catch (e) {
      if (e instanceof ErrDef) throw new ErrDef(e.code, `info.Labels: ${e.message}`);
      throw e;
    }
  }
}
import { now, type Time } from "../containerd/types";
import { checkLabelKeys, type MetadataDB, parseMap, stringifyMap, textTime, timeText } from "./db";
import { ensureNamespace } from "./namespaces";

export type SnapshotKind = "active" | "view" | "committed";

export interface SnapshotRecord {
  snapshotter: string;
  key: string;
  backingKey: string;
  parent: string;
  kind: SnapshotKind;
  labels: Record<string, string>;
  createdAt: Time;
  updatedAt: Time;
}

interface Row {
  snapshotter: string;
  key: string;
  backing_key: string;
  parent: string;
  kind: SnapshotKind;
  labels: string;
  created_at: string;
  updated_at: string;
}

const COLS = "snapshotter, key, backing_key, parent, kind, labels, created_at, updated_at";

const fromRow = (r: Row): SnapshotRecord => ({
  snapshotter: r.snapshotter,
  key: r.key,
  backingKey: r.backing_key,
  parent: r.parent,
  kind: r.kind,
  labels: parseMap(r.labels),
  createdAt: textTime(r.created_at),
  updatedAt: textTime(r.updated_at),
});

/** Filter adaptor of snapshots: name, parent, kind, labels.<k>. */
export function snapshotAdaptor(s: SnapshotRecord) {
  return (path: string[]): [string, boolean] => {
    switch (path[0]) {
      case "name":
        return [s.key, s.key.length > 0];
      case "parent":
        return [s.parent, s.parent.length > 0];
      case "kind":
        return [s.kind, true];
      case "labels":
        return mapField(path.slice(1), s.labels);
    }
    return ["", false];
  };
}

export function findSnapshot(m: MetadataDB, ns: string, snapshotter: string, key: string): SnapshotRecord | undefined {
  const r = m.db.query<Row, [string, string, string]>(`SELECT ${COLS} FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?`).get(ns, snapshotter, key);
  return r ? fromRow(r) : undefined;
}

/** NotFound `snapshot "k" does not exist: not found`. */
export function getSnapshot(m: MetadataDB, ns: string, snapshotter: string, key: string): SnapshotRecord {
  const s = findSnapshot(m, ns, snapshotter, key);
  if (!s) throw notFound(`snapshot ${q(key)} does not exist`);
  return s;
}

export function listSnapshots(m: MetadataDB, ns: string, snapshotter: string, filter?: Filter): SnapshotRecord[] {
  const all = m.db.query<Row, [string, string]>(`SELECT ${COLS} FROM snapshots WHERE namespace = ? AND snapshotter = ? ORDER BY key`).all(ns, snapshotter).map(fromRow);
  return filter ? all.filter((s) => filter(snapshotAdaptor(s))) : all;
}

export function snapshotChildren(m: MetadataDB, ns: string, snapshotter: string, key: string): string[] {
  return m.db.query<{ key: string }, [string, string, string]>("SELECT key FROM snapshots WHERE namespace = ? AND snapshotter = ? AND parent = ? ORDER BY key").all(ns, snapshotter, key).map((r) => r.key);
}

/** The last value of a namespace's backing key sequence for a snapshotter (0: none yet). */
export function snapshotSequence(m: MetadataDB, ns: string, snapshotter: string): number {
  return m.db.query<{ seq: number }, [string, string]>("SELECT seq FROM snapshot_sequences WHERE namespace = ? AND snapshotter = ?").get(ns, snapshotter)?.seq ?? 0;
}

/** Record that `seq` of the sequence was used (it never goes back). */
export function useSnapshotSequence(m: MetadataDB, ns: string, snapshotter: string, seq: number): void {
  m.write(() => {
    ensureNamespace(m, ns);
    m.db
      .query("INSERT INTO snapshot_sequences (namespace, snapshotter, seq) VALUES (?, ?, ?) ON CONFLICT (namespace, snapshotter) DO UPDATE SET seq = max(seq, excluded.seq)")
      .run(ns, snapshotter, seq);
  });
}

/** Snapshot keys of every namespace mapped to a snapshotter's backing keys (for its garbage collection). */
export function backingKeys(m: MetadataDB, snapshotter: string): Set<string> {
  return new Set(m.db.query<{ backing_key: string }, [string]>("SELECT backing_key FROM snapshots WHERE snapshotter = ?").all(snapshotter).map((r) => r.backing_key));
}

/**
 * Record a new active or view snapshot. AlreadyExists `snapshot "k": already exists`; the parent
 * must be a committed snapshot of the same namespace (NotFound / InvalidArgument otherwise).
 */
export function createSnapshot(
  m: MetadataDB,
  ns: string,
  s: { snapshotter: string; key: string; backingKey: string; parent?: string; kind: "active" | "view"; labels?: Record<string, string> },
): SnapshotRecord {
  validateSnapshotLabels(s.labels);
  return m.write(() => {
    ensureNamespace(m, ns);
    if (findSnapshot(m, ns, s.snapshotter, s.key)) throw alreadyExists(`snapshot ${q(s.key)}`);
    const parent = s.parent ?? "";
    if (parent) {
      const p = findSnapshot(m, ns, s.snapshotter, parent);
      if (!p) throw notFound(`parent snapshot ${q(parent)} does not exist`);
      if (p.kind !== "committed") throw invalidArgument(`parent ${q(parent)} is not committed snapshot`);
    }
    const t = now();
    const rec: SnapshotRecord = { snapshotter: s.snapshotter, key: s.key, backingKey: s.backingKey, parent, kind: s.kind, labels: JSON.parse(stringifyMap(s.labels)), createdAt: t, updatedAt: t };
    m.db
      .query(`INSERT INTO snapshots (namespace, ${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(ns, rec.snapshotter, rec.key, rec.backingKey, rec.parent, rec.kind, stringifyMap(rec.labels), timeText(t), timeText(t));
    return rec;
  });
}

/**
 * Commit an active snapshot `key` as `name` (the key disappears, the committed name takes its
 * place with its children). The caller commits in the snapshotter too, within the same flow.
 */
export function commitSnapshot(
  m: MetadataDB,
  ns: string,
  snapshotter: string,
  key: string,
  name: string,
  opts: { backingKey?: string; labels?: Record<string, string> } = {},
): SnapshotRecord {
  validateSnapshotLabels(opts.labels);
  return m.write(() => {
    const cur = getSnapshot(m, ns, snapshotter, key);
    if (cur.kind !== "active") throw failedPrecondition(`snapshot ${q(key)} is not active`);
    if (findSnapshot(m, ns, snapshotter, name)) throw alreadyExists(`snapshot ${q(name)}`);
    const t = now();
    const labels = opts.labels ?? cur.labels;
    m.db
      .query("UPDATE snapshots SET key = ?, backing_key = ?, kind = 'committed', labels = ?, updated_at = ? WHERE namespace = ? AND snapshotter = ? AND key = ?")
      .run(name, opts.backingKey ?? cur.backingKey, stringifyMap(labels), timeText(t), ns, snapshotter, key);
    return getSnapshot(m, ns, snapshotter, name);
  });
}

/** Update labels by field paths ("labels", "labels.<k>"; none = all labels). */
export function updateSnapshotLabels(m: MetadataDB, ns: string, snapshotter: string, key: string, labels: Record<string, string>, fieldpaths: string[] = []): SnapshotRecord {
  return m.write(() => {
    const cur = getSnapshot(m, ns, snapshotter, key);
    let next = { ...cur.labels };
    if (!fieldpaths.length) next = { ...labels };
    for (const p of fieldpaths) {
      if (p === "labels") next = { ...labels };
      else if (p.startsWith("labels.")) {
        const k = p.slice("labels.".length);
        next[k] = labels[k] ?? "";
      } else throw invalidArgument(`cannot update ${q(p)} field on snapshot ${q(key)}`);
    }
    validateSnapshotLabels(next);
    // containerd 1.6 wraps this write's error as "failed to read labels".
    checkLabelKeys(next, "failed to read labels");
    const t = now();
    m.db.query("UPDATE snapshots SET labels = ?, updated_at = ? WHERE namespace = ? AND snapshotter = ? AND key = ?").run(stringifyMap(next), timeText(t), ns, snapshotter, key);
    return getSnapshot(m, ns, snapshotter, key);
  });
}

/** Remove a snapshot's record (returns it, for the caller to remove the backing snapshot). */
export function removeSnapshot(m: MetadataDB, ns: string, snapshotter: string, key: string): SnapshotRecord {
  return m.write(() => {
    const cur = getSnapshot(m, ns, snapshotter, key);
    if (snapshotChildren(m, ns, snapshotter, key).length) throw failedPrecondition("cannot remove snapshot with child");
    m.db.query("DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?").run(ns, snapshotter, key);
    return cur;
  });
}
