// The parent <-> `runc init` channel: a SOCK_SEQPACKET socketpair, one JSON message per packet, with
// an optional fd riding along (SCM_RIGHTS) for the pty master.
import { AF_UNIX, SOCK_CLOEXEC } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import type { Process, Spec } from "../oci/types";

const SOCK_SEQPACKET = 5;

export type Message =
  | { type: "bootstrap"; boot: Bootstrap }
  | { type: "hooks" }
  | { type: "hooks-done" }
  | { type: "pty" }
  | { type: "ready" }
  | { type: "go" }
  | { type: "error"; message: string };

export type Bootstrap = InitBootstrap | ExecBootstrap;

interface Common {
  id: string;
  /** The container's config (an exec'd process gets its seccomp filter too). */
  spec: Spec;
  /** The runtime wants the pty master sent back (terminal: true). */
  terminal: boolean;
  /** fds 3..3+extraFds-1 (LISTEN_FDS and --preserve-fds) stay open across execve. */
  extraFds: number;
  /** Extra environment: LISTEN_FDS/LISTEN_PID when fds are passed. */
  env: string[];
  /** --no-new-keyring: stay in the caller's session keyring. */
  noNewKeyring?: boolean;
  /** linux.seccomp compiled by the parent (base64 of the BPF program) with its flags. */
  seccomp?: { filter: string; flags: string[] };
}

/** The container's first process (`runc create`). */
export interface InitBootstrap extends Common {
  kind: "init";
  bundle: string;
  rootfs: string;
  /** The exec fifo, as an O_PATH fd the runtime passed: a user namespace's root can't reach the
   *  state dir (0700, the host's root), as runc passes its fifo too. */
  fifoFd: number;
  cgroupDirs: string[];
  noPivot: boolean;
  /** process.args[0] is our own binary bind-mounted in (dockerd's --init): be the init ourselves. */
  tini: boolean;
}

/** Another process in a running container (`runc exec`). */
export interface ExecBootstrap extends Common {
  kind: "exec";
  process: Process;
  /** Host pid of the container's init: its namespaces are the ones to join. */
  initPid: number;
}

export function channelPair(): [number, number] {
  return libc.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
}

export class Channel {
  constructor(readonly fd: number) {}

  send(m: Message, fd?: number): void {
    const text = JSON.stringify(m);
    if (fd !== undefined) libc.sendFd(this.fd, fd, text);
    else libc.writeFd(this.fd, text);
  }

  /** Blocks for the next message; undefined when the other end is gone. */
  recv(): { msg: Message; fd: number } | undefined {
    const { fd, payload } = libc.recvFd(this.fd);
    if (!payload) return undefined;
    return { msg: JSON.parse(payload) as Message, fd };
  }

  close(): void {
    libc.close(this.fd);
  }
}
