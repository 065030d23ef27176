// The status pipe dockerd gives its userland proxy as fd 3. dockerd reads two bytes: "0\n" means
// the proxy listens; anything else means it failed, and dockerd then reads to EOF for the reason.
// So a failure is "1\n<message>" in one write followed by closing the pipe (or exiting).
//
// Without a parent's pipe, fd 3 is Bun's own epoll fd (fds.ts): then nothing is written anywhere.
import { closeSync, writeSync } from "node:fs";
import { isInheritedFd } from "./fds";
import { PARENT_PIPE_FD } from "./proxy-config";

let statusFd: number | null | undefined;

/** Decide once, as early as possible, whether fd 3 is the parent's status pipe. */
export function claimStatusPipe(): void {
  if (statusFd === undefined) statusFd = isInheritedFd(PARENT_PIPE_FD) ? PARENT_PIPE_FD : null;
}

function send(bytes: string): void {
  claimStatusPipe();
  const fd = statusFd;
  statusFd = null; // once
  if (fd == null) return;
  try {
    // One write: a reader that takes what one read(2) returns must see the whole status.
    writeSync(fd, bytes);
  } catch {
    // The parent is gone: nothing to tell.
  }
  try {
    closeSync(fd);
  } catch {}
}

export function signalReady(): void {
  send("0\n");
}

export function signalFailed(message: string): void {
  send(`1\n${message}`);
}
