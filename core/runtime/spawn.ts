// Spawning `runc init` (for create and exec): in the pid namespace it must live in, and from a
// read-only view of our own binary.
//
// CVE-2019-5736: a container process that can see the init (it runs inside the container's pid
// namespace) could open /proc/<pid>/exe and, once init is gone, reopen it for writing and replace
// the runtime binary on the host. runc copies itself into a sealed memfd for every start; we instead
// give the spawning thread a throwaway mount namespace in which our binary is bind-mounted read-only
// over itself, spawn from there and return to the host namespace. The init's exe then lives on a
// read-only mount (EROFS for any writer) that nothing on the host ever sees.
import { CLONE, MS, O } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { selfCommand } from "./self";

export interface SpawnInit {
  /** New pid namespace, or the path of one to join; none: stay in ours. */
  pidNs?: { path?: string };
  /** fds the init must hold at 3, 4, ...: preserved fds first, the channel last. */
  fds: number[];
  stdio: [number | "inherit" | "ignore", number | "inherit" | "ignore", number | "inherit" | "ignore"];
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

export function spawnInit(o: SpawnInit): Bun.Subprocess {
  const savedMnt = libc.open("/proc/self/ns/mnt", O.RDONLY);
  try {
    // Only once this thread has its own mount namespace (and fs_struct) can it setns() back.
    libc.unshare(CLONE.NEWNS);
  } catch (e) {
    libc.close(savedMnt);
    throw e;
  }
  try {
    return withNs("/proc/self/ns/pid", CLONE.NEWPID, () => {
      protectedExe();
      if (o.pidNs?.path) {
        const fd = libc.open(o.pidNs.path, O.RDONLY);
        try {
          libc.setns(fd, CLONE.NEWPID, o.pidNs.path);
        } finally {
          libc.close(fd);
        }
      } else if (o.pidNs) libc.unshare(CLONE.NEWPID);
      const self = selfCommand("runc", o.args ?? ["init"]);
      const cmd = self.cmd, argv0 = o.argv0 ?? self.argv0;
      return Bun.spawn(cmd, {
        argv0,
        stdio: [...o.stdio, ...o.fds],
        env: {
          ...(process.env.BUNKER_TIMINGS ? { BUNKER_TIMINGS: process.env.BUNKER_TIMINGS } : {}),
          _BUNKER_INIT_CHANNEL: String(3 + o.fds.length - 1),
        },
      });
    });
  } finally {
    libc.setns(savedMnt, CLONE.NEWNS, "/proc/self/ns/mnt");
    libc.close(savedMnt);
  }
}
