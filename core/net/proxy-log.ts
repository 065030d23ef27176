// Diagnostics on stderr in Go's log package format ("2006/01/02 15:04:05 message"), which is what
// dockerd's users see from the real proxy in the daemon's log.
import { err } from "../cli/io";

const pad = (n: number) => String(n).padStart(2, "0");

export function logf(message: string): void {
  const d = new Date();
  const stamp = `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  err(`${stamp} ${message.endsWith("\n") ? message : message + "\n"}`);
}
