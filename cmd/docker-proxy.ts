// docker-proxy: dockerd's userland proxy (moby cmd/docker-proxy). Listens on the host address,
// forwards to the container address, reports "0\n" or "1\n<error>" on fd 3, and exits 0 on SIGINT
// (how dockerd stops it) or SIGTERM (its parent-death signal, should dockerd die).
import { UsageError } from "../core/cli/flags";
import { err, out } from "../core/cli/io";
import { joinHostPort } from "../core/net/ip";
import { LISTEN_SOCK_FD, parseProxyArgs, usage, type ProxyConfig } from "../core/net/proxy-config";
import { errText, SockError } from "../core/net/sock-error";
import { isSocketFd } from "../core/net/fds";
import { claimStatusPipe, signalFailed, signalReady } from "../core/net/readiness";

const PROG = "docker-proxy";
const VERSION_LINE = "docker-proxy (commit bunker) version 0.1.0\n";

interface Running {
  close(): void;
}

/** A failure to report on the status pipe, worded as moby's proxy words it. */
class StartError extends Error {}

function listenError(cfg: ProxyConfig, e: unknown): StartError {
  if (e instanceof StartError) return e;
  if (cfg.useListenFd) return new StartError(e instanceof Error ? e.message : String(e));
  const fam = cfg.hostIP.family === 6 ? "6" : "4";
  const addr = joinHostPort(cfg.hostIP, cfg.hostPort);
  // SockError already names the call ("bind: ..."); Bun's socket errors only carry the errno.
  const why = e instanceof SockError ? e.message : `bind: ${errText(e)}`;
  return new StartError(`failed to listen on ${addr}: listen ${cfg.proto}${fam} ${addr}: ${why}`);
}

function checkPort(name: string, port: number): void {
  if (port < 0 || port > 65535) throw new StartError(`invalid ${name} ${port}`);
}

async function start(cfg: ProxyConfig): Promise<Running> {
  const backend = { ip: cfg.containerIP, port: cfg.containerPort };
  switch (cfg.proto) {
    case "tcp":
    case "udp":
      break;
    case "sctp":
      // Bun has no SCTP sockets. Rather than half an implementation, say so: dockerd reports it as
      // the reason publishing the port failed.
      throw new StartError(`sctp is not supported by bunker's docker-proxy`);
    default:
      throw new StartError(`unsupported protocol ${cfg.proto}`);
  }
  if (!cfg.useListenFd) checkPort("host port", cfg.hostPort);
  checkPort("container port", cfg.containerPort);
  // Only a socket someone handed us: without one, fd 4 may be the runtime's own (its eventfd).
  if (cfg.useListenFd && !isSocketFd(LISTEN_SOCK_FD)) throw new StartError(`-use-listen-fd: no listening socket on fd ${LISTEN_SOCK_FD}`);
  const host = cfg.useListenFd ? undefined : { ip: cfg.hostIP, port: cfg.hostPort };
  const fd = cfg.useListenFd ? LISTEN_SOCK_FD : undefined;
  if (cfg.proto === "tcp") {
    // splice(2) through bun:ffi by default (tcp-splice.ts says why). Bun's own sockets copy the
    // bytes through JavaScript instead: used when BUNKER_PROXY_ENGINE=sockets (for comparison) or
    // when libc can't be bound (a libc other than glibc's libc.so.6).
    let splice: typeof import("../core/net/tcp-splice") | undefined;
    if (process.env.BUNKER_PROXY_ENGINE !== "sockets") {
      try {
        splice = await import("../core/net/tcp-splice");
      } catch {}
    }
    try {
      if (splice) return splice.startSpliceProxy({ host, fd }, backend);
      return (await import("../core/net/tcp-proxy")).startTcpProxy({ host, fd }, backend);
    } catch (e) {
      throw listenError(cfg, e);
    }
  }
  const { startUdpProxy } = await import("../core/net/udp-proxy");
  try {
    return await startUdpProxy({ host, fd, family: cfg.hostIP.family }, backend);
  } catch (e) {
    throw listenError(cfg, e);
  }
}

export async function main(argv: string[]): Promise<number> {
  claimStatusPipe();
  let parsed;
  try {
    parsed = parseProxyArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    // Go's flag.ExitOnError: the message, the usage, exit 2 (nothing on the status pipe).
    err(`${e.message}\n${usage(PROG)}`);
    return 2;
  }
  if (parsed.kind === "help") {
    err(usage(PROG));
    return 0;
  }
  if (parsed.kind === "version") {
    out(VERSION_LINE);
    return 0;
  }

  // Handlers first, so a stop request that arrives while we start up still ends in exit 0.
  let proxy: Running | undefined;
  const stop = () => {
    proxy?.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  try {
    proxy = await start(parsed.config);
  } catch (e) {
    signalFailed(e instanceof StartError ? e.message : errText(e));
    return 1;
  }
  signalReady();
  // Serve until a signal: the listener keeps the event loop alive, this promise never settles.
  return new Promise<number>(() => {});
}
