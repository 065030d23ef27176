// Go-compatible formatting of sizes and durations, as ctr prints them.

const BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/** containerd's progress.Bytes: "%02.1f %s" in powers of 1024 ("2.0 MiB", "0.0 B"). */
export function progressBytes(n: number): string {
  let size = n;
  let i = 0;
  while (size >= 1024 && i < BINARY_UNITS.length - 1) {
    size /= 1024;
    i++;
  }
  return `${size.toFixed(1).padStart(2, "0")} ${BINARY_UNITS[i]}`;
}

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, "μs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's time.ParseDuration, in milliseconds ("1h30m", "10s", "250ms", "0"). */
export function parseDuration(s: string): number {
  const orig = s;
  let neg = false;
  if (s[0] === "-" || s[0] === "+") {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw new Error(`time: invalid duration ${JSON.stringify(orig)}`);
  let ns = 0;
  while (s.length) {
    const m = /^(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)/.exec(s);
    if (!m || m[1] === "" || m[1] === ".") {
      if (/^\d*\.?\d*$/.test(s)) throw new Error(`time: missing unit in duration ${JSON.stringify(orig)}`);
      throw new Error(`time: invalid duration ${JSON.stringify(orig)}`);
    }
    ns += parseFloat(m[1]!) * UNIT_NS[m[2]!]!;
    s = s.slice(m[0].length);
  }
  return (neg ? -ns : ns) / 1e6;
}

/** Go's Duration.String for a duration in milliseconds ("24h0m0s", "1.5s", "100ms", "0s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const neg = ms < 0;
  let ns = Math.round(Math.abs(ms) * 1e6);
  let s: string;
  if (ns < 1e9) {
    if (ns < 1e3) s = `${ns}ns`;
    else if (ns < 1e6) s = `${trim(ns / 1e3)}µs`;
    else s = `${trim(ns / 1e6)}ms`;
  } else {
    const h = Math.floor(ns / 3600e9);
    ns -= h * 3600e9;
    const m = Math.floor(ns / 60e9);
    ns -= m * 60e9;
    const sec = `${trim(ns / 1e9)}s`;
    s = h ? `${h}h${m}m${sec}` : m ? `${m}m${sec}` : sec;
  }
  return (neg ? "-" : "") + s;
}

function trim(x: number): string {
  return String(Number(x.toFixed(9)));
}
