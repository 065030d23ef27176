// Reading /proc for a process's state and identity.
import { readFileSync, readlinkSync } from "node:fs";

function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parentheses: split after the last ')'.
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The one-letter state (R, S, Z, ...) or undefined when the process is gone. */
export function processState(pid: number): string | undefined {
  return statFields(pid)?.[0];
}

/** Start time in clock ticks since boot (field 22); 0 when gone. */
export function processStartTime(pid: number): number {
  const f = statFields(pid);
  return f ? Number(f[19]) : 0;
}

export function parentPid(pid: number): number {
  const f = statFields(pid);
  return f ? Number(f[1]) : 0;
}

/** A /proc link's target (a namespace's identity), or "" when it can't be read. */
export function readlinkOr(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}
