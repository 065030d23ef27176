// TCP forwarding through Bun's own sockets: the fallback engine (tcp-splice.ts is the default; this
// one runs with BUNKER_PROXY_ENGINE=sockets, or where libc can't be bound through bun:ffi). Every
// accepted connection gets its own connection to the container, and bytes are copied both ways
// until both directions have ended (moby's tcp_proxy: io.Copy per direction, then CloseRead on the
// source and CloseWrite on the destination).
//
// Bun.listen / Bun.connect hand us each read as one buffer and report how much a write took:
// whatever the kernel does not take is kept here and the source is paused until the destination
// drains, so memory stays bounded by one read per direction. Half-close: a FIN from one side becomes
// shutdown(SHUT_WR) on the other once everything before it has been written; the other direction
// keeps flowing until it ends too. Bun reports a FIN that arrives after our own shutdown() as
// `close`, not `end`, so onClose ends a direction just as onEnd does.
import type { Socket, TCPSocketListener, TCPSocketListenOptions } from "bun";
import { joinHostPort, type IP } from "./ip";
import { logf } from "./proxy-log";
import { errText } from "./sock-error";

/** One socket of a proxied connection, and the direction that reads from it. */
interface End {
  /** The socket this one's data goes to (null until the backend connects). */
  peer: Socket<End> | null;
  /** Bytes read from this socket that the peer has not taken yet. */
  pending: Uint8Array | null;
  /** Nothing more will come from this socket (FIN, error, or closed). */
  eof: boolean;
  /** ...and everything it sent, then the FIN, has been passed to the peer: this direction is done. */
  forwarded: boolean;
  /** We asked for a full close. */
  closing: boolean;
  /** The close callback ran: the fd is gone. */
  closed: boolean;
  /** Data read before the peer existed (the client's, while the backend connects). */
  early: Uint8Array[] | null;
  link: Link;
}

/** The two sockets of one proxied connection. */
interface Link {
  client: Socket<End>;
  backend: Socket<End> | null;
}

export interface TcpListenSpec {
  /** Listen on this address (the proxy binds), or adopt `fd` (dockerd bound it: -use-listen-fd). */
  host?: { ip: IP; port: number };
  fd?: number;
}

export interface TcpProxy {
  /** Stop accepting and drop every connection (SIGTERM/SIGINT). */
  close(): void;
  /** Number of live proxied connections (tests and diagnostics). */
  readonly connections: number;
}

function newEnd(link: Link): End {
  return { peer: null, pending: null, eof: false, forwarded: false, closing: false, closed: false, early: null, link };
}

/** Write as much of `buf` as the socket takes; returns what is left (null when all went). */
function writeSome(to: Socket<End>, buf: Uint8Array): Uint8Array | null {
  const n = to.write(buf);
  if (n >= buf.byteLength) return null;
  // The buffer a data callback got is not ours to keep: hold a copy of the rest.
  return buf.slice(Math.max(n, 0));
}

/** FIN, then close(2) (Bun: end() after shutdown() releases the fd). */
function closeNow(s: Socket<End>): void {
  const e = s.data;
  if (e.closed || e.closing) return;
  e.closing = true;
  s.shutdown();
  s.end();
}

/** Pass a finished direction's FIN on, once everything before it is written. */
function forwardEof(from: Socket<End>): void {
  const e = from.data;
  const peer = e.peer;
  if (!e.eof || e.pending || e.forwarded || !peer) return;
  e.forwarded = true;
  if (!peer.data.closed && !peer.data.closing) peer.shutdown();
  // Done with the pair when both directions are, or when this side is gone altogether (nothing the
  // peer sends could be delivered).
  if (e.closed || peer.data.forwarded || peer.data.closed) {
    closeNow(from);
    closeNow(peer);
  }
}

function onData(s: Socket<End>, buf: Uint8Array): void {
  const e = s.data;
  if (!e.peer) {
    (e.early ??= []).push(buf.slice());
    return;
  }
  const peer = e.peer.data;
  if (peer.closed || peer.closing) return; // nowhere to go: the other side is gone
  if (e.pending) {
    // A read that raced the pause: queue it behind what is waiting.
    const joined = new Uint8Array(e.pending.byteLength + buf.byteLength);
    joined.set(e.pending);
    joined.set(buf, e.pending.byteLength);
    e.pending = joined;
    return;
  }
  e.pending = writeSome(e.peer, buf);
  if (e.pending) s.pause();
}

/** The peer of `s` can take more: flush what `s` read, then resume reading `s`. */
function onPeerDrain(s: Socket<End>): void {
  const e = s.data;
  if (!e.pending || !e.peer) return;
  e.pending = writeSome(e.peer, e.pending);
  if (e.pending) return;
  if (e.eof) forwardEof(s);
  else if (!e.closed) s.resume();
}

function onEnd(s: Socket<End>): void {
  s.data.eof = true;
  forwardEof(s);
}

function onClose(s: Socket<End>): void {
  const e = s.data;
  if (e.closed) return;
  e.closed = true;
  e.eof = true;
  const peer = e.peer;
  if (!peer) return;
  // What the peer still had for `s` can't be delivered. What `s` sent still goes to the peer, then
  // its FIN, and then the peer is closed (forwardEof).
  peer.data.pending = null;
  if (e.forwarded) closeNow(peer);
  else forwardEof(s);
}

export function startTcpProxy(spec: TcpListenSpec, backend: { ip: IP; port: number }): TcpProxy {
  const conns = new Set<Link>();
  const backendText = `tcp/${joinHostPort(backend.ip, backend.port)}`;

  const backendHandler = {
    open(b: Socket<End>) {
      const link = b.data.link;
      const c = link.client;
      link.backend = b;
      b.data.peer = c;
      c.data.peer = b;
      if (c.data.closed) {
        // The client left while we were connecting: pass on what it sent, then its FIN.
        for (const chunk of c.data.early ?? []) b.write(chunk);
        closeNow(b);
        conns.delete(link);
        return;
      }
      const early = c.data.early;
      c.data.early = null;
      for (const chunk of early ?? []) onData(c, chunk);
      if (c.data.eof) forwardEof(c);
      else if (!c.data.pending) c.resume();
    },
    data: onData,
    drain(b: Socket<End>) {
      if (b.data.peer) onPeerDrain(b.data.peer);
    },
    end: onEnd,
    close(b: Socket<End>) {
      onClose(b);
      if (b.data.link.client.data.closed) conns.delete(b.data.link);
    },
    error() {},
    connectError(_b: Socket<End>, err: Error) {
      // moby: log and close the client.
      logf(`Can't forward traffic to backend ${backendText}: dial tcp ${joinHostPort(backend.ip, backend.port)}: connect: ${errText(err)}`);
    },
  };

  const clientHandler = {
    open(c: Socket<End>) {
      const link: Link = { client: c, backend: null };
      c.data = newEnd(link);
      conns.add(link);
      // Hold the client's bytes in the kernel until there is somewhere to put them.
      c.pause();
      Bun.connect<End>({
        hostname: backend.ip.text,
        port: backend.port,
        allowHalfOpen: true,
        data: newEnd(link),
        socket: backendHandler,
      }).catch(() => {
        conns.delete(link);
        if (!c.data.closed) c.end();
      });
    },
    data: onData,
    drain(c: Socket<End>) {
      if (c.data.peer) onPeerDrain(c.data.peer);
    },
    end: onEnd,
    close(c: Socket<End>) {
      onClose(c);
      const b = c.data.link.backend;
      if (!b || b.data.closed) conns.delete(c.data.link);
    },
    error() {},
  };

  let listener: TCPSocketListener<End>;
  if (spec.fd !== undefined) {
    listener = (Bun.listen as unknown as (o: object) => TCPSocketListener<End>)({ fd: spec.fd, allowHalfOpen: true, socket: clientHandler });
  } else {
    const host = spec.host!;
    // ipv6Only is honoured by Bun.listen, though only its connect options declare it.
    const opts: TCPSocketListenOptions<End> & { ipv6Only?: boolean } = {
      hostname: host.ip.text,
      port: host.port,
      allowHalfOpen: true,
      // Go's "tcp6" listener: IPv6 only, so "::" and "0.0.0.0" on one port are two proxies.
      ipv6Only: host.ip.family === 6,
      socket: clientHandler,
    };
    listener = Bun.listen<End>(opts);
  }

  return {
    close() {
      listener.stop(true);
      for (const l of conns) {
        closeNow(l.client);
        if (l.backend) closeNow(l.backend);
      }
      conns.clear();
    },
    get connections() {
      return conns.size;
    },
  };
}
