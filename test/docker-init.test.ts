// Conformance suite for a tini-compatible init (docker-init), driven only through its command line.
//
//   INIT_BIN=/usr/bin/tini  node_modules/.bin/bun test test/docker-init.test.ts   # the reference (tini 0.19.0)
//   node_modules/.bin/bun test test/docker-init.test.ts                           # ours (dist/bin/docker-init)
//
// Every expectation here was checked against Debian's tini 0.19.0 (/usr/bin/tini and /usr/bin/tini-static)
// and follows krallin/tini src/tini.c. Where the reference and the spec we were given disagree, the
// comment says so.
//
// Process hygiene. While this file runs, the test process is a child subreaper
// (PR_SET_CHILD_SUBREAPER): whatever a test orphans (grandchildren of an init that exited, an init
// whose parent died) is re-parented to us instead of to the machine's PID 1, which may never reap
// it. Everything we start carries BUNKER_INIT_TEST=<tag> in its environment. afterEach SIGKILLs
// every process with the tag, every descendant of what we spawned and every orphan adopted by us,
// reaps the adopted zombies (by pid: Bun reaps only its own children), removes the temp dir, and
// fails the test if anything is left. The flag is cleared in afterAll (bun test runs all files in
// one process).
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { prctl, waitpid } from "../ffi/libc";
import { exec, rand, sleep, sleepSync, TMP_PREFIX, waitFor, type ExecResult } from "./harness";

// ---------------------------------------------------------------------------------------------
// Configuration

const INIT = process.env.INIT_BIN || join(import.meta.dir, "../dist/bin/docker-init");
/** basename(argv[0]): what tini prints in its usage ("tini", "docker-init"). */
const NAME = basename(INIT);
/** Our binary (a symlink to dist/bunker) rather than the reference tini. */
const IS_BUNKER = (() => {
  try {
    return realpathSync(INIT).endsWith("/bunker");
  } catch {
    return INIT.includes("/dist/bin/");
  }
})();
const MARK = "BUNKER_INIT_TEST";
const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;
const T_MS = 10_000; // per-test timeout (each test is designed to take well under 5 s)

const WARN_RE = (pid = "\\d+") =>
  `\\[WARN  tini \\(${pid}\\)\\] Tini is not running as PID 1 and isn't registered as a child subreaper\\.\\n` +
  `Zombie processes will not be re-parented to Tini, so zombie reaping won't work\\.\\n` +
  `To fix the problem, use the -s option or set the environment variable TINI_SUBREAPER to register Tini as a child subreaper, or run Tini as PID 1\\.\\n`;
const REAPER_WARNING_TEXT = "Tini is not running as PID 1";

// ---------------------------------------------------------------------------------------------
// Per-test context and cleanup

interface Ctx {
  tag: string;
  dir: string;
  procs: ReturnType<typeof Bun.spawn>[];
  roots: Set<number>; // pids we started (their descendants are ours too)
}
let T: Ctx;
/** Every pid Bun.spawn gave us in this file: Bun reaps those itself, we must not. */
const bunPids = new Set<number>();

beforeAll(() => {
  if (!existsSync(INIT)) throw new Error(`init under test not found: ${INIT} (set INIT_BIN, or build with: node_modules/.bin/bun run build.ts)`);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
});

afterAll(() => {
  reapAdopted();
  prctl(PR_SET_CHILD_SUBREAPER, 0);
});

beforeEach(() => {
  const tag = rand();
  const dir = `${TMP_PREFIX}${tag}`;
  mkdirSync(dir, { recursive: true });
  T = { tag, dir, procs: [], roots: new Set() };
});

afterEach(async () => {
  const c = T;
  const problems: string[] = [];
  const end = Date.now() + 5000;
  for (;;) {
    const victims = ourLiveProcesses(c);
    if (!victims.length) break;
    for (const p of victims) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {}
    }
    if (Date.now() > end) {
      problems.push(`processes still alive: ${victims.map((p) => `${p.pid}(${p.comm} ${p.state})`).join(", ")}`);
      break;
    }
    sleepSync(20);
  }
  await Promise.all(c.procs.map((p) => Promise.race([p.exited, sleep(3000)])));
  reapAdopted();
  const zombies = allProcs().filter((p) => p.ppid === process.pid && p.state === "Z" && !bunPids.has(p.pid));
  if (zombies.length) problems.push(`zombies left: ${zombies.map((p) => p.pid).join(", ")}`);
  rmSync(c.dir, { recursive: true, force: true });
  if (problems.length) throw new Error(`docker-init test cleanup:\n  ${problems.join("\n  ")}`);
});

/** Live processes of this test: tagged, descendants of what we spawned, or orphans adopted by us. */
function ourLiveProcesses(c: Ctx): PStat[] {
  const procs = allProcs();
  const byParent = new Map<number, PStat[]>();
  for (const p of procs) byParent.set(p.ppid, [...(byParent.get(p.ppid) ?? []), p]);
  const mine = new Set<number>();
  const addTree = (pid: number) => {
    for (const ch of byParent.get(pid) ?? []) {
      if (!mine.has(ch.pid)) {
        mine.add(ch.pid);
        addTree(ch.pid);
      }
    }
  };
  for (const r of c.roots) {
    mine.add(r);
    addTree(r);
  }
  for (const p of procs) {
    if (p.ppid === process.pid || hasTag(p.pid, c.tag)) {
      mine.add(p.pid);
      addTree(p.pid);
    }
  }
  return procs.filter((p) => mine.has(p.pid) && p.state !== "Z" && p.state !== "X" && p.pid !== process.pid);
}

/** Reap zombies re-parented to us (never the ones Bun spawned: Bun reaps those). */
function reapAdopted(): number[] {
  const out: number[] = [];
  for (const p of allProcs()) {
    if (p.ppid === process.pid && p.state === "Z" && !bunPids.has(p.pid)) {
      try {
        if (waitpid(p.pid, WNOHANG)[0] === p.pid) out.push(p.pid);
      } catch {}
    }
  }
  return out;
}

function hasTag(pid: number, tag: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(`${MARK}=${tag}`);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// /proc helpers

interface PStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
}

function pstat(pid: number): PStat | undefined {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const open = s.indexOf("(");
  const close = s.lastIndexOf(")");
  const f = s.slice(close + 2).split(" ");
  return { pid, comm: s.slice(open + 1, close), state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), session: Number(f[3]) };
}

function allProcs(): PStat[] {
  const out: PStat[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const p = pstat(Number(e));
    if (p) out.push(p);
  }
  return out;
}

const childrenOf = (pid: number) => allProcs().filter((p) => p.ppid === pid);
/** Alive = exists and is neither a zombie nor dead. */
const alive = (pid: number) => {
  const p = pstat(pid);
  return !!p && p.state !== "Z" && p.state !== "X";
};
/** PPid from /proc/<pid>/status. */
function ppidFromStatus(pid: number): number | undefined {
  try {
    const m = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Running the init

/** The environment every process of the test gets: ours minus TINI_* / POSIXLY_CORRECT, plus the tag. */
function env(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("TINI_") && k !== "POSIXLY_CORRECT") e[k] = v;
  }
  e[MARK] = T.tag;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete e[k];
    else e[k] = v;
  }
  return e;
}

interface RunOpts {
  env?: Record<string, string | undefined>;
  stdin?: string;
  timeoutMs?: number;
}

/** Run the init to completion (stdout/stderr to files, so orphans holding them can't block us). */
function run(args: string[], o: RunOpts = {}): ExecResult {
  return exec([INIT, ...args], { env: env(o.env), stdin: o.stdin, timeoutMs: o.timeoutMs ?? 4000 });
}

/** Run any command (a wrapper around the init) to completion. */
function runCmd(argv: string[], o: RunOpts = {}): ExecResult {
  return exec(argv, { env: env(o.env), stdin: o.stdin, timeoutMs: o.timeoutMs ?? 4000 });
}

interface Started {
  pid: number;
  proc: ReturnType<typeof Bun.spawn>;
  /** Wait for the exit (SIGKILL after timeoutMs) and collect the output. */
  done(timeoutMs?: number): Promise<ExecResult>;
}

let seq = 0;
function startCmd(argv: string[], o: { env?: Record<string, string | undefined> } = {}): Started {
  const base = join(T.dir, `.out-${++seq}`);
  const outFd = openSync(`${base}.out`, "w+");
  const errFd = openSync(`${base}.err`, "w+");
  const proc = Bun.spawn(argv, { env: env(o.env), stdin: "ignore", stdout: outFd, stderr: errFd });
  closeSync(outFd);
  closeSync(errFd);
  T.procs.push(proc);
  T.roots.add(proc.pid);
  bunPids.add(proc.pid);
  return {
    pid: proc.pid,
    proc,
    async done(timeoutMs = 5000) {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        proc.kill("SIGKILL");
      }, timeoutMs);
      await proc.exited;
      clearTimeout(timer);
      return {
        code: proc.exitCode,
        signal: proc.signalCode == null ? null : String(proc.signalCode),
        stdout: readFileSync(`${base}.out`, "utf8"),
        stderr: readFileSync(`${base}.err`, "utf8"),
        timedOut,
      };
    },
  };
}

function start(args: string[], o: { env?: Record<string, string | undefined> } = {}): Started {
  return startCmd([INIT, ...args], o);
}

/** Shell-quote for embedding in sh -c strings. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const file = (name: string) => join(T.dir, name);
const readTrim = (name: string) => readFileSync(file(name), "utf8").trim();
/** Wait (≤ timeoutMs) for a file the child writes; returns its trimmed content. */
async function waitFile(name: string, timeoutMs = 4000): Promise<string> {
  const ok = await waitFor(() => existsSync(file(name)) && readFileSync(file(name), "utf8").endsWith("\n"), timeoutMs, 10);
  if (!ok) throw new Error(`timed out waiting for ${name}`);
  return readTrim(name);
}
/** Shell fragment: block until the test creates the file `go`. */
const WAIT_GO = () => `while [ ! -e ${q(file("go"))} ]; do sleep 0.02; done`;
const go = () => writeFileSync(file("go"), "");

const lines = (s: string) => s.split("\n").filter((l) => l !== "");

// ---------------------------------------------------------------------------------------------
// Tests

describe("command line", () => {
  test("--version alone prints the version line on stdout, exit 0", () => {
    const r = run(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    // Docker's docker-init (tini-static built by moby) prints "tini version 0.19.0 - git.de40ad0";
    // Debian's build has no git suffix ("tini version 0.19.0"). dockerd's parseInitVersion takes both.
    expect(r.stdout).toMatch(/^tini version \d+\.\d+\.\d+( - git\.\w+)?\n$/);
    if (IS_BUNKER) expect(r.stdout).toMatch(/^tini version \d+\.\d+\.\d+ - git\.\w+\n$/);
  });

  test("-h prints the usage on stdout, exit 0 (tini 0.19.0's text, byte for byte)", () => {
    const version = run(["--version"]).stdout.trim();
    const r = run(["-h"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(usage(version));
  });

  test("no program: usage on stderr, exit 1 (also with only options, or a bare --)", () => {
    const version = run(["--version"]).stdout.trim();
    for (const args of [[], ["--"], ["-s"], ["-s", "-v", "--"]]) {
      const r = run(args);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(usage(version));
    }
  });

  test("unknown option: getopt's message with argv[0] as given, usage on stderr, exit 1", () => {
    const version = run(["--version"]).stdout.trim();
    const r = run(["-Z", "true"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`${INIT}: invalid option -- 'Z'\n` + usage(version));
  });

  test("-R is not an option of tini 0.19.0 (it came later): invalid option, exit 1", () => {
    // -R F with a child that succeeds: an init that does take -R exits 0 at once instead of looping.
    const r = run(["-s", "-R", "F", "true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith(`${INIT}: invalid option -- 'R'\n${NAME} (tini version `);
  });

  test("missing option argument: 'option requires an argument', exit 1", () => {
    for (const opt of ["p", "e"]) {
      const r = run([`-${opt}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toStartWith(`${INIT}: option requires an argument -- '${opt}'\n${NAME} (tini version `);
    }
  });

  test("--version with anything else is not special: getopt sees '-' as an invalid option, exit 1", () => {
    for (const args of [["--version", "true"], ["-s", "--version"], ["--help"]]) {
      const r = run(args);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toStartWith(`${INIT}: invalid option -- '-'\n${NAME} (tini version `);
    }
  });

  test("-l prints the MIT license on stdout, exit 0", () => {
    const r = run(["-l"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(readFileSync(join(import.meta.dir, "fixtures/tini-license.txt"), "utf8"));
  });

  test("-p takes exactly tini's 28 signal names", () => {
    const valid = [
      "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
      "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
      "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGSYS",
    ];
    for (const s of valid) {
      const r = run(["-s", "-p", s, "true"]);
      expect({ s, code: r.code, stderr: r.stderr }).toEqual({ s, code: 0, stderr: "" });
    }
    for (const s of ["9", "KILL", "sigkill", "SIGPWR", "SIGIO", "SIGRTMIN", ""]) {
      const r = run(["-s", "-p", s, "true"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(new RegExp(`^\\[FATAL tini \\(\\d+\\)\\] Not a valid option for -p: ${s}\\n$`));
    }
  });

  test("-e accepts what strtol(…, 10) parses completely within 0..255; anything else is fatal, exit 1", () => {
    // Accepted (and remapping 3 where the value is 3); note "" parses as 0.
    for (const [v, expected] of [["3", 0], ["+3", 0], [" 3", 0], ["03", 0], ["255", 3], ["0", 3], ["", 3]] as const) {
      const r = run(["-s", "-e", v, "--", "sh", "-c", "exit 3"]);
      expect({ v, code: r.code, stderr: r.stderr }).toEqual({ v, code: expected, stderr: "" });
    }
    for (const v of ["256", "-1", "abc", "3 ", "0x3", "3.0", "1000"]) {
      const r = run(["-s", "-e", v, "--", "sh", "-c", "exit 3"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(`[FATAL tini (${fatalPid(r.stderr)})] Not a valid option for -e: ${v}\n`);
    }
  });
});

function fatalPid(stderr: string): string {
  return /^\[FATAL tini \((\d+)\)\]/.exec(stderr)?.[1] ?? "?";
}

function usage(versionLine: string): string {
  return `${NAME} (${versionLine})
Usage: ${NAME} [OPTIONS] PROGRAM -- [ARGS] | --version

Execute a program under the supervision of a valid init process (${NAME})

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

describe("options after PROGRAM (glibc getopt permutes argv)", () => {
  test("`INIT ls -l`: -l is tini's (license, exit 0) and ls never runs; `INIT -- ls -ld /` runs ls", () => {
    const a = run(["ls", "-l"]);
    expect(a.code).toBe(0);
    expect(a.stderr).toBe("");
    expect(a.stdout).toStartWith("The MIT License (MIT)\n");
    const b = run(["-s", "--", "ls", "-ld", "/"]);
    expect(b.code).toBe(0);
    expect(b.stderr).toBe("");
    expect(b.stdout).toMatch(/^d\S+ .* \/\n$/);
  });

  test("`INIT echo -s hello`: -s is taken by the init (no warning), echo gets only `hello`", () => {
    const r = run(["echo", "-s", "hello"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello\n");
  });

  test("`INIT -s sh -c 'exit 3'`: -c is an invalid option of the init, exit 1", () => {
    const r = run(["-s", "sh", "-c", "exit 3"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith(`${INIT}: invalid option -- 'c'\n${NAME} (tini version `);
  });

  test("a -- after PROGRAM ends the options and is removed: `INIT -s echo a -- -v x` prints `a -v x`", () => {
    const r = run(["-s", "echo", "a", "--", "-v", "x"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("a -v x\n");
  });

  test("POSIXLY_CORRECT stops option parsing at PROGRAM", () => {
    const r = run(["-s", "echo", "-v", "hello"], { env: { POSIXLY_CORRECT: "1" } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("-v hello\n");
  });

  test("clustered options and attached arguments: -se3 -pSIGKILL", () => {
    const r = run(["-se3", "-pSIGKILL", "--", "sh", "-c", "exit 3"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
  });
});

describe("exec failures", () => {
  test("`INIT version` (not PID 1, no subreaper): the reaper warning, then exec failed: ENOENT, exit 127", () => {
    const r = run(["version"]);
    expect(r.code).toBe(127);
    expect(r.stdout).toBe("");
    // Real tini prints the FATAL line from the forked child, so its pid is the child's, not the WARN one's.
    expect(r.stderr).toMatch(new RegExp(`^${WARN_RE()}\\[FATAL tini \\(\\d+\\)\\] exec version failed: No such file or directory\\n$`));
  });

  test("absolute path that does not exist: exit 127", () => {
    const r = run(["-s", "/nonexistent/prog", "arg"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/^\[FATAL tini \(\d+\)\] exec \/nonexistent\/prog failed: No such file or directory\n$/);
  });

  test("a file without the x bit: exec failed: Permission denied, exit 126", () => {
    const f = file("noexec.sh");
    writeFileSync(f, "#!/bin/sh\nexit 0\n");
    chmodSync(f, 0o644);
    const r = run(["-s", f]);
    expect(r.code).toBe(126);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`[FATAL tini (${fatalPid(r.stderr)})] exec ${f} failed: Permission denied\n`);
  });

  test("a directory: Permission denied, exit 126", () => {
    const r = run(["-s", T.dir]);
    expect(r.code).toBe(126);
    expect(r.stderr).toBe(`[FATAL tini (${fatalPid(r.stderr)})] exec ${T.dir} failed: Permission denied\n`);
  });

  test("the FATAL line is printed even at TINI_VERBOSITY=0; -e 127 remaps the failure to 0", () => {
    const a = run(["nonexistent-prog-xyz"], { env: { TINI_VERBOSITY: "0" } });
    expect(a.code).toBe(127);
    expect(a.stderr).toMatch(/^\[FATAL tini \(\d+\)\] exec nonexistent-prog-xyz failed: No such file or directory\n$/);
    const b = run(["-s", "-e", "127", "nonexistent-prog-xyz"]);
    expect(b.code).toBe(0);
    expect(b.stderr).toMatch(/exec nonexistent-prog-xyz failed: No such file or directory\n$/);
  });
});

describe("exit codes", () => {
  test("the child's exit status is the init's", () => {
    for (const c of [0, 1, 3, 42, 255]) {
      expect(run(["-s", "--", "sh", "-c", `exit ${c}`]).code).toBe(c);
    }
  });

  test("child killed by a signal: 128 + signo (SIGKILL 137, SIGTERM 143)", () => {
    expect(run(["-s", "--", "sh", "-c", "kill -KILL $$"]).code).toBe(137);
    expect(run(["-s", "--", "sh", "-c", "kill -TERM $$"]).code).toBe(143);
  });

  test("-e remaps to 0, repeatable, also for signal deaths", () => {
    expect(run(["-s", "-e", "3", "--", "sh", "-c", "exit 3"]).code).toBe(0);
    expect(run(["-s", "-e", "3", "--", "sh", "-c", "exit 4"]).code).toBe(4);
    expect(run(["-s", "-e", "3", "-e", "4", "--", "sh", "-c", "exit 3"]).code).toBe(0);
    expect(run(["-s", "-e", "3", "-e", "4", "--", "sh", "-c", "exit 4"]).code).toBe(0);
    expect(run(["-s", "-e", "3", "-e", "4", "--", "sh", "-c", "exit 5"]).code).toBe(5);
    expect(run(["-s", "-e", "137", "--", "sh", "-c", "kill -KILL $$"]).code).toBe(0);
  });

  test("stdin, stdout and stderr are the child's", () => {
    const r = run(["-s", "--", "sh", "-c", "read l; echo \"out:$l\"; echo err >&2"], { stdin: "hello\n" });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("out:hello\n");
    expect(r.stderr).toBe("err\n");
  });

  test("the init exits as soon as the child has exited: it does not wait for other descendants", () => {
    const t0 = Date.now();
    const r = run(["-s", "--", "sh", "-c", "sleep 3 & exit 5"]);
    expect(r.code).toBe(5);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe("child setup", () => {
  test("the child runs in its own process group (pgid = its pid), same session; the init keeps ours", () => {
    const r = run(["-s", "--", "sh", "-c", 'echo $$; cat /proc/$$/stat; cat /proc/$PPID/stat']);
    expect(r.code).toBe(0);
    const [pidLine, childStat, initStat] = lines(r.stdout);
    const parse = (s: string) => {
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      return { pgrp: Number(f[2]), session: Number(f[3]) };
    };
    const me = pstat(process.pid)!;
    const child = parse(childStat!);
    const init = parse(initStat!);
    expect(child.pgrp).toBe(Number(pidLine));
    expect(child.session).toBe(me.session);
    expect(init.pgrp).toBe(me.pgrp);
    expect(init.session).toBe(me.session);
  });

  test("the child gets the signal mask and dispositions the init started with", () => {
    // Compare with the same program started directly; a shell that ignores some signals first makes
    // the inherited SIG_IGN dispositions visible (tini only touches SIGTTIN/SIGTTOU, and restores them).
    const show = "grep -E '^Sig(Blk|Ign):' /proc/self/status";
    for (const pre of ["", "trap '' USR2 HUP TTOU; "]) {
      const direct = runCmd(["sh", "-c", `${pre}exec ${show}`]);
      const under = runCmd(["sh", "-c", `${pre}exec ${q(INIT)} -s -- ${show}`]);
      expect(under.code).toBe(0);
      expect(under.stdout).toBe(direct.stdout);
      expect(under.stdout).toContain("SigBlk:\t0000000000000000");
    }
  });
});

describe("subreaper", () => {
  const cases: [string, string[], Record<string, string>][] = [
    ["-s", ["-s"], {}],
    ["TINI_SUBREAPER=1", [], { TINI_SUBREAPER: "1" }],
    ["TINI_SUBREAPER= (any value, even empty)", [], { TINI_SUBREAPER: "" }],
    ["TINI_SUBREAPER=0 (any value, even 0)", [], { TINI_SUBREAPER: "0" }],
  ];
  for (const [label, args, e] of cases) {
    test(`${label}: no warning; orphans are re-parented to the init and reaped`, async () => {
      const script = [
        `sh -c 'sleep 0.3 & echo $! > ${file("gc")}'`, // the intermediate exits at once (paths are [a-z0-9/-])
        `echo $$ > ${q(file("ready"))}`,
        WAIT_GO(),
        "exit 6",
      ].join("\n");
      const init = start([...args, "--", "sh", "-c", script], { env: e });
      await waitFile("ready");
      const gc = Number(await waitFile("gc"));
      expect(ppidFromStatus(gc)).toBe(init.pid);
      // Reaped by the init once it exits: gone from /proc, not a zombie.
      expect(await waitFor(() => !pstat(gc), 3000)).toBe(true);
      go();
      const r = await init.done();
      expect(r.code).toBe(6);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("");
    }, T_MS);
  }

  test("without -s (and not PID 1): the warning, orphans are not re-parented to the init", async () => {
    const script = [`sh -c 'sleep 0.3 & echo $! > ${file("gc")}'`, `echo $$ > ${q(file("ready"))}`, WAIT_GO(), "exit 0"].join("\n");
    const init = start(["--", "sh", "-c", script]);
    await waitFile("ready");
    const gc = Number(await waitFile("gc"));
    // It goes to the nearest subreaper up the tree: this test process.
    const pp = ppidFromStatus(gc);
    expect(pp).not.toBe(init.pid);
    expect(pp).toBe(process.pid);
    go();
    const r = await init.done();
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^${WARN_RE(String(init.pid))}$`));
  }, T_MS);
});

describe("zombie reaping under load", () => {
  // 1000 orphans: each `( : & )` forks a subshell that forks `:` in the background and exits at
  // once (dash's subshell exits right after the fork, without reaping), so every `:` process is
  // re-parented to the init. With -w the init names each one it reaps: exactly 1000 lines.
  const ORPHANS = 1000;
  const cases: [string, string[], Record<string, string>, boolean][] = [
    ["-s -w", ["-s", "-w"], {}, true],
    ["TINI_SUBREAPER=1", [], { TINI_SUBREAPER: "1" }, false],
  ];
  for (const [label, args, e, counted] of cases) {
    test(`${label}: ${ORPHANS} orphans, none left as a zombie, exit code is the child's`, async () => {
      const script = [
        `i=0; while [ $i -lt ${ORPHANS} ]; do ( : & ); i=$((i+1)); done`,
        `echo $$ > ${q(file("ready"))}`,
        WAIT_GO(),
        "exit 7",
      ].join("\n");
      const init = start([...args, "--", "sh", "-c", script], { env: e });
      const child = Number(await waitFile("ready", 8000));
      // Every orphan has been reaped: the init's only child left is the main one (no zombies either).
      const onlyChild = await waitFor(() => {
        const ch = childrenOf(init.pid);
        return ch.length === 1 && ch[0]!.pid === child;
      }, 3000);
      if (!onlyChild) {
        const ch = childrenOf(init.pid);
        throw new Error(`init still has ${ch.length} children, ${ch.filter((p) => p.state === "Z").length} zombies`);
      }
      go();
      const r = await init.done();
      expect(r.code).toBe(7);
      if (counted) {
        const ls = lines(r.stderr);
        const re = new RegExp(`^\\[WARN  tini \\(${init.pid}\\)\\] Reaped zombie process with pid=(\\d+)$`);
        expect(ls.every((l) => re.test(l))).toBe(true);
        const pids = new Set(ls.map((l) => re.exec(l)![1]));
        expect(ls.length).toBe(ORPHANS);
        expect(pids.size).toBe(ORPHANS);
      } else {
        expect(r.stderr).toBe("");
      }
    }, 15_000);
  }
});

describe("signal forwarding", () => {
  // Each signal sent to the init reaches the child, which records it and exits with its own code.
  const sigs: [NodeJS.Signals, number][] = [
    ["SIGTERM", 43],
    ["SIGINT", 44],
    ["SIGUSR1", 45],
    ["SIGHUP", 46],
    ["SIGUSR2", 47],
    ["SIGQUIT", 48],
    ["SIGWINCH", 49],
    ["SIGALRM", 50],
    ["SIGPIPE", 51],
    ["SIGCONT", 52],
  ];
  for (const [sig, code] of sigs) {
    test(`${sig} is forwarded to the child; the init exits with the child's code`, async () => {
      const name = sig.slice(3);
      const script = [
        `trap 'echo ${name} > ${q(file("got"))}; exit ${code}' ${name}`,
        `echo $$ > ${q(file("ready"))}`,
        "while :; do sleep 0.02; done",
      ].join("\n");
      const init = start(["-s", "--", "sh", "-c", script]);
      await waitFile("ready");
      process.kill(init.pid, sig);
      const r = await init.done();
      expect(r.code).toBe(code);
      expect(readTrim("got")).toBe(name);
      expect(r.stderr).toBe("");
    }, T_MS);
  }

  test("a forwarded signal that kills the child: exit 128 + signo", async () => {
    const init = start(["-s", "--", "sleep", "10"]);
    expect(await waitFor(() => childrenOf(init.pid).some((p) => p.comm === "sleep"), 3000)).toBe(true);
    process.kill(init.pid, "SIGTERM");
    const r = await init.done();
    expect(r.code).toBe(143);
  }, T_MS);

  test("SIGTTIN and SIGTTOU are ignored by the init, not forwarded", async () => {
    const script = [
      `trap 'echo TTIN >> ${q(file("got"))}' TTIN`,
      `trap 'echo TTOU >> ${q(file("got"))}' TTOU`,
      `trap 'echo TERM >> ${q(file("got"))}; exit 9' TERM`,
      `echo $$ > ${q(file("ready"))}`,
      "while :; do sleep 0.02; done",
    ].join("\n");
    const init = start(["-s", "--", "sh", "-c", script]);
    await waitFile("ready");
    process.kill(init.pid, "SIGTTIN");
    process.kill(init.pid, "SIGTTOU");
    await sleep(300);
    expect(alive(init.pid)).toBe(true);
    process.kill(init.pid, "SIGTERM");
    const r = await init.done();
    expect(r.code).toBe(9);
    expect(readTrim("got")).toBe("TERM");
  }, T_MS);

  // -g: kill(-child_pid, sig). The grandchild is in the child's process group (the child is its
  // group's leader, see isolate_child), and traps SIGUSR1.
  const groupCases: [string, string[], Record<string, string>, boolean][] = [
    ["-g", ["-g"], {}, true],
    ["TINI_KILL_PROCESS_GROUP=1", [], { TINI_KILL_PROCESS_GROUP: "1" }, true],
    ["neither", [], {}, false],
  ];
  for (const [label, args, e, group] of groupCases) {
    test(`${label}: SIGUSR1 ${group ? "reaches" : "does not reach"} the child's process group`, async () => {
      const gcScript = `trap 'echo gc > ${file("gc_got")}; exit 0' USR1; echo $$ > ${file("gc_ready")}; while :; do sleep 0.02; done`;
      const script = [
        `sh -c ${q(gcScript)} &`,
        "gc=$!",
        // On USR1: record it, give the grandchild up to 0.5 s to record its own, then stop it.
        `trap 'echo child > ${q(file("got"))}; i=0; while [ ! -e ${q(file("gc_got"))} ] && [ $i -lt 25 ]; do sleep 0.02; i=$((i+1)); done; kill $gc 2>/dev/null; exit 45' USR1`,
        `while [ ! -e ${q(file("gc_ready"))} ]; do sleep 0.02; done`,
        `echo $$ > ${q(file("ready"))}`,
        "while :; do sleep 0.02; done",
      ].join("\n");
      const init = start(["-s", ...args, "--", "sh", "-c", script], { env: e });
      const child = Number(await waitFile("ready"));
      const gc = Number(readTrim("gc_ready"));
      expect(pstat(gc)?.pgrp).toBe(child);
      process.kill(init.pid, "SIGUSR1");
      const r = await init.done();
      expect(r.code).toBe(45);
      expect(readTrim("got")).toBe("child");
      expect(existsSync(file("gc_got"))).toBe(group);
    }, T_MS);
  }
});

describe("-p: parent death signal", () => {
  // The init is started by an intermediate shell that exits when the test says so. As this test
  // process is a subreaper, the init is then re-parented to us and we can reap it and read its status.
  function startUnderIntermediate(initArgs: string[], childScript: string): Started {
    const inner = [q(INIT), ...initArgs.map(q), "--", "sh", "-c", q(childScript)].join(" ");
    return startCmd(["sh", "-c", `${inner} & echo $! > ${q(file("ipid"))}\n${WAIT_GO()}`]);
  }
  async function reapStatus(pid: number): Promise<number | undefined> {
    let status: number | undefined;
    await waitFor(() => {
      try {
        const [r, st] = waitpid(pid, WNOHANG);
        if (r === pid) status = st;
      } catch {}
      return status !== undefined;
    }, 3000);
    return status;
  }
  const childScript = () =>
    [`trap 'echo TERM > ${q(file("got"))}; exit 42' TERM`, `echo $$ > ${q(file("ready"))}`, "while :; do sleep 0.02; done"].join("\n");

  test("-p SIGKILL: the init is killed when its parent dies", async () => {
    const mid = startUnderIntermediate(["-s", "-p", "SIGKILL"], childScript());
    await waitFile("ready");
    const ipid = Number(await waitFile("ipid"));
    expect(alive(ipid)).toBe(true);
    go();
    expect((await mid.done()).code).toBe(0);
    const st = await reapStatus(ipid);
    expect(st).toBeDefined();
    expect(st! & 0x7f).toBe(9); // WTERMSIG == SIGKILL
  }, T_MS);

  test("-p SIGTERM: the parent-death signal is forwarded to the child like any other", async () => {
    const mid = startUnderIntermediate(["-s", "-p", "SIGTERM"], childScript());
    await waitFile("ready");
    const ipid = Number(await waitFile("ipid"));
    go();
    await mid.done();
    const st = await reapStatus(ipid);
    expect(st).toBeDefined();
    expect(st! & 0x7f).toBe(0); // exited normally...
    expect((st! >> 8) & 0xff).toBe(42); // ...with the child's code
    expect(readTrim("got")).toBe("TERM");
  }, T_MS);

  test("without -p the init outlives its parent", async () => {
    const mid = startUnderIntermediate(["-s"], childScript());
    await waitFile("ready");
    const ipid = Number(await waitFile("ipid"));
    go();
    await mid.done();
    await sleep(300);
    expect(alive(ipid)).toBe(true);
    expect(ppidFromStatus(ipid)).toBe(process.pid);
    process.kill(ipid, "SIGTERM");
    const st = await reapStatus(ipid);
    expect((st! >> 8) & 0xff).toBe(42);
  }, T_MS);
});

describe("as PID 1 of a new pid namespace", () => {
  // The child script looks at its namespace from inside: the orphan's parent, then (after it has
  // exited) whether any zombie is left anywhere in the namespace.
  const script = (gcFile: string) =>
    [
      `sh -c 'sleep 0.2 & echo $! > ${gcFile}'`,
      `gc=$(cat ${q(gcFile)})`,
      'read -r l < /proc/$gc/stat; set -- $l; echo "gc=$gc ppid=$4"',
      "while [ -e /proc/$gc ]; do sleep 0.02; done",
      'z=0; for f in /proc/[0-9]*/stat; do { read -r l < $f; } 2>/dev/null || continue; set -- $l; [ "$3" = Z ] && z=$((z+1)); done; echo "zombies=$z"',
      'echo "me=$$ init=$PPID"',
      "exit 4",
    ].join("\n");

  test("no warning; orphans are re-parented to it and reaped; -w names them with pid 1", () => {
    const gcFile = file("gc");
    const r = runCmd(["unshare", "--fork", "--kill-child", "--pid", "--mount-proc", INIT, "-w", "--", "sh", "-c", script(gcFile)]);
    expect(r.code).toBe(4);
    const gc = readTrim("gc");
    // (the child's pid is 2 under tini; a multi-threaded init uses up more pids, so it is not checked)
    expect(lines(r.stdout)).toEqual([`gc=${gc} ppid=1`, "zombies=0", expect.stringMatching(/^me=\d+ init=1$/)]);
    expect(r.stderr).not.toContain(REAPER_WARNING_TEXT);
    expect(r.stderr).toBe(`[WARN  tini (1)] Reaped zombie process with pid=${gc}\n`);
  }, T_MS);

  test("signals to PID 1 are forwarded too", async () => {
    const s = [`trap 'echo TERM > ${q(file("got"))}; exit 43' TERM`, `echo $$ > ${q(file("ready"))}`, "while :; do sleep 0.02; done"].join("\n");
    const u = startCmd(["unshare", "--fork", "--kill-child", "--pid", "--mount-proc", INIT, "--", "sh", "-c", s]);
    expect(await waitFile("ready")).toMatch(/^\d+$/);
    // The init is unshare's child; its host pid is what we signal.
    const init = childrenOf(u.pid)[0]!;
    process.kill(init.pid, "SIGTERM");
    const r = await u.done();
    expect(r.code).toBe(43);
    expect(readTrim("got")).toBe("TERM");
    expect(r.stderr).toBe("");
  }, T_MS);
});

describe("verbosity", () => {
  const info = (pid: string, msg: string) => `[INFO  tini (${pid})] ${msg}`;

  test("default (1): nothing on stdout but the child's", () => {
    const r = run(["-s", "--", "sh", "-c", "echo hi; exit 3"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("hi\n");
    expect(r.stderr).toBe("");
  });

  test("-v: the INFO lines on stdout, exactly", () => {
    const r = run(["-s", "-v", "--", "sh", "-c", "echo $$ > " + q(file("cpid")) + "; exit 3"]);
    expect(r.code).toBe(3);
    const ls = lines(r.stdout);
    const pid = /^\[INFO  tini \((\d+)\)\]/.exec(ls[0] ?? "")?.[1] ?? "?";
    const cpid = readTrim("cpid");
    expect(ls).toEqual([info(pid, `Spawned child process 'sh' with pid '${cpid}'`), info(pid, "Main child exited normally (with status '3')")]);
    expect(pid).not.toBe(cpid);
    expect(r.stderr).toBe("");
  });

  test("-v: a child killed by a signal is reported with strsignal()'s text", () => {
    const r = run(["-s", "-v", "--", "sh", "-c", "kill -KILL $$"]);
    expect(r.code).toBe(137);
    expect(r.stdout).toMatch(/^\[INFO  tini \(\d+\)\] Main child exited with signal \(with signal 'Killed'\)$/m);
  });

  test("-vv: DEBUG lines too (SIGCHLD, reaped pid)", () => {
    const r = run(["-s", "-vv", "--", "sh", "-c", "echo $$ > " + q(file("cpid")) + "; exit 0"]);
    expect(r.code).toBe(0);
    const cpid = readTrim("cpid");
    const ls = lines(r.stdout);
    const pid = /^\[INFO  tini \((\d+)\)\] Spawned child process 'sh' with pid '\d+'$/m.exec(r.stdout)?.[1] ?? "?";
    expect(ls).toContain(info(pid, `Spawned child process 'sh' with pid '${cpid}'`));
    expect(ls).toContain(`[DEBUG tini (${pid})] Received SIGCHLD`);
    expect(ls).toContain(`[DEBUG tini (${pid})] Reaped child with pid: '${cpid}'`);
    expect(ls).toContain(info(pid, "Main child exited normally (with status '0')"));
    expect(ls.indexOf(info(pid, `Spawned child process 'sh' with pid '${cpid}'`))).toBeLessThan(ls.indexOf(info(pid, "Main child exited normally (with status '0')")));
  });

  test("-vv: forwarded signals are logged with strsignal()'s text", async () => {
    const script = [`trap 'exit 5' TERM`, `echo $$ > ${q(file("ready"))}`, "while :; do sleep 0.02; done"].join("\n");
    const init = start(["-s", "-vv", "--", "sh", "-c", script]);
    await waitFile("ready");
    process.kill(init.pid, "SIGTERM");
    const r = await init.done();
    expect(r.code).toBe(5);
    expect(lines(r.stdout)).toContain(`[DEBUG tini (${init.pid})] Passing signal: 'Terminated'`);
  }, T_MS);

  test("-vvv: TRACE lines too", () => {
    const r = run(["-s", "-vvv", "--", "true"]);
    expect(r.code).toBe(0);
    const ls = lines(r.stdout);
    const pid = /^\[TRACE tini \((\d+)\)\] Registered as child subreaper$/m.exec(r.stdout)?.[1];
    expect(pid).toBeDefined();
    expect(ls).toContain(`[TRACE tini (${pid})] Exiting: child has exited`);
  });

  test("TINI_VERBOSITY=0 silences the reaper warning", () => {
    const r = run(["--", "sh", "-c", "exit 2"], { env: { TINI_VERBOSITY: "0" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("");
  });

  test("TINI_VERBOSITY is atoi()'d: non-numbers mean 0", () => {
    const r = run(["--", "true"], { env: { TINI_VERBOSITY: "abc" } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
  });

  test("TINI_VERBOSITY overrides -v (it is read after the options)", () => {
    const a = run(["-s", "-vvv", "--", "true"], { env: { TINI_VERBOSITY: "0" } });
    expect(a.code).toBe(0);
    expect(a.stdout).toBe("");
    expect(a.stderr).toBe("");
    const b = run(["-s", "--", "sh", "-c", "exit 3"], { env: { TINI_VERBOSITY: "2" } });
    expect(b.code).toBe(3);
    expect(b.stdout).toMatch(/^\[INFO  tini \(\d+\)\] Spawned child process 'sh' with pid '\d+'\n\[INFO  tini \(\d+\)\] Main child exited normally \(with status '3'\)\n$/);
  });

  test("-w: a warning on stderr for each reaped zombie that is not the child", () => {
    // The orphan must outlive its parent: dash reaps its own finished background jobs (`true &` would
    // be gone before the intermediate exits).
    const script = [`sh -c 'sleep 0.1 & echo $! > ${file("gc")}'`, `gc=$(cat ${q(file("gc"))})`, "while [ -e /proc/$gc ]; do sleep 0.02; done", "exit 0"].join("\n");
    const r = run(["-s", "-w", "--", "sh", "-c", script]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^\\[WARN  tini \\(\\d+\\)\\] Reaped zombie process with pid=${readTrim("gc")}\\n$`));
  });

  test("-w at TINI_VERBOSITY=0: no warning", () => {
    const script = [`sh -c 'sleep 0.1 & echo $! > ${file("gc")}'`, `gc=$(cat ${q(file("gc"))})`, "while [ -e /proc/$gc ]; do sleep 0.02; done", "exit 0"].join("\n");
    const r = run(["-s", "-w", "--", "sh", "-c", script], { env: { TINI_VERBOSITY: "0" } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
  });
});
