// A container's cgroup: created in every hierarchy, joined by the init process, listed for `ps` and
// `kill --all`, removed on delete.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, posix } from "node:path";
import { kill } from "../../../ffi/libc";
import { hierarchies, isPureV2, ownCgroups, type Hierarchy } from "./layout";

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
  const v2 = isPureV2() ? hierarchies()[0] : undefined;
  for (const d of dirs) {
    if (v2 && d.startsWith(v2.mount)) createV2(v2.mount, d);
    else mkdirSync(d, { recursive: true });
    if (d.includes("/cpuset/")) inheritCpuset(d);
  }
}

/**
 * Pure cgroup v2: controllers work in a cgroup only when every ancestor lists them in
 * cgroup.subtree_control. Like runc's fs2 driver, enable all the root's controllers on the way down
 * (best effort: one by one when the batch is refused; a missing one fails later, naming its file).
 */
function createV2(mount: string, dir: string): void {
  let ctrls: string[] = [];
  try {
    ctrls = readFileSync(join(mount, "cgroup.controllers"), "utf8").trim().split(/\s+/).filter(Boolean);
  } catch {}
  const parts = dir.slice(mount.length).split("/").filter(Boolean);
  let cur = mount;
  for (let i = 0; i < parts.length; i++) {
    if (ctrls.length) {
      const ctl = join(cur, "cgroup.subtree_control");
      try {
        writeFileSync(ctl, ctrls.map((c) => "+" + c).join(" "));
      } catch {
        for (const c of ctrls) {
          try {
            writeFileSync(ctl, "+" + c);
          } catch {}
        }
      }
    }
    cur = join(cur, parts[i]!);
    try {
      mkdirSync(cur);
    } catch (e: any) {
      if (e.code !== "EEXIST") throw e;
    }
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

/** Freezes or thaws every task (v1 freezer, or v2 cgroup.freeze when there is no v1 freezer). */
export async function setFrozen(dirs: string[], frozen: boolean): Promise<void> {
  const v1 = dirs.find((d) => d.includes("/freezer/"));
  if (v1) {
    const want = frozen ? "FROZEN" : "THAWED";
    for (let i = 0; i < 1000; i++) {
      writeFileSync(join(v1, "freezer.state"), want);
      if (readFileSync(join(v1, "freezer.state"), "utf8").trim() === want) return;
      await Bun.sleep(1);
    }
    throw new Error(`freezer ${v1}: did not reach ${want}`);
  }
  const v2 = dirs.find((d) => existsSync(join(d, "cgroup.freeze")));
  if (!v2) throw new Error("no freezer cgroup for this container");
  writeFileSync(join(v2, "cgroup.freeze"), frozen ? "1" : "0");
  for (let i = 0; i < 1000; i++) {
    if (readFileSync(join(v2, "cgroup.events"), "utf8").includes(`frozen ${frozen ? 1 : 0}`)) return;
    await Bun.sleep(1);
  }
  throw new Error(`${v2}: cgroup.freeze did not take effect`);
}

/**
 * Moving a task between cgroups takes the kernel's global cgroup_threadgroup_rwsem for writing, and
 * the first writer after a quiet spell waits a whole RCU grace period (10+ ms here). A no-op move of
 * ourselves into the cgroup we are already in, started on Bun's thread pool as soon as `create`
 * begins, pays that wait in the background; the container's real join then finds the lock warm.
 */
export function prewarmAttach(): Promise<void> {
  try {
    const [h] = hierarchies();
    if (!h) return Promise.resolve();
    const own = ownCgroups().get(h.version === 2 ? "" : h.controllers.join(",")) ?? "/";
    const path = join(h.mount, stripRoot(h, own), "cgroup.procs");
    return writeFile(path, String(process.pid)).catch(() => {});
  } catch {
    return Promise.resolve();
  }
}
