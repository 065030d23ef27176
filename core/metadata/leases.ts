// Leases and the resources they hold. A lease keeps what it references (content blobs, ingests,
// snapshots) from garbage collection; objects written under a lease (the `containerd-lease`
// metadata) are added to it by the services that write them (addLeaseResource).
import { randomBytes } from "node:crypto";
import { alreadyExists, invalidArgument, notFound, notImplemented, q } from "../containerd/errdefs";
import { type Filter, mapField } from "../containerd/filters";
import { digestProblem } from "../containerd/identifiers";
import { compareTime, now, parseRFC3339, type Time } from "../containerd/types";
import { checkLabelKeys, type MetadataDB, parseMap, stringifyMap, textTime, timeText } from "./db";
import { ensureNamespace } from "./namespaces";

/** The label holding a lease's expiry (RFC 3339), set by `ctr leases create --expires`. */
export const EXPIRE_LABEL = "containerd.io/gc.expire";

export interface LeaseRecord {
  id: string;
  labels: Record<string, string>;
  createdAt: Time;
}

export interface LeaseResource {
  id: string;
  /** "content", "ingests" or "snapshots/<snapshotter>" */
  type: string;
}

interface Row {
  id: string;
  labels: string;
  created_at: string;
}

const fromRow = (r: Row): LeaseRecord => ({ id: r.id, labels: parseMap(r.labels), createdAt: textTime(r.created_at) });

/** containerd's leases.WithRandomID: "<nanoseconds of now>-<4 base64url chars>". */
export function randomLeaseID(): string {
  return `${now().nanos}-${randomBytes(3).toString("base64url")}`;
}

export function leaseAdaptor(l: LeaseRecord) {
  return (path: string[]): [string, boolean] => {
    if (path[0] === "id") return [l.id, l.id.length > 0];
    if (path[0] === "labels") return mapField(path.slice(1), l.labels);
    return ["", false];
  };
}

export function findLease(m: MetadataDB, ns: string, id: string): LeaseRecord | undefined {
  const r = m.db.query<Row, [string, string]>("SELECT id, labels, created_at FROM leases WHERE namespace = ? AND id = ?").get(ns, id);
  return r ? fromRow(r) : undefined;
}

/** Create; AlreadyExists `lease "x": already exists`. Creates the namespace when missing. */
export function createLease(m: MetadataDB, ns: string, id: string, labels: Record<string, string> = {}): LeaseRecord {
  if (!id) throw invalidArgument("lease id must be provided");
  // containerd writes a lease's labels as given: no size check, unlike other objects' labels.
  return m.write(() => {
    ensureNamespace(m, ns);
    if (findLease(m, ns, id)) throw alreadyExists(`lease ${q(id)}`);
    checkLabelKeys(labels);
    const rec: LeaseRecord = { id, labels: JSON.parse(stringifyMap(labels)), createdAt: now() };
    m.db.query("INSERT INTO leases (namespace, id, labels, created_at) VALUES (?, ?, ?, ?)").run(ns, id, stringifyMap(rec.labels), timeText(rec.createdAt));
    return rec;
  });
}

/** Leases of a namespace in id order, those matching `filter` when given. */
export function listLeases(m: MetadataDB, ns: string, filter?: Filter): LeaseRecord[] {
  const all = m.db.query<Row, [string]>("SELECT id, labels, created_at FROM leases WHERE namespace = ? ORDER BY id").all(ns).map(fromRow);
  return filter ? all.filter((l) => filter(leaseAdaptor(l))) : all;
}

/** Delete (with its resource references); NotFound `lease "x": not found`. */
export function deleteLease(m: MetadataDB, ns: string, id: string): void {
  m.write(() => {
    const r = m.db.query("DELETE FROM leases WHERE namespace = ? AND id = ?").run(ns, id);
    if (r.changes === 0) throw notFound(`lease ${q(id)}`);
  });
}

/** containerd's parseLeaseResource: validates the type and normalises the id. */
export function parseLeaseResource(r: LeaseResource): LeaseResource {
  const keys = r.type.split("/");
  switch (keys[0]) {
    case "content":
    case "ingests":
      if (keys.length !== 1) throw invalidArgument(`invalid resource type ${r.type}`);
      if (keys[0] === "content") {
        const p = digestProblem(r.id);
        if (p) throw invalidArgument(`invalid content resource id ${r.id}: ${p}`);
      }
      return r;
    case "snapshots":
      if (keys.length !== 2) throw invalidArgument(`invalid snapshot resource type ${r.type}`);
      return r;
  }
  throw notImplemented(`resource type ${r.type} not supported yet`);
}

/** Reference a resource from a lease; NotFound `lease "x": not found`. */
export function addLeaseResource(m: MetadataDB, ns: string, id: string, res: LeaseResource): void {
  const r = parseLeaseResource(res);
  m.write(() => {
    if (!findLease(m, ns, id)) throw notFound(`lease ${q(id)}`);
    m.db.query("INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)").run(ns, id, r.type, r.id);
  });
}

/**
 * What a service calls when it writes an object under the request's lease (CallContext.lease()):
 * NotFound `lease does not exist: not found` when the lease is gone. Call inside the write's transaction.
 */
export function addToRequestLease(m: MetadataDB, ns: string, lease: string | undefined, res: LeaseResource): void {
  if (!lease) return;
  if (!findLease(m, ns, lease)) throw notFound("lease does not exist");
  m.db.query("INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)").run(ns, lease, res.type, res.id);
}

export function deleteLeaseResource(m: MetadataDB, ns: string, id: string, res: LeaseResource): void {
  const r = parseLeaseResource(res);
  m.write(() => {
    if (!findLease(m, ns, id)) throw notFound(`lease ${q(id)}`);
    m.db.query("DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?").run(ns, id, r.type, r.id);
  });
}

/** Resources of a lease: content, then ingests, then snapshots by snapshotter (containerd's order). */
export function listLeaseResources(m: MetadataDB, ns: string, id: string): LeaseResource[] {
  return m.read(() => {
    if (!findLease(m, ns, id)) throw notFound(`lease ${q(id)}`);
    return m.db.query<LeaseResource, [string, string]>("SELECT id, type FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id").all(ns, id);
  });
}

/** Is a resource held by any lease of the namespace? (for the garbage collector) */
export function leased(m: MetadataDB, ns: string, res: LeaseResource): boolean {
  return !!m.db.query("SELECT 1 FROM lease_resources WHERE namespace = ? AND type = ? AND id = ? LIMIT 1").get(ns, res.type, res.id);
}

/** Leases whose containerd.io/gc.expire time has passed, as [namespace, id] (for the garbage collector). */
export function expiredLeases(m: MetadataDB, at: Time = now()): Array<[string, string]> {
  const rows = m.db.query<{ namespace: string; id: string; labels: string }, []>("SELECT namespace, id, labels FROM leases WHERE labels LIKE '%containerd.io/gc.expire%'").all();
  const out: Array<[string, string]> = [];
  for (const r of rows) {
    const exp = parseMap(r.labels)[EXPIRE_LABEL];
    if (!exp) continue;
    try {
      if (compareTime(parseRFC3339(exp), at) < 0) out.push([r.namespace, r.id]);
    } catch {}
  }
  return out;
}
