// runc's command line: global flags, then a command with its own flags (urfave/cli conventions).
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseSignal } from "../ffi/consts";
import { parseFlags, UsageError, type FlagSpec } from "../core/cli/flags";
import { tabwrite } from "../core/cli/tabwriter";
import { Logger, type LogFormat } from "../core/runtime/log";
import { StateDir } from "../core/runtime/state";
import { EVENTS_FLAGS, UPDATE_FLAGS } from "../core/runtime/resource-flags";
import { timingCommand, mark } from "../core/runtime/timings";
import { out, err } from "../core/cli/io";

export const RUNC_VERSION = "1.1.5";
const SPEC_VERSION = "1.0.2-dev";

const GLOBAL: FlagSpec[] = [
  { name: "debug", type: "bool", help: "enable debug logging" },
  { name: "log", type: "string", default: "", help: "set the log file to write runc logs to (default is '/dev/stderr')" },
  { name: "log-format", type: "string", default: "text", help: "set the log format ('text' (default), or 'json')" },
  { name: "root", type: "string", default: "/run/runc", help: "root directory for storage of container state (this should be located in tmpfs)" },
  { name: "criu", type: "string", default: "criu", help: "path to the criu binary used for checkpoint and restore" },
  { name: "systemd-cgroup", type: "bool", help: "enable systemd cgroup support" },
  { name: "rootless", type: "string", default: "auto", help: "ignore cgroup permission errors ('true', 'false', or 'auto')" },
  { name: "help", aliases: ["h"], type: "bool", help: "show help" },
  { name: "version", aliases: ["v"], type: "bool", help: "print the version" },
];

const BUNDLE: FlagSpec = { name: "bundle", aliases: ["b"], type: "string", default: "", help: "path to the root of the bundle directory, defaults to the current directory" };
const CREATE_FLAGS: FlagSpec[] = [
  BUNDLE,
  { name: "console-socket", type: "string", default: "", help: "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal" },
  { name: "pid-file", type: "string", default: "", help: "specify the file to write the process id to" },
  { name: "no-pivot", type: "bool", help: "do not use pivot root to jail process inside rootfs" },
  { name: "no-new-keyring", type: "bool", help: "do not create a new session keyring for the container" },
  { name: "preserve-fds", type: "int", default: 0, help: "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)" },
];

interface Command {
  usage: string;
  about: string;
  flags: FlagSpec[];
  args: [min: number, max: number];
  run: (ctx: Ctx, args: string[], f: Record<string, any>) => Promise<number> | number;
}

interface Ctx {
  sd: StateDir;
  log: Logger;
  global: Record<string, any>;
}

const COMMANDS: Record<string, Command> = {
  spec: {
    usage: "runc spec [command options] [arguments...]", about: "create a new specification file", args: [0, 0],
    flags: [BUNDLE, { name: "rootless", type: "bool", help: "generate a configuration for a rootless container" }],
    run: async (_ctx, _a, f) => {
      const { defaultSpec, rootlessSpec, specJSON } = await import("../core/oci/default-spec");
      const path = join(resolve(f.bundle || "."), "config.json");
      if (existsSync(path)) throw new Error("File config.json exists. Remove it first");
      writeFileSync(path, specJSON(f.rootless ? rootlessSpec() : defaultSpec()), { mode: 0o666 });
      return 0;
    },
  },
  create: {
    usage: "runc create [command options] <container-id>", about: "create a container", args: [1, 1], flags: CREATE_FLAGS,
    run: async (ctx, [id], f) => {
      const { create } = await import("../core/runtime/create");
      await failed("create", () => create(ctx.sd, { id: id!, bundle: f.bundle || ".", pidFile: f["pid-file"] || undefined, consoleSocket: f["console-socket"] || undefined, noPivot: f["no-pivot"], detach: true, preserveFds: f["preserve-fds"], noNewKeyring: !!f["no-new-keyring"], warn: (m) => ctx.log.warn(m) }));
      return 0;
    },
  },
  run: {
    usage: "runc run [command options] <container-id>", about: "create and run a container", args: [1, 1],
    flags: [...CREATE_FLAGS, { name: "detach", aliases: ["d"], type: "bool", help: "detach from the container's process" }, { name: "keep", type: "bool", help: "do not delete the container after it exits" }, { name: "no-subreaper", type: "bool", help: "disable the use of the subreaper used to reap reparented processes" }],
    run: async (ctx, [id], f) => failed("run", async () => (await import("../core/runtime/run")).run(ctx.sd, { id: id!, bundle: f.bundle || ".", pidFile: f["pid-file"] || undefined, consoleSocket: f["console-socket"] || undefined, noPivot: f["no-pivot"], detach: !!f.detach, keep: !!f.keep, preserveFds: f["preserve-fds"], noNewKeyring: !!f["no-new-keyring"], warn: (m) => ctx.log.warn(m) })),
  },
  start: {
    usage: "runc start <container-id>", about: "executes the user defined process in a created container", args: [1, 1], flags: [],
    run: async (ctx, [id]) => (await (await import("../core/runtime/ops")).start(ctx.sd, id!), 0),
  },
  state: {
    usage: "runc state <container-id>", about: "output the state of a container", args: [1, 1], flags: [],
    run: async (ctx, [id]) => {
      const { describe } = await import("../core/runtime/ops");
      // runc's state leaves owner empty (only list fills it) and ends without a newline.
      out(JSON.stringify({ ...describe(ctx.sd, ctx.sd.load(id!)), owner: "" }, null, "  "));
      return 0;
    },
  },
  list: {
    usage: "runc list [command options]", about: "lists containers started by runc with the given root", args: [0, 0],
    flags: [{ name: "format", aliases: ["f"], type: "string", default: "table", help: "select one of: table or json (default: \"table\")" }, { name: "quiet", aliases: ["q"], type: "bool", help: "display only container IDs" }],
    run: async (ctx, _a, f) => {
      const { list } = await import("../core/runtime/ops");
      const all = list(ctx.sd);
      if (f.quiet) out(all.map((c) => c.id + "\n").join(""));
      else if (f.format === "json") out(JSON.stringify(all.length ? all : null) + "\n");
      else if (f.format === "table") {
        const rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], ...all.map((c) => [c.id, String(c.pid), c.status, c.bundle, c.created, c.owner])];
        out(tabwrite(rows, 12, 3));
      } else throw new Error(`invalid format option`);
      return 0;
    },
  },
  kill: {
    usage: "runc kill [command options] <container-id> [signal]", about: "kill sends the specified signal (default: SIGTERM) to the container's init process", args: [1, 2],
    flags: [{ name: "all", aliases: ["a"], type: "bool", help: "send the specified signal to all processes inside the container" }],
    run: async (ctx, [id, sig], f) => (await (await import("../core/runtime/ops")).kill(ctx.sd, id!, parseSignal(sig ?? "SIGTERM"), !!f.all), 0),
  },
  delete: {
    usage: "runc delete [command options] <container-id>", about: "delete any resources held by the container often used with detached container", args: [1, 1],
    flags: [{ name: "force", aliases: ["f"], type: "bool", help: "Forcibly deletes the container if it is still running (uses SIGKILL)" }],
    run: async (ctx, [id], f) => (await (await import("../core/runtime/ops")).remove(ctx.sd, id!, !!f.force, (m) => ctx.log.warn(m)), 0),
  },
  ps: {
    usage: "runc ps [command options] <container-id> [ps options]", about: "ps displays the processes running inside a container", args: [1, Infinity],
    flags: [{ name: "format", aliases: ["f"], type: "string", default: "table", help: "select one of: table or json (default: \"table\")" }],
    run: async (ctx, [id, ...psArgs], f) => {
      const { pids } = await import("../core/runtime/ops");
      const list = pids(ctx.sd, id!);
      if (f.format === "json") {
        if (psArgs.length) throw new Error("ps options are not supported with --format json");
        out(JSON.stringify(list.length ? list : null) + "\n");
        return 0;
      }
      if (f.format !== "table") throw new Error("invalid format option");
      const { psWithArgs } = await import("../core/runtime/pstable");
      out(psWithArgs(list, psArgs));
      return 0;
    },
  },
  exec: {
    usage: "runc exec [command options] <container-id> <command> [command options]  || -p process.json <container-id>",
    about: "execute new process inside the container", args: [1, Infinity],
    flags: [
      { name: "console-socket", type: "string", default: "", help: "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal" },
      { name: "cwd", type: "string", default: "", help: "current working directory in the container" },
      { name: "env", aliases: ["e"], type: "strings", default: [], help: "set environment variables" },
      { name: "tty", aliases: ["t"], type: "bool", help: "allocate a pseudo-TTY" },
      { name: "user", aliases: ["u"], type: "string", default: "", help: "UID (format: <uid>[:<gid>])" },
      { name: "additional-gids", aliases: ["g"], type: "strings", default: [], help: "additional gids" },
      { name: "process", aliases: ["p"], type: "string", default: "", help: "path to the process.json" },
      { name: "detach", aliases: ["d"], type: "bool", help: "detach from the container's process" },
      { name: "pid-file", type: "string", default: "", help: "specify the file to write the process id to" },
      { name: "process-label", type: "string", default: "", help: "set the asm process label for the process commonly used with selinux" },
      { name: "apparmor", type: "string", default: "", help: "set the apparmor profile for the process" },
      { name: "no-new-privs", type: "bool", help: "set the no new privileges value for the process" },
      { name: "cap", aliases: ["c"], type: "strings", default: [], help: "add a capability to the bounding set for the process" },
      { name: "preserve-fds", type: "int", default: 0, help: "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)" },
      { name: "cgroup", type: "strings", default: [], help: "run the process in an (existing) sub-cgroup(s)" },
      { name: "ignore-paused", type: "bool", help: "allow exec in a paused container" },
    ],
    run: async (ctx, [id, ...args], f) => {
      const { exec } = await import("../core/runtime/exec");
      // runc exits 255 when exec itself fails, so the process's own status stays unambiguous.
      try {
        if (!f.process && !args.length) throw new Error("process args cannot be empty");
        if (f.cgroup.length) throw new Error("--cgroup (exec into a sub-cgroup) is not supported by bunker's runc yet");
        return await exec(ctx.sd, {
        id: id!, processFile: f.process || undefined, args, tty: !!f.tty, env: f.env, cwd: f.cwd || undefined, user: f.user || undefined,
        additionalGids: f["additional-gids"], caps: f.cap, noNewPrivs: !!f["no-new-privs"], detach: !!f.detach, pidFile: f["pid-file"] || undefined,
          consoleSocket: f["console-socket"] || undefined, preserveFds: f["preserve-fds"], ignorePaused: !!f["ignore-paused"],
        });
      } catch (e: any) {
        ctx.log.error(`exec failed: ${e?.message ?? e}`);
        return 255;
      }
    },
  },
  features: {
    usage: "runc features", about: "show the enabled features", args: [0, 0], flags: [],
    run: async () => {
      const { features } = await import("../core/runtime/features");
      out(JSON.stringify(features(RUNC_VERSION), null, "    ") + "\n");
      return 0;
    },
  },
  pause: {
    usage: "runc pause <container-id>", about: "pause suspends all processes inside the container", args: [1, 1], flags: [],
    run: async (ctx, [id]) => (await (await import("../core/runtime/ops")).pause(ctx.sd, id!, true), 0),
  },
  resume: {
    usage: "runc resume <container-id>", about: "resumes all processes that have been previously paused", args: [1, 1], flags: [],
    run: async (ctx, [id]) => (await (await import("../core/runtime/ops")).pause(ctx.sd, id!, false), 0),
  },
  update: {
    usage: "runc update [command options] <container-id>", about: "update container resource constraints", args: [1, 1],
    flags: UPDATE_FLAGS,
    run: async (ctx, [id], f) => {
      const { parseUpdateFlags, update } = await import("../core/runtime/update");
      ctx.sd.load(id!); // "container does not exist" before reading stdin or flags
      await update(ctx.sd, id!, parseUpdateFlags(f), (m) => ctx.log.warn(m));
      return 0;
    },
  },
  events: {
    usage: "runc events [command options] <container-id>", about: "display container events such as OOM notifications, cpu, memory, and IO usage statistics", args: [1, 1],
    flags: EVENTS_FLAGS,
    run: async (ctx, [id], f) => {
      const { eventsMain, parseDuration } = await import("../core/runtime/events");
      return eventsMain(ctx.sd, id!, { stats: !!f.stats, intervalMs: parseDuration(String(f.interval)) }, out, (m) => ctx.log.error(m));
    },
  },
  init: {
    usage: "runc init", about: "initialize the namespaces and launch the process (do not call it outside of runc)", args: [0, 0], flags: [],
    run: async () => (await import("../core/runtime/init")).initMain(),
  },
};

/** runc prefixes every create/run failure with the action. */
async function failed<T>(action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e: any) {
    throw new Error(`runc ${action} failed: ${e?.message ?? e}`);
  }
}

function versionText(): string {
  return `runc version ${RUNC_VERSION}\ncommit: bunker\nspec: ${SPEC_VERSION}\ngo: bun${Bun.version}\n`;
}

function helpText(): string {
  const cmds = Object.entries(COMMANDS).filter(([n]) => n !== "init").map(([n, c]) => `     ${n.padEnd(12)}${c.about}`);
  return `NAME:
   runc - Open Container Initiative runtime (bunker)

USAGE:
   runc [global options] command [command options] [arguments...]

VERSION:
   ${RUNC_VERSION}
spec: ${SPEC_VERSION}

COMMANDS:
${cmds.join("\n")}

GLOBAL OPTIONS:
${GLOBAL.map((g) => `   --${g.name}${g.aliases ? ", -" + g.aliases[0] : ""}`).join("\n")}
`;
}

function commandHelp(name: string, c: Command): string {
  const opts = c.flags.map((f) => `   --${f.name}${f.aliases ? ", -" + f.aliases.join(", -") : ""}${f.type === "bool" ? "" : " value"}\t${f.help ?? ""}`);
  return `NAME:\n   runc ${name} - ${c.about}\n\nUSAGE:\n   ${c.usage}\n${opts.length ? "\nOPTIONS:\n" + opts.join("\n") + "\n" : ""}`;
}

export async function main(argv: string[]): Promise<number> {
  let log = new Logger(undefined);
  try {
    const g = parseFlags(argv, GLOBAL);
    const fmt = String(g.flags["log-format"]);
    if (fmt !== "text" && fmt !== "json") throw new UsageError(`invalid log-format: ${fmt}`);
    log = new Logger((g.flags.log as string) || undefined, fmt as LogFormat, !!g.flags.debug);
    if (g.flags.version) return out(versionText()), 0;
    const [name, ...rest] = g.args;
    if (g.flags.help || !name || name === "help") return out(helpText()), 0;
    const cmd = COMMANDS[name];
    if (!cmd) {
      err(`No help topic for '${name}'\n`);
      return 3;
    }
    if (g.flags["systemd-cgroup"]) throw new Error("systemd cgroup driver is not supported: systemd is not running on this host or not supported by bunker yet");
    timingCommand(name);
    mark("start");
    const c = parseFlags(rest, [...cmd.flags, { name: "help", aliases: ["h"], type: "bool" }]);
    if (c.flags.help) return out(commandHelp(name, cmd)), 0;
    const [min, max] = cmd.args;
    if (c.args.length < min || c.args.length > max) {
      out("Incorrect Usage.\n\n" + commandHelp(name, cmd) + "\n");
      const what = min === max ? `exactly ${min}` : c.args.length < min ? `a minimum of ${min}` : `a maximum of ${max}`;
      log.error(`runc: "${name}" requires ${what} argument(s)`);
      return 1;
    }
    const ctx: Ctx = { sd: new StateDir(resolve(String(g.flags.root))), log, global: g.flags };
    const code = await cmd.run(ctx, c.args, c.flags);
    mark("done");
    return code;
  } catch (e: any) {
    log.error(e?.message ?? String(e));
    return 1;
  }
}
