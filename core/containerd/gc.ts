// containerd 1.6's garbage collection (metadata/gc.go, gc/gc.go) over our sqlite metadata, and a
// simple version of its scheduler (gc/scheduler): a tricolor mark-and-sweep whose roots are
//
//   - images: their target content (and gc.ref.* labels of the image);
//   - leases that have not expired (containerd.io/gc.expire): their content, ingests, snapshots;
//   - containers: their snapshot and their gc.ref.* labels;
//   - content and snapshots labelled containerd.io/gc.root;
//   - ingests written recently (no lease: kept for INGEST_EXPIRY_MS, like containerd's 24h expire).
//
// References (from content, snapshots, images and containers labels):
// containerd.io/gc.ref.content[.<name>|/<name>] → content of the namespace;
// containerd.io/gc.ref.snapshot.<snapshotter>[/<name>] → a snapshot key of the namespace;
// a snapshot keeps its parent. Any value of containerd.io/gc.root makes a root.
//
// The mark and the sweep of metadata records (content, snapshots, ingests, expired leases) happen
// in one write transaction; blobs and backing snapshots are removed from disk after the commit
// (blobs no namespace references any more; backing snapshots children first). A crash in between
// leaves only orphans on disk (never a record pointing at missing data); every collection also
// removes orphans: at startup all of them, later those older than a grace period (a write in
// flight commits its blob / prepares its snapshot a moment before recording it).
import { EXPIRE_LABEL, ingestStoreRef, type MetadataDB, parseMap } from "../metadata";
import { compareTime, formatRFC3339, now, parseRFC3339, type Time } from "./types";
import type { ContentStore } from "../content/store";
import type { Snapshotter } from "../snapshots";

export const GC_ROOT_LABEL = "containerd.io/gc.root";
export const GC_REF_CONTENT = "containerd.io/gc.ref.content";
export const GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot.";
/** Ingests without a lease are kept this long after their last write. */
export const INGEST_EXPIRY_MS = 24 * 3600_000;
/** Orphans on disk younger than this are left alone (outside startup). */
export const ORPHAN_GRACE_MS = 60_000;

export interface GCStats {
  /** Records removed from the metadata DB. */
  contentRecords: number;
  snapshotRecords: number;
  ingestRecords: number;
  leases: number;
  /** Removed from disk. */
  blobs: number;
  snapshots: number;
  ingests: number;
  /**
   * How long the collection held everything else up (containerd's MetaD): the mark and sweep of
   * the records and the removal of blobs and ingests, all synchronous. The scheduler paces
   * collections by this, not by durationMs.
   */
  metaMs: number;
  /** The whole collection, including the (asynchronous) removal of backing snapshots. */
  durationMs: number;
  /** Earliest future lease expiry seen (to schedule the next collection). */
  nextExpiry?: Time;
}

type Node = string; // "c|ns|digest", "s|ns|snapshotter|key", "i|ns|ref"
const cNode = (ns: string, d: string) => `c|${ns}|${d}`;
const sNode = (ns: string, sn: string, k: string) => `s|${ns}|${sn}|${k}`;
const iNode = (ns: string, r: string) => `i|${ns}|${r}`;

/** The nodes a labels map references (containerd's sendLabelRefs). */
function labelRefs(ns: string, labels: Record<string, string>, out: (n: Node) => void): void {
  for (const [k, v] of Object.entries(labels)) {
    if (!v) continue;
    // containerd.io/gc.ref.content[.<name>|/<name>]
    if (k === GC_REF_CONTENT || k.startsWith(GC_REF_CONTENT + ".") || k.startsWith(GC_REF_CONTENT + "/")) out(cNode(ns, v));
    else if (k.startsWith(GC_REF_SNAPSHOT)) {
      // containerd.io/gc.ref.snapshot.<snapshotter>[/<name>]
      const sn = k.slice(GC_REF_SNAPSHOT.length).split("/")[0];
      if (sn) out(sNode(ns, sn, v));
    }
  }
}

function expired(labels: Record<string, string>, at: Time): boolean | Time {
  const exp = labels[EXPIRE_LABEL];
  if (!exp) return false;
  try {
    const t = parseRFC3339(exp);
    return compareTime(t, at) < 0 ? true : t;
  } catch {
    return false;
  }
}

export interface CollectOptions {
  /** Remove orphans on disk (no record anywhere) last modified before this (ms since the epoch). */
  orphanBefore?: number;
}

interface SweepPlan {
  stats: GCStats;
  /** Digests whose last namespace record went (candidates for blob removal). */
  digests: Set<string>;
  /** Backing keys removed, by snapshotter. */
  backing: Map<string, Set<string>>;
  ingestRefs: string[];
}

export class GarbageCollector {
  private running: Promise<GCStats> | undefined;
  private pending: Promise<GCStats> | undefined;

  constructor(
    readonly db: MetadataDB,
    readonly store: ContentStore,
    readonly snapshotters: Map<string, Snapshotter>,
    readonly log?: { info(msg: string, f?: Record<string, unknown>): void; warn(msg: string, f?: Record<string, unknown>): void },
  ) {}

  /**
   * Run a collection (one at a time: a call while one runs waits for a fresh one after it, so a
   * caller always sees the effect of what it deleted before calling).
   */
  collect(opts: CollectOptions = {}): Promise<GCStats> {
    if (!this.running) {
      this.running = this.run(opts).finally(() => (this.running = undefined));
      return this.running;
    }
    // Callers arriving during a collection share the next one.
    this.pending ??= this.running
      .catch(() => {})
      .then(() => {
        this.pending = undefined;
        return this.collect(opts);
      });
    return this.pending;
  }

  // Under db.gcLock (exclusive): no snapshot Prepare/Commit/Remove is midway while this marks,
  // sweeps and removes backing snapshots. Content needs no lock: its writers commit a blob and
  // record it (and add it to their lease) without yielding, and the mark, the sweep and the blob
  // removal below run without yielding either.
  private run(opts: CollectOptions): Promise<GCStats> {
    return this.db.gcLock.exclusive(() => this.runLocked(opts));
  }

  private async runLocked(opts: CollectOptions): Promise<GCStats> {
    const start = performance.now();
    const plan = this.db.write(() => this.markAndSweep());
    const cutoff = opts.orphanBefore ?? Date.now() - ORPHAN_GRACE_MS;
    const st = plan.stats;

    // Blobs: those this sweep released, and orphans (no record in any namespace) old enough.
    const referenced = new Set(this.db.db.query<{ digest: string }, []>("SELECT DISTINCT digest FROM content").all().map((r) => r.digest));
    let blobs: { digest: string; mtime: number }[] = [];
    try {
      blobs = this.store.walk().map((b) => ({ digest: b.digest, mtime: b.updatedAt.seconds * 1000 }));
    } catch {}
    for (const b of blobs) {
      if (referenced.has(b.digest)) continue;
      if (!plan.digests.has(b.digest) && b.mtime > cutoff) continue;
      try {
        this.store.delete(b.digest);
        st.blobs++;
      } catch (e) {
        this.log?.warn("gc: remove blob", { digest: b.digest, error: String(e) });
      }
    }
    // Ingests: those the sweep released, and abandoned ones on disk (no writer, no lease, no
    // write for INGEST_EXPIRY_MS), like containerd's expiring ingests.
    const doomedIngests = new Set(plan.ingestRefs);
    const leasedIngests = new Set(
      this.db.db.query<{ namespace: string; id: string }, []>("SELECT namespace, id FROM lease_resources WHERE type = 'ingests'").all().map((r) => ingestStoreRef(r.namespace, r.id)),
    );
    const ingestCutoff = Date.now() - INGEST_EXPIRY_MS;
    try {
      for (const i of this.store.listStatuses()) {
        if (!leasedIngests.has(i.ref) && i.updatedAt.seconds * 1000 < ingestCutoff) doomedIngests.add(i.ref);
      }
    } catch {}
    for (const ref of doomedIngests) {
      if (this.store.isLocked(ref)) continue;
      try {
        this.store.abort(ref);
        st.ingests++;
      } catch {}
    }
    st.metaMs = performance.now() - start;

    // Backing snapshots no namespace's key maps to, children before parents.
    for (const [name, sn] of this.snapshotters) {
      const known = new Set(this.db.db.query<{ backing_key: string }, [string]>("SELECT backing_key FROM snapshots WHERE snapshotter = ?").all(name).map((r) => r.backing_key));
      const released = plan.backing.get(name) ?? new Set<string>();
      let infos;
      try {
        infos = await sn.walk();
      } catch (e) {
        this.log?.warn("gc: walk snapshotter", { snapshotter: name, error: String(e) });
        continue;
      }
      const doomed = new Set(infos.filter((i) => !known.has(i.name) && (released.has(i.name) || i.created.getTime() <= cutoff)).map((i) => i.name));
      const parentOf = new Map(infos.map((i) => [i.name, i.parent]));
      let removedAny = false;
      // Repeatedly remove leaves (doomed snapshots no remaining snapshot has as parent).
      for (let progress = true; progress && doomed.size; ) {
        progress = false;
        const parents = new Set([...parentOf.values()]);
        for (const k of [...doomed]) {
          if (parents.has(k)) continue;
          try {
            await sn.remove(k);
            st.snapshots++;
            removedAny = true;
          } catch (e) {
            this.log?.warn("gc: remove snapshot", { snapshotter: name, key: k, error: String(e) });
          }
          doomed.delete(k);
          parentOf.delete(k);
          progress = true;
        }
      }
      if (removedAny) await sn.cleanup().catch(() => {});
    }
    st.durationMs = performance.now() - start;
    this.log?.info("garbage collected", { d: `${st.metaMs.toFixed(1)}ms`, total: `${st.durationMs.toFixed(1)}ms`, ...summary(st) });
    return st;
  }

  /** Inside the write transaction: mark from the roots, delete unmarked records. */
  private markAndSweep(): SweepPlan {
    const db = this.db.db;
    const at = now();
    const stats: GCStats = { contentRecords: 0, snapshotRecords: 0, ingestRecords: 0, leases: 0, blobs: 0, snapshots: 0, ingests: 0, metaMs: 0, durationMs: 0 };
    const grey: Node[] = [];
    const black = new Set<Node>();
    const mark = (n: Node) => {
      if (!black.has(n)) {
        black.add(n);
        grey.push(n);
      }
    };

    // Roots.
    const expiredLeases: Array<[string, string]> = [];
    for (const l of db.query<{ namespace: string; id: string; labels: string }, []>("SELECT namespace, id, labels FROM leases").all()) {
      const e = expired(parseMap(l.labels), at);
      if (e === true) {
        expiredLeases.push([l.namespace, l.id]);
        continue;
      }
      if (e && (!stats.nextExpiry || compareTime(e, stats.nextExpiry) < 0)) stats.nextExpiry = e;
      for (const r of db.query<{ type: string; id: string }, [string, string]>("SELECT type, id FROM lease_resources WHERE namespace = ? AND lease = ?").all(l.namespace, l.id)) {
        if (r.type === "content") mark(cNode(l.namespace, r.id));
        else if (r.type === "ingests") mark(iNode(l.namespace, r.id));
        else if (r.type.startsWith("snapshots/")) mark(sNode(l.namespace, r.type.slice("snapshots/".length), r.id));
      }
    }
    for (const i of db.query<{ namespace: string; digest: string; labels: string }, []>("SELECT namespace, digest, labels FROM images").all()) {
      mark(cNode(i.namespace, i.digest));
      labelRefs(i.namespace, parseMap(i.labels), mark);
    }
    for (const c of db.query<{ namespace: string; snapshotter: string; snapshot_key: string; labels: string }, []>("SELECT namespace, snapshotter, snapshot_key, labels FROM containers").all()) {
      if (c.snapshotter && c.snapshot_key) mark(sNode(c.namespace, c.snapshotter, c.snapshot_key));
      labelRefs(c.namespace, parseMap(c.labels), mark);
    }
    const contentRows = db.query<{ namespace: string; digest: string; labels: string }, []>("SELECT namespace, digest, labels FROM content").all();
    const contentLabels = new Map<Node, Record<string, string>>();
    for (const c of contentRows) {
      const labels = parseMap(c.labels);
      contentLabels.set(cNode(c.namespace, c.digest), labels);
      if (labels[GC_ROOT_LABEL]) mark(cNode(c.namespace, c.digest));
    }
    const snapRows = db.query<{ namespace: string; snapshotter: string; key: string; backing_key: string; parent: string; labels: string }, []>("SELECT namespace, snapshotter, key, backing_key, parent, labels FROM snapshots").all();
    const snapInfo = new Map<Node, { parent: string; labels: Record<string, string> }>();
    for (const s of snapRows) {
      const labels = parseMap(s.labels);
      snapInfo.set(sNode(s.namespace, s.snapshotter, s.key), { parent: s.parent, labels });
      if (labels[GC_ROOT_LABEL]) mark(sNode(s.namespace, s.snapshotter, s.key));
    }
    const ingestRows = db.query<{ namespace: string; ref: string; updated_at: string }, []>("SELECT namespace, ref, updated_at FROM ingests").all();
    const ingestCutoff = Date.now() - INGEST_EXPIRY_MS;
    for (const i of ingestRows) {
      let recent = true;
      try {
        recent = parseRFC3339(i.updated_at).seconds * 1000 > ingestCutoff;
      } catch {}
      if (recent) mark(iNode(i.namespace, i.ref));
    }

    // Propagate (grey → black).
    while (grey.length) {
      const n = grey.pop()!;
      const parts = n.split("|");
      if (parts[0] === "c") {
        const labels = contentLabels.get(n);
        if (labels) labelRefs(parts[1]!, labels, mark);
      } else if (parts[0] === "s") {
        const s = snapInfo.get(n);
        if (!s) continue;
        if (s.parent) mark(sNode(parts[1]!, parts[2]!, s.parent));
        labelRefs(parts[1]!, s.labels, mark);
      }
    }

    // Sweep records.
    const digests = new Set<string>();
    const backing = new Map<string, Set<string>>();
    const ingestRefs: string[] = [];
    for (const [ns, id] of expiredLeases) {
      db.query("DELETE FROM leases WHERE namespace = ? AND id = ?").run(ns, id);
      stats.leases++;
    }
    for (const c of contentRows) {
      if (black.has(cNode(c.namespace, c.digest))) continue;
      db.query("DELETE FROM content WHERE namespace = ? AND digest = ?").run(c.namespace, c.digest);
      digests.add(c.digest);
      stats.contentRecords++;
    }
    for (const s of snapRows) {
      if (black.has(sNode(s.namespace, s.snapshotter, s.key))) continue;
      db.query("DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?").run(s.namespace, s.snapshotter, s.key);
      if (!backing.has(s.snapshotter)) backing.set(s.snapshotter, new Set());
      backing.get(s.snapshotter)!.add(s.backing_key);
      stats.snapshotRecords++;
    }
    for (const i of ingestRows) {
      if (black.has(iNode(i.namespace, i.ref))) continue;
      db.query("DELETE FROM ingests WHERE namespace = ? AND ref = ?").run(i.namespace, i.ref);
      ingestRefs.push(ingestStoreRef(i.namespace, i.ref)); // the content service's ingest ref
      stats.ingestRecords++;
    }
    return { stats, digests, backing, ingestRefs };
  }
}

function summary(st: GCStats): Record<string, unknown> {
  const { durationMs: _d, metaMs: _m, nextExpiry, ...rest } = st;
  return nextExpiry ? { ...rest, nextExpiry: formatRFC3339(nextExpiry) } : rest;
}
