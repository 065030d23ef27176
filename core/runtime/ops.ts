// The runc verbs on an existing container: start, kill, delete, state, list, ps.
import { existsSync, readlinkSync, unlinkSync } from "node:fs";
import { O } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import type { State, Status } from "../oci/types";
import { cgroupPids, removeCgroups, setFrozen, signalAll } from "./cgroups/manager";
import { applyResources } from "./cgroups/resources";
import { runHooks } from "./hooks";
import { OCI_VERSION, StateDir, type ContainerState } from "./state";
import { mark } from "./timings";

const POLLIN = 1;

export function hookState(st: ContainerState, status: Status): State {
  return { ociVersion: OCI_VERSION, id: st.id, status, pid: status === "stopped" ? undefined : st.pid, bundle: st.bundle, annotations: st.annotations };
}

export async function start(sd: StateDir, id: string): Promise<void> {
  await sd.withLock(id, async () => {
    const st = sd.load(id);
    const status = sd.status(st);
    if (status === "stopped") throw new Error("cannot start a container that has stopped");
    if (status !== "created") throw new Error(`cannot start an already ${status} container`);
    const initExe = exeOf(st.pid);
    releaseFifo(sd, st);
    mark("started");
    if (st.deferred) await applyDeferred(sd, st, initExe);
    try {
      runHooks(st.config, "poststart", hookState(st, "running"), st.bundle);
    } catch (e) {
      // runc tears the container down when a poststart hook fails.
      libc.kill(st.pid, 9);
      throw e;
    }
  });
}

function exeOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

/** Applies the limits create held back, once the user's program has replaced our init. */
async function applyDeferred(sd: StateDir, st: ContainerState, initExe: string): Promise<void> {
  for (let i = 0; i < 400 && !st.initStays && exeOf(st.pid) === initExe && sd.status(st) !== "stopped"; i++) await Bun.sleep(5);
  applyResources(st.cgroupPaths, st.deferred!);
  sd.save({ ...st, deferred: undefined });
}

/** Opens the exec fifo for reading and takes init's byte: init then execs the user program. */
function releaseFifo(sd: StateDir, st: ContainerState): void {
  const path = sd.fifo(st.id);
  const fd = libc.open(path, O.RDONLY | O.NONBLOCK);
  try {
    const buf = new Uint8Array(1);
    for (;;) {
      if (libc.pollOne(fd, POLLIN, 50) & POLLIN) {
        if (libc.readFd(fd, buf) === 1) break;
      }
      if (sd.status(st) === "stopped") throw new Error("container process is already dead");
    }
  } finally {
    libc.close(fd);
  }
  unlinkSync(path);
}

export async function kill(sd: StateDir, id: string, sig: number, all: boolean): Promise<void> {
  const st = sd.load(id);
  await sd.withLock(id, () => {
    // --all signals whatever is left in the cgroup even after init died: containerd's forced
    // delete sends `kill --all ID 9` to a stopped container and expects success.
    if (all) return signalAll(st.cgroupPaths, sig);
    if (sd.status(st) === "stopped") throw new Error("container not running");
    libc.kill(st.pid, sig);
  });
}

function hasPrivatePidNs(st: ContainerState): boolean {
  return (st.config.linux?.namespaces ?? []).some((n) => n.type === "pid" && !n.path);
}

/** Waits until pid is gone (pidfd becomes readable), up to timeoutMs. */
async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  let fd: number;
  try {
    fd = libc.pidfdOpen(pid);
  } catch {
    return true;
  }
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (libc.pollOne(fd, POLLIN, 10) & POLLIN) return true;
      await Bun.sleep(0);
    }
    return false;
  } finally {
    libc.close(fd);
  }
}

/** Kills what is left, removes the cgroup and state; poststop hook failures are only warned about. */
export async function destroy(sd: StateDir, st: ContainerState, warn: (m: string) => void = () => {}): Promise<void> {
  // A frozen task can't die; thaw first so SIGKILL is delivered.
  if (sd.status(st) === "paused") await setFrozen(st.cgroupPaths, false);
  if (hasPrivatePidNs(st)) {
    libc.kill(st.pid, 9);
  } else {
    signalAll(st.cgroupPaths, 9);
    libc.kill(st.pid, 9);
  }
  await waitGone(st.pid, 10000);
  // Processes outside the pid namespace's init (host pid ns) may still be leaving the cgroup.
  for (let i = 0; i < 100 && cgroupPids(st.cgroupPaths).length; i++) {
    signalAll(st.cgroupPaths, 9);
    await Bun.sleep(10);
  }
  await removeCgroups(st.cgroupPaths);
  sd.remove(st.id);
  try {
    runHooks(st.config, "poststop", hookState(st, "stopped"), st.bundle);
  } catch (e: any) {
    warn(e?.message ?? String(e));
  }
}

export async function remove(sd: StateDir, id: string, force: boolean, warn?: (m: string) => void): Promise<void> {
  let st: ContainerState;
  try {
    st = sd.load(id);
  } catch (e: any) {
    // An aborted create can leave a directory without state.json; clear it either way.
    if (e?.message === "container does not exist" && existsSync(sd.dir(id))) sd.remove(id);
    if (force && e?.message === "container does not exist") return;
    throw e;
  }
  await sd.withLock(id, async () => {
    const status = sd.status(st);
    if ((status === "running" || status === "paused") && !force) {
      throw new Error(`cannot delete container ${id} that is not stopped: ${status}`);
    }
    await destroy(sd, st, warn);
  });
}

export interface ListEntry {
  ociVersion: string;
  id: string;
  pid: number;
  status: Status;
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
  owner: string;
}

export function describe(sd: StateDir, st: ContainerState): ListEntry {
  const status = sd.status(st);
  const e: ListEntry = { ociVersion: OCI_VERSION, id: st.id, pid: status === "stopped" ? 0 : st.pid, status, bundle: st.bundle, rootfs: st.rootfs, created: st.created, owner: st.owner };
  if (st.annotations && Object.keys(st.annotations).length) {
    // Keep Go's field order: annotations sit between created and owner.
    return { ociVersion: e.ociVersion, id: e.id, pid: e.pid, status: e.status, bundle: e.bundle, rootfs: e.rootfs, created: e.created, annotations: st.annotations, owner: e.owner };
  }
  return e;
}

export function list(sd: StateDir): ListEntry[] {
  const out: ListEntry[] = [];
  for (const id of sd.list()) {
    try {
      out.push(describe(sd, sd.load(id)));
    } catch {
      // A container being deleted right now: skip it rather than fail the whole listing.
    }
  }
  return out;
}

export function pids(sd: StateDir, id: string): number[] {
  const st = sd.load(id);
  // runc lists a stopped container's (empty) cgroup rather than failing.
  return sd.status(st) === "stopped" ? [] : cgroupPids(st.cgroupPaths);
}

export async function pause(sd: StateDir, id: string, frozen: boolean): Promise<void> {
  const st = sd.load(id);
  await sd.withLock(id, async () => {
    const status = sd.status(st);
    if (frozen && status !== "running" && status !== "created") throw new Error("container not running");
    if (!frozen && status !== "paused") throw new Error("container not paused");
    await setFrozen(st.cgroupPaths, frozen);
  });
}
