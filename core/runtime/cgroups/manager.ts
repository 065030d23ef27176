// A container's cgroup: created in every hierarchy, joined by the init process, listed for `ps` and
// `kill --all`, removed on delete.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, posix } from "node:path";
import { kill } from "../../../ffi/libc";
import { hierarchies, ownCgroups, type Hierarchy } from "./layout";

/** Resolves linux.cgroupsPath as runc does: absolute from each hierarchy's root, relative from ours. */
export function cgroupDirs(cgroupsPath: string | undefined, id: string): string[] {
  if (cgroupsPath && /^[^/]*:[^/]*:[^/]*$/.test(cgroupsPath) && !cgroupsPath.startsWith("/")) {
    throw new Error(`cgroupsPath "${cgroupsPath}" is in systemd form (slice:prefix:name); use --systemd-cgroup`);
  }
  const rel = cgroupsPath || "/" + id;
  const own = ownCgroups();
  return hierarchies().map((h) => join(h.mount, stripRoot(h, pathIn(h, rel, own))));
}

function pathIn(h: Hierarchy, rel: string, own: Map<string, string>): string {
  if (isAbsolute(rel)) return posix.normalize(rel);
  const key = h.version === 2 ? "" : h.controllers.join(",");
  return posix.join(own.get(key) ?? "/", rel);
}

function stripRoot(h: Hierarchy, p: string): string {
  if (h.root !== "/" && p.startsWith(h.root)) return p.slice(h.root.length) || "/";
  return p;
}

export function createCgroups(dirs: string[]): void {
  for (const d of dirs) {
    mkdirSync(d, { recursive: true });
    if (d.includes("/cpuset/")) inheritCpuset(d);
  }
}

// A new v1 cpuset cgroup starts with empty cpus/mems and refuses tasks until they are filled in.
function inheritCpuset(dir: string): void {
  for (const f of ["cpuset.cpus", "cpuset.mems"]) {
    const file = join(dir, f);
    if (!existsSync(file) || readFileSync(file, "utf8").trim() !== "") continue;
    inheritCpuset(dirname(dir));
    writeFileSync(file, readFileSync(join(dirname(dir), f), "utf8").trim() || "\n");
  }
}

export function joinCgroups(dirs: string[], pid: number): void {
  for (const d of dirs) {
    try {
      writeFileSync(join(d, "cgroup.procs"), String(pid));
    } catch (e: any) {
      throw new Error(`join cgroup ${d}: write cgroup.procs: ${e.code ?? e.message}`);
    }
  }
}

/** Pids in the container's cgroup (from the first hierarchy that can list them). */
export function cgroupPids(dirs: string[]): number[] {
  const prefer = dirs.find((d) => d.includes("/pids/")) ?? dirs.find((d) => d.includes("/unified/")) ?? dirs[0];
  for (const d of prefer ? [prefer, ...dirs] : dirs) {
    try {
      return readFileSync(join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
    } catch {}
  }
  return [];
}

export function signalAll(dirs: string[], sig: number): void {
  for (const pid of cgroupPids(dirs)) kill(pid, sig);
}

/** Removes the cgroup dirs, waiting briefly for exiting tasks to leave (rmdir says EBUSY until then). */
export async function removeCgroups(dirs: string[]): Promise<void> {
  for (const d of dirs) {
    for (let i = 0; ; i++) {
      try {
        rmdirSync(d);
        break;
      } catch (e: any) {
        if (e.code === "ENOENT") break;
        if (e.code !== "EBUSY" || i > 100) throw new Error(`remove cgroup ${d}: ${e.code ?? e.message}`);
        await Bun.sleep(10);
      }
    }
  }
}
