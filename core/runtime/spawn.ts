// Spawning `runc init` (for create and exec): in the pid namespace it must live in, and from a
// read-only view of our own binary.
//
// CVE-2019-5736: a container process that can see the init (it runs inside the container's pid
// namespace) could open /proc/<pid>/exe and, once init is gone, reopen it for writing and replace
// the runtime binary on the host. runc copies itself into a sealed memfd for every start; we instead
// give the spawning thread a throwaway mount namespace in which our binary is bind-mounted read-only
// over itself, spawn from there and return to the host namespace. The init's exe then lives on a
// read-only mount (EROFS for any writer) that nothing on the host ever sees.
import { CLONE, MS, O, SIGNALS } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { cloneExec, prepareClone } from "../../ffi/clone";
import type { IdMapping } from "../oci/types";
import { selfCommand } from "./self";

/** What create/exec need of the init process, whether Bun spawned it or we cloned it. */
export interface InitProcess {
  readonly pid: number;
  readonly exited: Promise<number>;
  readonly signalCode: string | number | null;
  ref(): void;
  unref(): void;
}

export interface SpawnInit {
  /** New pid namespace, or the path of one to join; none: stay in ours. */
  pidNs?: { path?: string };
  /** fds the init must hold at 3, 4, ...: preserved fds first, the channel last. */
  fds: number[];
  stdio: [number | "inherit" | "ignore", number | "inherit" | "ignore", number | "inherit" | "ignore"];
  /** A new user namespace with these maps, or the path of one to join. */
  userNs?: { path?: string; uidMappings?: IdMapping[]; gidMappings?: IdMapping[] };
  /** What ps shows (argv); by default "runc init". */
  argv0?: string;
  args?: string[];
}

function withNs<T>(path: string, flag: number, fn: () => T): T {
  const saved = libc.open(path, O.RDONLY);
  try {
    return fn();
  } finally {
    libc.setns(saved, flag, path);
    libc.close(saved);
  }
}

function protectedExe(): void {
  // Nothing done here may reach the host: cut propagation before mounting.
  libc.mount(null, "/", null, MS.SLAVE | MS.REC);
  const exe = process.execPath;
  libc.mount(exe, exe, "bind", MS.BIND);
  libc.mount(exe, exe, null, MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV);
}

export function spawnInit(o: SpawnInit): InitProcess {
  if (o.userNs) prepareClone();
  const savedMnt = libc.open("/proc/self/ns/mnt", O.RDONLY);
  try {
    // Only once this thread has its own mount namespace (and fs_struct) can it setns() back.
    libc.unshare(CLONE.NEWNS);
  } catch (e) {
    libc.close(savedMnt);
    throw e;
  }
  try {
    protectedExe();
    const self = selfCommand("runc", o.args ?? ["init"]);
    const cmd = self.cmd, argv0 = o.argv0 ?? self.argv0;
    const env = {
      ...(process.env.BUNKER_TIMINGS ? { BUNKER_TIMINGS: process.env.BUNKER_TIMINGS } : {}),
      _BUNKER_INIT_CHANNEL: String(3 + o.fds.length - 1),
    };
    if (o.userNs) return cloneInit(o, cmd, argv0, env);
    // While this thread's children go to another pid namespace it can't start threads (the kernel
    // refuses CLONE_THREAD then), so nothing but the spawn happens in between.
    return withNs("/proc/self/ns/pid", CLONE.NEWPID, () => {
      if (o.pidNs?.path) {
        const fd = libc.open(o.pidNs.path, O.RDONLY);
        try {
          libc.setns(fd, CLONE.NEWPID, o.pidNs.path);
        } finally {
          libc.close(fd);
        }
      } else if (o.pidNs) libc.unshare(CLONE.NEWPID);
      return Bun.spawn(cmd, { argv0, stdio: [...o.stdio, ...o.fds], env });
    });
  } finally {
    // A thread the VM started meanwhile (a GC helper, say) shares this thread's fs_struct, and
    // setns() into a mount namespace refuses a shared one: take a private copy first.
    libc.unshare(CLONE.FS);
    libc.setns(savedMnt, CLONE.NEWNS, "/proc/self/ns/mnt");
    libc.close(savedMnt);
  }
}

/**
 * The init of a container with a user namespace. A new pid namespace must belong to the new user
 * namespace (or the container's root couldn't mount its /proc): clone() makes both at once, the
 * user namespace first. Joining a pid namespace happens inside the C clone call, for the reason
 * given in spawnInit.
 */
function cloneInit(o: SpawnInit, cmd: string[], argv0: string, env: Record<string, string>): InitProcess {
  if (o.stdio.some((s) => s !== "inherit")) throw new Error("spawnInit: a user namespace init inherits stdio");
  const u = o.userNs!;
  if (u.path && o.pidNs && !o.pidNs.path) {
    throw new Error("joining a user namespace by path with a new pid namespace is not supported: the pid namespace would belong to the host's user namespace");
  }
  const newPid = !u.path && !!o.pidNs && !o.pidNs.path;
  const fds: number[] = [];
  try {
    const usernsFd = u.path ? (fds.push(libc.open(u.path, O.RDONLY)), fds.at(-1)) : undefined;
    const pidnsFd = o.pidNs?.path ? (fds.push(libc.open(o.pidNs.path, O.RDONLY)), fds.at(-1)) : undefined;
    const pid = cloneExec({
      path: cmd[0]!, argv: [argv0, ...cmd.slice(1)], env: Object.entries(env).map(([k, v]) => `${k}=${v}`), fds: o.fds,
      flags: (u.path ? 0 : CLONE.NEWUSER) | (newPid ? CLONE.NEWPID : 0), usernsFd, pidnsFd, becomeRoot: true,
      beforeRelease: u.path ? undefined : (pid) => writeIdMaps(pid, u.uidMappings ?? [], u.gidMappings ?? []),
    });
    return new ClonedProcess(pid);
  } finally {
    for (const fd of fds) libc.close(fd);
  }
}

/** As runc does for a privileged caller: the maps written straight, setgroups left allowed. */
function writeIdMaps(pid: number, uid: IdMapping[], gid: IdMapping[]): void {
  const text = (m: IdMapping[]) => m.map((x) => `${x.containerID} ${x.hostID} ${x.size}\n`).join("");
  for (const [file, maps] of [["uid_map", uid], ["gid_map", gid]] as const) {
    const path = `/proc/${pid}/${file}`;
    const fd = libc.open(path, O.WRONLY);
    try {
      libc.writeFd(fd, text(maps));
    } catch (e: any) {
      throw new Error(`failed to write ${file} of the user namespace: ${e.message}`);
    } finally {
      libc.close(fd);
    }
  }
}

const WNOHANG = 1;

/** A child Bun doesn't know of: we reap it, polling, and keep the process alive only while ref'd. */
class ClonedProcess implements InitProcess {
  signalCode: string | null = null;
  readonly exited: Promise<number>;
  private timer: ReturnType<typeof setInterval>;
  constructor(readonly pid: number) {
    let resolve!: (code: number) => void;
    this.exited = new Promise((r) => (resolve = r));
    this.timer = setInterval(() => {
      const [p, status] = libc.waitpid(pid, WNOHANG);
      if (p !== pid) return;
      clearInterval(this.timer);
      const sig = status & 0x7f;
      if (sig) {
        this.signalCode = signalName(sig);
        resolve(128 + sig);
      } else resolve((status >> 8) & 0xff);
    }, 10);
  }
  ref(): void {
    this.timer.ref();
  }
  unref(): void {
    this.timer.unref();
  }
}

function signalName(n: number): string {
  return Object.entries(SIGNALS).find(([, v]) => v === n)?.[0] ?? `SIG${n}`;
}
