// The overlayfs snapshotter (containerd 1.6 snapshots/overlay): every snapshot is a directory
// snapshots/<id>/ with fs/ (the overlay upper dir: the snapshot's own changes) and, for writable
// snapshots, work/ (overlay's workdir). Committed snapshots are the lower layers of their
// children, so a layer shared by many images exists once; mounts() stacks the parent chain.
import { existsSync, lchownSync, mkdirSync, readdirSync, statSync, mkdtempSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { DirSnapshotter, type BaseOptions } from "./base";
import { wrap } from "./errors";
import { removeAll } from "./fsutil";
import { mountOne, unmountAll } from "./mount";
import type { StoredSnapshot, Tx } from "./storage";
import { runningInUserNS, statfsType, TMPFS_MAGIC } from "./sys";
import { Kind, type Info, type Mount } from "./types";

/** The optional label carrying a snapshot's upper dir (WithUpperdirLabel). */
export const UPPERDIR_LABEL = "containerd.io/snapshot/overlay.upperdir";

export interface OverlayOptions extends BaseOptions {
  /** Add the containerd.io/snapshot/overlay.upperdir label to stat/update/walk results. */
  upperdirLabel?: boolean;
  /** Skip the start-up test mount of an overlay with two lower dirs (default: test). */
  skipSupportCheck?: boolean;
}

const CHECK_PREFIX = "multiple-lowerdir-check";
const USERXATTR_CHECK = "userxattr-check";

export class OverlaySnapshotter extends DirSnapshotter {
  /** Mount with "index=off" (the kernel has the overlay index feature: the parameter exists). */
  readonly indexOff: boolean;
  /** Mount with "userxattr" (needed in a user namespace on kernels >= 5.11). */
  readonly userxattr: boolean;
  private readonly upperdirLabel: boolean;
  private readonly skipCheck: boolean;
  protected readonly errs = {
    mounts: "failed to get active mount",
    // containerd 1.6.20's overlay names the key in Remove's error, not in Commit's.
    commit: (_key: string) => "failed to commit snapshot",
    remove: (key: string) => `failed to remove snapshot ${key}`,
  };

  private constructor(root: string, opts: OverlayOptions) {
    super(root, opts);
    this.upperdirLabel = !!opts.upperdirLabel;
    this.skipCheck = !!opts.skipSupportCheck;
    this.indexOff = supportsIndex();
    let ux = false;
    try {
      ux = needsUserXAttr(root);
    } catch {}
    this.userxattr = ux;
  }

  /** Opens (creating if needed) the snapshotter rooted at `root`; fails when overlay can't mount there. */
  static async open(root: string, opts: OverlayOptions = {}): Promise<OverlaySnapshotter> {
    const s = new OverlaySnapshotter(root, opts);
    await s.init();
    return s;
  }

  protected override async startup(_tx: Tx): Promise<void> {
    // Test dirs of a check that was killed midway (possibly still mounted).
    for (const name of readdirSync(this.root)) {
      if (name.startsWith(CHECK_PREFIX) || name === USERXATTR_CHECK) removeAll(join(this.root, name));
    }
    if (!this.skipCheck) supportsMultipleLowerDir(this.root);
  }

  upperPath(id: string): string {
    return join(this.snapshotsDir, id, "fs");
  }
  workPath(id: string): string {
    return join(this.snapshotsDir, id, "work");
  }

  protected ownsDir(): boolean {
    return true;
  }

  protected async populate(td: string, s: StoredSnapshot): Promise<void> {
    try {
      mkdirSync(join(td, "fs"), { mode: 0o755 });
      if (s.kind === Kind.Active) mkdirSync(join(td, "work"), { mode: 0o711 });
    } catch (e) {
      throw wrap(e, "failed to create prepare snapshot dir");
    }
    if (s.parentIDs.length) {
      let st;
      try {
        st = statSync(this.upperPath(s.parentIDs[0]!));
      } catch (e) {
        throw wrap(e, "failed to stat parent");
      }
      try {
        lchownSync(join(td, "fs"), st.uid, st.gid);
      } catch (e) {
        throw wrap(e, "failed to chown");
      }
    }
  }

  protected usagePath(id: string): string {
    return this.upperPath(id);
  }

  protected expectedPaths(id: string, kind: Kind): string[] {
    return kind === Kind.View ? [this.upperPath(id)] : [this.upperPath(id), this.workPath(id)];
  }

  protected override decorate(info: Info, id: string): Info {
    if (this.upperdirLabel) info.labels = { ...info.labels, [UPPERDIR_LABEL]: this.upperPath(id) };
    return info;
  }

  protected mountsOf(s: StoredSnapshot): Mount[] {
    if (s.parentIDs.length === 0) {
      // No parents: overlay needs at least one lower dir, so a bind mount of the upper dir.
      return [{ type: "bind", source: this.upperPath(s.id), options: [s.kind === Kind.View ? "ro" : "rw", "rbind"] }];
    }
    const options: string[] = [];
    if (this.indexOff) options.push("index=off");
    if (this.userxattr) options.push("userxattr");
    if (s.kind === Kind.Active) {
      options.push(`workdir=${this.workPath(s.id)}`, `upperdir=${this.upperPath(s.id)}`);
    } else if (s.parentIDs.length === 1) {
      return [{ type: "bind", source: this.upperPath(s.parentIDs[0]!), options: ["ro", "rbind"] }];
    }
    options.push(`lowerdir=${s.parentIDs.map((id) => this.upperPath(id)).join(":")}`);
    return [{ type: "overlay", source: "overlay", options }];
  }
}

/** containerd's supportsIndex: the kernel knows the index feature when the module parameter exists. */
export function supportsIndex(): boolean {
  return existsSync("/sys/module/overlay/parameters/index");
}

/**
 * overlayutils.SupportsMultipleLowerDir: mounts an overlay with two lower dirs in a temp dir
 * under `dir` (so on the file system that will hold the layers) and unmounts it again.
 */
export function supportsMultipleLowerDir(dir: string): void {
  const td = mkdtempSync(join(dir, CHECK_PREFIX));
  try {
    for (const d of ["lower1", "lower2", "upper", "work", "merged"]) mkdirSync(join(td, d), { mode: 0o755 });
    const opts = `lowerdir=${join(td, "lower2")}:${join(td, "lower1")},upperdir=${join(td, "upper")},workdir=${join(td, "work")}`;
    const dest = join(td, "merged");
    try {
      mountOne({ type: "overlay", source: "overlay", options: [opts] }, dest);
    } catch (e) {
      throw wrap(e, "failed to mount overlay");
    }
    unmountAll(dest, 0);
  } finally {
    removeAll(td);
  }
}

function kernelAtLeast(major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release());
  if (!m) return false;
  const a = Number(m[1]), b = Number(m[2]);
  return a > major || (a === major && b >= minor);
}

/**
 * overlayutils.NeedsUserXAttr: only in a user namespace (never for the initial one), not on tmpfs;
 * yes on kernels >= 5.11, else whatever a test mount with "userxattr" says.
 */
export function needsUserXAttr(dir: string): boolean {
  if (!runningInUserNS()) return false;
  try {
    if (statfsType(dir) === TMPFS_MAGIC) return false;
  } catch {}
  if (kernelAtLeast(5, 11)) return true;
  const tdRoot = join(dir, USERXATTR_CHECK);
  removeAll(tdRoot);
  mkdirSync(tdRoot, { recursive: true, mode: 0o700 });
  try {
    const td = mkdtempSync(join(tdRoot, "c"));
    for (const d of ["lower1", "lower2", "upper", "work", "merged"]) mkdirSync(join(td, d), { mode: 0o755 });
    const dest = join(td, "merged");
    try {
      mountOne(
        {
          type: "overlay",
          source: "overlay",
          options: [`ro,lowerdir=${join(td, "lower2")}:${join(td, "lower1")},upperdir=${join(td, "upper")},workdir=${join(td, "work")}`, "userxattr"],
        },
        dest,
      );
    } catch {
      return false;
    }
    unmountAll(dest, 0);
    return true;
  } finally {
    removeAll(tdRoot);
  }
}
