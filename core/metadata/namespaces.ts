// Namespaces: created explicitly (Namespaces/Create) or implicitly by the first write in them, as
// containerd does. Deleting one is refused while it still holds images, blobs, containers or
// snapshots; its leases and ingests go with it.
import { alreadyExists, Code, failedPrecondition, notFound, q, status } from "../containerd/errdefs";
import { validateIdentifier, validateLabel } from "../containerd/identifiers";
import { type MetadataDB, parseMap, stringifyMap, timeText } from "./db";

/** Namespace names, sorted. */
export function listNamespaces(m: MetadataDB): string[] {
  return m.db.query<{ name: string }, []>("SELECT name FROM namespaces ORDER BY name").all().map((r) => r.name);
}

export function namespaceExists(m: MetadataDB, name: string): boolean {
  return !!m.db.query("SELECT 1 FROM namespaces WHERE name = ?").get(name);
}

/** A namespace's labels ({} for a namespace that does not exist, as containerd answers Get). */
export function namespaceLabels(m: MetadataDB, name: string): Record<string, string> {
  const r = m.db.query<{ labels: string }, [string]>("SELECT labels FROM namespaces WHERE name = ?").get(name);
  return parseMap(r?.labels);
}

/** Create a namespace; AlreadyExists `namespace "x": already exists`. */
export function createNamespace(m: MetadataDB, name: string, labels: Record<string, string> = {}): void {
  validateIdentifier(name);
  for (const [k, v] of Object.entries(labels)) {
    try {
      validateLabel(k, v);
    } catch (e: any) {
      e.message = `namespace.Labels: ${e.message}`;
      throw e;
    }
  }
  m.write(() => {
    if (namespaceExists(m, name)) throw alreadyExists(`namespace ${q(name)}`);
    // containerd puts every label, empty values too, into a bolt bucket: an empty key is refused.
    if ("" in labels) throw status(Code.UNKNOWN, "key required");
    // A label with an empty value is never listed by containerd (checked with the real ctr).
    m.db.query("INSERT INTO namespaces (name, labels, created_at) VALUES (?, ?, ?)").run(name, stringifyMap(labels), timeText());
  });
}

/** Make sure a namespace exists (the implicit creation by a write in it). Call inside the write's transaction. */
export function ensureNamespace(m: MetadataDB, name: string): void {
  m.db.query("INSERT OR IGNORE INTO namespaces (name, labels, created_at) VALUES (?, '{}', ?)").run(name, timeText());
}

/** Set one label (an empty value removes it); creates the namespace when missing. */
export function setNamespaceLabel(m: MetadataDB, name: string, key: string, value: string): void {
  try {
    validateLabel(key, value);
  } catch (e: any) {
    e.message = `namespace.Labels: ${e.message}`;
    throw e;
  }
  validateIdentifier(name);
  // An empty value deletes the key (no error); a value is put under it, which bolt refuses for "".
  if (key === "" && value !== "") throw status(Code.UNKNOWN, "key required");
  m.write(() => {
    ensureNamespace(m, name);
    const labels = namespaceLabels(m, name);
    if (value === "") delete labels[key];
    else labels[key] = value;
    m.db.query("UPDATE namespaces SET labels = ? WHERE name = ?").run(stringifyMap(labels, { keepEmpty: true }), name);
  });
}

/** Replace all labels of a namespace (creating it when missing). */
export function replaceNamespaceLabels(m: MetadataDB, name: string, labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    try {
      validateLabel(k, v);
    } catch (e: any) {
      e.message = `namespace.Labels: ${e.message}`;
      throw e;
    }
  }
  validateIdentifier(name);
  if (Object.entries(labels).some(([k, v]) => k === "" && v !== "")) throw status(Code.UNKNOWN, "key required");
  m.write(() => {
    ensureNamespace(m, name);
    m.db.query("UPDATE namespaces SET labels = ? WHERE name = ?").run(stringifyMap(labels), name);
  });
}

/** What still lives in a namespace, in containerd's words: "images", "blobs", "containers", `snapshots on "overlayfs" snapshotter`. */
export function namespaceContents(m: MetadataDB, name: string): string[] {
  const has = (table: string) => !!m.db.query(`SELECT 1 FROM ${table} WHERE namespace = ? LIMIT 1`).get(name);
  const out: string[] = [];
  if (has("images")) out.push("images");
  if (has("content")) out.push("blobs");
  if (has("containers")) out.push("containers");
  const snapshotters = m.db.query<{ snapshotter: string }, [string]>("SELECT DISTINCT snapshotter FROM snapshots WHERE namespace = ? ORDER BY snapshotter").all(name);
  for (const s of snapshotters) out.push(`snapshots on ${q(s.snapshotter)} snapshotter`);
  return out;
}

/** Delete an empty namespace (with its leases and ingests). */
export function deleteNamespace(m: MetadataDB, name: string): void {
  m.write(() => {
    if (!namespaceExists(m, name)) throw notFound(`namespace ${q(name)}`);
    const used = namespaceContents(m, name);
    if (used.length) throw failedPrecondition(`namespace ${q(name)} must be empty, but it still has ${used.join(", ")}`);
    m.db.query("DELETE FROM namespaces WHERE name = ?").run(name);
  });
}
