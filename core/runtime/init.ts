// `runc init`: a fresh process of our binary, spawned already inside the container's pid namespace.
// For a new container (`create`) it creates/joins the other namespaces, builds the rootfs, pivots,
// drops privileges, reports ready and waits on the exec fifo for `start`. For `exec` it joins the
// running container's namespaces instead. Both end in execve() of the user's program.
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { CLONE, CLOSE_RANGE_CLOEXEC, NAMESPACES, O, PR, RLIMITS, TIOCGPTN, TIOCSCTTY, TIOCSPTLCK, TIOCSWINSZ } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import type { Process, Spec, State } from "../oci/types";
import { err } from "../cli/io";
import { installSeccomp } from "../../ffi/seccomp";
import { decode as decodeSeccomp } from "./seccomp";
import { parseTiniArgs, runTini } from "../init/tini";
import { applyUserAndCaps } from "./caps";
import { Channel, type Bootstrap, type ExecBootstrap, type InitBootstrap } from "./channel";
import { runHooks } from "./hooks";
import { loopbackUp } from "./loopback";
import { finalizeRootfs, pivotInto, prepareRootfs } from "./rootfs";
import { OCI_VERSION } from "./state";
import { readlinkOr } from "./proc";
import { mark, timingCommand } from "./timings";

export async function initMain(): Promise<never> {
  timingCommand("init");
  const ch = new Channel(Number(process.env._BUNKER_INIT_CHANNEL ?? 3));
  try {
    const first = ch.recv();
    if (!first || first.msg.type !== "bootstrap") throw new Error("runc init: no bootstrap message from the runtime (run through `runc create`, not directly)");
    const boot = first.msg.boot;
    mark("bootstrap");
    const plan = boot.kind === "init" ? setupContainer(boot, ch) : setupExec(boot, ch);
    ch.send({ type: "ready" });
    // exec: the parent moves us into the container's cgroup only now, when our threads exist (a
    // move isn't counted against pids.max), and says go.
    if (boot.kind === "exec" && ch.recv()?.msg.type !== "go") throw new Error("runtime went away before the process could start");
    // exec's parent waits for the channel to close: it does so at execve (close-on-exec below), so
    // `runc exec -d` returns only once the program runs, and an execve failure still gets reported.
    // create's parent is gone by the time `start` lets us exec.
    if (boot.kind === "init") ch.close();
    mark("ready");
    if (boot.kind === "init") {
      waitForStart(plan.fifoFd!);
      runHooks(boot.spec, "startContainer", stateOf(boot, "created"));
    }
    // Every fd but stdio and the passed ones (Bun's own included) is closed by execve.
    libc.closeRange(3 + boot.extraFds, 0xffffffff, CLOSE_RANGE_CLOEXEC);
    if (plan.seccomp) installSeccomp(plan.seccomp.filter, plan.seccomp.flags);
    if (boot.kind === "init" && boot.tini) process.exit(await actAsInit(plan));
    mark("execve");
    libc.execve(plan.path, plan.args, plan.env);
  } catch (e: any) {
    try {
      ch.send({ type: "error", message: e?.message ?? String(e) });
    } catch {
      err(`runc init: ${e?.message ?? e}\n`);
    }
    process.exit(1);
  }
}

/** dockerd's --init with our own binary as the init: stay PID 1 and do tini's work. */
async function actAsInit(plan: ExecPlan): Promise<number> {
  const env = Object.fromEntries(plan.env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
  // The thread name ps shows as COMMAND: tini's, not our binary's.
  libc.prctl(PR.SET_NAME, libc.ptrOf(libc.cstr(basename(plan.args[0]!).slice(0, 15))));
  const parsed = parseTiniArgs(plan.args[0]!, plan.args.slice(1), env);
  if ("exit" in parsed) return parsed.exit;
  let file = parsed.run.program[0]!;
  try {
    file = lookPath(file, plan.env);
  } catch {
    // posix_spawn reports the failure in tini's words.
  }
  return runTini(parsed.run, plan.env, { file, usePath: false });
}

interface ExecPlan {
  path: string;
  args: string[];
  env: string[];
  fifoFd?: number;
  /** Installed last, right before execve, when no_new_privs lets an unprivileged process do it. */
  seccomp?: { filter: Uint8Array; flags: string[] };
}

function stateOf(boot: InitBootstrap, status: State["status"]): State {
  return { ociVersion: OCI_VERSION, id: boot.id, status, pid: libc.getpid(), bundle: boot.bundle, annotations: boot.spec.annotations };
}

function setupContainer(boot: InitBootstrap, ch: Channel): ExecPlan {
  const { spec } = boot;
  const proc = spec.process!;
  enterNamespaces(spec);
  mark("namespaces");
  const newCgroupNs = (spec.linux?.namespaces ?? []).some((n) => n.type === "cgroup" && !n.path);
  prepareRootfs({ spec, bundle: boot.bundle, rootfs: boot.rootfs, cgroupDirs: boot.cgroupDirs, newCgroupNs });
  mark("rootfs");
  if (spec.hooks?.prestart?.length || spec.hooks?.createRuntime?.length) {
    ch.send({ type: "hooks" });
    const reply = ch.recv();
    if (reply?.msg.type !== "hooks-done") throw new Error("runtime did not finish the createRuntime hooks");
  }
  runHooks(spec, "createContainer", stateOf(boot, "creating"), boot.rootfs);
  const fifoFd = boot.fifoFd;
  pivotInto(boot.rootfs, boot.noPivot);
  mark("pivot");
  if (boot.terminal) setupConsole(ch, proc.consoleSize);
  if (spec.hostname !== undefined) libc.sethostname(spec.hostname);
  if (spec.domainname !== undefined) libc.setdomainname(spec.domainname);
  // Before readonlyPaths makes /proc/sys read-only, as runc orders it.
  for (const [k, v] of Object.entries(spec.linux?.sysctl ?? {})) writeProc(`/proc/sys/${k.replace(/\./g, "/")}`, v);
  finalizeRootfs(spec);
  // runc creates a missing cwd; we are inside the new root, so this can't reach the host.
  if (!existsSync(proc.cwd)) {
    try {
      mkdirSync(proc.cwd, { recursive: true, mode: 0o755 });
    } catch {
      // chdir below reports the problem in runc's words.
    }
  }
  const plan = prepareProcess(proc, boot);
  mark("privileges");
  return { ...plan, fifoFd };
}

function setupExec(boot: ExecBootstrap, ch: Channel): ExecPlan {
  joinContainer(boot.initPid);
  mark("namespaces");
  if (boot.terminal) setupConsole(ch, boot.process.consoleSize);
  const plan = prepareProcess(boot.process, boot);
  mark("privileges");
  return plan;
}

/** Per-process setup shared by a container's init and exec'd processes; ends just before execve. */
function prepareProcess(proc: Process, boot: Bootstrap): ExecPlan {
  const compiled = boot.seccomp && decodeSeccomp(boot.seccomp);
  const filter = compiled?.filter;
  const flags = compiled?.flags ?? [];
  // A session keyring of the container's own, so keys of the host's session don't leak in; the
  // permission mask is the one runc's keyrings end up with.
  if (!boot.noNewKeyring) joinKeyring(`_ses.${boot.id}`);
  if (proc.oomScoreAdj !== undefined) writeProc("/proc/self/oom_score_adj", String(proc.oomScoreAdj));
  for (const r of proc.rlimits ?? []) libc.setrlimit(RLIMITS[r.type]!, BigInt(r.soft), BigInt(r.hard), r.type);
  const env = withHome([...(proc.env ?? []), ...boot.env], proc.user.uid);
  const path = lookPath(proc.args![0]!, env);
  try {
    libc.chdir(proc.cwd);
  } catch (e: any) {
    throw new Error(`chdir to cwd (${JSON.stringify(proc.cwd)}) set in config.json failed: ${e.code === "ENOENT" ? "no such file or directory" : e.code}`);
  }
  // CVE-2024-21626: a cwd like /proc/self/fd/N can name a directory fd this process still holds
  // from the host. The kernel tells on it: the cwd is then outside our root.
  let cwd: string;
  try {
    cwd = libc.getcwd();
  } catch {
    cwd = "(unreachable)";
  }
  if (!cwd.startsWith("/")) throw new Error("current working directory is outside of container mount namespace root -- possible container breakout detected");
  libc.umask(proc.user.umask ?? 0o022);
  for (let fd = 3; fd < 3 + boot.extraFds; fd++) libc.clearCloexec(fd);
  // As runc: without no_new_privs, seccomp(2) needs CAP_SYS_ADMIN, so the filter goes in before
  // capabilities are dropped; with it, as late as possible (just before execve).
  if (filter && !proc.noNewPrivileges) installSeccomp(filter, flags);
  applyUserAndCaps(proc.user, proc.capabilities);
  if (proc.noNewPrivileges) libc.prctl(PR.SET_NO_NEW_PRIVS, 1);
  return { path, args: proc.args!, env, seccomp: filter && proc.noNewPrivileges ? { filter, flags } : undefined };
}

function joinKeyring(name: string): void {
  try {
    libc.joinSessionKeyring(name, 0x3f1b0000);
  } catch (e: any) {
    // Kernels or seccomp profiles without keyctl: runc carries on without a keyring too.
    if (e.code !== "ENOSYS" && e.code !== "EPERM" && e.code !== "EACCES") throw e;
  }
}

function enterNamespaces(spec: Spec): void {
  let unshareFlags = 0;
  for (const ns of spec.linux?.namespaces ?? []) {
    const info = NAMESPACES[ns.type];
    // pid and user were handled by the parent, before spawning us.
    if (!info || ns.type === "pid" || ns.type === "user") continue;
    if (ns.path) setnsPath(ns.path, info.flag);
    else unshareFlags |= info.flag;
  }
  if (unshareFlags) libc.unshare(unshareFlags);
  if (unshareFlags & CLONE.NEWNET) loopbackUp();
}

function setnsPath(path: string, flag: number): void {
  const fd = libc.open(path, O.RDONLY);
  try {
    libc.setns(fd, flag, path);
  } finally {
    libc.close(fd);
  }
}

/**
 * Joins every namespace the container's init is in (pid came from the parent). All ns fds are
 * opened first: after joining the mount namespace, /proc is the container's.
 */
function joinContainer(initPid: number): void {
  const order = ["cgroup", "ipc", "uts", "net", "mnt"];
  const fds: [number, number, string][] = [];
  for (const name of order) {
    const info = Object.values(NAMESPACES).find((n) => n.proc === name)!;
    const path = `/proc/${initPid}/ns/${name}`;
    if (readlinkOr(path) === readlinkOr(`/proc/self/ns/${name}`)) continue;
    fds.push([libc.open(path, O.RDONLY), info.flag, path]);
  }
  // setns() into a mount namespace needs an fs_struct of our own; Bun's threads share one.
  libc.unshare(CLONE.FS);
  for (const [fd, flag, path] of fds) {
    try {
      libc.setns(fd, flag, path);
    } finally {
      libc.close(fd);
    }
  }
}

function writeProc(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (e: any) {
    throw new Error(`write ${path}: ${e.code ?? e.message}`);
  }
}

function setupConsole(ch: Channel, size?: { height: number; width: number }): void {
  const master = libc.open("/dev/ptmx", O.RDWR | O.NOCTTY);
  const zero = new Int32Array(1);
  libc.ioctl(master, TIOCSPTLCK, new Uint8Array(zero.buffer));
  const n = new Uint32Array(1);
  libc.ioctl(master, TIOCGPTN, new Uint8Array(n.buffer));
  if (size) {
    const ws = new Uint16Array([size.height, size.width, 0, 0]);
    libc.ioctl(master, TIOCSWINSZ, new Uint8Array(ws.buffer));
  }
  const slavePath = `/dev/pts/${n[0]}`;
  ch.send({ type: "pty" }, master);
  libc.close(master);
  libc.setsid();
  const slave = libc.openInheritable(slavePath, O.RDWR);
  libc.ioctlInt(slave, TIOCSCTTY, 0);
  for (const fd of [0, 1, 2]) libc.dup2(slave, fd);
  if (slave > 2) libc.close(slave);
}

function waitForStart(fifoFd: number): void {
  const fd = libc.open(`/proc/self/fd/${fifoFd}`, O.WRONLY);
  libc.writeFd(fd, "0");
  libc.close(fd);
  libc.close(fifoFd);
}

function withHome(env: string[], uid: number): string[] {
  if (env.some((e) => e.startsWith("HOME="))) return env;
  let home = "/";
  try {
    const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.split(":")[2] === String(uid));
    if (line) home = line.split(":")[5] || "/";
  } catch {}
  return [...env, `HOME=${home}`];
}

/** PATH lookup inside the container, with Go's exec.LookPath errors as runc prints them. */
function lookPath(file: string, env: string[]): string {
  const executable = (p: string) => {
    try {
      if (!statSync(p).isFile()) return false;
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (file.includes("/")) {
    try {
      statSync(file);
    } catch {
      throw new Error(`exec: "${file}": stat ${file}: no such file or directory`);
    }
    if (!executable(file)) throw new Error(`exec: "${file}": permission denied`);
    return file;
  }
  const path = env.find((e) => e.startsWith("PATH="))?.slice(5) ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const dir of path.split(":")) {
    const p = join(dir || ".", file);
    if (executable(p)) return p;
  }
  throw new Error(`exec: "${file}": executable file not found in $PATH`);
}
