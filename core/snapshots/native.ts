// The native snapshotter (containerd 1.6 snapshots/native): every snapshot is a plain directory
// snapshots/<id>; Prepare makes a full copy of the parent's tree (owners, modes, xattrs, links,
// devices kept), and mounts are bind mounts. Works on any file system, at the cost of copies.
import { chmodSync } from "node:fs";
import { DirSnapshotter, type BaseOptions } from "./base";
import { wrap } from "./errors";
import { copyDir } from "./fsutil";
import type { StoredSnapshot } from "./storage";
import { Kind, type Mount } from "./types";

export type NativeOptions = BaseOptions;

export class NativeSnapshotter extends DirSnapshotter {
  protected readonly errs = {
    mounts: "failed to get snapshot mount",
    commit: (_key: string) => "failed to commit snapshot",
    remove: (_key: string) => "failed to remove",
  };

  private constructor(root: string, opts: NativeOptions) {
    super(root, opts);
  }

  static async open(root: string, opts: NativeOptions = {}): Promise<NativeSnapshotter> {
    const s = new NativeSnapshotter(root, opts);
    await s.init();
    return s;
  }

  /** A View on a parent reads the parent's directory; everything else gets its own. */
  protected ownsDir(kind: Kind, parent: string): boolean {
    return kind === Kind.Active || parent === "";
  }

  protected async populate(td: string, s: StoredSnapshot): Promise<void> {
    chmodSync(td, 0o755);
    if (s.parentIDs.length) {
      try {
        await copyDir(td, this.snapshotDir(s.parentIDs[0]!));
      } catch (e) {
        throw wrap(e, "copying of parent failed");
      }
    }
  }

  protected usagePath(id: string): string {
    return this.snapshotDir(id);
  }

  protected expectedPaths(id: string, kind: Kind, hasParent: boolean): string[] {
    return kind === Kind.View && hasParent ? [] : [this.snapshotDir(id)];
  }

  protected mountsOf(s: StoredSnapshot): Mount[] {
    const source = s.parentIDs.length === 0 || s.kind === Kind.Active ? this.snapshotDir(s.id) : this.snapshotDir(s.parentIDs[0]!);
    // containerd 1.6.20's order: "rbind" first (ctr prints "-o rbind,rw").
    return [{ type: "bind", source, options: ["rbind", s.kind === Kind.View ? "ro" : "rw"] }];
  }
}
