// The UDP proxy's connection tracking: one flow per client address, dropped after a quiet spell.
// moby keeps a flow for 90 s (UDPConnTrackTimeout) after the last datagram; we count datagrams in
// either direction as activity, as the kernel's own conntrack does.
//
// A single coarse sweep timer instead of one timer per flow: a busy flow then costs one Date.now()
// per datagram, and expiry is late by at most one sweep period.

export const UDP_CONNTRACK_TIMEOUT_MS = 90_000;

export interface FlowTableOptions<F> {
  idleMs: number;
  /** Called once for each flow that expires or is cleared. */
  close(flow: F): void;
  now?: () => number;
}

interface Slot<F> {
  flow: F;
  last: number;
}

export class FlowTable<F> {
  private readonly slots = new Map<string, Slot<F>>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: FlowTableOptions<F>) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.slots.size;
  }

  get(key: string): F | undefined {
    const s = this.slots.get(key);
    if (!s) return undefined;
    s.last = this.now();
    return s.flow;
  }

  /** Mark a flow active without looking it up again (replies from the container). */
  touch(key: string): void {
    const s = this.slots.get(key);
    if (s) s.last = this.now();
  }

  add(key: string, flow: F): void {
    this.slots.set(key, { flow, last: this.now() });
    if (!this.timer) {
      const period = Math.max(10, Math.min(1000, Math.floor(this.opts.idleMs / 4)));
      this.timer = setInterval(() => this.sweep(), period);
    }
  }

  delete(key: string): void {
    const s = this.slots.get(key);
    if (!s) return;
    this.slots.delete(key);
    this.opts.close(s.flow);
    this.stopTimerIfIdle();
  }

  /** Expire flows quiet for idleMs or longer. */
  sweep(): void {
    const limit = this.now() - this.opts.idleMs;
    for (const [key, s] of this.slots) {
      if (s.last <= limit) {
        this.slots.delete(key);
        this.opts.close(s.flow);
      }
    }
    this.stopTimerIfIdle();
  }

  clear(): void {
    for (const s of this.slots.values()) this.opts.close(s.flow);
    this.slots.clear();
    this.stopTimerIfIdle();
  }

  private stopTimerIfIdle(): void {
    if (this.slots.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
