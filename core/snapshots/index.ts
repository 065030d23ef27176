// Snapshotters: containerd 1.6's snapshots.Snapshotter with its overlayfs and native
// implementations, metadata in SQLite, plus the helpers that apply their mounts.
//
//   const sn = await openSnapshotter("overlayfs", "/var/lib/containerd");
//   const mounts = await sn.prepare("extract-1", "");   // [{type:"bind", source:".../fs", ...}]
//   mountAll(mounts, dir); ...; unmountAll(dir);
//   await sn.commit("sha256:layer1", "extract-1");
import { join } from "node:path";
import { NativeSnapshotter, type NativeOptions } from "./native";
import { OverlaySnapshotter, type OverlayOptions } from "./overlay";

export * from "./types";
export * from "./errors";
export { mountAll, mountOne, unmount, unmountAll, withTempMount, parseMountOptions, compactLowerdirOption } from "./mount";
export { OverlaySnapshotter, UPPERDIR_LABEL, supportsIndex, supportsMultipleLowerDir, needsUserXAttr, type OverlayOptions } from "./overlay";
export { NativeSnapshotter, type NativeOptions } from "./native";
export { DirSnapshotter } from "./base";
export { copyDir, diskUsage, removeAll } from "./fsutil";
export { parse as parseFilter, parseAll as parseFilters } from "./filters";

export const SNAPSHOTTERS = ["overlayfs", "native"] as const;
export type SnapshotterName = (typeof SNAPSHOTTERS)[number];

/** The plugin's own directory under containerd's root: <root>/io.containerd.snapshotter.v1.<name>. */
export function snapshotterRoot(containerdRoot: string, name: SnapshotterName): string {
  return join(containerdRoot, `io.containerd.snapshotter.v1.${name}`);
}

/** Opens the named snapshotter in its plugin directory under containerd's root. */
export async function openSnapshotter(
  name: SnapshotterName,
  containerdRoot: string,
  opts: OverlayOptions & NativeOptions = {},
): Promise<OverlaySnapshotter | NativeSnapshotter> {
  const root = snapshotterRoot(containerdRoot, name);
  switch (name) {
    case "overlayfs":
      return OverlaySnapshotter.open(root, opts);
    case "native":
      return NativeSnapshotter.open(root, opts);
  }
  throw new Error(`unknown snapshotter ${name}`);
}
