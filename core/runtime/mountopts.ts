// Mount options as runc reads them: flags set or cleared, propagation changes, and the rest as data.
import { MS } from "../../ffi/consts";

const SET: Record<string, number> = {
  bind: MS.BIND, rbind: MS.BIND | MS.REC, ro: MS.RDONLY, nosuid: MS.NOSUID, nodev: MS.NODEV, noexec: MS.NOEXEC,
  sync: MS.SYNCHRONOUS, remount: MS.REMOUNT, mand: MS.MANDLOCK, dirsync: MS.DIRSYNC, noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME, relatime: MS.RELATIME, strictatime: MS.STRICTATIME, lazytime: MS.LAZYTIME,
  nosymfollow: MS.NOSYMFOLLOW, silent: MS.SILENT,
};
const CLEAR: Record<string, number> = {
  rw: MS.RDONLY, suid: MS.NOSUID, dev: MS.NODEV, exec: MS.NOEXEC, async: MS.SYNCHRONOUS, nomand: MS.MANDLOCK,
  atime: MS.NOATIME, diratime: MS.NODIRATIME, norelatime: MS.RELATIME, nostrictatime: MS.STRICTATIME,
  nolazytime: MS.LAZYTIME, symfollow: MS.NOSYMFOLLOW, loud: MS.SILENT, defaults: 0,
};
const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE, rprivate: MS.PRIVATE | MS.REC, shared: MS.SHARED, rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE, rslave: MS.SLAVE | MS.REC, unbindable: MS.UNBINDABLE, runbindable: MS.UNBINDABLE | MS.REC,
};
// Options of runc's own that aren't for the kernel.
const IGNORED = new Set(["tmpcopyup", "idmap", "ridmap"]);

export interface MountOptions {
  flags: number;
  propagation: number[];
  data: string;
}

export function parseMountOptions(options: string[] = []): MountOptions {
  let flags = 0;
  const propagation: number[] = [];
  const data: string[] = [];
  for (const o of options) {
    if (o in SET) flags |= SET[o]!;
    else if (o in CLEAR) flags &= ~CLEAR[o]!;
    else if (o in PROPAGATION) propagation.push(PROPAGATION[o]!);
    else if (!IGNORED.has(o)) data.push(o);
  }
  return { flags, propagation, data: data.join(",") };
}

export function propagationFlag(name: string): number {
  const f = PROPAGATION[name];
  if (f === undefined) throw new Error(`invalid rootfsPropagation "${name}"`);
  return f;
}

/** statvfs f_flag bits -> MS_* bits, to keep a mount's flags across a read-only remount. */
export function statvfsToMs(f: number): number {
  const map: [number, number][] = [[1, MS.RDONLY], [2, MS.NOSUID], [4, MS.NODEV], [8, MS.NOEXEC], [16, MS.SYNCHRONOUS], [64, MS.MANDLOCK], [1024, MS.NOATIME], [2048, MS.NODIRATIME], [4096, MS.RELATIME]];
  return map.reduce((acc, [st, ms]) => (f & st ? acc | ms : acc), 0);
}

/** Every option name parseMountOptions understands (for `runc features`). */
export function knownMountOptions(): string[] {
  return [...Object.keys(SET), ...Object.keys(CLEAR), ...Object.keys(PROPAGATION)].sort();
}
