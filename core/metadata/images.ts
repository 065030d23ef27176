// Image records: a name in a namespace pointing at a target descriptor, with labels. Validation and
// error texts follow containerd's metadata image store.
import { alreadyExists, invalidArgument, notFound, q } from "../containerd/errdefs";
import { type Filter, mapField } from "../containerd/filters";
import { digestProblem, validateLabel } from "../containerd/identifiers";
import { now, type Time } from "../containerd/types";
import { checkLabelKeys, type MetadataDB, parseMap, stringifyMap, textTime, timeText } from "./db";
import { ensureNamespace } from "./namespaces";

export interface ImageTarget {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

export interface ImageRecord {
  name: string;
  labels: Record<string, string>;
  target: ImageTarget;
  createdAt: Time;
  updatedAt: Time;
}

interface Row {
  name: string;
  media_type: string;
  digest: string;
  size: number;
  annotations: string;
  labels: string;
  created_at: string;
  updated_at: string;
}

function fromRow(r: Row): ImageRecord {
  return {
    name: r.name,
    labels: parseMap(r.labels),
    target: { mediaType: r.media_type, digest: r.digest, size: r.size, annotations: parseMap(r.annotations) },
    createdAt: textTime(r.created_at),
    updatedAt: textTime(r.updated_at),
  };
}

/** The filter adaptor of images: name, target.digest, target.mediatype, labels.<k>, annotations.<k>. */
export function imageAdaptor(img: ImageRecord) {
  return (path: string[]): [string, boolean] => {
    switch (path[0]) {
      case "name":
        return [img.name, img.name.length > 0];
      case "target":
        if (path[1] === "digest") return [img.target.digest, img.target.digest.length > 0];
        if (path[1] === "mediatype") return [img.target.mediaType, img.target.mediaType.length > 0];
        return ["", false];
      case "labels":
        return mapField(path.slice(1), img.labels);
      case "annotations":
        return mapField(path.slice(1), img.target.annotations);
    }
    return ["", false];
  };
}

export function validateImage(img: Pick<ImageRecord, "name" | "labels" | "target">): void {
  if (!img.name) throw invalidArgument("image name must not be empty");
  for (const [k, v] of Object.entries(img.labels)) {
    try {
      validateLabel(k, v);
    } catch (e: any) {
      e.message = `image.Labels: ${e.message}`;
      throw e;
    }
  }
  const p = digestProblem(img.target.digest);
  if (p) throw invalidArgument(`Target.Digest ${q(img.target.digest)} invalid: ${p}`);
  if (!(img.target.size > 0)) throw invalidArgument("Target.Size must be greater than zero");
  if (!img.target.mediaType) throw invalidArgument("Target.MediaType must be set");
}

export function findImage(m: MetadataDB, ns: string, name: string): ImageRecord | undefined {
  const r = m.db.query<Row, [string, string]>("SELECT * FROM images WHERE namespace = ? AND name = ?").get(ns, name);
  return r ? fromRow(r) : undefined;
}

/** NotFound `image "x": not found`. */
export function getImage(m: MetadataDB, ns: string, name: string): ImageRecord {
  const img = findImage(m, ns, name);
  if (!img) throw notFound(`image ${q(name)}`);
  return img;
}

/** Images of a namespace sorted by name, those matching `filter` when given. */
export function listImages(m: MetadataDB, ns: string, filter?: Filter): ImageRecord[] {
  const all = m.db.query<Row, [string]>("SELECT * FROM images WHERE namespace = ? ORDER BY name").all(ns).map(fromRow);
  return filter ? all.filter((i) => filter(imageAdaptor(i))) : all;
}

function write(m: MetadataDB, ns: string, img: ImageRecord, insert: boolean): void {
  // dropEmpty kept only labels with values: an empty key among them is refused as bolt does.
  checkLabelKeys(img.labels, `writing labels for image ${img.name}`);
  const args = [img.target.mediaType, img.target.digest, img.target.size, stringifyMap(img.target.annotations), stringifyMap(img.labels), timeText(img.createdAt), timeText(img.updatedAt), ns, img.name] as const;
  if (insert) {
    m.db.query("INSERT INTO images (media_type, digest, size, annotations, labels, created_at, updated_at, namespace, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)").run(...args);
  } else {
    m.db.query("UPDATE images SET media_type = ?, digest = ?, size = ?, annotations = ?, labels = ?, created_at = ?, updated_at = ? WHERE namespace = ? AND name = ?").run(...args);
  }
}

/** Create; AlreadyExists `image "x": already exists`. Creates the namespace when missing. */
export function createImage(m: MetadataDB, ns: string, img: Pick<ImageRecord, "name" | "labels" | "target">): ImageRecord {
  validateImage(img);
  return m.write(() => {
    ensureNamespace(m, ns);
    if (findImage(m, ns, img.name)) throw alreadyExists(`image ${q(img.name)}`);
    const t = now();
    const rec: ImageRecord = { name: img.name, labels: dropEmpty(img.labels), target: { ...img.target, annotations: dropEmpty(img.target.annotations) }, createdAt: t, updatedAt: t };
    write(m, ns, rec, true);
    return rec;
  });
}

function dropEmpty(mp: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(mp ?? {}).filter(([, v]) => v !== ""));
}

/**
 * Update by field paths ("labels", "labels.<k>", "annotations", "annotations.<k>", "target";
 * "name" is ignored); no paths replaces everything but the creation time.
 */
export function updateImage(m: MetadataDB, ns: string, img: Pick<ImageRecord, "name" | "labels" | "target">, fieldpaths: string[] = []): ImageRecord {
  if (!img.name) throw invalidArgument("image name is required for update");
  return m.write(() => {
    ensureNamespace(m, ns);
    const cur = findImage(m, ns, img.name);
    if (!cur) throw notFound(`image ${q(img.name)}`);
    let updated: ImageRecord = { ...cur, labels: { ...cur.labels }, target: { ...cur.target, annotations: { ...cur.target.annotations } } };
    if (fieldpaths.length) {
      for (const path of fieldpaths) {
        if (path.startsWith("labels.")) {
          const k = path.slice("labels.".length);
          updated.labels[k] = img.labels[k] ?? "";
          continue;
        }
        if (path.startsWith("annotations.")) {
          const k = path.slice("annotations.".length);
          updated.target.annotations[k] = img.target.annotations[k] ?? "";
          continue;
        }
        switch (path) {
          case "name":
            break;
          case "target":
            updated.target = { ...img.target, annotations: { ...img.target.annotations } };
            break;
          case "labels":
            updated.labels = { ...img.labels };
            break;
          case "annotations":
            updated.target.annotations = { ...img.target.annotations };
            break;
          default:
            throw invalidArgument(`cannot update ${q(path)} field on image ${q(img.name)}`);
        }
      }
    } else {
      updated = { ...updated, labels: { ...img.labels }, target: { ...img.target } };
    }
    validateImage(updated);
    updated.labels = dropEmpty(updated.labels);
    updated.target.annotations = dropEmpty(updated.target.annotations);
    updated.updatedAt = now();
    write(m, ns, updated, false);
    return updated;
  });
}

/** Delete; NotFound `image "x": not found`. */
export function deleteImage(m: MetadataDB, ns: string, name: string): void {
  m.write(() => {
    const r = m.db.query("DELETE FROM images WHERE namespace = ? AND name = ?").run(ns, name);
    if (r.changes === 0) throw notFound(`image ${q(name)}`);
  });
}
