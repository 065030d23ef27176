// ctr's command line (urfave/cli v1 conventions, as the real ctr 1.6): global flags, then a
// command, possibly a group of subcommands, then the command's flags and arguments. Errors print
// `ctr: <message>` and exit 1; an unknown command prints "No help topic for 'x'" and exits 3.
import { parseFlags, UsageError, type FlagSpec, type FlagValues } from "../cli/flags";
import { err, out } from "../cli/io";
import { messageOf } from "../containerd/errdefs";
import { Logger } from "../containerd/log";
import { CONTAINERD_PACKAGE, CONTAINERD_VERSION } from "../containerd/version";
import { Client, DEFAULT_ADDRESS } from "./client";
import { GoTabWriter } from "./tabwriter";
import { formatDuration, parseDuration } from "./units";

export interface CtrFlag extends FlagSpec {
  /** Environment variable read when the flag is not given. */
  env?: string;
  /** The default as urfave shows it ("24h0m0s", "\"default\""); none shown when undefined. */
  defaultText?: string;
}

export interface Command {
  name: string;
  aliases?: string[];
  usage: string;
  argsUsage?: string;
  description?: string;
  flags?: CtrFlag[];
  subcommands?: Command[];
  action?: (c: Ctx) => Promise<number | void> | number | void;
}

export class Ctx {
  private conn?: Client;
  readonly log: Logger;

  constructor(
    readonly args: string[],
    readonly flags: FlagValues,
    readonly global: FlagValues,
  ) {
    this.log = new Logger({ level: global.debug ? "debug" : "info", timestamps: "seconds" });
  }

  get namespace(): string {
    return String(this.global.namespace);
  }

  /** The client, connected on first use (commands that fail before needing it never dial). */
  async client(): Promise<Client> {
    this.conn ??= await Client.connect(String(this.global.address), this.namespace, {
      connectTimeoutMs: durationFlag(this.global["connect-timeout"], "connect-timeout"),
      timeoutMs: durationFlag(this.global.timeout, "timeout"),
    });
    return this.conn;
  }

  close(): void {
    this.conn?.close();
  }
}

function durationFlag(v: unknown, name: string): number {
  try {
    return parseDuration(String(v ?? "0s"));
  } catch (e: any) {
    throw new UsageError(`invalid value ${JSON.stringify(String(v))} for flag -${name}: ${e.message}`);
  }
}

export const GLOBAL_FLAGS: CtrFlag[] = [
  { name: "debug", type: "bool", help: "enable debug output in logs" },
  { name: "address", aliases: ["a"], type: "string", default: DEFAULT_ADDRESS, env: "CONTAINERD_ADDRESS", defaultText: JSON.stringify(DEFAULT_ADDRESS), help: "address for containerd's GRPC server" },
  { name: "timeout", type: "string", default: "0s", defaultText: "0s", help: "total timeout for ctr commands" },
  { name: "connect-timeout", type: "string", default: "0s", defaultText: "0s", help: "timeout for connecting to containerd" },
  { name: "namespace", aliases: ["n"], type: "string", default: "default", env: "CONTAINERD_NAMESPACE", defaultText: '"default"', help: "namespace to use with commands" },
  { name: "help", aliases: ["h"], type: "bool", help: "show help" },
  { name: "version", aliases: ["v"], type: "bool", help: "print the version" },
];

/** urfave's flag line: "--expires value, -x value\texpiration ... (default: 24h0m0s) [$ENV]". */
function flagLine(f: CtrFlag): string {
  const v = f.type === "bool" ? "" : " value";
  const names = [f.name, ...(f.aliases ?? [])].map((n) => (n.length === 1 ? "-" : "--") + n + v).join(", ");
  const def = f.defaultText !== undefined ? ` (default: ${f.defaultText})` : "";
  const env = f.env ? ` [$${f.env}]` : "";
  return `${names}\t${f.help ?? ""}${def}${env}`;
}

function optionsBlock(flags: CtrFlag[]): string {
  return `OPTIONS:\n   ${flags.map((f) => flagLine(f) + "\n   ").join("")}\n`;
}

const names = (c: Command) => [c.name, ...(c.aliases ?? [])].join(", ");

function commandsBlock(cmds: Command[]): string {
  return cmds.map((c) => `   ${names(c)}\t${c.usage}\n`).join("");
}

export function appHelp(commands: Command[]): string {
  const tw = new GoTabWriter(1, 2);
  tw.write(`NAME:
   ctr - containerd CLI (bunker)

USAGE:
   ctr [global options] command [command options] [arguments...]

VERSION:
   ${CONTAINERD_VERSION}

DESCRIPTION:
   
ctr is a debug and administrative client for interacting with the containerd daemon: bunker's
own, or any containerd speaking its gRPC API (1.6).

COMMANDS:
${commandsBlock([...commands, { name: "help", aliases: ["h"], usage: "Shows a list of commands or help for one command" }])}
GLOBAL OPTIONS:
${GLOBAL_FLAGS.map((f) => "   " + flagLine(f)).join("\n")}
`);
  return tw.flush();
}

function groupHelp(path: string, c: Command): string {
  const tw = new GoTabWriter(1, 2);
  tw.write(`NAME:
   ${path} - ${c.description ?? c.usage}

USAGE:
   ${path} command [command options] [arguments...]

COMMANDS:
${commandsBlock(c.subcommands ?? [])}
${optionsBlock([...(c.flags ?? []), { name: "help", aliases: ["h"], type: "bool", help: "show help" }])}`);
  return tw.flush();
}

function leafHelp(path: string, c: Command): string {
  const tw = new GoTabWriter(1, 2);
  const flags = c.flags ?? [];
  let s = `NAME:\n   ${path} - ${c.usage}\n\nUSAGE:\n   ${path}${flags.length ? " [command options]" : ""} ${c.argsUsage ?? "[arguments...]"}\n`;
  if (c.description) s += `\nDESCRIPTION:\n   ${c.description}\n`;
  if (flags.length) s += `\n${optionsBlock(flags)}`;
  tw.write(s);
  return tw.flush();
}

function find(cmds: Command[], name: string): Command | undefined {
  return cmds.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Go's flag package names an unknown flag with one dash. */
function usageMessage(e: UsageError): string {
  return e.message.replace(/: --?([^\s=]+)$/, ": -$1");
}

function withEnv(flags: FlagValues, argv: string[], specs: CtrFlag[]): FlagValues {
  for (const f of specs) {
    if (!f.env || process.env[f.env] === undefined) continue;
    const given = argv.some((a) => [f.name, ...(f.aliases ?? [])].some((n) => a === `--${n}` || a === `-${n}` || a.startsWith(`--${n}=`) || a.startsWith(`-${n}=`)));
    if (!given) flags[f.name] = process.env[f.env]!;
  }
  return flags;
}

export async function runApp(argv: string[], commands: Command[]): Promise<number> {
  let g;
  try {
    g = parseFlags(argv, GLOBAL_FLAGS);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    out(`Incorrect Usage. ${usageMessage(e)}\n\n${appHelp(commands)}`);
    err(`ctr: ${usageMessage(e)}\n`);
    return 1;
  }
  const global = withEnv(g.flags, argv.slice(0, argv.length - g.args.length), GLOBAL_FLAGS);
  if (global.version) return out(`ctr ${CONTAINERD_PACKAGE} ${CONTAINERD_VERSION}\n`), 0;
  let [name, ...rest] = g.args;
  if (global.help || name === undefined) return out(appHelp(commands)), 0;
  if (name === "help" || name === "h") {
    if (!rest.length) return out(appHelp(commands)), 0;
    name = rest[0]!;
    rest = ["--help"];
  }
  let cmd = find(commands, name);
  let path = `ctr ${cmd?.name ?? name}`;
  if (!cmd) {
    err(`No help topic for '${name}'\n`);
    return 3;
  }
  // Flags of a command group (ctr snapshots --snapshotter x ls), before its subcommand.
  const groupFlags: FlagValues = {};
  while (cmd.subcommands) {
    if (cmd.flags?.length) {
      try {
        const g = parseFlags(rest, [...cmd.flags, { name: "help", aliases: ["h"], type: "bool" }]);
        if (g.flags.help) return out(groupHelp(path, cmd)), 0;
        delete g.flags.help;
        Object.assign(groupFlags, withEnv(g.flags, rest.slice(0, rest.length - g.args.length), cmd.flags));
        rest = g.args;
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        out(`Incorrect Usage: ${usageMessage(e)}\n\n${groupHelp(path, cmd)}`);
        err(`ctr: ${usageMessage(e)}\n`);
        return 1;
      }
    }
    const [sub, ...more] = rest;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help" || sub === "h") {
      if ((sub === "help" || sub === "h") && more.length) {
        const target = find(cmd.subcommands, more[0]!);
        if (target) {
          out(target.subcommands ? groupHelp(`${path} ${target.name}`, target) : leafHelp(`${path} ${target.name}`, target));
          return 0;
        }
      }
      out(groupHelp(path, cmd));
      return 0;
    }
    const next = find(cmd.subcommands, sub);
    if (!next) {
      err(`No help topic for '${sub}'\n`);
      return 3;
    }
    cmd = next;
    path += ` ${next.name}`;
    rest = more;
  }
  let parsed;
  try {
    parsed = parseFlags(rest, [...(cmd.flags ?? []), { name: "help", aliases: ["h"], type: "bool" }]);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    out(`Incorrect Usage: ${usageMessage(e)}\n\n${leafHelp(path, cmd)}`);
    err(`ctr: ${usageMessage(e)}\n`);
    return 1;
  }
  if (parsed.flags.help) return out(leafHelp(path, cmd)), 0;
  const ctx = new Ctx(parsed.args, { ...groupFlags, ...parsed.flags }, global);
  try {
    const code = await cmd.action?.(ctx);
    return typeof code === "number" ? code : 0;
  } catch (e) {
    err(`ctr: ${e instanceof UsageError ? usageMessage(e) : messageOf(e)}\n`);
    return 1;
  } finally {
    ctx.close();
  }
}

export { formatDuration, parseDuration };

/** ctr's LabelArgs: "k=v" pairs; a bare "k" means "true". */
export function labelArgs(args: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const a of args) {
    const i = a.indexOf("=");
    if (i < 0) labels[a] = "true";
    else labels[a.slice(0, i)] = a.slice(i + 1);
  }
  return labels;
}

/** "k=v,k2=v2" sorted, or `empty` when there are none. */
export function joinLabels(labels: Record<string, string>, empty = "-"): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length ? pairs.sort().join(",") : empty;
}
