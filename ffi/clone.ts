// clone(2) of a child that enters a user namespace and then execs our binary.
//
// unshare(CLONE_NEWUSER) and setns() into a user namespace refuse a multi-threaded caller, and a
// Bun process always is one. clone() with CLONE_NEWUSER has no such limit: the child is a new
// process with one thread. But no JavaScript may run in a cloned child, so the child's few steps
// (join or wait for the user namespace's maps, become root in it, place fds, execve) are C,
// compiled at run time by the TinyCC that bun:ffi carries. The child makes raw syscalls only:
// glibc's set*id wrappers would try to signal the parent's threads, which the child doesn't have.
import { cc, ptr } from "bun:ffi";
import { SyscallError } from "./errno";
import { O } from "./consts";
import * as libc from "./libc";
import { SYSCALLS_AARCH64, SYSCALLS_X86_64 } from "./syscalls";

const SOURCE = `
long syscall(long n, ...);
int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...);
void *malloc(unsigned long n);
int *__errno_location(void);

/* r[0] path, r[1] argv, r[2] envp, r[3] fds (int[]), r[4] nfds, r[5] userns fd or -1,
   r[6] sync fd or -1, r[7] error fd, r[8] become root in the user namespace */
static int moved[1024];

static void fail(long *r, int step) {
  int rec[2];
  rec[0] = step;
  rec[1] = *__errno_location();
  syscall(SYS_write, (int)r[7], rec, 8);
  syscall(SYS_exit_group, 127);
}

static int child(void *p) {
  long *r = p;
  int *fds = (int *)r[3];
  int n = (int)r[4], i;
  char c;
  if ((int)r[5] >= 0 && syscall(SYS_setns, (int)r[5], 0x10000000) < 0) fail(r, 1);
  if ((int)r[6] >= 0 && syscall(SYS_read, (int)r[6], &c, 1) != 1) fail(r, 2);
  if (r[8]) {
    if (syscall(SYS_setresgid, 0, 0, 0) < 0) fail(r, 3);
    if (syscall(SYS_setresuid, 0, 0, 0) < 0) fail(r, 4);
  }
  /* Out of the way first, so that placing one fd can't clobber another not yet placed. */
  for (i = 0; i < n; i++) {
    moved[i] = (int)syscall(SYS_fcntl, fds[i], 1030 /* F_DUPFD_CLOEXEC */, 3 + n);
    if (moved[i] < 0) fail(r, 5);
  }
  for (i = 0; i < n; i++) if (syscall(SYS_dup3, moved[i], 3 + i, 0) < 0) fail(r, 6);
  syscall(SYS_execve, (char *)r[0], (char **)r[1], (char **)r[2]);
  fail(r, 7);
  return 0;
}

/* Entering another pid namespace and back happens here, in C: while this thread's children go to
   another pid namespace, the kernel refuses it new threads, and the VM may want one at any time. */
int bunker_clone(long *r, int flags, int pidns_fd, int own_pidns_fd) {
  char *stack = malloc(256 * 1024);
  int pid, e;
  if (!stack) return -1;
  if (pidns_fd >= 0 && syscall(SYS_setns, pidns_fd, 0x20000000) < 0) return -2;
  pid = clone(child, stack + 256 * 1024, flags | 17 /* SIGCHLD */, r);
  e = *__errno_location();
  if (pidns_fd >= 0 && syscall(SYS_setns, own_pidns_fd, 0x20000000) < 0) {
    /* Can't happen short of a kernel change; this thread could never start a thread again. */
    syscall(SYS_exit_group, 125);
  }
  *__errno_location() = e;
  return pid;
}
`;

const STEPS = ["", "setns(CLONE_NEWUSER)", "read(sync pipe)", "setresgid(0)", "setresuid(0)", "fcntl(F_DUPFD_CLOEXEC)", "dup3", "execve"];

type CloneFn = (req: Uint8Array, flags: number, pidnsFd: number, ownPidnsFd: number) => number;
let compiled: CloneFn | undefined;

/**
 * Compiles the child's code. Call it before giving a thread its own fs_struct (unshare(CLONE_FS)
 * or CLONE_NEWNS): the compile may start a thread, which would share that fs_struct and make a
 * later setns() back into a mount namespace fail with EINVAL.
 */
export function prepareClone(): void {
  compile();
}

function compile(): CloneFn {
  if (compiled) return compiled;
  const table = process.arch === "arm64" ? SYSCALLS_AARCH64 : process.arch === "x64" ? SYSCALLS_X86_64 : undefined;
  if (!table) throw new Error(`user namespaces: unsupported architecture ${process.arch}`);
  const src = SOURCE.replace(/\bSYS_(\w+)/g, (_, name: string) => {
    const n = table[name];
    if (n === undefined) throw new Error(`user namespaces: no syscall number for ${name} on ${process.arch}`);
    return String(n);
  });
  // TinyCC reads its source from a path; a memfd keeps it off the disk (and works in a compiled
  // binary, whose embedded files tcc can't open).
  const fd = libc.memfdCreate("bunker-clone.c");
  try {
    libc.writeFd(fd, src);
    const lib = cc({ source: `/proc/self/fd/${fd}`, symbols: { bunker_clone: { args: ["ptr", "i32", "i32", "i32"], returns: "i32" } } });
    compiled = lib.symbols.bunker_clone as unknown as CloneFn;
    return compiled;
  } finally {
    libc.close(fd);
  }
}

export interface CloneExec {
  path: string;
  argv: string[];
  env: string[];
  /** The child's fds 3, 4, ... (stdio is inherited as it is). */
  fds: number[];
  /** CLONE_NEW* flags for clone(2). */
  flags: number;
  /** Join this user namespace (an open fd) before anything else. */
  usernsFd?: number;
  /** Clone into this pid namespace (an open fd). */
  pidnsFd?: number;
  /** Called with the child's pid while it waits (e.g. to write its uid_map/gid_map). */
  beforeRelease?: (pid: number) => void;
  /** setresgid/setresuid(0) once in the user namespace, so execve keeps its capabilities there. */
  becomeRoot: boolean;
}

/**
 * Clones and execs; returns the child's pid once execve succeeded. A failure of any step in the
 * child comes back as a SyscallError naming the step and errno.
 */
export function cloneExec(o: CloneExec): number {
  const fn = compile();
  if (o.fds.length > 1024) throw new Error(`clone: too many fds to pass (${o.fds.length})`);
  const keep = [o.path, ...o.argv, ...o.env].map(libc.cstr);
  const vec = (from: number, n: number) => {
    const a = new BigUint64Array(n + 1);
    for (let i = 0; i < n; i++) a[i] = BigInt(ptr(keep[from + i]!));
    return a;
  };
  const argv = vec(1, o.argv.length), envp = vec(1 + o.argv.length, o.env.length);
  const fds = new Int32Array(Math.max(1, o.fds.length));
  fds.set(o.fds);
  const [syncRd, syncWr] = libc.pipe2(O.CLOEXEC);
  const [errRd, errWr] = libc.pipe2(O.CLOEXEC);
  const req = new BigInt64Array([
    BigInt(ptr(keep[0]!)), BigInt(ptr(argv)), BigInt(ptr(envp)), BigInt(ptr(fds)), BigInt(o.fds.length),
    BigInt(o.usernsFd ?? -1), BigInt(syncRd), BigInt(errWr), o.becomeRoot ? 1n : 0n,
  ]);
  let pid: number;
  const ownPidns = o.pidnsFd !== undefined ? libc.open("/proc/self/ns/pid", O.RDONLY) : -1;
  try {
    pid = fn(new Uint8Array(req.buffer), o.flags, o.pidnsFd ?? -1, ownPidns);
  } finally {
    if (ownPidns >= 0) libc.close(ownPidns);
    // The child holds its own copies.
    libc.close(errWr);
    libc.close(syncRd);
  }
  try {
    if (pid === -2) throw new SyscallError("setns", ["pid namespace"], libc.errno());
    if (pid < 0) throw new SyscallError("clone", [], libc.errno());
    try {
      o.beforeRelease?.(pid);
    } catch (e) {
      libc.kill(pid, 9);
      libc.waitpid(pid, 0);
      throw e;
    }
    libc.writeFd(syncWr, "1");
    // EOF: the pipe closed at a successful execve. A record: the step that failed.
    const rec = new Int32Array(2);
    const n = libc.readFd(errRd, new Uint8Array(rec.buffer));
    if (n === 8) {
      libc.waitpid(pid, 0);
      throw new SyscallError(STEPS[rec[0]!] ?? "clone child", rec[0] === 7 ? [o.path] : [], rec[1]!);
    }
    void keep;
    return pid;
  } finally {
    libc.close(syncWr);
    libc.close(errRd);
  }
}
