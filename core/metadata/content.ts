// Each namespace's view of the content store: which committed blobs it references (with their
// labels, e.g. containerd.io/gc.ref.* and containerd.io/distribution.source.*), and its ingests
// (writes in progress by ref). The blob bytes live in the content store, shared by all namespaces;
// a blob no namespace references is garbage.
import { alreadyExists, invalidArgument, notFound, q } from "../containerd/errdefs";
import { type Filter, mapField } from "../containerd/filters";
import { validateLabel } from "../containerd/identifiers";
import { now, type Time } from "../containerd/types";
import { checkLabelKeys, type MetadataDB, parseMap, stringifyMap, textTime, timeText } from "./db";
import { ensureNamespace } from "./namespaces";

export interface ContentRecord {
  digest: string;
  size: number;
  labels: Record<string, string>;
  createdAt: Time;
  updatedAt: Time;
}

interface Row {
  digest: string;
  size: number;
  labels: string;
  created_at: string;
  updated_at: string;
}

const fromRow = (r: Row): ContentRecord => ({ digest: r.digest, size: r.size, labels: parseMap(r.labels), createdAt: textTime(r.created_at), updatedAt: textTime(r.updated_at) });

/** Filter adaptor of content: digest and labels.<k> (containerd 1.6 does not filter by size). */
export function contentAdaptor(c: ContentRecord) {
  return (path: string[]): [string, boolean] => {
    if (path[0] === "digest") return [c.digest, c.digest.length > 0];
    if (path[0] === "labels") return mapField(path.slice(1), c.labels);
    return ["", false];
  };
}

/** containerd's validateInfo: labels within the size limit, errors prefixed "info.Labels". */
function validateLabels(labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    try {
      validateLabel(k, v);
    } catch (e: any) {
      e.message = `info.Labels: ${e.message}`;
      throw e;
    }
  }
}

export function findContent(m: MetadataDB, ns: string, digest: string): ContentRecord | undefined {
  const r = m.db.query<Row, [string, string]>("SELECT digest, size, labels, created_at, updated_at FROM content WHERE namespace = ? AND digest = ?").get(ns, digest);
  return r ? fromRow(r) : undefined;
}

/** NotFound `content digest sha256:...: not found`. */
export function getContent(m: MetadataDB, ns: string, digest: string): ContentRecord {
  const c = findContent(m, ns, digest);
  if (!c) throw notFound(`content digest ${digest}`);
  return c;
}

export function listContent(m: MetadataDB, ns: string, filter?: Filter): ContentRecord[] {
  const all = m.db.query<Row, [string]>("SELECT digest, size, labels, created_at, updated_at FROM content WHERE namespace = ? ORDER BY digest").all(ns).map(fromRow);
  return filter ? all.filter((c) => filter(contentAdaptor(c))) : all;
}

/** Reference a committed blob from a namespace; AlreadyExists `content sha256:...: already exists`. */
export function addContent(m: MetadataDB, ns: string, c: { digest: string; size: number; labels?: Record<string, string> }): ContentRecord {
  validateLabels(c.labels ?? {});
  return m.write(() => {
    ensureNamespace(m, ns);
    if (findContent(m, ns, c.digest)) throw alreadyExists(`content ${c.digest}`);
    checkLabelKeys(c.labels, `writing labels for info ${c.digest}`);
    const t = now();
    const rec: ContentRecord = { digest: c.digest, size: c.size, labels: JSON.parse(stringifyMap(c.labels)), createdAt: t, updatedAt: t };
    m.db.query("INSERT INTO content (namespace, digest, size, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)").run(ns, c.digest, c.size, stringifyMap(rec.labels), timeText(t), timeText(t));
    return rec;
  });
}

/** Update labels by field paths ("labels", "labels.<k>"; none = all labels). */
export function updateContent(m: MetadataDB, ns: string, digest: string, labels: Record<string, string>, fieldpaths: string[] = []): ContentRecord {
  return m.write(() => {
    const cur = getContent(m, ns, digest);
    let next = { ...cur.labels };
    if (!fieldpaths.length) next = { ...labels };
    for (const p of fieldpaths) {
      if (p === "labels") next = { ...labels };
      else if (p.startsWith("labels.")) {
        const k = p.slice("labels.".length);
        next[k] = labels[k] ?? "";
      } else throw invalidArgument(`cannot update ${q(p)} field on content info ${q(digest)}`);
    }
    validateLabels(next);
    checkLabelKeys(next, `writing labels for info ${digest}`);
    const t = now();
    m.db.query("UPDATE content SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?").run(stringifyMap(next), timeText(t), ns, digest);
    return { ...cur, labels: JSON.parse(stringifyMap(next)), updatedAt: t };
  });
}

/** Drop a namespace's reference; NotFound `content digest sha256:...: not found`. */
export function deleteContent(m: MetadataDB, ns: string, digest: string): void {
  m.write(() => {
    const r = m.db.query("DELETE FROM content WHERE namespace = ? AND digest = ?").run(ns, digest);
    if (r.changes === 0) throw notFound(`content digest ${digest}`);
  });
}

/** Does any namespace reference the blob? (a blob nobody references may be removed from the store) */
export function contentReferenced(m: MetadataDB, digest: string): boolean {
  return !!m.db.query("SELECT 1 FROM content WHERE digest = ? LIMIT 1").get(digest);
}

// ---------------------------------------------------------------------------------------------
// Ingests

export interface IngestRecord {
  ref: string;
  expected: string;
  total: number;
  startedAt: Time;
  updatedAt: Time;
}

interface IngestRow {
  ref: string;
  expected: string;
  total: number;
  started_at: string;
  updated_at: string;
}

/**
 * The content store's ref for a client's ingest ref in a namespace: containerd's metadata store
 * names an ingest `<ns>/<sequence>/<ref>`, the sequence of the ingest's new bucket, so 1. The
 * ingest directory is the ref's sha256, and `content active` lists the directories in readdir
 * order: the same names give the real ctr the same order as containerd's.
 */
export const ingestStoreRef = (ns: string, ref: string) => `${ns}/1/${ref}`;

/** The client's ref of a store ref in `ns` (also of an older version's `<ns>/<ref>`). */
export const ingestClientRef = (ns: string, storeRef: string) => storeRef.slice(ns.length + 1).replace(/^\d+\//, "");

const ingestFromRow = (r: IngestRow): IngestRecord => ({ ref: r.ref, expected: r.expected, total: r.total, startedAt: textTime(r.started_at), updatedAt: textTime(r.updated_at) });

export function findIngest(m: MetadataDB, ns: string, ref: string): IngestRecord | undefined {
  const r = m.db.query<IngestRow, [string, string]>("SELECT ref, expected, total, started_at, updated_at FROM ingests WHERE namespace = ? AND ref = ?").get(ns, ref);
  return r ? ingestFromRow(r) : undefined;
}

/** Record (or refresh) an ingest. */
export function putIngest(m: MetadataDB, ns: string, ing: { ref: string; expected?: string; total?: number }): IngestRecord {
  return m.write(() => {
    ensureNamespace(m, ns);
    const t = now();
    const cur = findIngest(m, ns, ing.ref);
    const rec: IngestRecord = { ref: ing.ref, expected: ing.expected ?? cur?.expected ?? "", total: ing.total ?? cur?.total ?? 0, startedAt: cur?.startedAt ?? t, updatedAt: t };
    m.db
      .query("INSERT INTO ingests (namespace, ref, expected, total, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, ref) DO UPDATE SET expected = excluded.expected, total = excluded.total, updated_at = excluded.updated_at")
      .run(ns, rec.ref, rec.expected, rec.total, timeText(rec.startedAt), timeText(rec.updatedAt));
    return rec;
  });
}

export function listIngests(m: MetadataDB, ns: string): IngestRecord[] {
  return m.db.query<IngestRow, [string]>("SELECT ref, expected, total, started_at, updated_at FROM ingests WHERE namespace = ? ORDER BY ref").all(ns).map(ingestFromRow);
}

export function deleteIngest(m: MetadataDB, ns: string, ref: string): boolean {
  return m.write(() => m.db.query("DELETE FROM ingests WHERE namespace = ? AND ref = ?").run(ns, ref).changes > 0);
}
