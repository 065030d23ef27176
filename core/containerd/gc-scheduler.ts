// The "io.containerd.gc.v1 scheduler" plugin, a simple version of containerd 1.6's
// gc/scheduler: collections run
//   - once at startup (after startup_delay), removing every orphan a crash left on disk
//     (anything unrecorded older than the daemon);
//   - after deletions: once deletion_threshold deletions were seen (0: any deletion), after
//     schedule_delay; after mutation_threshold mutations;
//   (an expired lease, containerd.io/gc.expire passed, goes at the next of these collections,
//   not when it expires: containerd 1.6 schedules nothing for expiries, and the real ctr lists
//   an expired lease until some deletion triggers a collection);
//   - on demand (ScheduleAndWait: images/leases Delete with sync).
// pause_threshold bounds the share of time spent collecting: as in containerd, the next scheduled
// (not on-demand) collection waits avg / pause_threshold - avg after the previous one, avg being
// the mean time collections held everything else up (GCStats.metaMs, containerd's MetaD; not the
// wall time of the whole collection, whose asynchronous removal of backing snapshots interleaves
// with other requests and, on a busy machine, would push the next collection seconds away).
import { type CollectOptions, GarbageCollector, type GCStats } from "./gc";

export interface SchedulerConfig {
  pauseThreshold: number;
  deletionThreshold: number;
  mutationThreshold: number;
  scheduleDelayMs: number;
  startupDelayMs: number;
}

/** containerd 1.6's defaults. */
export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = { pauseThreshold: 0.02, deletionThreshold: 0, mutationThreshold: 100, scheduleDelayMs: 0, startupDelayMs: 100 };

/** "100ms", "1s", "1m30s", "0" or a number of nanoseconds (TOML duration strings, Go style). */
export function parseDurationMs(v: unknown, dflt: number): number {
  if (typeof v === "number") return v / 1e6;
  if (typeof v !== "string" || !v.trim()) return dflt;
  const s = v.trim();
  if (s === "0") return 0;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = s;
  const re = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/;
  while (rest) {
    const m = re.exec(rest);
    if (!m) return dflt;
    total += Number(m[1]) * unit[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

export function schedulerConfig(pc: Record<string, unknown>): SchedulerConfig {
  const num = (k: string, d: number) => (typeof pc[k] === "number" ? (pc[k] as number) : typeof pc[k] === "string" && pc[k] !== "" && !isNaN(Number(pc[k])) ? Number(pc[k]) : d);
  const D = DEFAULT_SCHEDULER_CONFIG;
  return {
    pauseThreshold: num("pause_threshold", D.pauseThreshold),
    deletionThreshold: num("deletion_threshold", D.deletionThreshold),
    mutationThreshold: num("mutation_threshold", D.mutationThreshold),
    scheduleDelayMs: parseDurationMs(pc["schedule_delay"], D.scheduleDelayMs),
    startupDelayMs: parseDurationMs(pc["startup_delay"], D.startupDelayMs),
  };
}

export class GCScheduler {
  private deletions = 0;
  private mutations = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Infinity;
  private lastEnd = 0;
  private readonly created = Date.now();
  /** containerd's gcTime and collections: the mean pause paces the scheduled collections. */
  private pauseSum = 0;
  private collections = 0;
  private stopped = false;
  /** Stats of the last collection (tests, debugging). */
  last?: GCStats;

  constructor(
    readonly gc: GarbageCollector,
    readonly cfg: SchedulerConfig = DEFAULT_SCHEDULER_CONFIG,
  ) {}

  start(): void {
    // Everything on disk older than this daemon and not recorded is a crash's orphan.
    this.schedule(this.cfg.startupDelayMs, { orphanBefore: this.created });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Something was deleted (an image, a lease, content, a snapshot). */
  deleted(): void {
    this.deletions++;
    if (this.cfg.deletionThreshold <= 0 || this.deletions >= this.cfg.deletionThreshold) this.schedule(this.cfg.scheduleDelayMs);
  }

  /** Something was written. */
  mutated(): void {
    this.mutations++;
    if (this.cfg.mutationThreshold > 0 && this.mutations >= this.cfg.mutationThreshold) this.schedule(this.cfg.scheduleDelayMs);
  }

  /** Collect now and wait for it (Delete with sync). */
  async scheduleAndWait(): Promise<GCStats> {
    return this.runNow({});
  }

  private schedule(delayMs: number, opts: CollectOptions = {}): void {
    if (this.stopped) return;
    const at = Math.max(Date.now() + delayMs, this.lastEnd + this.interval());
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.runNow(opts).catch(() => {});
    }, Math.max(0, at - Date.now()));
  }

  private async runNow(opts: CollectOptions): Promise<GCStats> {
    this.deletions = 0;
    this.mutations = 0;
    const st = await this.gc.collect(opts);
    this.last = st;
    this.lastEnd = Date.now();
    this.pauseSum += st.metaMs;
    this.collections++;
    return st;
  }

  /**
   * pause_threshold: don't spend more than that share of the time collecting (containerd's
   * interval = avg/threshold - avg; bounded here at 5 s).
   */
  interval(): number {
    const pt = this.cfg.pauseThreshold;
    if (pt <= 0 || !this.collections) return 0;
    const avg = this.pauseSum / this.collections;
    return Math.min(Math.max(0, avg / pt - avg), 5_000);
  }
}
