// UDP forwarding (moby's udp_proxy): datagrams from each client address go to the container from a
// socket of their own, connected to the container, so the container's replies on that socket can
// only be for that client and go back to it from the listening socket. Flows expire after 90 s
// without traffic (udp-flows.ts).
//
// The listening socket is node:dgram's, not Bun.udpSocket: an IPv6 listener must be IPv6-only (Go's
// "udp6": "::" and "0.0.0.0" on one port are two proxies) and only node:dgram can ask for that;
// it also adopts dockerd's socket (-use-listen-fd). Per-flow sockets are Bun.udpSocket's connected
// ones: the kernel filters replies to the container's address for us.
import { createSocket, type Socket as DgramSocket, type RemoteInfo } from "node:dgram";
import type { udp } from "bun";
import { joinHostPort, type IP } from "./ip";
import { logf } from "./proxy-log";
import { errText } from "./sock-error";
import { FlowTable, UDP_CONNTRACK_TIMEOUT_MS } from "./udp-flows";

export interface UdpListenSpec {
  host?: { ip: IP; port: number };
  /** A bound UDP socket from dockerd (-use-listen-fd), of the family of `family`. */
  fd?: number;
  family: 4 | 6;
}

export interface UdpProxy {
  close(): void;
  readonly flows: number;
}

/** Datagrams held while a flow's socket is being made; more than this are dropped, as UDP may. */
const MAX_EARLY = 64;

interface Flow {
  client: RemoteInfo;
  sock: udp.ConnectedSocket<"buffer"> | null;
  early: Buffer[];
  closed: boolean;
}

function bindListener(spec: UdpListenSpec): Promise<DgramSocket> {
  return new Promise((resolve, reject) => {
    const s = spec.family === 6 ? createSocket({ type: "udp6", ipv6Only: true }) : createSocket({ type: "udp4" });
    const onError = (e: Error) => reject(e);
    s.once("error", onError);
    const bound = () => {
      s.off("error", onError);
      resolve(s);
    };
    if (spec.fd !== undefined) s.bind({ fd: spec.fd } as Parameters<DgramSocket["bind"]>[0], bound);
    else s.bind(spec.host!.port, spec.host!.ip.text, bound);
  });
}

export async function startUdpProxy(spec: UdpListenSpec, backend: { ip: IP; port: number }, opts: { idleMs?: number } = {}): Promise<UdpProxy> {
  const listener = await bindListener(spec);
  const backendText = `udp/${joinHostPort(backend.ip, backend.port)}`;
  const anyAddr = backend.ip.family === 6 ? "::" : "0.0.0.0";
  let stopped = false;

  const flows = new FlowTable<Flow>({
    idleMs: opts.idleMs ?? UDP_CONNTRACK_TIMEOUT_MS,
    close(f) {
      f.closed = true;
      f.sock?.close();
      f.sock = null;
      f.early = [];
    },
  });

  function reply(f: Flow, key: string, buf: Buffer): void {
    if (f.closed || stopped) return;
    flows.touch(key);
    listener.send(buf, f.client.port, f.client.address);
  }

  function openFlow(key: string, client: RemoteInfo, first: Buffer): void {
    const f: Flow = { client, sock: null, early: [first], closed: false };
    flows.add(key, f);
    Bun.udpSocket({
      hostname: anyAddr,
      port: 0,
      binaryType: "buffer",
      connect: { hostname: backend.ip.text, port: backend.port },
      socket: {
        data: (_s, buf) => reply(f, key, buf),
        // ECONNREFUSED (nothing listens in the container yet, an ICMP port unreachable came back):
        // moby ignores it and keeps the flow until it times out; so do we.
        error: () => {},
      },
    }).then(
      (sock) => {
        if (f.closed) {
          sock.close();
          return;
        }
        f.sock = sock;
        for (const d of f.early) sock.send(d);
        f.early = [];
      },
      (e) => {
        logf(`Can't proxy a datagram to ${backendText}: ${errText(e)}`);
        flows.delete(key);
      },
    );
  }

  listener.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
    const key = `${rinfo.address}|${rinfo.port}`;
    const f = flows.get(key);
    if (!f) openFlow(key, rinfo, msg);
    else if (f.sock) f.sock.send(msg);
    else if (f.early.length < MAX_EARLY) f.early.push(msg);
  });
  listener.on("error", (e: Error) => {
    if (!stopped) logf(`Stopping proxy on udp/${spec.host ? joinHostPort(spec.host.ip, spec.host.port) : `fd ${spec.fd}`} for ${backendText} (${errText(e)})`);
  });

  return {
    close() {
      stopped = true;
      listener.close();
      flows.clear();
    },
    get flows() {
      return flows.size;
    },
  };
}
