// Per-stage timings for bench/runc-run.sh: with BUNKER_TIMINGS=<file>, each runtime process appends
// "<pid> <command> <stage> <ms since process start>" lines. Off unless asked for, so it costs nothing.
import { appendFileSync } from "node:fs";

const file = process.env.BUNKER_TIMINGS;
let command = "?";

export function timingCommand(name: string): void {
  command = name;
}

export function mark(stage: string): void {
  if (!file) return;
  try {
    appendFileSync(file, `${process.pid} ${command} ${stage} ${performance.now().toFixed(2)}\n`);
  } catch {
    // Timings are advisory; never let them break a container start.
  }
}
