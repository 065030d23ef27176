// Per-stage timings for bench/runc-run.sh: with BUNKER_TIMINGS=<file>, each runtime process appends
// "<pid> <command> <stage> <ms since process start>" lines. Off unless asked for, so it costs nothing.
// The file stays open so `runc init` can still write after pivot_root hid the host's paths.
import { openSync, writeSync } from "node:fs";

const file = process.env.BUNKER_TIMINGS;
let command = "?";
let fd = -1;

export function timingCommand(name: string): void {
  command = name;
}

export function mark(stage: string): void {
  if (!file) return;
  try {
    if (fd < 0) fd = openSync(file, "a");
    writeSync(fd, `${process.pid} ${command} ${stage} ${performance.now().toFixed(2)}\n`);
  } catch {
    // Timings are advisory; never let them break a container start.
  }
}
