// Output by plain write(2) on fds 1 and 2. Touching process.stdout/stderr builds Node's stream
// machinery, which costs a short-lived process like `runc start` more than everything else it does.
import { writeSync } from "node:fs";

function writeAll(fd: number, s: string | Uint8Array): void {
  const buf = typeof s === "string" ? Buffer.from(s) : s;
  let off = 0;
  while (off < buf.byteLength) {
    try {
      off += writeSync(fd, buf, off);
    } catch (e: any) {
      if (e.code === "EAGAIN") continue;
      if (e.code === "EPIPE") return;
      throw e;
    }
  }
}

export const out = (s: string | Uint8Array) => writeAll(1, s);
export const err = (s: string | Uint8Array) => writeAll(2, s);
