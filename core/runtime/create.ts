// `runc create` (and the first half of `runc run`): validate the bundle, claim the id, make the
// cgroup and exec fifo, spawn `runc init` inside the new pid namespace, and drive it to "ready".
import { chmodSync, existsSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { CLONE, O } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { parseConfigFile } from "../oci/validate";
import type { Spec, State } from "../oci/types";
import { unknownCaps } from "./caps";
import { compileForBootstrap } from "./seccomp";
import { applyDeviceRules } from "./cgroups/devices";
import { applyResources } from "./cgroups/resources";
import { cgroupDirs, createCgroups, joinCgroups, prewarmAttach, removeCgroups } from "./cgroups/manager";
import { Channel, channelPair, type InitBootstrap } from "./channel";
import { spawnInit, type InitProcess } from "./spawn";
import { runHooks } from "./hooks";
import { processStartTime } from "./proc";
import { selfCommand } from "./self";
import { nowNano, OCI_VERSION, ownerOf, StateDir, type ContainerState } from "./state";
import { mark } from "./timings";
import { sendConsole } from "./console";

export interface CreateOptions {
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  noPivot?: boolean;
  /** false for `runc run` in the foreground: the pty master comes back to us instead of a socket. */
  detach: boolean;
  warn?: (msg: string) => void;
  /** --preserve-fds: fds 3+LISTEN_FDS .. passed on to the container process. */
  preserveFds?: number;
  noNewKeyring?: boolean;
}

export interface Created {
  state: ContainerState;
  proc: InitProcess;
  /** pty master, when terminal and not handed to a console socket. */
  master?: number;
}

export async function create(sd: StateDir, o: CreateOptions): Promise<Created> {
  const warm = prewarmAttach();
  const bundle = resolve(o.bundle);
  const spec = parseConfigFile(join(bundle, "config.json"), { create: true });
  mark("config");
  checkRunnable(spec, o);
  // A profile that can't be compiled is refused before anything exists.
  const seccomp = compileForBootstrap(spec);
  const unknown = unknownCaps(spec.process!.capabilities);
  if (unknown.length) o.warn?.(`ignoring unknown or unavailable capabilities: [${unknown.join(" ")}]`);
  const rootfs = resolve(bundle, spec.root!.path);
  if (!existsSync(rootfs)) throw new Error(`invalid rootfs: stat ${rootfs}: no such file or directory`);
  if (!statSync(rootfs).isDirectory()) throw new Error(`invalid rootfs: ${rootfs}: not a directory`);
  const dirs = cgroupDirs(spec.linux?.cgroupsPath, o.id);
  sd.claim(o.id);
  let proc: InitProcess | undefined;
  let fifo: number | undefined;
  let master: number | undefined;
  try {
    libc.mkfifo(sd.fifo(o.id), 0o622);
    // mkfifo honours the umask; a non-root container user must still be able to open it for writing.
    chmodSync(sd.fifo(o.id), 0o622);
    const [parentEnd, childEnd] = channelPair();
    const ch = new Channel(parentEnd);
    const passed = passedFds(o.preserveFds ?? 0);
    const pidNs = (spec.linux?.namespaces ?? []).find((n) => n.type === "pid");
    const userNs = (spec.linux?.namespaces ?? []).find((n) => n.type === "user");
    const tini = isOwnBinaryInit(spec, bundle);
    fifo = libc.open(sd.fifo(o.id), O.PATH);
    const args = spec.process!.args!;
    try {
      proc = spawnInit({
        pidNs: pidNs && { path: pidNs.path },
        userNs: userNs && { path: userNs.path, uidMappings: spec.linux?.uidMappings, gidMappings: spec.linux?.gidMappings },
        fds: [...passed.fds, fifo, childEnd], stdio: ["inherit", "inherit", "inherit"],
        // As init we show up in the container's ps the way tini would: "/sbin/docker-init -- cmd".
        ...(tini ? { argv0: args[0], args: args.slice(1) } : {}),
      });
    } finally {
      libc.close(childEnd);
      libc.close(fifo);
      fifo = undefined;
    }
    mark("spawned");
    // The init spends its first milliseconds starting up and then waits for the bootstrap message;
    // making and joining the cgroup meanwhile keeps that work off the critical path.
    createCgroups(dirs);
    applyDeviceRules(dirs, spec.linux?.resources?.devices);
    // Our init is a Bun process: it starts several threads and holds ~40 MB until it execs the
    // program. A pids limit waits until it is ready (blocked on the fifo, it makes no more
    // threads); a memory limit until the program has replaced it (`start` applies it).
    const { pids, memory, ...early } = spec.linux?.resources ?? {};
    applyResources(dirs, early, { warn: o.warn });
    await warm;
    joinCgroups(dirs, proc.pid);
    mark("cgroups");
    const pidStart = processStartTime(proc.pid);
    const boot: InitBootstrap = {
      kind: "init", id: o.id, spec, bundle, rootfs, fifoFd: 3 + passed.fds.length, cgroupDirs: dirs, noPivot: !!o.noPivot,
      terminal: !!spec.process!.terminal, extraFds: passed.fds.length, env: passed.env, noNewKeyring: o.noNewKeyring, tini, seccomp,
    };
    ch.send({ type: "bootstrap", boot });
    const hookState = (): State => ({ ociVersion: OCI_VERSION, id: o.id, status: "creating", pid: proc!.pid, bundle, annotations: spec.annotations });
    for (;;) {
      const m = ch.recv();
      if (!m) throw new Error(`container init exited unexpectedly${await exitNote(proc)}`);
      if (m.msg.type === "error") throw new Error(`unable to start container process: ${m.msg.message}`);
      if (m.msg.type === "hooks") {
        runHooks(spec, "prestart", hookState(), bundle);
        runHooks(spec, "createRuntime", hookState(), bundle);
        ch.send({ type: "hooks-done" });
      } else if (m.msg.type === "pty") {
        if (o.consoleSocket) {
          sendConsole(o.consoleSocket, m.fd);
          libc.close(m.fd);
        } else master = m.fd;
      } else if (m.msg.type === "ready") break;
    }
    ch.close();
    mark("ready");
    if (pids) applyResources(dirs, { pids }, { warn: o.warn });
    const state: ContainerState = {
      id: o.id, pid: proc.pid, pidStart, bundle, rootfs, created: nowNano(), owner: ownerOf(sd.root),
      annotations: spec.annotations, config: spec, cgroupPaths: dirs,
      ...(memory ? { deferred: { memory }, initStays: tini } : {}),
    };
    sd.save(state);
    if (o.pidFile) writeAtomic(resolve(o.pidFile), String(proc.pid));
    if (o.detach) proc.unref();
    return { state, proc, master };
  } catch (e) {
    if (fifo !== undefined) libc.close(fifo);
    if (proc) libc.kill(proc.pid, 9);
    if (master !== undefined) libc.close(master);
    await proc?.exited;
    await removeCgroups(dirs).catch(() => {});
    sd.remove(o.id);
    throw e;
  }
}

function checkRunnable(spec: Spec, o: CreateOptions): void {
  if (!spec.process) throw new Error("config.json: process: required to create a container");
  if (!spec.process.args?.length) throw new Error("config.json: process.args: must be a non-empty array");
  if (!spec.root?.path) throw new Error("config.json: root.path: required");
  const ns = spec.linux?.namespaces ?? [];
  if (!ns.some((n) => n.type === "mount")) throw new Error("config.json: linux.namespaces: a mount namespace is required");
  const terminal = !!spec.process.terminal;
  if (terminal && o.detach && !o.consoleSocket) throw new Error("cannot allocate tty if runc will detach without setting console socket");
  if (!terminal && o.consoleSocket) throw new Error("cannot use console socket if runc will not detach or allocate tty");
}

async function exitNote(proc: InitProcess): Promise<string> {
  const code = await Promise.race([proc.exited, Bun.sleep(1000).then(() => undefined)]);
  if (code === undefined) return "";
  return proc.signalCode ? ` (killed by ${proc.signalCode})` : ` (exit status ${code})`;
}

/**
 * dockerd's --init bind-mounts the init binary (--init-path; ours when bunker is installed) at
 * /sbin/docker-init and runs it as the container's first process. Our binary needs glibc, which
 * busybox or alpine images lack; but our runtime's init is already running from the host's copy,
 * so when the program is our own binary it stays PID 1 and does tini's work itself.
 */
function isOwnBinaryInit(spec: Spec, bundle: string): boolean {
  const target = spec.process?.args?.[0];
  if (!target?.startsWith("/")) return false;
  let self: { dev: number; ino: number };
  try {
    self = statSync(process.execPath);
  } catch {
    return false;
  }
  return (spec.mounts ?? []).some((m) => {
    const bind = m.type === "bind" || (m.options ?? []).some((x) => x === "bind" || x === "rbind");
    if (!bind || !m.source || resolve("/", m.destination) !== resolve("/", target)) return false;
    try {
      const st = statSync(resolve(bundle, m.source));
      return st.dev === self.dev && st.ino === self.ino;
    } catch {
      return false;
    }
  });
}

/**
 * The fds a new process gets at 3, 4, ...: systemd's LISTEN_FDS (when they were meant for us:
 * LISTEN_PID is our pid) and then --preserve-fds more, as runc passes them.
 */
export function passedFds(preserve: number): { fds: number[]; env: string[] } {
  const listen = process.env.LISTEN_PID === String(process.pid) ? Number(process.env.LISTEN_FDS ?? 0) || 0 : 0;
  const fds = Array.from({ length: listen + preserve }, (_, i) => 3 + i);
  return { fds, env: listen ? [`LISTEN_FDS=${listen}`] : [] };
}

export function writeAtomic(path: string, data: string): void {
  const tmp = join(dirname(path), `.${process.pid}.tmp`);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

