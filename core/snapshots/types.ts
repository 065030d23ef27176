// containerd's snapshots.Snapshotter model (containerd 1.6, snapshots/snapshotter.go) in TypeScript.
//
// A snapshot is a filesystem state with a parent ("" is the empty directory). Prepare and View
// create *active* snapshots (writable / read-only) on top of a committed parent; Commit turns an
// active (writable) snapshot into a *committed* one under a new name, which can then be a parent.
// Keys of active snapshots and names of committed ones share one key space.

/** snapshots.Kind, with containerd's (and the gRPC API's) numbering. */
export const Kind = { Unknown: 0, View: 1, Active: 2, Committed: 3 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

const KIND_NAMES = ["Unknown", "View", "Active", "Committed"] as const;
export type KindName = (typeof KIND_NAMES)[number];

/** Kind.String(): "View", "Active", "Committed", "Unknown". */
export function kindString(k: Kind): KindName {
  return KIND_NAMES[k] ?? "Unknown";
}

/** snapshots.ParseKind: case-insensitive "view" | "active" | "committed"; anything else Unknown. */
export function parseKind(s: string): Kind {
  switch (s.toLowerCase()) {
    case "view":
      return Kind.View;
    case "active":
      return Kind.Active;
    case "committed":
      return Kind.Committed;
  }
  return Kind.Unknown;
}

export type Labels = Record<string, string>;

/** snapshots.Info. `parent` is "" for a snapshot on the empty parent. */
export interface Info {
  kind: Kind;
  name: string;
  parent: string;
  labels: Labels;
  created: Date;
  updated: Date;
}

/** snapshots.Usage: what the snapshot itself takes (not its parents). */
export interface Usage {
  /** Bytes of allocated blocks (st_blocks * 512, each inode once). */
  size: number;
  inodes: number;
}

/** mount.Mount: one serialized mount(2) call; options are fstab style ("ro", "lowerdir=..."). */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

/** What Update may change: the name selects the snapshot, labels are the new values. */
export interface InfoUpdate {
  name: string;
  labels?: Labels;
}

export interface Snapshotter {
  /** Info of an active or committed snapshot by key or name. */
  stat(key: string): Promise<Info>;
  /**
   * Update mutable properties (labels). fieldpaths: "labels" (replace all) or "labels.<k>" (one
   * label; an empty or missing value removes it); none: replace all labels.
   */
  update(info: InfoUpdate, fieldpaths?: string[]): Promise<Info>;
  /** Resources taken by the snapshot itself; for active snapshots this walks the tree. */
  usage(key: string): Promise<Usage>;
  /** The mounts of an active snapshot (Active or View). */
  mounts(key: string): Promise<Mount[]>;
  /** A new writable active snapshot on `parent` (a committed snapshot, or "" for empty). */
  prepare(key: string, parent?: string, labels?: Labels): Promise<Mount[]>;
  /** A new read-only active snapshot on `parent`. It can't be committed. */
  view(key: string, parent?: string, labels?: Labels): Promise<Mount[]>;
  /** Active `key` becomes committed `name` (key disappears); labels replace the old ones. */
  commit(name: string, key: string, labels?: Labels): Promise<void>;
  /** Remove a snapshot; refused (FailedPrecondition) while it has children. */
  remove(key: string): Promise<void>;
  /** Infos of every snapshot matching any of the containerd filters (all when none), by key. */
  walk(filters?: string[]): Promise<Info[]>;
  /** Remove directories no snapshot owns any more (orphans of crashes, async removals). */
  cleanup(): Promise<void>;
  close(): void;
}
