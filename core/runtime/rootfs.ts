// The container's filesystem view, built inside `runc init` after it entered its mount namespace:
// the rootfs bind, config mounts, /dev, pivot_root, then read-only, masked and read-only paths.
import { chownSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { MNT_DETACH, MS, O, S_IFBLK, S_IFCHR, S_IFIFO } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import type { Device, Mount, Spec } from "../oci/types";
import { hierarchies } from "./cgroups/layout";
import { parseMountOptions, propagationFlag, statvfsToMs } from "./mountopts";
import { secureJoin } from "./securejoin";

export interface RootfsPlan {
  spec: Spec;
  bundle: string;
  rootfs: string;
  cgroupDirs: string[];
  newCgroupNs: boolean;
}

/** Everything up to (not including) pivot_root, on host paths. */
export function prepareRootfs(p: RootfsPlan): void {
  const { spec, rootfs } = p;
  const prop = spec.linux?.rootfsPropagation ? propagationFlag(spec.linux.rootfsPropagation) : MS.SLAVE | MS.REC;
  // Stop our mounts from leaking to the host (and host mounts propagating in) before touching anything.
  libc.mount(null, "/", null, prop);
  makeParentPrivate(rootfs);
  libc.mount(rootfs, rootfs, "bind", MS.BIND | MS.REC);
  for (const m of spec.mounts ?? []) {
    try {
      mountEntry(p, m);
    } catch (e: any) {
      throw new Error(`error mounting ${JSON.stringify(m.source ?? "")} to rootfs at ${JSON.stringify(m.destination)}: ${e?.message ?? e}`);
    }
  }
  const devMounted = (spec.mounts ?? []).some((m) => clean(m.destination) === "/dev");
  const devBound = (spec.mounts ?? []).some((m) => clean(m.destination) === "/dev" && parseMountOptions(m.options).flags & MS.BIND);
  if (!devBound) createDevices(rootfs, [...DEFAULT_DEVICES, ...(spec.linux?.devices ?? [])]);
  if (devMounted || existsSync(join(rootfs, "dev"))) setupDevSymlinks(rootfs);
}

export function pivotInto(rootfs: string, noPivot: boolean): void {
  if (noPivot) {
    libc.chdir(rootfs);
    libc.mount(rootfs, "/", null, MS.MOVE);
    libc.chroot(".");
    libc.chdir("/");
    return;
  }
  const oldRoot = libc.open("/", O.DIRECTORY | O.RDONLY);
  const newRoot = libc.open(rootfs, O.DIRECTORY | O.RDONLY);
  try {
    libc.fchdir(newRoot);
    // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then drops it,
    // without needing a directory for the old root inside the container.
    libc.pivotRoot(".", ".");
    libc.fchdir(oldRoot);
    libc.mount(null, ".", null, MS.SLAVE | MS.REC);
    libc.umount2(".", MNT_DETACH);
    libc.chdir("/");
  } finally {
    libc.close(oldRoot);
    libc.close(newRoot);
  }
}

/** After pivot_root: propagation of "/", read-only root, masked and read-only paths. */
export function finalizeRootfs(spec: Spec): void {
  if (spec.linux?.rootfsPropagation) libc.mount(null, "/", null, propagationFlag(spec.linux.rootfsPropagation));
  for (const p of spec.linux?.readonlyPaths ?? []) readonlyPath(p);
  for (const p of spec.linux?.maskedPaths ?? []) maskPath(p);
  if (spec.root?.readonly) {
    const keep = statvfsToMs(libc.statvfsFlags("/"));
    libc.mount(null, "/", null, MS.BIND | MS.REMOUNT | MS.RDONLY | keep);
  }
}

function clean(p: string): string {
  return resolve("/", p);
}

// pivot_root refuses a new root whose parent mount is shared; find the mount holding rootfs.
function makeParentPrivate(rootfs: string): void {
  let best = "/";
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const mp = line.split(" ")[4];
    if (mp && (rootfs === mp || rootfs.startsWith(mp === "/" ? "/" : mp + "/")) && mp.length > best.length) best = mp;
  }
  libc.mount(null, best, null, MS.PRIVATE);
}

function ensureTarget(dest: string, isDir: boolean): void {
  if (existsSync(dest)) return;
  if (isDir) mkdirSync(dest, { recursive: true, mode: 0o755 });
  else {
    mkdirSync(dirname(dest), { recursive: true, mode: 0o755 });
    closeSync(openSync(dest, "a", 0o644));
  }
}

function mountEntry(p: RootfsPlan, m: Mount): void {
  const dest = secureJoin(p.rootfs, m.destination);
  const o = parseMountOptions(m.options);
  const type = m.type ?? "";
  const isBind = (o.flags & MS.BIND) !== 0 || type === "bind";
  if (type === "cgroup" || type === "cgroup2") return mountCgroup(p, dest, m, o.flags);
  if (isBind) {
    const src = m.source && !isAbsolute(m.source) ? join(p.bundle, m.source) : m.source ?? "";
    let srcIsDir = true;
    try {
      srcIsDir = statSync(src).isDirectory();
    } catch (e: any) {
      throw new Error(`stat ${src}: ${e.code === "ENOENT" ? "no such file or directory" : e.code ?? e.message}`);
    }
    ensureTarget(dest, srcIsDir);
    libc.mount(src, dest, "bind", MS.BIND | (o.flags & MS.REC), o.data || null);
    // Bind mounts ignore all flags but MS_REC; read-only and friends need a remount.
    const extra = o.flags & ~(MS.BIND | MS.REC | MS.REMOUNT);
    if (extra) libc.mount(src, dest, null, extra | MS.BIND | MS.REMOUNT | (o.flags & MS.REC), o.data || null);
  } else {
    ensureTarget(dest, true);
    libc.mount(m.source ?? type, dest, type, o.flags, o.data || null);
  }
  for (const pf of o.propagation) libc.mount(null, dest, null, pf);
}

function mountCgroup(p: RootfsPlan, dest: string, m: Mount, flags: number): void {
  ensureTarget(dest, true);
  const hs = hierarchies();
  const base = flags & ~MS.RDONLY;
  if (hs.every((h) => h.version === 2)) {
    if (p.newCgroupNs) libc.mount("cgroup2", dest, "cgroup2", flags);
    else {
      const dir = p.cgroupDirs.find((d) => d.startsWith(hs[0]!.mount)) ?? hs[0]!.mount;
      libc.mount(dir, dest, "bind", MS.BIND | MS.REC);
      libc.mount(dir, dest, null, MS.BIND | MS.REMOUNT | flags);
    }
    return;
  }
  // v1 / hybrid: a tmpfs holding one directory per hierarchy, each showing the container's cgroup.
  libc.mount("tmpfs", dest, "tmpfs", base, "mode=755");
  for (const h of hs) {
    const name = basename(h.mount);
    const sub = join(dest, name);
    mkdirSync(sub, { recursive: true });
    if (p.newCgroupNs) {
      if (h.version === 2) libc.mount("cgroup2", sub, "cgroup2", flags);
      else libc.mount("cgroup", sub, "cgroup", flags, h.controllers.join(","));
    } else {
      const dir = p.cgroupDirs.find((d) => d === h.mount || d.startsWith(h.mount + "/")) ?? h.mount;
      libc.mount(dir, sub, "bind", MS.BIND | MS.REC);
      libc.mount(dir, sub, null, MS.BIND | MS.REMOUNT | flags);
    }
    // Co-mounted controllers ("cpu,cpuacct") are also reachable under each controller's name.
    if (h.version === 1 && h.controllers.length > 1) {
      for (const c of h.controllers) if (c !== name && !c.startsWith("name=") && !existsSync(join(dest, c))) symlinkSync(name, join(dest, c));
    }
  }
  if (flags & MS.RDONLY) libc.mount("tmpfs", dest, null, base | MS.REMOUNT | MS.RDONLY);
}

const DEFAULT_DEVICES: Device[] = [
  { type: "c", path: "/dev/null", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/zero", major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/full", major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/random", major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/urandom", major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { type: "c", path: "/dev/tty", major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

function createDevices(rootfs: string, devices: Device[]): void {
  const seen = new Set<string>();
  const old = libc.umask(0);
  try {
    for (const d of devices.reverse()) {
      // A config entry overrides the default for the same path.
      if (seen.has(d.path)) continue;
      seen.add(d.path);
      const dest = secureJoin(rootfs, d.path);
      mkdirSync(dirname(dest), { recursive: true, mode: 0o755 });
      try {
        unlinkSync(dest);
      } catch {}
      const kind = d.type === "b" ? S_IFBLK : d.type === "p" ? S_IFIFO : S_IFCHR;
      try {
        libc.mknod(dest, kind | ((d.fileMode ?? 0o666) & 0o7777), libc.makedev(d.major ?? 0, d.minor ?? 0));
      } catch (e: any) {
        if (e.code !== "EPERM") throw e;
        // Without CAP_MKNOD (user namespaces) bind the host's node instead.
        closeSync(openSync(dest, "a"));
        libc.mount(d.path, dest, "bind", MS.BIND);
        continue;
      }
      chownSync(dest, d.uid ?? 0, d.gid ?? 0);
    }
  } finally {
    libc.umask(old);
  }
}

function setupDevSymlinks(rootfs: string): void {
  const links: [string, string][] = [["/proc/self/fd", "fd"], ["/proc/self/fd/0", "stdin"], ["/proc/self/fd/1", "stdout"], ["/proc/self/fd/2", "stderr"]];
  if (existsSync("/proc/kcore")) links.push(["/proc/kcore", "core"]);
  const dev = secureJoin(rootfs, "/dev");
  for (const [target, name] of links) {
    try {
      symlinkSync(target, join(dev, name));
    } catch (e: any) {
      if (e.code !== "EEXIST") throw e;
    }
  }
  // /dev/ptmx must be the container's devpts instance, not the host's.
  const ptmx = join(dev, "ptmx");
  if (existsSync(join(dev, "pts/ptmx"))) {
    try {
      lstatSync(ptmx);
      unlinkSync(ptmx);
    } catch {}
    symlinkSync("pts/ptmx", ptmx);
  }
}

function maskPath(p: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(p).isDirectory();
  } catch {
    return;
  }
  try {
    if (isDir) libc.mount("tmpfs", p, "tmpfs", MS.RDONLY);
    else libc.mount("/dev/null", p, null, MS.BIND);
  } catch (e: any) {
    if (e.code !== "ENOENT") throw e;
  }
}

function readonlyPath(p: string): void {
  try {
    libc.mount(p, p, null, MS.BIND | MS.REC);
  } catch (e: any) {
    if (e.code === "ENOENT") return;
    throw e;
  }
  const keep = statvfsToMs(libc.statvfsFlags(p));
  libc.mount(p, p, null, keep | MS.BIND | MS.REMOUNT | MS.RDONLY | MS.REC);
}
