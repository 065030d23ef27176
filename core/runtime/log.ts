// runc's logging: logrus lines to --log (stderr by default) in text or json format. When the log goes
// to a file, fatal errors are also printed plainly on stderr, as runc does.
import { appendFileSync } from "node:fs";
import { err } from "../cli/io";

export type LogFormat = "text" | "json";
type Level = "debug" | "info" | "warning" | "error" | "fatal";

export class Logger {
  constructor(
    readonly file: string | undefined,
    readonly format: LogFormat = "text",
    readonly debugEnabled = false,
  ) {}

  private line(level: Level, msg: string): string {
    const time = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    if (this.format === "json") return JSON.stringify({ level, msg, time }) + "\n";
    return `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`;
  }

  private emit(level: Level, msg: string): void {
    const l = this.line(level, msg);
    try {
      if (this.file) appendFileSync(this.file, l);
      else err(l);
    } catch {
      err(l);
    }
  }

  debug(msg: string): void {
    if (this.debugEnabled) this.emit("debug", msg);
  }
  warn(msg: string): void {
    this.emit("warning", msg);
  }
  error(msg: string): void {
    this.emit("error", msg);
    if (this.file) err(msg + "\n");
  }
}
