// posix_spawn(3) through libc. The child side is glibc's own code from clone() to execve(), so no
// JavaScript ever runs in it, and it gives what Bun.spawn can't: a new process group, the terminal's
// foreground group, default signal dispositions. The child is unknown to Bun, so we reap it ourselves.
import { ptr, type FFIFunction } from "bun:ffi";
import { SyscallError } from "./errno";
import { cstr, lazyLibc } from "./libc";

const DEFS = {
  posix_spawnp: { args: ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr"], returns: "i32" },
  posix_spawn: { args: ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr"], returns: "i32" },
  posix_spawnattr_init: { args: ["ptr"], returns: "i32" },
  posix_spawnattr_destroy: { args: ["ptr"], returns: "i32" },
  posix_spawnattr_setflags: { args: ["ptr", "i16"], returns: "i32" },
  posix_spawnattr_setpgroup: { args: ["ptr", "i32"], returns: "i32" },
  posix_spawnattr_setsigmask: { args: ["ptr", "ptr"], returns: "i32" },
  posix_spawnattr_setsigdefault: { args: ["ptr", "ptr"], returns: "i32" },
  posix_spawn_file_actions_init: { args: ["ptr"], returns: "i32" },
  posix_spawn_file_actions_destroy: { args: ["ptr"], returns: "i32" },
  posix_spawn_file_actions_addtcsetpgrp_np: { args: ["ptr", "i32"], returns: "i32" },
} satisfies Record<string, FFIFunction>;
const S = lazyLibc(DEFS);

const SETPGROUP = 0x02, SETSIGDEF = 0x04, SETSIGMASK = 0x08;

export interface SpawnOptions {
  /** Search PATH (of this process) like execvp; otherwise `file` is a path. */
  usePath: boolean;
  /** Put the child in a process group of its own (tini's isolate_child). */
  newProcessGroup: boolean;
  /** Make that group the foreground of the terminal on this fd. */
  foregroundOf?: number;
  /** Signals (bit n-1 for signal n) left ignored in the child; every other one gets its default. */
  keepIgnored?: bigint;
  /** The child's signal mask (bit n-1 for signal n); none blocked by default. */
  mask?: bigint;
}

function sigset(bits: bigint): Uint8Array {
  const set = new Uint8Array(128);
  new DataView(set.buffer).setBigUint64(0, bits, true);
  return set;
}

/** Returns the child's pid; throws SyscallError("exec <file>") with the exec's errno on failure. */
export function posixSpawn(file: string, argv: string[], env: string[], o: SpawnOptions): number {
  // Opaque glibc structs, sized generously (336 and 80 bytes on x86_64/aarch64).
  const attr = new Uint8Array(512), actions = new Uint8Array(256);
  S.posix_spawnattr_init(attr);
  S.posix_spawn_file_actions_init(actions);
  try {
    // Signals back to their defaults, including the two glibc keeps for itself (32, 33) that
    // sigfillset leaves out, except those the caller wants left ignored.
    let flags = SETSIGDEF | SETSIGMASK;
    S.posix_spawnattr_setsigdefault(attr, sigset(~(o.keepIgnored ?? 0n) & 0xffffffffffffffffn));
    S.posix_spawnattr_setsigmask(attr, sigset(o.mask ?? 0n));
    if (o.newProcessGroup) {
      flags |= SETPGROUP;
      S.posix_spawnattr_setpgroup(attr, 0);
    }
    S.posix_spawnattr_setflags(attr, flags);
    if (o.foregroundOf !== undefined) S.posix_spawn_file_actions_addtcsetpgrp_np(actions, o.foregroundOf);
    const keep = [...argv, ...env].map(cstr);
    const vec = (from: number, n: number) => {
      const a = new BigUint64Array(n + 1);
      for (let i = 0; i < n; i++) a[i] = BigInt(ptr(keep[from + i]!));
      return a;
    };
    const pid = new Int32Array(1);
    const spawn = o.usePath ? S.posix_spawnp : S.posix_spawn;
    const rc = spawn(pid, cstr(file), actions, attr, vec(0, argv.length), vec(argv.length, env.length));
    void keep;
    if (rc !== 0) throw new SyscallError("exec", [file], rc);
    return pid[0]!;
  } finally {
    S.posix_spawn_file_actions_destroy(actions);
    S.posix_spawnattr_destroy(attr);
  }
}
