// `runc events`: the container's cgroup statistics as JSON ({"type":"stats","id":...,"data":{...}}),
// once with --stats, or every --interval as a stream that also reports OOM kills ({"type":"oom"})
// and ends when the container stops. OOM kills come from cgroup v1's memory.oom_control through an
// eventfd registered in cgroup.event_control, or from cgroup v2's memory.events counters.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EFD_CLOEXEC, EFD_NONBLOCK, eventfd } from "../../ffi/bpf";
import { O } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { goJSON, readStats, resolveDirs, statsData } from "./cgroups/resources";
import { StateDir } from "./state";

export { EVENTS_ABOUT, EVENTS_FLAGS, EVENTS_USAGE } from "./resource-flags";

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration ("5s", "1m30s", "250ms", "1.5h"), in milliseconds. */
export function parseDuration(s: string, flag = "interval"): number {
  const bad = () => new Error(`invalid value ${JSON.stringify(s)} for flag -${flag}: parse error`);
  let rest = s;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (!rest) throw bad();
  let total = 0;
  while (rest) {
    const m = /^(\d*(?:\.\d*)?)([a-zµμ]+)/.exec(rest);
    if (!m || m[1] === "" || m[1] === ".") throw bad();
    const unit = UNITS[m[2]!];
    if (unit === undefined) throw bad();
    total += Number(m[1]) * unit;
    rest = rest.slice(m[0].length);
  }
  return sign * total;
}

export interface EventsOptions {
  /** Print one stats event and exit. */
  stats?: boolean;
  /** Interval between stats events when streaming (runc's default: 5s). */
  intervalMs?: number;
}

/** One stats event line (with its newline). */
export function statsEvent(id: string, dirs: string[]): string {
  return goJSON({ type: "stats", id, data: statsData(readStats(dirs)) }) + "\n";
}

interface OomWatch {
  /** Number of OOM kills since the last call; -1 when the cgroup is gone. */
  poll(): number;
  close(): void;
}

/** cgroup v1: an eventfd signalled on every OOM in the memory cgroup (and when it is removed). */
function watchOomV1(dir: string): OomWatch {
  const ofd = libc.open(join(dir, "memory.oom_control"), O.RDONLY);
  let efd = -1;
  try {
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    writeFileSync(join(dir, "cgroup.event_control"), `${efd} ${ofd}`);
  } catch (e) {
    if (efd >= 0) libc.close(efd);
    libc.close(ofd);
    throw e;
  }
  const buf = new Uint8Array(8);
  return {
    poll() {
      try {
        if (libc.readFd(efd, buf) !== 8) return 0;
      } catch (e: any) {
        if (e?.code === "EAGAIN") return 0;
        throw e;
      }
      // Removing the cgroup signals the eventfd too.
      if (!existsSync(join(dir, "cgroup.event_control"))) return -1;
      return 1;
    },
    close() {
      libc.close(efd);
      libc.close(ofd);
    },
  };
}

function eventCount(path: string, key: string): number | undefined {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, "m").exec(readFileSync(path, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return undefined;
  }
}

/** cgroup v2: memory.events' oom_kill counter; cgroup.events' populated 0 ends the watch. */
function watchOomV2(dir: string): OomWatch {
  const file = join(dir, "memory.events");
  let seen = eventCount(file, "oom_kill") ?? 0;
  return {
    poll() {
      const n = eventCount(file, "oom_kill");
      if (n === undefined) return existsSync(dir) ? 0 : -1;
      const d = n - seen;
      seen = n;
      return d > 0 ? d : 0;
    },
    close() {},
  };
}

function watchOom(dirs: string[]): OomWatch | undefined {
  const set = resolveDirs(dirs);
  try {
    if (set.pureV2) return set.v2 && existsSync(join(set.v2, "memory.events")) ? watchOomV2(set.v2) : undefined;
    const mem = set.v1.get("memory");
    return mem && existsSync(join(mem, "memory.oom_control")) ? watchOomV1(mem) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `runc events [--stats] [--interval D] <id>`. `write` gets whole lines (newline included);
 * `logError` gets the errors runc logs and goes on after (a stats read failing mid-stream).
 * Returns the exit code.
 */
export async function eventsMain(sd: StateDir, id: string, opts: EventsOptions, write: (line: string) => void, logError: (msg: string) => void = () => {}): Promise<number> {
  const intervalMs = opts.intervalMs ?? 5000;
  if (!(intervalMs > 0)) throw new Error("duration interval must be greater than 0");
  const st = sd.load(id);
  if (sd.status(st) === "stopped") throw new Error(`container with id ${id} is not running`);
  if (opts.stats) {
    write(statsEvent(id, st.cgroupPaths));
    return 0;
  }
  const oom = watchOom(st.cgroupPaths);
  const step = Math.min(100, intervalMs);
  let next = Date.now() + intervalMs;
  try {
    for (;;) {
      await Bun.sleep(Math.max(1, Math.min(step, next - Date.now())));
      const n = oom?.poll() ?? 0;
      for (let i = 0; i < n; i++) write(goJSON({ type: "oom", id }) + "\n");
      if (n < 0 || sd.status(st) === "stopped") break;
      if (Date.now() >= next) {
        next += intervalMs;
        if (next < Date.now()) next = Date.now() + intervalMs;
        try {
          write(statsEvent(id, st.cgroupPaths));
        } catch (e: any) {
          logError(e?.message ?? String(e));
        }
      }
    }
  } finally {
    oom?.close();
  }
  return 0;
}
