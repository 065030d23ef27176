// containerd.services.snapshots.v1.Snapshots: containerd's metadata snapshotter. Each namespace's
// keys live in the metadata DB (core/metadata/snapshots.ts) and map to backing keys of the real
// snapshotter ("<namespace>/<n>/<key>" as containerd names them, n a sequence of the namespace's
// snapshotter), so namespaces never see each other's snapshots. Requests pick the snapshotter by
// name ("" = overlayfs). The snapshotter's own errors reach the client as containerd's do.
import type { Snapshotter } from "../../snapshots";
import { Code, invalidArgument, notFound, status, untranslated } from "../errdefs";
import { parseFilters } from "../filters";
import { type CallContext, defineService, serverStream, unary } from "../grpc";
import { type Exchange, publishFor } from "../events";
import { type FieldMask, type Mount, type Timestamp, toTimestamp } from "../types";
import {
  type MetadataDB,
  type SnapshotRecord,
  addToRequestLease,
  checkLabelKeys,
  commitSnapshot,
  createSnapshot,
  findSnapshot,
  listSnapshots,
  removeSnapshot,
  snapshotSequence,
  updateSnapshotLabels,
  useSnapshotSequence,
  validateSnapshotLabels,
} from "../../metadata";

export const DEFAULT_SNAPSHOTTER = "overlayfs";

interface Info {
  name: string;
  parent: string;
  kind: string;
  createdAt: Timestamp;
  updatedAt: Timestamp;
  labels: Record<string, string>;
}

const KINDS = { active: "ACTIVE", view: "VIEW", committed: "COMMITTED" } as const;

const infoToProto = (s: SnapshotRecord): Info => ({
  name: s.key,
  parent: s.parent,
  kind: KINDS[s.kind],
  createdAt: toTimestamp(s.createdAt),
  updatedAt: toTimestamp(s.updatedAt),
  labels: s.labels,
});

const mountsToProto = (ms: { type: string; source: string; options: string[] }[]): Mount[] => ms.map((m) => ({ type: m.type, source: m.source, target: "", options: m.options }));

/** containerd's metadata createKey: a backing key "<namespace>/<n>/<key>". */
const backingKey = (ns: string, seq: number, key: string) => `${ns}/${seq}/${key}`;

/** A key containerd's bolt bucket can't be made with: "bucket name required" (code Unknown). */
function requireKey(key: string): void {
  if (!key) throw status(Code.UNKNOWN, "bucket name required");
}

export const snapshotsService = (snapshotters: Map<string, Snapshotter>, db: MetadataDB, events?: Exchange) => {
  // containerd's snapshots service publishes Prepare, Commit and Remove (not View, nor label updates).
  const publish = (ctx: CallContext, topic: string, type: string, event: object) => {
    if (events) publishFor(events, ctx, topic, type, event);
  };
  const pick = (name: string): [string, Snapshotter] => {
    const n = name || DEFAULT_SNAPSHOTTER;
    const sn = snapshotters.get(n);
    if (!sn) throw invalidArgument(`snapshotter not loaded: ${n}`);
    return [n, sn];
  };
  const get = (ns: string, sn: string, key: string): SnapshotRecord => {
    const s = findSnapshot(db, ns, sn, key);
    if (!s) throw notFound(`snapshot ${key} does not exist`);
    return s;
  };
  // containerd takes the sequence steps of a namespace's Prepare, View and Commit in bolt
  // transactions, one at a time (Commit's in the transaction that calls the snapshotter, so a
  // failed Commit gives its number back). Ours are serialized per namespace and snapshotter.
  const queues = new Map<string, Promise<unknown>>();
  const serialized = <T>(ns: string, sn: string, fn: () => Promise<T>): Promise<T> => {
    const k = `${ns}\0${sn}`;
    const run = (queues.get(k) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => {});
    queues.set(k, tail);
    tail.then(() => {
      if (queues.get(k) === tail) queues.delete(k);
    });
    return run;
  };
  // Prepare/View, Commit and Remove hold db.gcLock shared from their first look at the records to
  // their last write: a collection in between could sweep the parent just looked up, or remove
  // the backing snapshot about to be recorded (and added to the request's lease).
  type CreateRequest = { snapshotter: string; key: string; parent: string; labels: Record<string, string> };
  const create = (kind: "active" | "view", req: CreateRequest, ns: string, lease: string | undefined) => {
    const [name, sn] = pick(req.snapshotter);
    validateSnapshotLabels(req.labels);
    return db.gcLock.shared(() => serialized(ns, name, () => createLocked(kind, req, ns, lease, name, sn)));
  };
  // containerd 1.6's order: a first transaction looks for the key (AlreadyExists) and the parent
  // (NotFound) and takes the sequence step; then the snapshotter, whose errors (a parent that is
  // not committed, ...) quote the backing keys; then a second transaction makes the key's bucket
  // (an empty key: "bucket name required") and writes the labels (an empty key: "key required"),
  // the snapshotter's snapshot removed again when it fails. A step taken is never given back.
  const createLocked = async (kind: "active" | "view", req: CreateRequest, ns: string, lease: string | undefined, name: string, sn: Snapshotter) => {
    if (req.key && findSnapshot(db, ns, name, req.key)) throw status(Code.ALREADY_EXISTS, `snapshot ${JSON.stringify(req.key)}: already exists`);
    let parentBacking = "";
    if (req.parent) {
      const p = findSnapshot(db, ns, name, req.parent);
      if (!p) throw notFound(`parent snapshot ${req.parent} does not exist`);
      parentBacking = p.backingKey;
    }
    const seq = snapshotSequence(db, ns, name) + 1;
    useSnapshotSequence(db, ns, name, seq);
    const bk = backingKey(ns, seq, req.key);
    const mounts = kind === "active" ? await sn.prepare(bk, parentBacking, req.labels) : await sn.view(bk, parentBacking, req.labels);
    try {
      requireKey(req.key);
      checkLabelKeys(req.labels);
      db.write(() => {
        createSnapshot(db, ns, { snapshotter: name, key: req.key, backingKey: bk, parent: req.parent, kind, labels: req.labels });
        addToRequestLease(db, ns, lease, { type: `snapshots/${name}`, id: req.key });
      });
    } catch (e) {
      await sn.remove(bk).catch(() => {});
      throw e;
    }
    return { mounts: mountsToProto(mounts) };
  };

  return defineService("containerd.services.snapshots.v1.Snapshots", {
    Prepare: unary<{ snapshotter: string; key: string; parent: string; labels: Record<string, string> }, { mounts: Mount[] }>(async (req, ctx) => {
      const r = await create("active", req, ctx.namespace(), ctx.lease());
      publish(ctx, "/snapshot/prepare", "containerd.events.SnapshotPrepare", { key: req.key, parent: req.parent });
      return r;
    }),

    View: unary<{ snapshotter: string; key: string; parent: string; labels: Record<string, string> }, { mounts: Mount[] }>((req, ctx) => create("view", req, ctx.namespace(), ctx.lease())),

    Mounts: unary<{ snapshotter: string; key: string }, { mounts: Mount[] }>(async (req, ctx) => {
      const [name, sn] = pick(req.snapshotter);
      const s = get(ctx.namespace(), name, req.key);
      return { mounts: mountsToProto(await sn.mounts(s.backingKey)) };
    }),

    Commit: unary<{ snapshotter: string; name: string; key: string; labels: Record<string, string> }, object>((req, ctx) => {
      const ns = ctx.namespace();
      const [name, sn] = pick(req.snapshotter);
      validateSnapshotLabels(req.labels);
      return db.gcLock.shared(() =>
        serialized(ns, name, async () => {
          // containerd's order: the name's bucket (AlreadyExists), the key (NotFound), then the
          // snapshotter's commit (a key that is not active: FailedPrecondition quoting its backing key).
          requireKey(req.name);
          if (findSnapshot(db, ns, name, req.name)) throw status(Code.ALREADY_EXISTS, `snapshot ${JSON.stringify(req.name)}: already exists`);
          const s = get(ns, name, req.key);
          checkLabelKeys(req.labels);
          const seq = snapshotSequence(db, ns, name) + 1;
          const bk = backingKey(ns, seq, req.name);
          // The committed snapshot has the commit's labels only, not the active one's.
          const labels = req.labels ?? {};
          await sn.commit(bk, s.backingKey, labels);
          db.write(() => {
            commitSnapshot(db, ns, name, req.key, req.name, { backingKey: bk, labels });
            useSnapshotSequence(db, ns, name, seq);
            addToRequestLease(db, ns, ctx.lease(), { type: `snapshots/${name}`, id: req.name });
          });
          publish(ctx, "/snapshot/commit", "containerd.events.SnapshotCommit", { key: req.key, name: req.name });
          return {};
        }),
      );
    }),

    Remove: unary<{ snapshotter: string; key: string }, object>((req, ctx) => db.gcLock.shared(async () => {
      const ns = ctx.namespace();
      const [name, sn] = pick(req.snapshotter);
      get(ns, name, req.key);
      const rec = removeSnapshot(db, ns, name, req.key);
      await sn.remove(rec.backingKey).catch((e) => ctx.log.warn("remove backing snapshot", { key: rec.backingKey, error: String(e) }));
      publish(ctx, "/snapshot/remove", "containerd.events.SnapshotRemove", { key: req.key });
      return {};
    })),

    Stat: unary<{ snapshotter: string; key: string }, { info: Info }>((req, ctx) => {
      const [name] = pick(req.snapshotter);
      return { info: infoToProto(get(ctx.namespace(), name, req.key)) };
    }),

    Update: unary<{ snapshotter: string; info: Info | null; updateMask: FieldMask | null }, { info: Info }>((req, ctx) => {
      const [name] = pick(req.snapshotter);
      if (!req.info?.name) throw invalidArgument("name required");
      const ns = ctx.namespace();
      get(ns, name, req.info.name);
      return { info: infoToProto(updateSnapshotLabels(db, ns, name, req.info.name, req.info.labels ?? {}, req.updateMask?.paths ?? [])) };
    }),

    List: serverStream<{ snapshotter: string; filters: string[] }, { info: Info[] }>(async (req, ctx, send) => {
      const [name] = pick(req.snapshotter);
      // containerd's List returns the metadata Walk's errors untranslated (code Unknown): a bad
      // namespace, a bad filter.
      const all = untranslated(() => listSnapshots(db, ctx.namespace(), name, parseFilters(req.filters)));
      for (let i = 0; i < all.length; i += 100) await send({ info: all.slice(i, i + 100).map(infoToProto) });
    }),

    Usage: unary<{ snapshotter: string; key: string }, { size: string; inodes: string }>(async (req, ctx) => {
      const [name, sn] = pick(req.snapshotter);
      const s = get(ctx.namespace(), name, req.key);
      const u = await sn.usage(s.backingKey);
      return { size: String(u.size), inodes: String(u.inodes) };
    }),

    Cleanup: unary<{ snapshotter: string }, object>(async (req) => {
      const [, sn] = pick(req.snapshotter);
      await sn.cleanup();
      return {};
    }),
  });
};
