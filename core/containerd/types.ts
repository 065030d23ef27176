// The plain-object shapes of containerd's shared API types (as grpc.ts decodes them: camelCase
// fields, int64 as decimal strings), and time conversions between google.protobuf.Timestamp,
// Go's RFC 3339 text and JavaScript.

/** int64/uint64 fields: decoded as decimal strings; numbers, strings and bigints are accepted when encoding. */
export type Int64 = string;
export type Int64In = string | number | bigint;

export interface Timestamp {
  seconds: Int64 | number;
  nanos: number;
}

export interface Any {
  typeUrl: string;
  value: Uint8Array;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: Int64;
  annotations: Record<string, string>;
}

export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface Platform {
  os: string;
  architecture: string;
  variant: string;
}

export interface FieldMask {
  paths: string[];
}

export type Empty = Record<string, never>;

// ---------------------------------------------------------------------------------------------
// Time: `Time` is what the code passes around (seconds + nanoseconds since the epoch, UTC).

export interface Time {
  seconds: number;
  nanos: number;
}

/** The wall clock, to the microsecond. */
export function now(): Time {
  const ms = performance.timeOrigin + performance.now();
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.max(0, Math.round((ms - seconds * 1000) * 1000) * 1000));
  return { seconds, nanos };
}

export function fromDate(d: Date): Time {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

export function toDate(t: Time): Date {
  return new Date(t.seconds * 1000 + Math.floor(t.nanos / 1_000_000));
}

export function toTimestamp(t: Time): Timestamp {
  return { seconds: String(t.seconds), nanos: t.nanos };
}

export function fromTimestamp(ts: Timestamp | null | undefined): Time {
  if (!ts) return { seconds: 0, nanos: 0 };
  return { seconds: Number(ts.seconds), nanos: ts.nanos ?? 0 };
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

function zone(offsetMin: number): string {
  if (offsetMin === 0) return "Z";
  const sign = offsetMin > 0 ? "+" : "-";
  const a = Math.abs(offsetMin);
  return `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/**
 * Go's time.Format with RFC3339Nano ("2006-01-02T15:04:05.999999999Z07:00": trailing zeros of the
 * fraction dropped) or RFC3339 (`fraction: false`), in UTC or in the local zone.
 */
export function formatRFC3339(t: Time, opts: { fraction?: boolean; local?: boolean } = {}): string {
  const ms = t.seconds * 1000;
  const offsetMin = opts.local ? -new Date(ms).getTimezoneOffset() : 0;
  const d = new Date(ms + offsetMin * 60_000);
  let s = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  if (opts.fraction !== false && t.nanos > 0) s += "." + pad(t.nanos, 9).replace(/0+$/, "");
  return s + zone(offsetMin);
}

/** Parse RFC 3339 text (any fraction, Z or ±hh:mm) back to a Time. */
export function parseRFC3339(s: string): Time {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$/.exec(s);
  if (!m) throw new Error(`invalid RFC 3339 time ${JSON.stringify(s)}`);
  const [, y, mo, d, h, mi, se, frac, z] = m;
  let seconds = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +se!) / 1000;
  if (z !== "Z" && z !== "z") {
    const sign = z!.startsWith("-") ? -1 : 1;
    seconds -= sign * (+z!.slice(1, 3) * 3600 + +z!.slice(4, 6) * 60);
  }
  return { seconds, nanos: frac ? +frac.padEnd(9, "0") : 0 };
}

export function compareTime(a: Time, b: Time): number {
  return a.seconds - b.seconds || a.nanos - b.nanos;
}
