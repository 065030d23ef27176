// errno numbers -> symbolic names (Linux, same on x86_64 and aarch64).
export const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC",
  9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 15: "ENOTBLK",
  16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
  23: "ENFILE", 24: "EMFILE", 25: "ENOTTY", 26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE",
  30: "EROFS", 31: "EMLINK", 32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG",
  37: "ENOLCK", 38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 61: "ENODATA", 75: "EOVERFLOW",
  88: "ENOTSOCK", 95: "EOPNOTSUPP", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 104: "ECONNRESET",
  110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH", 122: "EDQUOT",
};

const MESSAGES: Record<string, string> = {
  EPERM: "operation not permitted", ENOENT: "no such file or directory", ESRCH: "no such process",
  EINTR: "interrupted system call", EIO: "input/output error", EBADF: "bad file descriptor",
  EACCES: "permission denied", EBUSY: "device or resource busy", EEXIST: "file exists",
  ENOTDIR: "not a directory", EISDIR: "is a directory", EINVAL: "invalid argument",
  ENOSPC: "no space left on device", EROFS: "read-only file system", ELOOP: "too many levels of symbolic links",
  ENOSYS: "function not implemented", ENOTEMPTY: "directory not empty", ENOEXEC: "exec format error",
  ECHILD: "no child processes", EAGAIN: "resource temporarily unavailable", ENOMEM: "cannot allocate memory",
  ENXIO: "no such device or address", E2BIG: "argument list too long", ENOTBLK: "block device required",
  EXDEV: "invalid cross-device link", ENODEV: "no such device", ENFILE: "too many open files in system",
  EMFILE: "too many open files", ENOTTY: "inappropriate ioctl for device", ETXTBSY: "text file busy",
  EFBIG: "file too large", ESPIPE: "illegal seek", EMLINK: "too many links", EPIPE: "broken pipe",
  ERANGE: "numerical result out of range", EDEADLK: "resource deadlock avoided", ENAMETOOLONG: "file name too long",
  ENOLCK: "no locks available", ENODATA: "no data available", EOVERFLOW: "value too large for defined data type",
  ENOTSOCK: "socket operation on non-socket", EOPNOTSUPP: "operation not supported", EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "cannot assign requested address", ECONNRESET: "connection reset by peer", ETIMEDOUT: "connection timed out",
  ECONNREFUSED: "connection refused", EHOSTUNREACH: "no route to host", EDQUOT: "disk quota exceeded",
  EFAULT: "bad address", EDOM: "numerical argument out of domain",
};

export function errnoName(n: number): string {
  return ERRNO_NAMES[n] ?? `errno ${n}`;
}

export function errnoMessage(name: string): string {
  return MESSAGES[name] ?? name;
}

/** A failed system call: names the call, the arguments that matter, and errno's symbolic name. */
export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, args: (string | number)[], errno: number) {
    const code = errnoName(errno);
    const shown = args.map((a) => (typeof a === "string" ? JSON.stringify(a) : String(a))).join(", ");
    super(`${syscall}(${shown}): ${code} (${errnoMessage(code)})`);
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}
