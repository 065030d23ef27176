// Terminals on the runtime side: handing the pty master to a --console-socket, and, for `runc run`
// in the foreground, wiring the user's terminal (raw mode, restored on exit) to the container's pty.
import { TIOCGWINSZ, TIOCSWINSZ } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { out } from "../cli/io";

/** runc sends the master over the socket with SCM_RIGHTS, the message carrying the pty's name. */
export function sendConsole(socketPath: string, master: number): void {
  const sock = libc.connectUnix(socketPath);
  try {
    libc.sendFd(sock, master, "/dev/ptmx");
  } finally {
    libc.close(sock);
  }
}

function copyWinsize(from: number, to: number): void {
  const ws = new Uint8Array(8);
  try {
    libc.ioctl(from, TIOCGWINSZ, ws);
    libc.ioctl(to, TIOCSWINSZ, ws);
  } catch {
    // Not a terminal on our side: the container keeps its default size.
  }
}

/**
 * Copies stdin -> master and master -> stdout until the container side closes (EIO once every slave
 * fd is gone). Returns a function that restores the terminal.
 */
export function attachConsole(master: number): { done: Promise<void>; restore: () => void } {
  const stdinTty = libc.isatty(0);
  let saved: Uint8Array | undefined;
  if (stdinTty) {
    saved = libc.tcgetattr(0);
    const raw = Uint8Array.from(saved);
    libc.cfmakeraw(raw);
    libc.tcsetattr(0, raw);
    copyWinsize(0, master);
  }
  const onWinch = () => copyWinsize(0, master);
  process.on("SIGWINCH", onWinch);

  const input = (async () => {
    try {
      for await (const chunk of Bun.stdin.stream()) libc.writeFd(master, chunk);
    } catch {
      // The container went away while we were writing to it.
    }
  })();
  void input;

  const done = (async () => {
    const { createReadStream } = await import("node:fs");
    const reader = createReadStream("", { fd: master, autoClose: false, highWaterMark: 64 * 1024 });
    await new Promise<void>((resolve) => {
      reader.on("data", (d) => out(d as Buffer));
      reader.on("error", () => resolve());
      reader.on("end", () => resolve());
    });
  })();

  const restore = () => {
    process.off("SIGWINCH", onWinch);
    if (saved) {
      try {
        libc.tcsetattr(0, saved);
      } catch {}
    }
  };
  return { done, restore };
}
