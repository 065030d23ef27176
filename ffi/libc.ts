// Typed bindings to the libc calls the runtime needs. Every wrapper throws SyscallError naming the
// call, the arguments that matter and errno's symbolic name: mount("proc", "/x/proc"): EPERM.
import { dlopen, ptr, read, type FFIFunction, type Pointer } from "bun:ffi";
import { SyscallError } from "./errno";
import { O, SCM_RIGHTS, SOL_SOCKET, syscallNumber } from "./consts";

const DEFS = {
  __errno_location: { args: [], returns: "ptr" },
  mount: { args: ["ptr", "ptr", "ptr", "u64", "ptr"], returns: "i32" },
  umount2: { args: ["ptr", "i32"], returns: "i32" },
  unshare: { args: ["i32"], returns: "i32" },
  setns: { args: ["i32", "i32"], returns: "i32" },
  syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64"], returns: "i64" },
  chdir: { args: ["ptr"], returns: "i32" },
  fchdir: { args: ["i32"], returns: "i32" },
  chroot: { args: ["ptr"], returns: "i32" },
  open: { args: ["ptr", "i32", "u32"], returns: "i32" },
  openat: { args: ["i32", "ptr", "i32", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i64" },
  write: { args: ["i32", "ptr", "u64"], returns: "i64" },
  sethostname: { args: ["ptr", "u64"], returns: "i32" },
  setdomainname: { args: ["ptr", "u64"], returns: "i32" },
  setresuid: { args: ["u32", "u32", "u32"], returns: "i32" },
  setresgid: { args: ["u32", "u32", "u32"], returns: "i32" },
  setgroups: { args: ["u64", "ptr"], returns: "i32" },
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
  prlimit: { args: ["i32", "i32", "ptr", "ptr"], returns: "i32" },
  execve: { args: ["ptr", "ptr", "ptr"], returns: "i32" },
  mknod: { args: ["ptr", "u32", "u64"], returns: "i32" },
  mkfifo: { args: ["ptr", "u32"], returns: "i32" },
  kill: { args: ["i32", "i32"], returns: "i32" },
  setsid: { args: [], returns: "i32" },
  getpid: { args: [], returns: "i32" },
  gettid: { args: [], returns: "i32" },
  ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
  socketpair: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  sendmsg: { args: ["i32", "ptr", "i32"], returns: "i64" },
  recvmsg: { args: ["i32", "ptr", "i32"], returns: "i64" },
  tcgetattr: { args: ["i32", "ptr"], returns: "i32" },
  tcsetattr: { args: ["i32", "i32", "ptr"], returns: "i32" },
  cfmakeraw: { args: ["ptr"], returns: "void" },
  isatty: { args: ["i32"], returns: "i32" },
  statvfs: { args: ["ptr", "ptr"], returns: "i32" },
  flock: { args: ["i32", "i32"], returns: "i32" },
  waitpid: { args: ["i32", "ptr", "i32"], returns: "i32" },
  dup2: { args: ["i32", "i32"], returns: "i32" },
  pipe2: { args: ["ptr", "i32"], returns: "i32" },
  memfd_create: { args: ["ptr", "u32"], returns: "i32" },
  umask: { args: ["u32"], returns: "u32" },
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  fchown: { args: ["i32", "u32", "u32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "u64"], returns: "i32" },
  getcwd: { args: ["ptr", "u64"], returns: "ptr" },
  mkdirat: { args: ["i32", "ptr", "u32"], returns: "i32" },
  mknodat: { args: ["i32", "ptr", "u32", "u64"], returns: "i32" },
  symlinkat: { args: ["ptr", "i32", "ptr"], returns: "i32" },
  linkat: { args: ["i32", "ptr", "i32", "ptr", "i32"], returns: "i32" },
  unlinkat: { args: ["i32", "ptr", "i32"], returns: "i32" },
  readlinkat: { args: ["i32", "ptr", "ptr", "u64"], returns: "i64" },
  fchownat: { args: ["i32", "ptr", "u32", "u32", "i32"], returns: "i32" },
  fchmod: { args: ["i32", "u32"], returns: "i32" },
  fchmodat: { args: ["i32", "ptr", "u32", "i32"], returns: "i32" },
  utimensat: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
  futimens: { args: ["i32", "ptr"], returns: "i32" },
  setxattr: { args: ["ptr", "ptr", "ptr", "u64", "i32"], returns: "i32" },
  lsetxattr: { args: ["ptr", "ptr", "ptr", "u64", "i32"], returns: "i32" },
  fsetxattr: { args: ["i32", "ptr", "ptr", "u64", "i32"], returns: "i32" },
  lgetxattr: { args: ["ptr", "ptr", "ptr", "u64"], returns: "i64" },
  llistxattr: { args: ["ptr", "ptr", "u64"], returns: "i64" },
  strsignal: { args: ["i32"], returns: "cstring" },
  strerror: { args: ["i32"], returns: "cstring" },
} satisfies Record<string, FFIFunction>;

/**
 * libc symbols bound on first use. Bun compiles a trampoline per symbol at dlopen time; binding
 * only what a short-lived process (runc create/start) really calls keeps its start-up cheap.
 */
export function lazyLibc<T extends Record<string, FFIFunction>>(defs: T): ReturnType<typeof dlopen<T>>["symbols"] {
  return new Proxy({} as ReturnType<typeof dlopen<T>>["symbols"], {
    get(cache: any, name: string) {
      return (cache[name] ??= dlopen("libc.so.6", { [name]: (defs as any)[name] }).symbols[name]);
    },
  });
}
const S = lazyLibc(DEFS);

export function errno(): number {
  return read.i32(S.__errno_location() as Pointer, 0);
}

/** NUL-terminated copy of a string, for char* arguments. */
export function cstr(s: string): Buffer {
  return Buffer.from(s + "\0");
}

function check(r: number | bigint, call: string, ...args: (string | number)[]): number {
  const n = Number(r);
  if (n < 0) throw new SyscallError(call, args, errno());
  return n;
}

/** Retry on EINTR: signals arrive while Bun's other threads run. */
function retry(fn: () => number | bigint, call: string, ...args: (string | number)[]): number {
  for (;;) {
    const n = Number(fn());
    if (n >= 0) return n;
    const e = errno();
    if (e !== 4) throw new SyscallError(call, args, e);
  }
}

const nullable = (s: string | null | undefined) => (s == null ? null : cstr(s));

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data?: string | null): void {
  check(S.mount(nullable(source), cstr(target), nullable(fstype), BigInt(flags), nullable(data ?? null)), "mount", source ?? "", target, ...(fstype ? [fstype] : []), flags);
}
export function umount2(target: string, flags: number): void {
  check(S.umount2(cstr(target), flags), "umount2", target);
}
export function unshare(flags: number): void {
  check(S.unshare(flags), "unshare", "0x" + flags.toString(16));
}
export function setns(fd: number, nstype: number, what = ""): void {
  check(S.setns(fd, nstype), "setns", what || fd, "0x" + nstype.toString(16));
}
function sys(name: string, ...a: number[]): number {
  const v = [...a, 0, 0, 0, 0, 0].slice(0, 5).map(BigInt);
  return Number(S.syscall(BigInt(syscallNumber(name)), v[0]!, v[1]!, v[2]!, v[3]!, v[4]!));
}
export function pivotRoot(newRoot: string, putOld: string): void {
  const a = cstr(newRoot), b = cstr(putOld);
  check(sys("pivot_root", Number(ptr(a)), Number(ptr(b))), "pivot_root", newRoot, putOld);
}
export function closeRange(first: number, last: number, flags: number): void {
  check(sys("close_range", first, last, flags), "close_range", first, flags);
}
export function pidfdOpen(pid: number): number {
  return check(sys("pidfd_open", pid, 0), "pidfd_open", pid);
}
export function chdir(path: string): void {
  check(S.chdir(cstr(path)), "chdir", path);
}
export function fchdir(fd: number): void {
  check(S.fchdir(fd), "fchdir", fd);
}
export function chroot(path: string): void {
  check(S.chroot(cstr(path)), "chroot", path);
}
export function open(path: string, flags: number, mode = 0): number {
  return retry(() => S.open(cstr(path), flags | O.CLOEXEC, mode), "open", path);
}
/** open(2) without the O_CLOEXEC we otherwise always add: for fds meant to survive execve. */
export function openInheritable(path: string, flags: number, mode = 0): number {
  return retry(() => S.open(cstr(path), flags, mode), "open", path);
}
export function openat(dirfd: number, path: string | Uint8Array, flags: number, mode = 0): number {
  return retry(() => S.openat(dirfd, cpath(path), flags | O.CLOEXEC, mode), "openat", shown(path));
}
export function close(fd: number): void {
  S.close(fd);
}
export function readFd(fd: number, buf: Uint8Array): number {
  return retry(() => S.read(fd, buf, BigInt(buf.byteLength)), "read", fd);
}
export function writeFd(fd: number, data: Uint8Array | string): number {
  const buf = typeof data === "string" ? Buffer.from(data) : data;
  let off = 0;
  while (off < buf.byteLength) {
    const chunk = buf.subarray(off);
    off += retry(() => S.write(fd, chunk, BigInt(chunk.byteLength)), "write", fd);
  }
  return off;
}
export function sethostname(name: string): void {
  const b = Buffer.from(name);
  check(S.sethostname(b, BigInt(b.byteLength)), "sethostname", name);
}
export function setdomainname(name: string): void {
  const b = Buffer.from(name);
  check(S.setdomainname(b, BigInt(b.byteLength)), "setdomainname", name);
}
export function setresuid(uid: number): void {
  check(S.setresuid(uid, uid, uid), "setresuid", uid);
}
export function setresgid(gid: number): void {
  check(S.setresgid(gid, gid, gid), "setresgid", gid);
}
export function setgroups(gids: number[]): void {
  const arr = new Uint32Array(Math.max(gids.length, 1));
  gids.forEach((g, i) => (arr[i] = g));
  check(S.setgroups(BigInt(gids.length), arr), "setgroups", gids.join(","));
}
export function prctl(option: number, a2: number | bigint = 0, a3: number | bigint = 0, a4 = 0, a5 = 0): number {
  return check(S.prctl(option, BigInt(a2), BigInt(a3), BigInt(a4), BigInt(a5)), "prctl", option, Number(a2));
}
export const RLIM_INFINITY = 0xffffffffffffffffn;
export function setrlimit(resource: number, soft: bigint, hard: bigint, name = String(resource)): void {
  const b = new BigUint64Array([soft, hard]);
  check(S.prlimit(0, resource, b, null), "prlimit", name);
}
export function getrlimit(resource: number): { soft: bigint; hard: bigint } {
  const b = new BigUint64Array(2);
  check(S.prlimit(0, resource, null, b), "prlimit", resource);
  return { soft: b[0]!, hard: b[1]! };
}

// Linux capability sets as 64-bit masks (two 32-bit words, _LINUX_CAPABILITY_VERSION_3).
const CAP_V3 = 0x20080522;
export function capset(effective: bigint, permitted: bigint, inheritable: bigint): void {
  const hdr = new Uint32Array([CAP_V3, 0]);
  const lo = (m: bigint) => Number(m & 0xffffffffn), hi = (m: bigint) => Number((m >> 32n) & 0xffffffffn);
  const data = new Uint32Array([lo(effective), lo(permitted), lo(inheritable), hi(effective), hi(permitted), hi(inheritable)]);
  check(sys("capset", Number(ptr(hdr)), Number(ptr(data))), "capset");
}

/** Keeps argv/envp buffers alive for the duration of the call. */
function cstrArray(list: string[]): { arr: BigUint64Array; keep: Buffer[] } {
  const keep = list.map(cstr);
  const arr = new BigUint64Array(list.length + 1);
  keep.forEach((b, i) => (arr[i] = BigInt(ptr(b))));
  return { arr, keep };
}
export function execve(path: string, argv: string[], env: string[]): never {
  const a = cstrArray(argv), e = cstrArray(env);
  S.execve(cstr(path), a.arr, e.arr);
  void a.keep; void e.keep;
  throw new SyscallError("execve", [path], errno());
}
export function makedev(major: number, minor: number): bigint {
  const M = BigInt(major), m = BigInt(minor);
  return ((M & 0xfffff000n) << 32n) | ((M & 0xfffn) << 8n) | ((m & 0xffffff00n) << 12n) | (m & 0xffn);
}
export function mknod(path: string, mode: number, dev: bigint): void {
  check(S.mknod(cstr(path), mode, dev), "mknod", path);
}
export function mkfifo(path: string, mode: number): void {
  check(S.mkfifo(cstr(path), mode), "mkfifo", path);
}
/** kill(2); returns false for ESRCH instead of throwing. */
export function kill(pid: number, sig: number): boolean {
  if (S.kill(pid, sig) === 0) return true;
  const e = errno();
  if (e === 3) return false;
  throw new SyscallError("kill", [pid, sig], e);
}
export function setsid(): number {
  return check(S.setsid(), "setsid");
}
export function getpid(): number {
  return S.getpid();
}
export function gettid(): number {
  return S.gettid();
}
export function ioctl(fd: number, req: number, arg: Uint8Array | null): number {
  return check(S.ioctl(fd, BigInt(req), arg), "ioctl", fd, "0x" + req.toString(16));
}
/** ioctl with an integer argument (TIOCSCTTY and friends take the value, not a pointer). */
export function ioctlInt(fd: number, req: number, value: number): number {
  return check(S.ioctl(fd, BigInt(req), value as unknown as Pointer), "ioctl", fd, "0x" + req.toString(16));
}
export function socketpair(domain: number, type: number): [number, number] {
  const fds = new Int32Array(2);
  check(S.socketpair(domain, type, 0, fds), "socketpair");
  return [fds[0]!, fds[1]!];
}
export function pipe2(flags: number): [number, number] {
  const fds = new Int32Array(2);
  check(S.pipe2(fds, flags), "pipe2");
  return [fds[0]!, fds[1]!];
}

const MFD_CLOEXEC = 1;
export function memfdCreate(name: string): number {
  return check(S.memfd_create(cstr(name), MFD_CLOEXEC), "memfd_create", name);
}

export function socket(domain: number, type: number, protocol = 0): number {
  return check(S.socket(domain, type | O.CLOEXEC, protocol), "socket", domain, type);
}

/** Connect a stream socket to a unix path (console sockets). */
export function connectUnix(path: string): number {
  const fd = check(S.socket(1, 1 | O.CLOEXEC, 0), "socket", path);
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(1, 0);
  addr.write(path, 2);
  if (S.connect(fd, addr, 2 + Buffer.byteLength(path) + 1) < 0) {
    const e = errno();
    S.close(fd);
    throw new SyscallError("connect", [path], e);
  }
  return fd;
}

// struct msghdr (x86_64 / aarch64 LP64): name(8) namelen(4)+pad(4) iov(8) iovlen(8) control(8) controllen(8) flags(4)+pad
function msghdr(iov: BigUint64Array, control: Uint8Array): Uint8Array {
  const m = new Uint8Array(56);
  const v = new DataView(m.buffer);
  v.setBigUint64(16, BigInt(ptr(iov)), true);
  v.setBigUint64(24, 1n, true);
  v.setBigUint64(32, BigInt(ptr(control)), true);
  v.setBigUint64(40, BigInt(control.byteLength), true);
  return m;
}
/** Send one fd with SCM_RIGHTS, plus a payload (runc sends the pty's path). */
export function sendFd(sock: number, fd: number, payload: string): void {
  const data = Buffer.from(payload.length ? payload : "\0");
  const iov = new BigUint64Array([BigInt(ptr(data)), BigInt(data.byteLength)]);
  const control = new Uint8Array(24); // CMSG_SPACE(4) = 24: len(8) level(4) type(4) fd(4) pad(4)
  const cv = new DataView(control.buffer);
  cv.setBigUint64(0, 20n, true); // CMSG_LEN(4)
  cv.setInt32(8, SOL_SOCKET, true);
  cv.setInt32(12, SCM_RIGHTS, true);
  cv.setInt32(16, fd, true);
  const m = msghdr(iov, control);
  retry(() => S.sendmsg(sock, m, 0), "sendmsg", sock);
}
/** Receive one fd sent with SCM_RIGHTS; returns -1 as fd when the message carried none. */
export function recvFd(sock: number, maxPayload = 256 * 1024): { fd: number; payload: string } {
  const data = new Uint8Array(maxPayload);
  const iov = new BigUint64Array([BigInt(ptr(data)), BigInt(data.byteLength)]);
  const control = new Uint8Array(24);
  const m = msghdr(iov, control);
  const n = retry(() => S.recvmsg(sock, m, O.CLOEXEC /* MSG_CMSG_CLOEXEC */ ), "recvmsg", sock);
  const cv = new DataView(control.buffer);
  const clen = Number(new DataView(m.buffer).getBigUint64(40, true));
  const fd = clen >= 20 && cv.getInt32(8, true) === SOL_SOCKET && cv.getInt32(12, true) === SCM_RIGHTS ? cv.getInt32(16, true) : -1;
  return { fd, payload: Buffer.from(data.subarray(0, n)).toString().replace(/\0+$/, "") };
}

export function tcgetattr(fd: number): Uint8Array {
  const t = new Uint8Array(64);
  check(S.tcgetattr(fd, t), "tcgetattr", fd);
  return t;
}
export function tcsetattr(fd: number, termios: Uint8Array): void {
  check(S.tcsetattr(fd, 0, termios), "tcsetattr", fd);
}
export function cfmakeraw(termios: Uint8Array): void {
  S.cfmakeraw(termios);
}
export function isatty(fd: number): boolean {
  return S.isatty(fd) === 1;
}
/** statvfs f_flag: the mount flags of the filesystem holding path. */
export function statvfsFlags(path: string): number {
  const b = new Uint8Array(112);
  check(S.statvfs(cstr(path), b), "statvfs", path);
  return Number(new DataView(b.buffer).getBigUint64(72, true));
}
export const LOCK_EX = 2, LOCK_SH = 1, LOCK_UN = 8, LOCK_NB = 4;
export function flock(fd: number, op: number): void {
  retry(() => S.flock(fd, op), "flock", fd);
}
/** waitpid(2): returns [pid, rawStatus]; pid 0 with WNOHANG when nothing is ready. */
export function waitpid(pid: number, options: number): [number, number] {
  const st = new Int32Array(1);
  const r = retry(() => S.waitpid(pid, st, options), "waitpid", pid);
  return [r, st[0]!];
}
export function dup2(oldfd: number, newfd: number): void {
  check(S.dup2(oldfd, newfd), "dup2", oldfd, newfd);
}
export function umask(mask: number): number {
  return S.umask(mask);
}
/** poll(2) on one fd; returns revents, 0 on timeout. */
export function pollOne(fd: number, events: number, timeoutMs: number): number {
  const p = new Uint8Array(8);
  const v = new DataView(p.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  const n = retry(() => S.poll(p, 1n, timeoutMs), "poll", fd);
  return n === 0 ? 0 : v.getInt16(6, true);
}
export function fchown(fd: number, uid: number, gid: number): void {
  check(S.fchown(fd, uid, gid), "fchown", fd);
}

const F_GETFD = 1, F_SETFD = 2;
/** Clears FD_CLOEXEC so fd survives execve (preserved and LISTEN_FDS fds). */
export function clearCloexec(fd: number): void {
  const flags = check(S.fcntl(fd, F_GETFD, 0n), "fcntl", fd, "F_GETFD");
  check(S.fcntl(fd, F_SETFD, BigInt(flags & ~1)), "fcntl", fd, "F_SETFD");
}

/** getcwd(2) as the kernel reports it: "(unreachable)/..." when cwd is outside our root. */
export function getcwd(): string {
  const buf = new Uint8Array(4096);
  if (!S.getcwd(buf, BigInt(buf.byteLength))) {
    // glibc turns the kernel's "(unreachable)" answer into ENOENT; that is the same verdict.
    throw new SyscallError("getcwd", [], errno());
  }
  return Buffer.from(buf.subarray(0, buf.indexOf(0))).toString();
}

const KEYCTL_JOIN_SESSION_KEYRING = 1, KEYCTL_SETPERM = 5;
/** Joins a new session keyring named `name` and sets its permission mask; returns its serial. */
export function joinSessionKeyring(name: string, perm: number): number {
  const n = cstr(name);
  const id = check(sys("keyctl", KEYCTL_JOIN_SESSION_KEYRING, Number(ptr(n))), "keyctl", "JOIN_SESSION_KEYRING", name);
  check(sys("keyctl", KEYCTL_SETPERM, id, perm), "keyctl", "SETPERM", name);
  return id;
}

/** The address of a buffer, for calls that take a pointer where our binding says integer. */
export function ptrOf(buf: Uint8Array | Int32Array | BigUint64Array): bigint {
  return BigInt(ptr(buf));
}

// ---------------------------------------------------------------------------------------------
// *at calls for unpacking image layers: names relative to a directory fd, never following the last
// component unless asked. Paths may be raw bytes (tar names need not be UTF-8).

export const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_SYMLINK_FOLLOW = 0x400, AT_EMPTY_PATH = 0x1000;
export const XATTR_CREATE = 1, XATTR_REPLACE = 2;

/** NUL-terminated copy of a path given as a string (UTF-8) or as raw bytes. */
export function cpath(p: string | Uint8Array): Buffer {
  if (typeof p === "string") return cstr(p);
  const b = Buffer.alloc(p.byteLength + 1);
  b.set(p);
  return b;
}
/** A path argument as shown in errors. */
function shown(p: string | Uint8Array): string {
  return typeof p === "string" ? p : Buffer.from(p).toString("utf8");
}

export function mkdirat(dirfd: number, name: string | Uint8Array, mode: number): void {
  check(S.mkdirat(dirfd, cpath(name), mode), "mkdirat", shown(name));
}
export function mknodat(dirfd: number, name: string | Uint8Array, mode: number, dev: bigint): void {
  check(S.mknodat(dirfd, cpath(name), mode, dev), "mknodat", shown(name));
}
export function symlinkat(target: string | Uint8Array, dirfd: number, name: string | Uint8Array): void {
  check(S.symlinkat(cpath(target), dirfd, cpath(name)), "symlinkat", shown(target), shown(name));
}
export function linkat(olddirfd: number, oldname: string | Uint8Array, newdirfd: number, newname: string | Uint8Array, flags = 0): void {
  check(S.linkat(olddirfd, cpath(oldname), newdirfd, cpath(newname), flags), "linkat", shown(oldname), shown(newname));
}
export function unlinkat(dirfd: number, name: string | Uint8Array, flags = 0): void {
  check(S.unlinkat(dirfd, cpath(name), flags), "unlinkat", shown(name));
}
/** readlinkat(2): the target as raw bytes. */
export function readlinkat(dirfd: number, name: string | Uint8Array): Buffer {
  const buf = Buffer.alloc(4096);
  const n = check(S.readlinkat(dirfd, cpath(name), buf, BigInt(buf.byteLength)), "readlinkat", shown(name));
  return buf.subarray(0, n);
}
export function fchownat(dirfd: number, name: string | Uint8Array, uid: number, gid: number, flags: number): void {
  check(S.fchownat(dirfd, cpath(name), uid, gid, flags), "fchownat", shown(name), uid, gid);
}
export function fchmod(fd: number, mode: number): void {
  check(S.fchmod(fd, mode), "fchmod", fd, "0" + mode.toString(8));
}
export function fchmodat(dirfd: number, name: string | Uint8Array, mode: number, flags = 0): void {
  check(S.fchmodat(dirfd, cpath(name), mode, flags), "fchmodat", shown(name), "0" + mode.toString(8));
}
/** A point in time for utimensat: seconds and nanoseconds. */
export interface Timespec {
  sec: number;
  nsec: number;
}
const timespecs = (atime: Timespec, mtime: Timespec) => new BigInt64Array([BigInt(atime.sec), BigInt(atime.nsec), BigInt(mtime.sec), BigInt(mtime.nsec)]);
export function utimensat(dirfd: number, name: string | Uint8Array, atime: Timespec, mtime: Timespec, flags = 0): void {
  check(S.utimensat(dirfd, cpath(name), timespecs(atime, mtime), flags), "utimensat", shown(name));
}
export function futimens(fd: number, atime: Timespec, mtime: Timespec): void {
  check(S.futimens(fd, timespecs(atime, mtime)), "futimens", fd);
}
/** setxattr(2), following a final symlink (used on /proc/self/fd/N to reach the file behind an fd). */
export function setxattr(path: string | Uint8Array, name: string, value: Uint8Array, flags = 0): void {
  check(S.setxattr(cpath(path), cstr(name), value.byteLength ? value : null, BigInt(value.byteLength), flags), "setxattr", shown(path), name);
}
export function lsetxattr(path: string | Uint8Array, name: string, value: Uint8Array, flags = 0): void {
  check(S.lsetxattr(cpath(path), cstr(name), value.byteLength ? value : null, BigInt(value.byteLength), flags), "lsetxattr", shown(path), name);
}
export function fsetxattr(fd: number, name: string, value: Uint8Array, flags = 0): void {
  check(S.fsetxattr(fd, cstr(name), value.byteLength ? value : null, BigInt(value.byteLength), flags), "fsetxattr", fd, name);
}
/** lgetxattr(2): the value, or null when the attribute is not set (ENODATA) or not supported there (EOPNOTSUPP). */
export function lgetxattr(path: string | Uint8Array, name: string): Buffer | null {
  const p = cpath(path), n = cstr(name);
  for (;;) {
    const size = Number(S.lgetxattr(p, n, null, 0n));
    if (size < 0) {
      const e = errno();
      if (e === 61 || e === 95) return null;
      throw new SyscallError("lgetxattr", [shown(path), name], e);
    }
    const buf = Buffer.alloc(Math.max(size, 1));
    const got = Number(S.lgetxattr(p, n, buf, BigInt(buf.byteLength)));
    if (got >= 0) return buf.subarray(0, got);
    const e = errno();
    if (e === 34) continue; // ERANGE: it grew in between
    if (e === 61) return null;
    throw new SyscallError("lgetxattr", [shown(path), name], e);
  }
}
/** llistxattr(2): the attribute names (empty when the filesystem has none or does not support them). */
export function llistxattr(path: string | Uint8Array): string[] {
  const p = cpath(path);
  for (;;) {
    const size = Number(S.llistxattr(p, null, 0n));
    if (size < 0) {
      const e = errno();
      if (e === 95) return []; // EOPNOTSUPP
      throw new SyscallError("llistxattr", [shown(path)], e);
    }
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(S.llistxattr(p, buf, BigInt(size)));
    if (got >= 0) return buf.subarray(0, got).toString("latin1").split("\0").filter(Boolean);
    const e = errno();
    if (e !== 34) throw new SyscallError("llistxattr", [shown(path)], e);
  }
}

/** glibc's description of a signal ("Terminated", "Killed"). */
export function strsignal(sig: number): string {
  return String(S.strsignal(sig));
}
/** glibc's description of an errno ("No such file or directory"). */
export function strerror(e: number): string {
  return String(S.strerror(e));
}
