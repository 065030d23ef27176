// Logs in logrus' text format, as containerd and ctr write them:
//   time="2026-11-23T12:11:19.493720559Z" level=info msg="starting containerd" revision=... version=...
// Fields follow msg in key order; a value is quoted (Go %q) unless it is made only of
// [A-Za-z0-9-._/@^+], as logrus does.
import { err } from "../cli/io";
import { formatRFC3339, now } from "./types";

export const LEVELS = ["trace", "debug", "info", "warning", "error", "fatal", "panic"] as const;
export type Level = (typeof LEVELS)[number];

/** containerd's --log-level values ("warn" is logrus' alias of "warning"). */
export function parseLevel(s: string): Level {
  const l = s.toLowerCase();
  if (l === "warn") return "warning";
  if ((LEVELS as readonly string[]).includes(l)) return l as Level;
  throw new Error(`not a valid logrus Level: ${JSON.stringify(s)}`);
}

export type Fields = Record<string, unknown>;

function needsQuoting(s: string): boolean {
  if (s === "") return false;
  return !/^[A-Za-z0-9\-._/@^+]+$/.test(s);
}

function fmtValue(v: unknown): string {
  let s: string;
  if (v instanceof Error) s = v.message;
  else if (typeof v === "string") s = v;
  else if (v === undefined || v === null) s = "<nil>";
  else if (typeof v === "object") s = JSON.stringify(v);
  else s = String(v);
  return needsQuoting(s) ? JSON.stringify(s) : s;
}

export interface LoggerOptions {
  level?: Level;
  /** "nano": RFC3339Nano (containerd); "seconds": RFC3339 (ctr). */
  timestamps?: "nano" | "seconds";
  write?: (s: string) => void;
}

export class Logger {
  level: Level;
  private readonly timestamps: "nano" | "seconds";
  private readonly write: (s: string) => void;

  constructor(opts: LoggerOptions = {}, private readonly fields: Fields = {}) {
    this.level = opts.level ?? "info";
    this.timestamps = opts.timestamps ?? "nano";
    this.write = opts.write ?? err;
  }

  /** A logger adding `fields` to every entry (sharing this one's level). */
  with(fields: Fields): Logger {
    const child = Object.create(this) as Logger;
    (child as any).fields = { ...this.fields, ...fields };
    return child;
  }

  enabled(level: Level): boolean {
    return LEVELS.indexOf(level) >= LEVELS.indexOf(this.level);
  }

  log(level: Level, msg: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    const all = { ...this.fields, ...fields };
    const time = formatRFC3339(now(), { fraction: this.timestamps === "nano", local: true });
    let line = `time=${JSON.stringify(time)} level=${level} msg=${fmtValue(msg)}`;
    for (const k of Object.keys(all).sort()) line += ` ${k}=${fmtValue(all[k])}`;
    this.write(line + "\n");
  }

  trace(msg: string, f?: Fields) { this.log("trace", msg, f); }
  debug(msg: string, f?: Fields) { this.log("debug", msg, f); }
  info(msg: string, f?: Fields) { this.log("info", msg, f); }
  warn(msg: string, f?: Fields) { this.log("warning", msg, f); }
  error(msg: string, f?: Fields) { this.log("error", msg, f); }
}
