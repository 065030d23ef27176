// Socket call failures worded as Go words them, so our status-pipe and log texts read like moby's
// proxy's: "bind: address already in use", "connect: connection refused".
import { ERRNO_NAMES, errnoMessage } from "../../ffi/errno";

/** Go's texts for the socket errnos ffi/errno.ts has no description of. */
const MORE: Record<string, string> = {
  EPROTONOSUPPORT: "protocol not supported",
  EAFNOSUPPORT: "address family not supported by protocol",
  ENETUNREACH: "network is unreachable",
  ECONNABORTED: "software caused connection abort",
  ENOBUFS: "no buffer space available",
};
const NAMES: Record<number, string> = { ...ERRNO_NAMES, 93: "EPROTONOSUPPORT", 97: "EAFNOSUPPORT", 101: "ENETUNREACH", 103: "ECONNABORTED", 105: "ENOBUFS" };

/** Go's text for an errno, by number (sys.ts results) or by name (Bun's error codes). */
export function goErrno(e: number | string): string {
  const name = typeof e === "number" ? (NAMES[e] ?? `errno ${e}`) : e;
  const msg = errnoMessage(name);
  return msg !== name ? msg : (MORE[name] ?? name);
}

/** A Bun/Node socket error as Go words its errno ("connection refused"), else its message. */
export function errText(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) {
    const t = goErrno(code);
    if (t !== code) return t;
  }
  return e instanceof Error ? e.message : String(e);
}

/** A failed socket call: message "<call>: <Go's errno text>". */
export class SockError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${goErrno(errno)}`);
  }
}
