// Container records (what containers.v1 stores): the spec, the runtime, the rootfs snapshot, labels
// and extensions. The tasks service reads them; nothing here runs anything.
import { alreadyExists, invalidArgument, notFound, q } from "../containerd/errdefs";
import { type Filter, mapField } from "../containerd/filters";
import { validateIdentifier, validateLabel } from "../containerd/identifiers";
import { now, type Time, type Any } from "../containerd/types";
import { type MetadataDB, parseMap, stringifyMap, textTime, timeText } from "./db";
import { ensureNamespace } from "./namespaces";

export interface ContainerRecord {
  id: string;
  labels: Record<string, string>;
  image: string;
  runtime: { name: string; options: Any | null };
  spec: Any | null;
  snapshotter: string;
  snapshotKey: string;
  extensions: Record<string, Any>;
  sandbox: string;
  createdAt: Time;
  updatedAt: Time;
}

export type ContainerInput = Omit<ContainerRecord, "createdAt" | "updatedAt">;

interface Row {
  id: string;
  labels: string;
  image: string;
  runtime_name: string;
  runtime_options_type: string | null;
  runtime_options: Uint8Array | null;
  spec_type: string | null;
  spec: Uint8Array | null;
  snapshotter: string;
  snapshot_key: string;
  extensions: string;
  sandbox: string;
  created_at: string;
  updated_at: string;
}

const any = (t: string | null, v: Uint8Array | null): Any | null => (t === null ? null : { typeUrl: t, value: v ?? new Uint8Array() });

function fromRow(r: Row): ContainerRecord {
  const ext: Record<string, Any> = {};
  for (const [k, v] of Object.entries(JSON.parse(r.extensions || "{}") as Record<string, { typeUrl: string; value: string }>)) {
    ext[k] = { typeUrl: v.typeUrl, value: Buffer.from(v.value, "base64") };
  }
  return {
    id: r.id,
    labels: parseMap(r.labels),
    image: r.image,
    runtime: { name: r.runtime_name, options: any(r.runtime_options_type, r.runtime_options) },
    spec: any(r.spec_type, r.spec),
    snapshotter: r.snapshotter,
    snapshotKey: r.snapshot_key,
    extensions: ext,
    sandbox: r.sandbox,
    createdAt: textTime(r.created_at),
    updatedAt: textTime(r.updated_at),
  };
}

/** Filter adaptor of containers: id, image, runtime.name, snapshotter, labels.<k>. */
export function containerAdaptor(c: ContainerRecord) {
  return (path: string[]): [string, boolean] => {
    switch (path[0]) {
      case "id":
        return [c.id, c.id.length > 0];
      case "image":
        return [c.image, c.image.length > 0];
      case "runtime":
        return path[1] === "name" ? [c.runtime.name, c.runtime.name.length > 0] : ["", false];
      case "snapshotter":
        return [c.snapshotter, c.snapshotter.length > 0];
      case "labels":
        return mapField(path.slice(1), c.labels);
    }
    return ["", false];
  };
}

export function validateContainer(c: ContainerInput): void {
  validateIdentifier(c.id);
  for (const [k, v] of Object.entries(c.labels)) {
    try {
      validateLabel(k, v);
    } catch (e: any) {
      e.message = `containers.Labels: ${e.message}`;
      throw e;
    }
  }
  if (!c.runtime.name) throw invalidArgument("must specify a runtime name");
  if (!c.spec) throw invalidArgument("must specify a spec");
  if (c.snapshotKey && !c.snapshotter) throw invalidArgument("must specify snapshotter when setting snapshot key");
}

export function findContainer(m: MetadataDB, ns: string, id: string): ContainerRecord | undefined {
  const r = m.db.query<Row, [string, string]>("SELECT * FROM containers WHERE namespace = ? AND id = ?").get(ns, id);
  return r ? fromRow(r) : undefined;
}

/** NotFound `container "x": not found`. */
export function getContainer(m: MetadataDB, ns: string, id: string): ContainerRecord {
  const c = findContainer(m, ns, id);
  if (!c) throw notFound(`container ${q(id)}`);
  return c;
}

export function listContainers(m: MetadataDB, ns: string, filter?: Filter): ContainerRecord[] {
  const all = m.db.query<Row, [string]>("SELECT * FROM containers WHERE namespace = ? ORDER BY id").all(ns).map(fromRow);
  return filter ? all.filter((c) => filter(containerAdaptor(c))) : all;
}

function store(m: MetadataDB, ns: string, c: ContainerRecord, insert: boolean): void {
  const ext: Record<string, { typeUrl: string; value: string }> = {};
  for (const [k, v] of Object.entries(c.extensions)) ext[k] = { typeUrl: v.typeUrl, value: Buffer.from(v.value).toString("base64") };
  const vals = [
    stringifyMap(c.labels), c.image, c.runtime.name, c.runtime.options?.typeUrl ?? null, c.runtime.options?.value ?? null,
    c.spec?.typeUrl ?? null, c.spec?.value ?? null, c.snapshotter, c.snapshotKey, JSON.stringify(ext), c.sandbox,
    timeText(c.createdAt), timeText(c.updatedAt), ns, c.id,
  ] as const;
  if (insert) {
    m.db.query(`INSERT INTO containers (labels, image, runtime_name, runtime_options_type, runtime_options, spec_type, spec, snapshotter, snapshot_key, extensions, sandbox, created_at, updated_at, namespace, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...vals);
  } else {
    m.db.query(`UPDATE containers SET labels = ?, image = ?, runtime_name = ?, runtime_options_type = ?, runtime_options = ?, spec_type = ?, spec = ?, snapshotter = ?, snapshot_key = ?, extensions = ?, sandbox = ?, created_at = ?, updated_at = ? WHERE namespace = ? AND id = ?`).run(...vals);
  }
}

/** Create; AlreadyExists `container "x": already exists`. */
export function createContainer(m: MetadataDB, ns: string, c: ContainerInput): ContainerRecord {
  validateContainer(c);
  return m.write(() => {
    ensureNamespace(m, ns);
    if (findContainer(m, ns, c.id)) throw alreadyExists(`container ${q(c.id)}`);
    const t = now();
    const rec: ContainerRecord = { ...c, labels: JSON.parse(stringifyMap(c.labels)), createdAt: t, updatedAt: t };
    store(m, ns, rec, true);
    return rec;
  });
}

/**
 * Update by field paths: labels, labels.<k>, spec, extensions, extensions.<k>, snapshotkey, image;
 * none replaces all mutable fields. The runtime and snapshotter can't change.
 */
export function updateContainer(m: MetadataDB, ns: string, c: ContainerInput, fieldpaths: string[] = []): ContainerRecord {
  if (!c.id) throw invalidArgument("must specify a container id");
  return m.write(() => {
    const cur = getContainer(m, ns, c.id);
    let next: ContainerRecord = { ...cur, labels: { ...cur.labels }, extensions: { ...cur.extensions } };
    if (!fieldpaths.length) {
      if (c.runtime.name !== cur.runtime.name) throw invalidArgument(`container.Runtime.Name field is immutable`);
      if (c.snapshotter !== cur.snapshotter) throw invalidArgument(`container.Snapshotter field is immutable`);
      next = { ...next, labels: { ...c.labels }, image: c.image, spec: c.spec, snapshotKey: c.snapshotKey, extensions: { ...c.extensions }, runtime: c.runtime };
    }
    for (const p of fieldpaths) {
      if (p.startsWith("labels.")) {
        const k = p.slice("labels.".length);
        next.labels[k] = c.labels[k] ?? "";
        continue;
      }
      if (p.startsWith("extensions.")) {
        const k = p.slice("extensions.".length);
        if (c.extensions[k]) next.extensions[k] = c.extensions[k]!;
        else delete next.extensions[k];
        continue;
      }
      switch (p) {
        case "labels": next.labels = { ...c.labels }; break;
        case "spec": next.spec = c.spec; break;
        case "extensions": next.extensions = { ...c.extensions }; break;
        case "snapshotkey": next.snapshotKey = c.snapshotKey; break;
        case "image": next.image = c.image; break;
        default: throw invalidArgument(`cannot update ${q(p)} field on ${q(c.id)}`);
      }
    }
    validateContainer(next);
    next.labels = JSON.parse(stringifyMap(next.labels));
    next.updatedAt = now();
    store(m, ns, next, false);
    return next;
  });
}

/** Delete; NotFound `container "x": not found`. */
export function deleteContainer(m: MetadataDB, ns: string, id: string): void {
  m.write(() => {
    const r = m.db.query("DELETE FROM containers WHERE namespace = ? AND id = ?").run(ns, id);
    if (r.changes === 0) throw notFound(`container ${q(id)}`);
  });
}
