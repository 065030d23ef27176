// Diagnostics on stderr in Go's log package format ("2006/01/02 15:04:05 message"), which is what
// dockerd's users see from the real proxy in the daemon's log.
import { err } from "../cli/io";

const pad = (n: number) => String(n).padStart(2, "0");

export function logf(message: string): void {
  const d = new Date();
  const stamp = `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  err(`${stamp} ${message.endsWith("\n") ? message : message + "\n"}`);
}

/** A socket error as Go words the errno ("connection refused"), else Bun's message. */
export function errText(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && GO_ERRNO_TEXT[code]) return GO_ERRNO_TEXT[code]!;
  return e instanceof Error ? e.message : String(e);
}

const GO_ERRNO_TEXT: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "cannot assign requested address",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EAFNOSUPPORT: "address family not supported by protocol",
  EPROTONOSUPPORT: "protocol not supported",
  EINVAL: "invalid argument",
  EBADF: "bad file descriptor",
  ENOTSOCK: "socket operation on non-socket",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by peer",
  ENETUNREACH: "network is unreachable",
  EHOSTUNREACH: "no route to host",
  ETIMEDOUT: "connection timed out",
  EMFILE: "too many open files",
  ENFILE: "too many open files in system",
};
