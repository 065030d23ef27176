// `runc exec`: start another process inside a running container — it joins the container's
// namespaces and cgroup, gets its own user, capabilities, rlimits and terminal — and, unless
// detached, wait for it and return its exit status.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseSignal } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { validateProcess } from "../oci/validate";
import type { Process } from "../oci/types";
import { joinCgroups, prewarmAttach } from "./cgroups/manager";
import { Channel, channelPair, type ExecBootstrap } from "./channel";
import { attachConsole, sendConsole } from "./console";
import { passedFds, writeAtomic } from "./create";
import { compileForBootstrap } from "./seccomp";
import { spawnInit, type InitProcess } from "./spawn";
import { readlinkOr } from "./proc";
import type { StateDir } from "./state";
import { mark } from "./timings";

export interface ExecOptions {
  id: string;
  processFile?: string;
  args: string[];
  tty: boolean;
  env: string[];
  cwd?: string;
  user?: string;
  additionalGids: string[];
  caps: string[];
  noNewPrivs: boolean;
  detach: boolean;
  pidFile?: string;
  consoleSocket?: string;
  preserveFds: number;
  ignorePaused: boolean;
}

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT"] as const;

export async function exec(sd: StateDir, o: ExecOptions): Promise<number> {
  const warm = prewarmAttach();
  const st = sd.load(o.id);
  const status = sd.status(st);
  if (status === "stopped") throw new Error("cannot exec in a stopped container");
  if (status === "paused" && !o.ignorePaused) throw new Error("cannot exec in a paused container (use --ignore-paused to override)");
  const proc = o.processFile ? loadProcess(o.processFile) : processFromFlags(st.config.process!, o);
  if (proc.terminal && o.detach && !o.consoleSocket) throw new Error("cannot allocate tty if runc will detach without setting console socket");
  if (!proc.terminal && o.consoleSocket) throw new Error("cannot use console socket if runc will not detach or allocate tty");
  const seccomp = compileForBootstrap(st.config);
  mark("config");

  const [parentEnd, childEnd] = channelPair();
  const ch = new Channel(parentEnd);
  const passed = passedFds(o.preserveFds);
  let child: InitProcess;
  // Setting up the container's own user namespace, if it has one, comes first: its other
  // namespaces belong to it, and only its root may join them.
  const userNs = readlinkOr(`/proc/${st.pid}/ns/user`) !== readlinkOr("/proc/self/ns/user") ? { path: `/proc/${st.pid}/ns/user` } : undefined;
  try {
    child = spawnInit({ pidNs: { path: `/proc/${st.pid}/ns/pid` }, userNs, fds: [...passed.fds, childEnd], stdio: ["inherit", "inherit", "inherit"] });
  } finally {
    libc.close(childEnd);
  }
  mark("spawned");
  let master: number | undefined;
  try {
    const boot: ExecBootstrap = { kind: "exec", id: o.id, spec: st.config, process: proc, initPid: st.pid, terminal: !!proc.terminal, extraFds: passed.fds.length, env: passed.env, seccomp };
    ch.send({ type: "bootstrap", boot });
    for (;;) {
      const m = ch.recv();
      if (!m) throw new Error("unable to start container process: the process exited before it was set up");
      if (m.msg.type === "error") throw new Error(`unable to start container process: ${m.msg.message}`);
      if (m.msg.type === "pty") {
        if (o.consoleSocket) {
          sendConsole(o.consoleSocket, m.fd);
          libc.close(m.fd);
        } else master = m.fd;
      } else if (m.msg.type === "ready") break;
    }
    // Joined only now: the init's Bun threads all exist, and a move is not a fork for pids.max.
    await warm;
    joinCgroups(st.cgroupPaths, child.pid);
    ch.send({ type: "go" });
    // The channel closes when the process execs; an error before that still arrives here.
    for (let m = ch.recv(); m; m = ch.recv()) {
      if (m.msg.type === "error") throw new Error(`unable to start container process: ${m.msg.message}`);
    }
  } catch (e) {
    libc.kill(child.pid, 9);
    if (master !== undefined) libc.close(master);
    await child.exited;
    throw e;
  } finally {
    ch.close();
  }
  mark("ready");
  if (o.pidFile) writeAtomic(resolve(o.pidFile), String(child.pid));
  if (o.detach) {
    child.unref();
    return 0;
  }
  const handlers = FORWARDED.map((s) => [s, () => libc.kill(child.pid, parseSignal(s))] as const);
  for (const [s, h] of handlers) process.on(s, h);
  const tty = master !== undefined ? attachConsole(master) : undefined;
  const code = await child.exited;
  if (tty) {
    await Promise.race([tty.done, Bun.sleep(500)]);
    tty.restore();
    libc.close(master!);
  }
  for (const [s, h] of handlers) process.off(s, h);
  return child.signalCode ? 128 + parseSignal(String(child.signalCode)) : code;
}

function loadProcess(file: string): Process {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e: any) {
    throw new Error(e.code === "ENOENT" ? `open ${file}: no such file or directory` : `process.json: invalid JSON: ${e.message}`);
  }
  return validateProcess(raw, file);
}

/** runc's newProcess: the container's process, overridden by the exec flags. */
function processFromFlags(base: Process, o: ExecOptions): Process {
  if (!o.args.length) throw new Error("process args cannot be empty");
  const p: Process = structuredClone(base);
  p.args = o.args;
  p.terminal = o.tty;
  p.env = dedupeEnv([...(p.env ?? []), ...o.env]);
  if (o.cwd) p.cwd = o.cwd;
  if (o.noNewPrivs) p.noNewPrivileges = true;
  if (o.user) {
    const [u, g] = o.user.split(":");
    const num = (s: string, what: string) => {
      if (!/^\d+$/.test(s)) throw new Error(`parsing ${what} ${JSON.stringify(s)}: invalid syntax`);
      return Number(s);
    };
    p.user = { ...p.user, uid: num(u!, "uid"), gid: g !== undefined ? num(g, "gid") : p.user.gid };
  }
  if (o.additionalGids.length) p.user = { ...p.user, additionalGids: o.additionalGids.map((g) => Number(g)) };
  if (o.caps.length) {
    const c = (p.capabilities ??= {});
    for (const set of ["bounding", "effective", "permitted", "inheritable", "ambient"] as const) c[set] = [...new Set([...(c[set] ?? []), ...o.caps])];
  }
  return p;
}

/** Later assignments win, as they do once runc has put the environment through setenv. */
function dedupeEnv(env: string[]): string[] {
  const m = new Map<string, string>();
  for (const e of env) {
    const k = e.includes("=") ? e.slice(0, e.indexOf("=")) : e;
    m.delete(k);
    m.set(k, e);
  }
  return [...m.values()];
}
