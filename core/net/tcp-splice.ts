// TCP forwarding with splice(2): bytes move socket -> pipe -> socket inside the kernel and never
// enter JavaScript. This is how moby's Go proxy moves them too (io.Copy between two TCPConns is
// TCPConn.ReadFrom, which splices on Linux). Copying through Bun's socket callbacks instead (the
// fallback engine, tcp-proxy.ts) costs three memcpys and a fresh buffer per read: bench/proxy.sh
// measured it at 1.3-1.7x the Go proxy's CPU per byte, and this engine at about half of Go's.
//
// The sockets, the pipes and the epoll instance are plain fds driven through bun:ffi (sys.ts); Bun's
// own event loop never sees them. The loop below waits in epoll_wait, handles what is ready, then
// yields to Bun's loop with setImmediate, so its signal handlers (SIGTERM/SIGINT) run. A signal sent
// to the process interrupts the main thread's epoll_wait (the kernel hands a process-directed signal
// to the main thread first when it does not block it), so stopping takes ~2 ms, not TICK_MS; the
// timeout is only the fallback for a signal that went to another thread, and keeps an idle proxy at
// one wake-up a second.
//
// Per connection, each direction (client->backend, backend->client) is a pipe and a little state.
// Sockets are registered edge-triggered for in and out at once, so nothing is re-armed: every event
// on either socket pumps both directions until each is blocked on EAGAIN (which guarantees another
// edge), has hit EOF, or has failed.
//
// Half-close as in moby: EOF from one side becomes shutdown(SHUT_WR) on the other once the pipe is
// empty; the other direction keeps flowing. When both directions are done, all six fds close.
import { readFileSync } from "node:fs";
import { joinHostPort, type IP } from "./ip";
import { logf } from "./proxy-log";
import * as sys from "./sys";
import { goErrno, SockError } from "./sock-error";

const TICK_MS = 1000;
const MAX_EVENTS = 256;
/**
 * Pipe capacity per direction. Pipes start at the kernel's default (64 KiB); a direction that fills
 * its pipe is a bulk transfer and gets PIPE_BULK (fewer splice calls per byte; pipe-max-size allows
 * 1 MiB by default), so short connections don't pay for resizing.
 */
const PIPE_DEFAULT = 65536;
const PIPE_BULK = 1 << 20;

interface Dir {
  src: number;
  dst: number;
  /** The pipe: read end, write end, capacity. */
  pr: number;
  pw: number;
  cap: number;
  /** Bytes in the pipe, read from src and not yet written to dst. */
  buffered: number;
  /** src has sent FIN (or failed): nothing more to read. */
  eof: boolean;
  /** Finished: everything delivered and dst shut for writing, or given up after an error. */
  done: boolean;
  /** The pipe was offered PIPE_BULK already. */
  grown: boolean;
  /** The opposite direction of the same connection. */
  other: Dir | null;
}

interface Conn {
  client: number;
  backend: number;
  connecting: boolean;
  up: Dir | null; // client -> backend
  down: Dir | null; // backend -> client
}

export interface SpliceListenSpec {
  host?: { ip: IP; port: number };
  /** An inherited listening socket (dockerd's, -use-listen-fd). */
  fd?: number;
}

export interface SpliceProxy {
  close(): void;
  readonly connections: number;
}

/** Bind and listen as Go's net.ListenTCP does (SO_REUSEADDR; IPv6-only for an IPv6 address). */
function listenOn(ip: IP, port: number): number {
  const fd = sys.socket(ip.family === 6 ? sys.AF_INET6 : sys.AF_INET, sys.SOCK_STREAM | sys.SOCK_NONBLOCK | sys.SOCK_CLOEXEC);
  if (fd < 0) throw new SockError("socket", -fd);
  const fail = (call: string, e: number): never => {
    sys.close(fd);
    throw new SockError(call, e);
  };
  let rc = sys.setsockoptInt(fd, sys.SOL_SOCKET, sys.SO_REUSEADDR, 1);
  if (rc < 0) fail("setsockopt", -rc);
  if (ip.family === 6) {
    rc = sys.setsockoptInt(fd, sys.IPPROTO_IPV6, sys.IPV6_V6ONLY, 1);
    if (rc < 0) fail("setsockopt", -rc);
  }
  rc = sys.bind(fd, sys.sockaddr(ip.family, ip.text, port));
  if (rc < 0) fail("bind", -rc);
  rc = sys.listen(fd, somaxconn());
  if (rc < 0) fail("listen", -rc);
  return fd;
}

/** Go listens with the kernel's maximum backlog. */
function somaxconn(): number {
  try {
    const n = Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8"));
    return n > 0 ? Math.min(n, 65535) : 4096;
  } catch {
    return 4096;
  }
}

/** An inherited socket must be a TCP listener; make it non-blocking for our loop. */
function adoptListener(fd: number): number {
  const type = sys.getsockoptInt(fd, sys.SOL_SOCKET, sys.SO_TYPE);
  if (type < 0) throw new SockError("getsockopt", -type);
  if (type !== sys.SOCK_STREAM) throw new Error(`unexpected socket type for listener fd: ${type === sys.SOCK_DGRAM ? "udp" : `type ${type}`}`);
  const fl = sys.fcntl(fd, sys.F_GETFL);
  if (fl < 0 || sys.fcntl(fd, sys.F_SETFL, fl | sys.O_NONBLOCK) < 0) throw new SockError("fcntl", fl < 0 ? -fl : 22);
  return fd;
}

/** [read end, write end], or -errno. */
function newPipe(): [number, number] | number {
  return sys.pipe2(sys.O_NONBLOCK | sys.SOCK_CLOEXEC);
}

export function startSpliceProxy(spec: SpliceListenSpec, backend: { ip: IP; port: number }): SpliceProxy {
  const lfd = spec.fd !== undefined ? adoptListener(spec.fd) : listenOn(spec.host!.ip, spec.host!.port);
  const ep = sys.epollCreate();
  if (ep < 0) {
    sys.close(lfd);
    throw new SockError("epoll_create1", -ep);
  }
  sys.epollAdd(ep, lfd, sys.EPOLLIN | sys.EPOLLET);

  const backendSa = sys.sockaddr(backend.ip.family, backend.ip.text, backend.port);
  const backendFamily = backend.ip.family === 6 ? sys.AF_INET6 : sys.AF_INET;
  const backendText = joinHostPort(backend.ip, backend.port);
  /** Connection by either of its socket fds. */
  const byFd: (Conn | undefined)[] = [];
  let live = 0;
  let stopped = false;
  /** accept4 failed for lack of fds: retry when a connection closes (the listener is edge-triggered). */
  let acceptStalled = false;
  let lastStallLog = 0;

  const events = new Uint8Array(sys.EPOLL_EVENT_SIZE * MAX_EVENTS);
  const view = new DataView(events.buffer);

  /**
   * Fds of finished connections, closed after the current batch of events: until then their
   * numbers can't be reused, so an event of the batch still naming one can't reach the new
   * connection that would otherwise get the same fd number (a stale "writable" on what is now a
   * backend still connecting would look like the connect completing).
   */
  const toClose: number[] = [];

  function closeConn(c: Conn): void {
    if (byFd[c.client] !== c) return; // already closed
    byFd[c.client] = undefined;
    byFd[c.backend] = undefined;
    for (const d of [c.up, c.down]) if (d) toClose.push(d.pr, d.pw);
    toClose.push(c.client, c.backend);
    live--;
  }

  function flushCloses(): void {
    for (const fd of toClose) sys.close(fd);
    toClose.length = 0;
    if (acceptStalled && !stopped) acceptAll();
  }

  function finish(d: Dir): void {
    d.done = true;
    // moby: from.CloseRead(); to.CloseWrite(). The FIN reaches the other side; errors (it is gone
    // already) don't matter. When the other direction is done too, the close that follows sends
    // the FIN anyway.
    if (!d.other?.done) sys.shutdown(d.dst, sys.SHUT_WR);
  }

  /** Move what can move in one direction; returns when blocked, at EOF, or failed. */
  function pump(d: Dir): void {
    const flags = sys.SPLICE_F_MOVE | sys.SPLICE_F_NONBLOCK;
    while (!d.done) {
      let progress = false;
      if (!d.eof && d.buffered < d.cap) {
        const n = sys.splice(d.src, d.pw, d.cap - d.buffered, flags);
        if (n > 0) {
          d.buffered += n;
          progress = true;
          if (d.buffered >= d.cap && !d.grown) {
            d.grown = true;
            const cap = sys.fcntl(d.pw, sys.F_SETPIPE_SZ, PIPE_BULK);
            if (cap > d.cap) d.cap = cap;
          }
        } else if (n === 0) {
          d.eof = true;
          progress = true;
        } else if (n !== -sys.EAGAIN) {
          if (n === -sys.EINTR) continue;
          // ECONNRESET and the like: this direction is over; what the pipe holds is still sent.
          d.eof = true;
          progress = true;
        }
      }
      if (d.buffered > 0) {
        const n = sys.splice(d.pr, d.dst, d.buffered, flags);
        if (n > 0) {
          d.buffered -= n;
          progress = true;
        } else if (n !== -sys.EAGAIN) {
          if (n === -sys.EINTR) continue;
          // EPIPE, ECONNRESET: the destination is gone, the rest can't be delivered.
          d.eof = true;
          d.buffered = 0;
          finish(d);
          return;
        }
      }
      if (d.eof && d.buffered === 0) {
        finish(d);
        return;
      }
      if (!progress) return;
    }
  }

  function pipeFailed(e: number): false {
    logf(`Can't forward traffic to backend tcp/${backendText}: pipe2: ${goErrno(-e)}`);
    return false;
  }

  function openConn(c: Conn): boolean {
    const a = newPipe();
    if (typeof a === "number") return pipeFailed(a);
    const b = newPipe();
    if (typeof b === "number") {
      sys.close(a[0]);
      sys.close(a[1]);
      return pipeFailed(b);
    }
    c.connecting = false;
    const up: Dir = { src: c.client, dst: c.backend, pr: a[0], pw: a[1], cap: PIPE_DEFAULT, buffered: 0, eof: false, done: false, grown: false, other: null };
    const down: Dir = { src: c.backend, dst: c.client, pr: b[0], pw: b[1], cap: PIPE_DEFAULT, buffered: 0, eof: false, done: false, grown: false, other: up };
    up.other = down;
    c.up = up;
    c.down = down;
    return true;
  }

  function service(c: Conn): void {
    pump(c.up!);
    pump(c.down!);
    if (c.up!.done && c.down!.done) closeConn(c);
  }

  function connectBackend(client: number): void {
    const fd = sys.socket(backendFamily, sys.SOCK_STREAM | sys.SOCK_NONBLOCK | sys.SOCK_CLOEXEC);
    if (fd < 0) {
      logf(`Can't forward traffic to backend tcp/${backendText}: dial tcp ${backendText}: socket: ${goErrno(-fd)}`);
      sys.close(client);
      return;
    }
    // Go's TCPConns have Nagle off; small writes through the proxy go out at once.
    sys.setsockoptInt(client, sys.IPPROTO_TCP, sys.TCP_NODELAY, 1);
    sys.setsockoptInt(fd, sys.IPPROTO_TCP, sys.TCP_NODELAY, 1);
    const rc = sys.connect(fd, backendSa);
    if (rc < 0 && rc !== -sys.EINPROGRESS) {
      logf(`Can't forward traffic to backend tcp/${backendText}: dial tcp ${backendText}: connect: ${goErrno(-rc)}`);
      sys.close(fd);
      sys.close(client);
      return;
    }
    const c: Conn = { client, backend: fd, connecting: true, up: null, down: null };
    byFd[client] = c;
    byFd[fd] = c;
    live++;
    const ev = sys.EPOLLIN | sys.EPOLLOUT | sys.EPOLLRDHUP | sys.EPOLLET;
    sys.epollAdd(ep, client, ev);
    sys.epollAdd(ep, fd, ev);
    if (rc === 0) {
      if (openConn(c)) service(c);
      else closeConn(c);
    }
  }

  function acceptAll(): void {
    acceptStalled = false;
    for (;;) {
      const fd = sys.accept4(lfd, sys.SOCK_NONBLOCK | sys.SOCK_CLOEXEC);
      if (fd >= 0) {
        connectBackend(fd);
        continue;
      }
      const e = -fd;
      if (e === sys.EAGAIN) return;
      if (e === sys.EINTR || e === sys.ECONNABORTED) continue;
      if (e === sys.EMFILE || e === sys.ENFILE || e === sys.ENOBUFS || e === sys.ENOMEM) {
        // Out of fds: the pending connections wait in the backlog until one of ours closes.
        acceptStalled = true;
        const now = Date.now();
        if (now - lastStallLog > 10_000) {
          lastStallLog = now;
          logf(`accept tcp: ${goErrno(e)}; waiting for connections to close`);
        }
        return;
      }
      logf(`accept tcp: ${goErrno(e)}`);
      return;
    }
  }

  function onEvent(fd: number, evs: number): void {
    if (fd === lfd) {
      acceptAll();
      return;
    }
    const c = byFd[fd];
    if (!c) return; // closed earlier in this batch
    if (c.connecting) {
      if (fd !== c.backend) return; // client bytes wait in its socket until the backend is there
      if (!(evs & (sys.EPOLLOUT | sys.EPOLLERR | sys.EPOLLHUP))) return;
      const err = sys.getsockoptInt(c.backend, sys.SOL_SOCKET, sys.SO_ERROR);
      if (err !== 0) {
        logf(`Can't forward traffic to backend tcp/${backendText}: dial tcp ${backendText}: connect: ${goErrno(err < 0 ? -err : err)}`);
        closeConn(c);
        return;
      }
      if (!openConn(c)) {
        closeConn(c);
        return;
      }
    }
    service(c);
  }

  function tick(): void {
    if (stopped) return;
    const n = sys.epollWait(ep, events, MAX_EVENTS, TICK_MS);
    for (let i = 0; i < n; i++) {
      const [fd, evs] = sys.eventAt(view, i);
      onEvent(fd, evs);
    }
    flushCloses();
    setImmediate(tick);
  }
  setImmediate(tick);

  return {
    close() {
      if (stopped) return;
      stopped = true;
      sys.close(lfd);
      const seen = new Set<Conn>();
      for (const c of byFd) if (c && !seen.has(c)) seen.add(c);
      for (const c of seen) closeConn(c);
      flushCloses();
      sys.close(ep);
    },
    get connections() {
      return live;
    },
  };
}
