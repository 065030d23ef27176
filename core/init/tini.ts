// A tini-compatible init (tini 0.19's command line, messages and exit codes): spawn the program in a
// process group of its own, forward signals to it, reap every zombie, exit with the program's status.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { PR } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { posixSpawn } from "../../ffi/spawn";
import { err, out } from "../cli/io";
import LICENSE from "./tini-license.txt" with { type: "text" };

export const TINI_VERSION = "tini version 0.19.0 - git.bunker";

export interface TiniOptions {
  subreaper: boolean;
  pdeathSignal: number;
  verbosity: number;
  warnOnReap: boolean;
  killProcessGroup: boolean;
  /** Exit codes remapped to 0 (-e). */
  expect: Set<number>;
  program: string[];
}

export type Parsed = { run: TiniOptions } | { exit: number };

// The names tini's -p accepts, and the signals it knows.
const TINI_SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9,
  SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGCHLD: 17, SIGCONT: 18,
  SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26,
  SIGPROF: 27, SIGWINCH: 28, SIGSYS: 31,
};

// Signals the runtime lets us catch and that go to the child. tini keeps the synchronous faults,
// ignores SIGTTIN/SIGTTOU, and reaps on SIGCHLD rather than forwarding it.
const FORWARDED: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGUSR1: 10, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGSTKFLT: 16, SIGCONT: 18, SIGTSTP: 20, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27,
  SIGWINCH: 28, SIGIO: 29, SIGPWR: 30,
};

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
  -e EXIT_CODE: Remap EXIT_CODE (from 0 to 255) to 0.
  -l: Show license and exit.

Environment variables:

  TINI_SUBREAPER: Register as a process subreaper (requires Linux >= 3.4).
  TINI_VERBOSITY: Set the verbosity level (default: 1).
  TINI_KILL_PROCESS_GROUP: Send signals to the child's process group.

`;
}

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
  trace(msg: string): void {
    if (this.verbosity > 3) out(this.line("TRACE", msg));
  }
}

/** strtol(s, &end, 10) accepting only a complete parse, as tini's -e does. */
function strtolWhole(s: string): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?\d*)$/.exec(s);
  if (!m) return undefined;
  const digits = m[1]!.replace(/^[+-]/, "");
  if (digits === "") return m[1] === "" ? 0 : undefined; // "" parses as 0 (end == start, *end == 0)
  return Number(m[1]);
}

/**
 * tini's getopt("p:hvwgle:s"): glibc's getopt permutes, so options may follow the program unless
 * "--" ends them or POSIXLY_CORRECT is set — why docker passes `docker-init -- cmd args`.
 */
export function parseTiniArgs(argv0: string, args: string[], env: Record<string, string | undefined>): Parsed {
  const log = new TiniLog(1);
  if (args.length === 1 && args[0] === "--version") {
    out(TINI_VERSION + "\n");
    return { exit: 0 };
  }
  const posix = env.POSIXLY_CORRECT !== undefined;
  const o: TiniOptions = { subreaper: false, pdeathSignal: 0, verbosity: 1, warnOnReap: false, killProcessGroup: false, expect: new Set(), program: [] };
  let verbosityFlags = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      o.program.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      if (posix) {
        o.program.push(...args.slice(i));
        break;
      }
      o.program.push(a);
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      const takesArg = c === "p" || c === "e";
      let val = "";
      if (takesArg) {
        const v = j + 1 < a.length ? a.slice(j + 1) : args[++i];
        if (v === undefined) {
          err(`${argv0}: option requires an argument -- '${c}'\n`);
          err(usage(argv0));
          return { exit: 1 };
        }
        val = v;
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
        case "p":
          if (!(val in TINI_SIGNALS)) {
            log.fatal(`Not a valid option for -p: ${val}`);
            return { exit: 1 };
          }
          o.pdeathSignal = TINI_SIGNALS[val]!;
          break;
        case "e": {
          const n = strtolWhole(val);
          if (n === undefined || n < 0 || n > 255) {
            log.fatal(`Not a valid option for -e: ${val}`);
            return { exit: 1 };
          }
          o.expect.add(n);
          break;
        }
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
  // atoi: leading digits, anything else is 0; read after the options, so it wins over -v.
  if (env.TINI_VERBOSITY !== undefined) o.verbosity = Number.parseInt(env.TINI_VERBOSITY, 10) || 0;
  return { run: o };
}

const REAPER_WARNING =
  "Tini is not running as PID 1 and isn't registered as a child subreaper.\n" +
  "Zombie processes will not be re-parented to Tini, so zombie reaping won't work.\n" +
  "To fix the problem, use the -s option or set the environment variable TINI_SUBREAPER to register Tini as a child subreaper, or run Tini as PID 1.";

const WNOHANG = 1;
const PR_GET_CHILD_SUBREAPER = 37;

export interface SpawnTarget {
  /** The file to exec: a path, or a name looked up in PATH. */
  file: string;
  usePath: boolean;
}

/** The signal masks this process started with (bit n-1 for signal n), from /proc/self/status. */
function startingSignals(): { ignored: bigint; blocked: bigint } {
  const status = readFileSync("/proc/self/status", "utf8");
  const mask = (key: string) => BigInt("0x" + (new RegExp(`^${key}:\\s*([0-9a-f]+)`, "m").exec(status)?.[1] ?? "0"));
  // Bun itself ignores SIGPIPE and SIGXFSZ before our code runs, so for those two we can't tell
  // what we were started with; take the usual case (default).
  const bunOwn = (1n << 12n) | (1n << 24n);
  return { ignored: mask("SigIgn") & ~bunOwn, blocked: mask("SigBlk") };
}

const isSet = (mask: bigint, sig: number) => ((mask >> BigInt(sig - 1)) & 1n) === 1n;

/** Runs the init loop; resolves to the exit code tini would return. */
export function runTini(o: TiniOptions, env: string[], target: SpawnTarget = { file: o.program[0]!, usePath: true }): Promise<number> {
  const log = new TiniLog(o.verbosity);
  // tini hands the child the signal state it was started with: what was ignored stays ignored
  // (and, being ignored, is never forwarded), what was blocked stays blocked.
  const start = startingSignals();
  if (o.pdeathSignal) libc.prctl(PR.SET_PDEATHSIG, o.pdeathSignal);
  if (o.subreaper) {
    try {
      libc.prctl(PR.SET_CHILD_SUBREAPER, 1);
      log.trace("Registered as child subreaper");
    } catch (e: any) {
      log.fatal(`Failed to register as child subreaper: ${libc.strerror(e.errno ?? 22)}`);
      return Promise.resolve(1);
    }
  }
  if (libc.getpid() !== 1) {
    const bit = new Int32Array(1);
    let isReaper = false;
    try {
      libc.prctl(PR_GET_CHILD_SUBREAPER, libc.ptrOf(bit));
      isReaper = bit[0] === 1;
    } catch {}
    if (!isReaper) log.warn(REAPER_WARNING);
  }

  return new Promise<number>((resolve) => {
    let child = 0;
    // tini blocks signals before forking and forwards them from its loop; a signal that arrives
    // before the child exists waits here the same way.
    const pending: [string, number][] = [];
    const send = (name: string, signo: number) => {
      log.debug(`Passing signal: '${libc.strsignal(signo)}'`);
      if (!libc.kill(o.killProcessGroup ? -child : child, signo)) log.warn("Child was dead when forwarding signal");
    };
    const handlers: [string, () => void][] = [];
    for (const [name, signo] of Object.entries(FORWARDED)) {
      if (isSet(start.ignored, signo)) continue;
      const h = () => (child ? send(name, signo) : pending.push([name, signo]));
      try {
        process.on(name as NodeJS.Signals, h);
        handlers.push([name, h]);
      } catch {
        // A signal this runtime can't watch.
      }
    }
    // With the child in the terminal's foreground group, tini must not be stopped by the tty.
    for (const name of ["SIGTTIN", "SIGTTOU"]) {
      if (isSet(start.ignored, TINI_SIGNALS[name]!)) continue;
      const h = () => {};
      process.on(name as NodeJS.Signals, h);
      handlers.push([name, h]);
    }

    const finish = (code: number) => {
      clearInterval(timer);
      process.off("SIGCHLD", onChld);
      for (const [name, h] of handlers) process.off(name as NodeJS.Signals, h);
      log.trace("Exiting: child has exited");
      resolve(code);
    };

    const exitCode = (raw: number): number | undefined => {
      const sig = raw & 0x7f;
      if (sig === 0) {
        const code = (raw >> 8) & 0xff;
        log.info(`Main child exited normally (with status '${code}')`);
        return code;
      }
      if (sig === 0x7f) return undefined; // stopped, not gone
      log.info(`Main child exited with signal (with signal '${libc.strsignal(sig)}')`);
      return 128 + sig;
    };

    const reap = () => {
      for (;;) {
        let pid: number, raw: number;
        try {
          [pid, raw] = libc.waitpid(-1, WNOHANG);
        } catch {
          log.trace("No child to wait");
          return;
        }
        if (pid === 0) {
          log.trace("No child to reap");
          return;
        }
        log.debug(`Reaped child with pid: '${pid}'`);
        if (pid !== child) {
          if (o.warnOnReap) log.warn(`Reaped zombie process with pid=${pid}`);
          continue;
        }
        const code = exitCode(raw);
        if (code === undefined) continue;
        finish(o.expect.has(code % 256) ? 0 : code % 256);
        return;
      }
    };
    const onChld = () => {
      log.debug("Received SIGCHLD");
      reap();
    };
    const timer = setInterval(reap, 1000);
    process.on("SIGCHLD", onChld);

    try {
      child = posixSpawn(target.file, o.program, env, {
        usePath: target.usePath, newProcessGroup: true, foregroundOf: libc.isatty(0) ? 0 : undefined,
        keepIgnored: start.ignored, mask: start.blocked,
      });
    } catch (e: any) {
      // In tini the forked child reports this and exits 127/126/1; -e applies to that status too.
      const code = e.errno === 2 ? 127 : e.errno === 13 ? 126 : 1;
      log.fatal(`exec ${o.program[0]} failed: ${libc.strerror(e.errno ?? 0)}`);
      finish(o.expect.has(code) ? 0 : code);
      return;
    }
    log.info(`Spawned child process '${o.program[0]}' with pid '${child}'`);
    for (const [name, signo] of pending.splice(0)) send(name, signo);
    // Reaping is driven by SIGCHLD (and the 1 s timer), as in tini's sigtimedwait loop.
  });
}
