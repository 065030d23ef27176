// The parent <-> `runc init` channel: a SOCK_SEQPACKET socketpair, one JSON message per packet, with
// an optional fd riding along (SCM_RIGHTS) for the pty master.
import { AF_UNIX, SOCK_CLOEXEC } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import type { Spec } from "../oci/types";

const SOCK_SEQPACKET = 5;

export type Message =
  | { type: "bootstrap"; boot: Bootstrap }
  | { type: "hooks" }
  | { type: "hooks-done" }
  | { type: "pty" }
  | { type: "ready" }
  | { type: "error"; message: string };

export interface Bootstrap {
  id: string;
  spec: Spec;
  bundle: string;
  rootfs: string;
  fifo: string;
  cgroupDirs: string[];
  noPivot: boolean;
  /** The runtime wants the pty master sent back (terminal: true). */
  terminal: boolean;
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
