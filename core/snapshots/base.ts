// What the overlayfs and native snapshotters share: the metadata store, the Snapshotter methods
// that only touch metadata, and the crash-safe creation/removal of snapshot directories.
//
// Layout (like containerd's): <root>/metadata.db, <root>/snapshots/<id>/..., where <root> is the
// plugin's directory, e.g. /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs.
//
// Creating a snapshot: in one write transaction, insert the record (which allocates the id),
// build the directory under a temporary name (snapshots/new-XXXXXX), rename it to snapshots/<id>,
// fsync snapshots/, then COMMIT. Removing one: delete the record and COMMIT, then delete the
// directory. Either way a crash leaves nothing worse than a directory without a record, and
// start-up (and cleanup()) removes exactly those, under the write lock.
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { SnapshotError, wrap } from "./errors";
import { diskUsage, fsyncDir, removeAll } from "./fsutil";
import {
  allRecords,
  commitActive,
  createSnapshot,
  getInfo,
  getSnapshot,
  idMap,
  MetaStore,
  removeSnapshot,
  updateInfo,
  walkInfo,
  type StoredSnapshot,
  type Tx,
} from "./storage";
import { Kind, kindString, type Info, type InfoUpdate, type Labels, type Mount, type Snapshotter, type Usage } from "./types";

export interface BaseOptions {
  /**
   * Leave directories of removed snapshots for cleanup() (containerd's AsynchronousRemove);
   * default: delete them right after the removal commits.
   */
  asyncRemove?: boolean;
}

/** The error prefixes that differ between containerd's snapshotters. */
export interface ErrorTexts {
  mounts: string;
  commit: (key: string) => string;
  remove: (key: string) => string;
}

export abstract class DirSnapshotter implements Snapshotter {
  readonly root: string;
  protected readonly ms: MetaStore;
  protected readonly snapshotsDir: string;
  protected readonly asyncRemove: boolean;
  protected abstract readonly errs: ErrorTexts;

  protected constructor(root: string, opts: BaseOptions) {
    this.root = root;
    this.asyncRemove = !!opts.asyncRemove;
    mkdirSync(root, { recursive: true, mode: 0o700 });
    this.ms = new MetaStore(join(root, "metadata.db"));
    this.snapshotsDir = join(root, "snapshots");
    try {
      mkdirSync(this.snapshotsDir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        this.ms.close();
        throw e;
      }
    }
  }

  /** snapshots/<id>: the directory of a snapshot. */
  protected snapshotDir(id: string): string {
    return join(this.snapshotsDir, id);
  }

  /** Does a new snapshot of this kind/parent get a directory of its own? */
  protected abstract ownsDir(kind: Kind, parent: string): boolean;
  /** Fill the new snapshot's directory (a temp dir, renamed into place afterwards). */
  protected abstract populate(dir: string, s: StoredSnapshot): Promise<void>;
  /** The tree whose size is the snapshot's usage (its own changes). */
  protected abstract usagePath(id: string): string;
  /** The mounts of an active snapshot. */
  protected abstract mountsOf(s: StoredSnapshot): Mount[];
  /** Hook for labels the snapshotter adds on read (the overlay upperdir label). */
  protected decorate(info: Info, _id: string): Info {
    return info;
  }
  /** Hook run at start-up under the write lock, before orphans are removed. */
  protected async startup(_tx: Tx): Promise<void> {}

  /** Start-up: the subclass' checks, then orphan directories removed. */
  protected async init(): Promise<void> {
    try {
      await this.ms.write(async (tx) => {
        await this.startup(tx);
        this.removeOrphans(tx);
      });
    } catch (e) {
      this.ms.close();
      throw e;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Snapshotter

  async stat(key: string): Promise<Info> {
    const { id, info } = this.ms.read((tx) => getInfo(tx, key));
    return this.decorate(info, id);
  }

  async update(info: InfoUpdate, fieldpaths: string[] = []): Promise<Info> {
    return this.ms.write((tx) => {
      const updated = updateInfo(tx, info, fieldpaths);
      return this.decorate(updated, getInfo(tx, updated.name).id);
    });
  }

  async usage(key: string): Promise<Usage> {
    const { id, info, usage } = this.ms.read((tx) => getInfo(tx, key));
    if (info.kind === Kind.Active) return diskUsage(this.usagePath(id));
    return usage;
  }

  async mounts(key: string): Promise<Mount[]> {
    let s: StoredSnapshot;
    try {
      s = this.ms.read((tx) => getSnapshot(tx, key));
    } catch (e) {
      throw wrap(e, this.errs.mounts);
    }
    return this.mountsOf(s);
  }

  prepare(key: string, parent = "", labels?: Labels): Promise<Mount[]> {
    return this.createSnapshot(Kind.Active, key, parent, labels);
  }

  view(key: string, parent = "", labels?: Labels): Promise<Mount[]> {
    return this.createSnapshot(Kind.View, key, parent, labels);
  }

  async commit(name: string, key: string, labels?: Labels): Promise<void> {
    await this.ms.write(async (tx) => {
      const { id, info } = getInfo(tx, key);
      // Usage of what the snapshot holds now. containerd walks the usage path of any key first;
      // a non-active one then fails in commitActive below. We skip that walk, but not its error
      // when the path does not exist (a native view of a parent has no directory of its own).
      const path = this.usagePath(id);
      let usage = { size: 0, inodes: 0 };
      if (info.kind === Kind.Active) usage = await diskUsage(path);
      else if (!existsSync(path)) throw new SnapshotError("Unknown", `lstat ${path}: no such file or directory`);
      try {
        commitActive(tx, key, name, usage, labels);
      } catch (e) {
        throw wrap(e, this.errs.commit(key));
      }
    });
  }

  async remove(key: string): Promise<void> {
    const { id } = await this.ms.write((tx) => {
      try {
        return removeSnapshot(tx, key);
      } catch (e) {
        throw wrap(e, this.errs.remove(key));
      }
    });
    // The record is gone for good; a failure (or crash) here only leaves an orphan for cleanup.
    if (!this.asyncRemove) {
      try {
        removeAll(this.snapshotDir(id));
      } catch {}
    }
  }

  async walk(filters: string[] = []): Promise<Info[]> {
    const { infos, ids } = this.ms.read((tx) => ({ infos: walkInfo(tx, filters), ids: idMap(tx) }));
    const byKey = new Map([...ids].map(([id, k]) => [k, id]));
    return infos.map((i) => this.decorate(i, byKey.get(i.name)!));
  }

  async cleanup(): Promise<void> {
    await this.ms.write((tx) => this.removeOrphans(tx));
  }

  close(): void {
    this.ms.close();
  }

  /**
   * Consistency report: records whose directory is missing, directories no record owns, parents
   * that are not committed. [] when all is well. Runs under the write lock, so no creation or
   * removal is midway while it looks.
   */
  async verify(): Promise<string[]> {
    return this.ms.write((tx) => this.check(allRecords(tx)));
  }

  private check(recs: ReturnType<typeof allRecords>): string[] {
    const problems: string[] = [];
    const byId = new Map(recs.map((r) => [r.id, r]));
    for (const r of recs) {
      const parent = r.parentId === null ? undefined : byId.get(r.parentId);
      if (r.parentId !== null && !parent) problems.push(`snapshot ${r.key} (id ${r.id}): parent id ${r.parentId} missing`);
      if (parent && parent.kind !== Kind.Committed) problems.push(`snapshot ${r.key} (id ${r.id}): parent ${parent.key} is not committed`);
      for (const p of this.expectedPaths(r.id, r.kind, r.parentId !== null)) {
        if (!existsSync(p)) problems.push(`snapshot ${r.key} (id ${r.id}, ${kindString(r.kind)}): ${p} missing`);
      }
    }
    for (const name of readdirSync(this.snapshotsDir)) {
      if (!byId.has(name)) problems.push(`orphan directory ${join(this.snapshotsDir, name)}`);
    }
    return problems;
  }

  /** The paths a record's directory must have (for verify). */
  protected abstract expectedPaths(id: string, kind: Kind, hasParent: boolean): string[];

  // -------------------------------------------------------------------------------------------

  private async createSnapshot(kind: Kind, key: string, parent: string, labels?: Labels): Promise<Mount[]> {
    let td = "", path = "";
    try {
      const s = await this.ms.write(async (tx) => {
        let s: StoredSnapshot;
        try {
          s = createSnapshot(tx, kind, key, parent, labels);
        } catch (e) {
          throw wrap(e, "failed to create snapshot");
        }
        if (this.ownsDir(kind, parent)) {
          td = mkdtempSync(join(this.snapshotsDir, "new-"));
          await this.populate(td, s);
          path = this.snapshotDir(s.id);
          // An id of a transaction that never committed (crash) may be handed out again; its
          // directory, if one was left, is garbage.
          if (existsSync(path)) removeAll(path);
          renameSync(td, path);
          td = "";
          fsyncDir(this.snapshotsDir);
        }
        return s;
      });
      path = "";
      return this.mountsOf(s);
    } finally {
      // Only reached with td/path set when the transaction failed (rolled back).
      if (td) removeAll(td);
      if (path) removeAll(path);
    }
  }

  /** Directories in snapshots/ that no record owns (new-*, rm-*, crashed creations, removals). */
  private removeOrphans(tx: Tx): void {
    const ids = idMap(tx);
    for (const name of readdirSync(this.snapshotsDir)) {
      if (ids.has(name)) continue;
      const p = join(this.snapshotsDir, name);
      try {
        lstatSync(p);
        removeAll(p);
      } catch {}
    }
  }
}
