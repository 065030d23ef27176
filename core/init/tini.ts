// A tini-compatible init (tini 0.19's command line, messages and exit codes): spawn the program in a
// process group of its own, forward signals to it, reap every zombie, exit with the program's status.
import { basename } from "node:path";
import { PR, SIGNALS } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { posixSpawn } from "../../ffi/spawn";
import { err, out } from "../cli/io";

export const TINI_VERSION = "tini version 0.19.0 - git.bunker";

export interface TiniOptions {
  subreaper: boolean;
  pdeathSignal: number;
  verbosity: number;
  warnOnReap: boolean;
  killProcessGroup: boolean;
  /** Exit codes remapped to 0 (-e). */
  expect: Set<number>;
  respawn: "never" | "always" | "failure";
  program: string[];
}

export type Parsed = { run: TiniOptions } | { exit: number };

// tini keeps these for itself; everything else that can be caught goes to the child.
const NOT_FORWARDED = new Set(["SIGFPE", "SIGILL", "SIGSEGV", "SIGBUS", "SIGABRT", "SIGTRAP", "SIGSYS", "SIGTTIN", "SIGTTOU", "SIGCHLD", "SIGKILL", "SIGSTOP", "SIGIOT", "SIGPOLL"]);

function usage(name: string): string {
  const n = basename(name);
  return `${n} (${TINI_VERSION})
Usage: ${n} [OPTIONS] PROGRAM -- [ARGS] | --version

Execute a program under the supervision of a valid init process (${n})

Command line options:

  --version: Show version and exit.
  -h: Show this help message and exit.
  -s: Register as a process subreaper (requires Linux >= 3.4).
  -p SIGNAL: Trigger SIGNAL when parent dies, e.g. "-p SIGKILL".
  -v: Generate more verbose output. Repeat up to 3 times.
  -w: Print a warning when processes are getting reaped.
  -g: Send signals to the child's process group.
  -e EXIT_CODE: Remap EXIT_CODE (from 0 to 255) to 0 (can be repeated).
  -R {A|F}: Respawn [A]lways or On-[F]ailure.
  -l: Show license and exit.

Environment variables:

  TINI_SUBREAPER: Register as a process subreaper (requires Linux >= 3.4).
  TINI_VERBOSITY: Set the verbosity level (default: 1).
  TINI_KILL_PROCESS_GROUP: Send signals to the child's process group.

`;
}

const LICENSE = `The MIT License (MIT)

bunker's docker-init is a compatible reimplementation of tini (Copyright (c) 2015 Thomas Orozco).
Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
`;

export class TiniLog {
  constructor(public verbosity: number) {}
  private line(tag: string, msg: string): string {
    return `[${tag} tini (${libc.getpid()})] ${msg}\n`;
  }
  fatal(msg: string): void {
    err(this.line("FATAL", msg));
  }
  warn(msg: string): void {
    if (this.verbosity > 0) err(this.line("WARN ", msg));
  }
  info(msg: string): void {
    if (this.verbosity > 1) out(this.line("INFO ", msg));
  }
  debug(msg: string): void {
    if (this.verbosity > 2) out(this.line("DEBUG", msg));
  }
}

/**
 * tini's getopt("p:hvwgle:R:s"): GNU getopt permutes, so options may follow the program unless a
 * "--" ends them — which is why docker passes `docker-init -- cmd args`.
 */
export function parseTiniArgs(argv0: string, args: string[], env: Record<string, string | undefined>): Parsed {
  const log = new TiniLog(1);
  if (args.length === 1 && args[0] === "--version") {
    out(TINI_VERSION + "\n");
    return { exit: 0 };
  }
  const o: TiniOptions = { subreaper: false, pdeathSignal: 0, verbosity: 1, warnOnReap: false, killProcessGroup: false, expect: new Set(), respawn: "never", program: [] };
  let verbosityFlags = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      o.program.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      o.program.push(a);
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      const takesArg = c === "p" || c === "e" || c === "R";
      let val: string | undefined;
      if (takesArg) {
        val = j + 1 < a.length ? a.slice(j + 1) : args[++i];
        if (val === undefined) {
          err(`${argv0}: option requires an argument -- '${c}'\n`);
          err(usage(argv0));
          return { exit: 1 };
        }
      }
      switch (c) {
        case "h":
          out(usage(argv0));
          return { exit: 0 };
        case "s":
          o.subreaper = true;
          break;
        case "v":
          verbosityFlags++;
          break;
        case "w":
          o.warnOnReap = true;
          break;
        case "g":
          o.killProcessGroup = true;
          break;
        case "l":
          out(LICENSE);
          return { exit: 0 };
        case "p": {
          const n = SIGNALS[val!];
          if (!val!.startsWith("SIG") || n === undefined || val === "SIGIOT" || val === "SIGPOLL") {
            log.fatal(`Not a valid option for -p: ${val}`);
            return { exit: 1 };
          }
          o.pdeathSignal = n;
          break;
        }
        case "e": {
          if (!/^-?\d+$/.test(val!) || Number(val) < 0 || Number(val) > 255) {
            log.fatal(`Not a valid option for -e: ${val}`);
            return { exit: 1 };
          }
          o.expect.add(Number(val));
          break;
        }
        case "R":
          if (val !== "A" && val !== "F") {
            log.fatal(`Not a valid option for -R: ${val}`);
            return { exit: 1 };
          }
          o.respawn = val === "A" ? "always" : "failure";
          break;
        default:
          err(`${argv0}: invalid option -- '${c}'\n`);
          err(usage(argv0));
          return { exit: 1 };
      }
      if (takesArg) break;
    }
  }
  if (!o.program.length) {
    err(usage(argv0));
    return { exit: 1 };
  }
  o.verbosity = 1 + verbosityFlags;
  if (env.TINI_SUBREAPER !== undefined) o.subreaper = true;
  if (env.TINI_KILL_PROCESS_GROUP !== undefined) o.killProcessGroup = true;
  if (env.TINI_VERBOSITY !== undefined) o.verbosity = Number.parseInt(env.TINI_VERBOSITY, 10) || 0;
  return { run: o };
}

const REAPER_WARNING =
  "Tini is not running as PID 1 and isn't registered as a child subreaper.\n" +
  "Zombie processes will not be re-parented to Tini, so zombie reaping won't work.\n" +
  "To fix the problem, use the -s option or set the environment variable TINI_SUBREAPER to register Tini as a child subreaper, or run Tini as PID 1.";

const WNOHANG = 1;
const PR_GET_CHILD_SUBREAPER = 37;

/** Exit status the way a shell reports it: the code, or 128+N for death by signal N. */
function statusCode(raw: number): number | undefined {
  const sig = raw & 0x7f;
  if (sig === 0) return (raw >> 8) & 0xff;
  if (sig !== 0x7f) return 128 + sig;
  return undefined;
}

export interface SpawnTarget {
  /** The file to exec: a path, or a name looked up in PATH. */
  file: string;
  usePath: boolean;
}

/** Runs the init loop; resolves to the exit code tini would return. */
export function runTini(o: TiniOptions, env: string[], target: SpawnTarget = { file: o.program[0]!, usePath: true }): Promise<number> {
  const log = new TiniLog(o.verbosity);
  if (o.pdeathSignal) libc.prctl(PR.SET_PDEATHSIG, o.pdeathSignal);
  if (o.subreaper) {
    try {
      libc.prctl(PR.SET_CHILD_SUBREAPER, 1);
    } catch (e: any) {
      log.fatal(`Failed to register as child subreaper: ${e.message}`);
      return Promise.resolve(1);
    }
  }
  if (libc.getpid() !== 1) {
    const bit = new Int32Array(1);
    let isReaper = false;
    try {
      libc.prctl(PR_GET_CHILD_SUBREAPER, BigInt(Number(libc.ptrOf(bit))));
      isReaper = bit[0] === 1;
    } catch {}
    if (!isReaper) log.warn(REAPER_WARNING);
  }
  // With the child in the terminal's foreground group, writing to the tty could stop us.
  for (const s of ["SIGTTIN", "SIGTTOU"]) process.on(s as NodeJS.Signals, () => {});

  return new Promise<number>((resolve) => {
    let child = 0;
    const spawn = (): boolean => {
      try {
        child = posixSpawn(target.file, o.program, env, { usePath: target.usePath, newProcessGroup: true, foregroundOf: libc.isatty(0) ? 0 : undefined });
      } catch (e: any) {
        const code = e.errno === 2 ? 127 : e.errno === 13 ? 126 : 1;
        log.fatal(`exec ${o.program[0]} failed: ${strerror(e.errno)}`);
        resolve(code);
        return false;
      }
      log.info(`Spawned child process '${o.program[0]}' with pid '${child}'`);
      return true;
    };
    if (!spawn()) return;

    const forward = (name: string, signo: number) => () => {
      log.debug(`Passing signal: '${name}'`);
      if (!libc.kill(o.killProcessGroup ? -child : child, signo)) log.warn("Child was dead when forwarding signal");
    };
    const handlers: [string, () => void][] = [];
    for (const [name, signo] of Object.entries(SIGNALS)) {
      if (NOT_FORWARDED.has(name)) continue;
      const h = forward(name, signo);
      try {
        process.on(name as NodeJS.Signals, h);
        handlers.push([name, h]);
      } catch {
        // A signal this runtime can't watch; tini would forward it, we can't.
      }
    }

    const reap = () => {
      for (;;) {
        let pid: number, raw: number;
        try {
          [pid, raw] = libc.waitpid(-1, WNOHANG);
        } catch {
          break; // ECHILD: nothing left to wait for
        }
        if (pid <= 0) break;
        log.debug(`Reaped child with pid: '${pid}'`);
        if (pid !== child) {
          if (o.warnOnReap) log.warn(`Reaped zombie process with pid=${pid}`);
          continue;
        }
        let code = statusCode(raw);
        if (code === undefined) continue;
        code %= 256;
        if (o.expect.has(code)) code = 0;
        if (o.respawn === "always" || (o.respawn === "failure" && code !== 0)) {
          log.info(`Child pid=${child} has exited (respawning)`);
          setTimeout(spawn, 1000);
          continue;
        }
        finish(code);
        return;
      }
    };
    const timer = setInterval(reap, 1000);
    process.on("SIGCHLD", reap);
    const finish = (code: number) => {
      clearInterval(timer);
      process.off("SIGCHLD", reap);
      for (const [name, h] of handlers) process.off(name as NodeJS.Signals, h);
      resolve(code);
    };
    reap();
  });
}

const STRERROR: Record<number, string> = { 2: "No such file or directory", 13: "Permission denied", 8: "Exec format error", 20: "Not a directory", 40: "Too many levels of symbolic links", 12: "Cannot allocate memory", 7: "Argument list too long", 26: "Text file busy" };
function strerror(n: number): string {
  return STRERROR[n] ?? `errno ${n}`;
}
