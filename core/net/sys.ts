// The few socket, epoll and splice system calls the TCP splice engine makes, through bun:ffi.
// Kept apart from ffi/libc.ts (the runtime's bindings): this set is small, hot, and returns errno
// as a value instead of throwing, because EAGAIN is the normal case here, not an error.
//
// Every call returns its result, or -errno. errno is read right after the call, on the same thread,
// before any other libc call can run there.
import { dlopen, ptr, read, type Pointer } from "bun:ffi";

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const TCP_NODELAY = 1;
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_SETPIPE_SZ = 1031;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 0x80000000;
export const SPLICE_F_MOVE = 1;
export const SPLICE_F_NONBLOCK = 2;

export const EINTR = 4;
export const EAGAIN = 11;
export const EINPROGRESS = 115;
export const ECONNABORTED = 103;
export const EMFILE = 24;
export const ENFILE = 23;
export const ENOBUFS = 105;
export const ENOMEM = 12;

const lib = dlopen("libc.so.6", {
  __errno_location: { args: [], returns: "ptr" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  listen: { args: ["i32", "i32"], returns: "i32" },
  accept4: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  shutdown: { args: ["i32", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "u64"], returns: "i32" },
  pipe2: { args: ["ptr", "i32"], returns: "i32" },
  // Lengths stay far below 2^31, so the byte counts fit an i32 (a plain JS number, no BigInt).
  splice: { args: ["i32", "ptr", "i32", "ptr", "u64", "u32"], returns: "i32" },
  epoll_create1: { args: ["i32"], returns: "i32" },
  epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
  getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
}).symbols;

const errnoPtr = lib.__errno_location() as Pointer;

function r(n: number): number {
  return n < 0 ? -read.i32(errnoPtr, 0) : n;
}

// Scratch space for int out-parameters. Its address is taken at each call: JSC may move a small
// typed array's storage, so a pointer kept from an earlier ptr() can point at anything later.
const int = new Int32Array(2);

export const socket = (family: number, type: number, proto = 0) => r(lib.socket(family, type, proto));
export const bind = (fd: number, sa: Uint8Array) => r(lib.bind(fd, ptr(sa), sa.byteLength));
export const listen = (fd: number, backlog: number) => r(lib.listen(fd, backlog));
export const accept4 = (fd: number, flags: number) => r(lib.accept4(fd, null, null, flags));
export const connect = (fd: number, sa: Uint8Array) => r(lib.connect(fd, ptr(sa), sa.byteLength));
export const shutdown = (fd: number, how: number) => r(lib.shutdown(fd, how));
export const close = (fd: number) => r(lib.close(fd));
export const fcntl = (fd: number, cmd: number, arg = 0) => r(lib.fcntl(fd, cmd, arg));
export const splice = (fdIn: number, fdOut: number, len: number, flags: number) => r(lib.splice(fdIn, null, fdOut, null, len, flags));
export const epollCreate = () => r(lib.epoll_create1(EPOLL_CLOEXEC));
export const epollWait = (ep: number, events: Uint8Array, max: number, timeoutMs: number) => r(lib.epoll_wait(ep, ptr(events), max, timeoutMs));

/** An int socket option; returns the value or -errno. */
export function getsockoptInt(fd: number, level: number, name: number): number {
  int[0] = 0;
  int[1] = 4;
  const n = r(lib.getsockopt(fd, level, name, ptr(int), ptr(int, 4)));
  return n < 0 ? n : int[0]!;
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): number {
  int[0] = value;
  return r(lib.setsockopt(fd, level, name, ptr(int), 4));
}

/** The port a socket is bound to, or -errno. */
export function localPort(fd: number): number {
  const sa = new Uint8Array(28);
  int[0] = 28;
  const n = r(lib.getsockname(fd, ptr(sa), ptr(int)));
  return n < 0 ? n : (sa[2]! << 8) | sa[3]!;
}

/** [read end, write end] or -errno. */
export function pipe2(flags: number): [number, number] | number {
  const n = r(lib.pipe2(ptr(int), flags));
  return n < 0 ? n : [int[0]!, int[1]!];
}

// struct epoll_event { uint32_t events; epoll_data_t data; } is packed on x86-64 (12 bytes) and
// naturally aligned elsewhere (16 bytes).
export const EPOLL_EVENT_SIZE = process.arch === "x64" ? 12 : 16;
const DATA_OFF = process.arch === "x64" ? 4 : 8;
const ev = new Uint8Array(EPOLL_EVENT_SIZE);
const evView = new DataView(ev.buffer);

/** Watch `fd` for `events`; the fd itself is the event's data. */
export function epollAdd(ep: number, fd: number, events: number): number {
  evView.setUint32(0, events >>> 0, true);
  evView.setUint32(DATA_OFF, fd, true);
  evView.setUint32(DATA_OFF + 4, 0, true);
  return r(lib.epoll_ctl(ep, EPOLL_CTL_ADD, fd, ptr(ev)));
}

export function epollDel(ep: number, fd: number): number {
  return r(lib.epoll_ctl(ep, EPOLL_CTL_DEL, fd, ptr(ev)));
}

/** Event i of an epoll_wait result: [fd, events]. */
export function eventAt(view: DataView, i: number): [fd: number, events: number] {
  const off = i * EPOLL_EVENT_SIZE;
  return [view.getUint32(off + DATA_OFF, true), view.getUint32(off, true)];
}

/** struct sockaddr_in / sockaddr_in6 for an IP literal in canonical form (ip.ts). */
export function sockaddr(family: 4 | 6, text: string, port: number): Uint8Array {
  if (family === 4) {
    const sa = new Uint8Array(16);
    const v = new DataView(sa.buffer);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, port, false);
    text.split(".").forEach((o, i) => (sa[4 + i] = Number(o)));
    return sa;
  }
  const sa = new Uint8Array(28);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET6, true);
  v.setUint16(2, port, false);
  const [head, tail = ""] = text.split("::") as [string, string?];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = text.includes("::") ? [...h, ...new Array(8 - h.length - t.length).fill("0"), ...t] : h;
  groups.forEach((g, i) => v.setUint16(8 + i * 2, parseInt(g, 16), false));
  return sa;
}
