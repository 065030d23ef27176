// The status pipe dockerd gives its userland proxy as fd 3. dockerd reads two bytes: "0\n" means
// the proxy listens; anything else means it failed, and dockerd then reads to EOF for the reason.
// So a failure is "1\n<message>" in one write followed by closing the pipe (or exiting).
import { closeSync, writeSync } from "node:fs";
import { PARENT_PIPE_FD } from "./proxy-config";

let done = false;

function send(bytes: string): void {
  if (done) return;
  done = true;
  try {
    // One write: a reader that takes what one read(2) returns must see the whole status.
    writeSync(PARENT_PIPE_FD, bytes);
  } catch {
    // No pipe (started by hand from a shell), or the parent is gone: nothing to tell.
  }
  try {
    closeSync(PARENT_PIPE_FD);
  } catch {}
}

export function signalReady(): void {
  send("0\n");
}

export function signalFailed(message: string): void {
  send(`1\n${message}`);
}
