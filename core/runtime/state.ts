// Container state under --root: one directory per container holding state.json (written to a temp
// file, fsynced and renamed, so a crash leaves either the old or the new state), the exec fifo that
// holds a created container before `start`, and a lock file that serialises commands per container.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { flock, LOCK_EX, LOCK_UN } from "../../ffi/libc";
import type { Resources, Spec, Status } from "../oci/types";
import { processStartTime, processState } from "./proc";

export const OCI_VERSION = "1.0.2-dev";

export interface ContainerState {
  id: string;
  /** Host pid of the container's init process. */
  pid: number;
  /** Start time (clock ticks since boot, /proc/<pid>/stat field 22): guards against pid reuse. */
  pidStart: number;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
  /** The validated config, kept for delete (poststop hooks, cgroups) after the bundle may be gone. */
  config: Spec;
  /** Absolute cgroup directories the container was placed in (one per v1 hierarchy, or the v2 one). */
  cgroupPaths: string[];
  /** Limits that can only be applied once the program has replaced our init (see create). */
  deferred?: Resources;
  /** The init stays our process (dockerd's --init on glibc-less images): nothing to wait for. */
  initStays?: boolean;
}

export class NotExistError extends Error {
  constructor() {
    super("container does not exist");
  }
}

export const ID_RE = /^[\w+\-.]+$/;

export function validateId(id: string): void {
  if (!id) throw new Error("container id cannot be empty");
  if (!ID_RE.test(id) || id === "." || id === "..") throw new Error("invalid container ID format");
}

export class StateDir {
  constructor(readonly root: string) {}

  dir(id: string): string {
    return join(this.root, id);
  }
  fifo(id: string): string {
    return join(this.dir(id), "exec.fifo");
  }

  /** Claims the id: fails if a container with that id already exists. */
  claim(id: string): void {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    validateId(id);
    try {
      mkdirSync(this.dir(id), { mode: 0o711 });
    } catch (e: any) {
      if (e.code === "EEXIST") throw new Error("container with given ID already exists");
      throw e;
    }
  }

  save(st: ContainerState): void {
    const dir = this.dir(st.id);
    const tmp = join(dir, `.state.json.${process.pid}`);
    // Readers see the old or the new file, never a torn one. No fsync: the state lives on tmpfs
    // (/run/runc) in normal use, and it describes processes that a reboot ends anyway.
    writeFileSync(tmp, JSON.stringify(st), { mode: 0o600 });
    renameSync(tmp, join(dir, "state.json"));
  }

  load(id: string): ContainerState {
    validateId(id);
    let text: string;
    try {
      text = readFileSync(join(this.dir(id), "state.json"), "utf8");
    } catch (e: any) {
      if (e.code === "ENOENT" || e.code === "ENOTDIR") throw new NotExistError();
      throw e;
    }
    return JSON.parse(text) as ContainerState;
  }

  list(): string[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root).filter((n) => ID_RE.test(n) && existsSync(join(this.root, n, "state.json"))).sort();
  }

  remove(id: string): void {
    rmSync(this.dir(id), { recursive: true, force: true });
  }

  /** Runs fn holding the container's lock; two commands on one container never interleave. */
  async withLock<T>(id: string, fn: () => T | Promise<T>): Promise<T> {
    validateId(id);
    let fd: number;
    try {
      fd = openSync(join(this.dir(id), ".lock"), "a", 0o600);
    } catch (e: any) {
      if (e.code === "ENOENT") throw new NotExistError();
      throw e;
    }
    try {
      flock(fd, LOCK_EX);
      return await fn();
    } finally {
      try {
        flock(fd, LOCK_UN);
      } catch {}
      closeSync(fd);
    }
  }

  status(st: ContainerState): Status {
    const live = processState(st.pid);
    if (!live || live === "Z" || live === "X" || processStartTime(st.pid) !== st.pidStart) return "stopped";
    if (existsSync(this.fifo(st.id))) return "created";
    if (isFrozen(st.cgroupPaths)) return "paused";
    return "running";
  }
}

function isFrozen(paths: string[]): boolean {
  for (const p of paths) {
    try {
      if (p.includes("/freezer/")) return readFileSync(join(p, "freezer.state"), "utf8").trim() === "FROZEN";
      if (existsSync(join(p, "cgroup.freeze")) && !p.includes("/sys/fs/cgroup/unified/")) return readFileSync(join(p, "cgroup.freeze"), "utf8").trim() === "1";
    } catch {}
  }
  return false;
}

/** RFC 3339 with nanoseconds, as Go prints time.Time in runc's state. */
export function nowNano(): string {
  const ms = Date.now();
  const ns = (BigInt(ms % 1000) * 1000000n + (process.hrtime.bigint() % 1000000n)).toString().padStart(9, "0");
  return new Date(ms).toISOString().replace(/\.\d+Z$/, `.${ns}Z`);
}

export function ownerOf(path: string): string {
  try {
    const uid = statSync(path).uid;
    const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.split(":")[2] === String(uid));
    return line ? line.split(":")[0]! : "#" + uid;
  } catch {
    return "";
  }
}
