// Resolve a path inside a root without ever leaving it: symlinks are followed as if root were "/",
// and ".." stops at root. Mount destinations go through this so a hostile rootfs with a symlinked
// target (the CVE-2021-30465 class) can't point a mount at the host.
import { lstatSync, readlinkSync } from "node:fs";
import { posix } from "node:path";

const MAX_LINKS = 255;

export function secureJoin(root: string, unsafe: string): string {
  const parts = unsafe.split("/").filter((p) => p && p !== ".");
  const done: string[] = [];
  let links = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    const full = posix.join(root, ...done, part);
    let isLink = false;
    try {
      isLink = lstatSync(full).isSymbolicLink();
    } catch {
      // Missing components are fine: the caller creates them, already inside root.
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) throw new Error(`securejoin ${unsafe} in ${root}: too many levels of symbolic links`);
    const target = readlinkSync(full);
    if (target.startsWith("/")) done.length = 0;
    parts.unshift(...target.split("/").filter((p) => p && p !== "."));
  }
  return posix.join(root, ...done);
}
