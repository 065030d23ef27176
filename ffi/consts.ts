// Kernel ABI constants used by the runtime. Values are Linux's, identical on x86_64 and aarch64
// unless a table says otherwise.

export const CLONE = {
  NEWNS: 0x00020000, NEWCGROUP: 0x02000000, NEWUTS: 0x04000000, NEWIPC: 0x08000000,
  NEWUSER: 0x10000000, NEWPID: 0x20000000, NEWNET: 0x40000000, NEWTIME: 0x00000080, FS: 0x00000200,
} as const;

/** OCI namespace type -> clone flag and /proc/<pid>/ns entry. */
export const NAMESPACES: Record<string, { flag: number; proc: string }> = {
  pid: { flag: CLONE.NEWPID, proc: "pid" },
  network: { flag: CLONE.NEWNET, proc: "net" },
  mount: { flag: CLONE.NEWNS, proc: "mnt" },
  ipc: { flag: CLONE.NEWIPC, proc: "ipc" },
  uts: { flag: CLONE.NEWUTS, proc: "uts" },
  user: { flag: CLONE.NEWUSER, proc: "user" },
  cgroup: { flag: CLONE.NEWCGROUP, proc: "cgroup" },
  time: { flag: CLONE.NEWTIME, proc: "time" },
};

export const MS = {
  RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, SYNCHRONOUS: 16, REMOUNT: 32, MANDLOCK: 64,
  DIRSYNC: 128, NOSYMFOLLOW: 256, NOATIME: 1024, NODIRATIME: 2048, BIND: 4096, MOVE: 8192,
  REC: 16384, SILENT: 32768, UNBINDABLE: 1 << 17, PRIVATE: 1 << 18, SLAVE: 1 << 19, SHARED: 1 << 20,
  RELATIME: 1 << 21, STRICTATIME: 1 << 24, LAZYTIME: 1 << 25,
} as const;

export const MNT_DETACH = 2;

export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400, TRUNC: 0o1000,
  APPEND: 0o2000, NONBLOCK: 0o4000, DIRECTORY: 0o200000, NOFOLLOW: 0o400000, CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

export const S_IFMT = 0o170000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;

export const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6, RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12, RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};

export const PR = {
  SET_PDEATHSIG: 1, SET_KEEPCAPS: 8, CAPBSET_READ: 23, CAPBSET_DROP: 24, SET_NO_NEW_PRIVS: 38,
  SET_CHILD_SUBREAPER: 36, CAP_AMBIENT: 47, CAP_AMBIENT_RAISE: 2, CAP_AMBIENT_CLEAR_ALL: 4,
  SET_NAME: 15,
} as const;

export const CAPABILITIES: string[] = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
  "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
  "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
  "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

export const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGIOT: 6, SIGBUS: 7, SIGFPE: 8,
  SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22,
  SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29,
  SIGPOLL: 29, SIGPWR: 30, SIGSYS: 31,
};

/** Parse a signal the way runc does: a number, or a name with or without SIG, any case; RTMIN+n too. */
export function parseSignal(s: string): number {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n > 0 && n < 65) return n;
  } else {
    const up = s.toUpperCase();
    const name = up.startsWith("SIG") ? up : "SIG" + up;
    if (name in SIGNALS) return SIGNALS[name]!;
    const rt = /^SIGRTM(IN|AX)([+-]\d+)?$/.exec(name);
    if (rt) {
      const base = rt[1] === "IN" ? 34 : 64;
      const n = base + Number(rt[2] ?? 0);
      if (n >= 34 && n <= 64) return n;
    }
  }
  throw new Error(`unknown signal "${s}"`);
}

type Arch = "x64" | "arm64";
const SYSCALLS: Record<Arch, Record<string, number>> = {
  x64: { pivot_root: 155, capset: 126, capget: 125, close_range: 436, pidfd_open: 434, pidfd_send_signal: 424, setns: 308, keyctl: 250 },
  arm64: { pivot_root: 41, capset: 91, capget: 90, close_range: 436, pidfd_open: 434, pidfd_send_signal: 424, setns: 268, keyctl: 219 },
};

export function syscallNumber(name: string): number {
  const table = SYSCALLS[process.arch as Arch];
  if (!table) throw new Error(`unsupported architecture ${process.arch}`);
  const n = table[name];
  if (n === undefined) throw new Error(`no syscall number for ${name} on ${process.arch}`);
  return n;
}

export const TIOCSCTTY = 0x540e;
export const TIOCGWINSZ = 0x5413;
export const TIOCSWINSZ = 0x5414;
export const TIOCGPTN = 0x80045430;
export const TIOCSPTLCK = 0x40045431;
export const TCSANOW = 0;
export const CLOSE_RANGE_CLOEXEC = 4;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0o2000000;
