// ctr's command line, as urfave/cli v1.22 runs it for the real ctr 1.6:
//
//   * Go's flag package parses each level (`-f`, `--f`, `-f=v`, `--f v`; no bundling of short
//     flags; "--" ends the flags; "flag provided but not defined: -x").
//   * The app parses the global flags and stops at the command. A command with subcommands runs
//     as a nested app (its own flags, then a subcommand; `help`/`h` subcommand; usage errors say
//     "Incorrect Usage." and show the group's help). A leaf command first moves its own flags
//     before its arguments (urfave's reorderArgs: `ls a -q` is `ls -q a`), then parses them
//     (usage errors say "Incorrect Usage:" and show the command's help).
//   * Errors print `ctr: <message>` and exit 1; an unknown command or help topic prints
//     "No help topic for 'x'" and exits 3.
import { err, out } from "../cli/io";
import { messageOf } from "../containerd/errdefs";
import { Logger } from "../containerd/log";
import { CONTAINERD_PACKAGE, CONTAINERD_VERSION } from "../containerd/version";
import { Client, DEFAULT_ADDRESS } from "./client";
import { GoTabWriter } from "./tabwriter";
import { formatDuration, parseDuration } from "./units";

export type FlagValue = string | boolean | number | string[] | undefined;
export type FlagValues = Record<string, FlagValue>;

export interface CtrFlag {
  name: string;
  aliases?: string[];
  /** Go flag kinds: bool, string, a string slice (repeatable), int/int64/uint, duration (kept as the given text). */
  type: "bool" | "string" | "strings" | "int" | "int64" | "uint" | "duration";
  default?: string | boolean | number | string[];
  help?: string;
  hidden?: boolean;
  /** Environment variable read when the flag is not given (urfave's EnvVar). */
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
  /** urfave's SkipArgReorder: flags after the first argument stay arguments. */
  skipArgReorder?: boolean;
  action?: (c: Ctx) => Promise<number | void> | number | void;
}

/** A usage error: the message is Go's flag package's, shown after "Incorrect Usage". */
export class UsageError extends Error {}

/** urfave's normalizeFlags error (a flag given under two of its names). */
export class NormalizeError extends UsageError {}

/** urfave's ExitError: the message goes to stderr as is, and the process exits with `code`. */
export class ExitError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export class Ctx {
  private conn?: Client;
  readonly log: Logger;

  constructor(
    readonly args: string[],
    readonly flags: FlagValues,
    readonly global: FlagValues,
    /** The command's help (what `cli.ShowSubcommandHelp(context)` prints in ctr). */
    private readonly help: () => string = () => "",
  ) {
    this.log = new Logger({ level: global.debug ? "debug" : "info", timestamps: "seconds" });
  }

  get namespace(): string {
    return String(this.global.namespace ?? "");
  }

  /** Print the command's help, as ctr's actions do when arguments are missing. */
  showHelp(): void {
    out(this.help());
  }

  /** The client, connected on first use (commands that fail before needing it never dial). */
  async client(): Promise<Client> {
    // containerd.New("") makes a client without a connection: every call fails.
    if (String(this.global.address ?? "") === "") throw new Error("no grpc connection or services is available: unavailable");
    this.conn ??= await Client.connect(String(this.global.address), this.namespace, {
      connectTimeoutMs: parseDuration(String(this.global["connect-timeout"] ?? "0s")),
      timeoutMs: parseDuration(String(this.global.timeout ?? "0s")),
      failFast: true,
    });
    return this.conn;
  }

  close(): void {
    this.conn?.close();
  }
}

const HELP_FLAG: CtrFlag = { name: "help", aliases: ["h"], type: "bool", help: "show help" };

export const GLOBAL_FLAGS: CtrFlag[] = [
  { name: "debug", type: "bool", help: "enable debug output in logs" },
  { name: "address", aliases: ["a"], type: "string", default: DEFAULT_ADDRESS, env: "CONTAINERD_ADDRESS", defaultText: JSON.stringify(DEFAULT_ADDRESS), help: "address for containerd's GRPC server" },
  { name: "timeout", type: "duration", default: "0s", defaultText: "0s", help: "total timeout for ctr commands" },
  { name: "connect-timeout", type: "duration", default: "0s", defaultText: "0s", help: "timeout for connecting to containerd" },
  { name: "namespace", aliases: ["n"], type: "string", default: "default", env: "CONTAINERD_NAMESPACE", defaultText: '"default"', help: "namespace to use with commands" },
  HELP_FLAG,
  { name: "version", aliases: ["v"], type: "bool", help: "print the version" },
];

// ---------------------------------------------------------------------------------------------
// Go's flag package

const flagNames = (f: CtrFlag) => [f.name, ...(f.aliases ?? [])];

/** strconv.ParseBool. */
function parseBool(s: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  return undefined;
}

/** strconv.ParseInt(s, 0, 64) / ParseUint(s, 0, 64): the number, or the flag package's error. */
function parseGoInt(s: string, unsigned: boolean): number | "parse error" | "value out of range" {
  const m = /^([+-]?)(0[xX]|0[bB]|0[oO]|0(?=[0-9_])|)(.*)$/.exec(s)!;
  const [, sign, prefix, body] = m as unknown as [string, string, string, string];
  if (unsigned && sign) return "parse error";
  const base = /x/i.test(prefix) ? 16 : /b/i.test(prefix) ? 2 : prefix ? 8 : 10;
  const digit = { 2: "[01]", 8: "[0-7]", 10: "[0-9]", 16: "[0-9a-fA-F]" }[base]!;
  // Go's base-0 syntax: underscores only between digits (or right after a base prefix).
  const ok = new RegExp(`^${prefix ? "_?" : ""}${digit}+(_${digit}+)*$`).test(body);
  if (!ok) return "parse error";
  const digits = body.replace(/_/g, "");
  const v = BigInt((base === 16 ? "0x" : base === 8 ? "0o" : base === 2 ? "0b" : "") + digits) * (sign === "-" ? -1n : 1n);
  if (unsigned ? v > 0xffffffffffffffffn : v > 0x7fffffffffffffffn || v < -0x8000000000000000n) return "value out of range";
  return Number(v);
}

function setValue(f: CtrFlag, flags: FlagValues, value: string, shown: string, fresh: Set<string>): void {
  switch (f.type) {
    case "bool": {
      const b = parseBool(value);
      if (b === undefined) throw new UsageError(`invalid boolean value ${goQuote(value)} for -${shown}: parse error`);
      flags[f.name] = b;
      return;
    }
    case "int":
    case "int64":
    case "uint": {
      const n = parseGoInt(value, f.type === "uint");
      if (typeof n === "string") throw new UsageError(`invalid value ${goQuote(value)} for flag -${shown}: ${n}`);
      flags[f.name] = n;
      return;
    }
    case "duration":
      try {
        parseDuration(value);
      } catch {
        throw new UsageError(`invalid value ${goQuote(value)} for flag -${shown}: parse error`);
      }
      flags[f.name] = value;
      return;
    case "strings":
      // urfave's StringSlice appends to whatever the flag held (its default included).
      if (!fresh.has(f.name)) flags[f.name] = Array.isArray(flags[f.name]) ? [...(flags[f.name] as string[])] : [];
      fresh.add(f.name);
      (flags[f.name] as string[]).push(value);
      return;
    default:
      flags[f.name] = value;
  }
}

/** Go's %q of a string (ASCII printable kept, the rest escaped). */
export function goQuote(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (ch) => {
    const c = ch.charCodeAt(0);
    return c >= 0xa0 && c !== 0xad ? ch : "\\u" + c.toString(16).padStart(4, "0");
  });
}

/** urfave's flag defaults and environment variables (Flag.Apply, whose errors are usage errors), before the command line. */
function initialValues(specs: CtrFlag[]): FlagValues {
  const flags: FlagValues = {};
  for (const f of specs) {
    if (f.default !== undefined) flags[f.name] = Array.isArray(f.default) ? [...f.default] : f.default;
    else if (f.type === "bool") flags[f.name] = false;
    const env = f.env ? process.env[f.env] : undefined;
    if (env === undefined) continue;
    if (f.type === "bool") {
      const b = env === "" ? false : parseBool(env);
      if (b === undefined) throw new UsageError(`could not parse ${env} as bool value for flag ${flagNames(f).join(", ")}: strconv.ParseBool: parsing ${goQuote(env)}: invalid syntax`);
      flags[f.name] = b;
    } else if (f.type === "duration") {
      try {
        parseDuration(env);
      } catch (e: any) {
        throw new UsageError(`could not parse ${env} as duration for flag ${flagNames(f).join(", ")}: ${e.message}`);
      }
      flags[f.name] = env;
    } else if (f.type === "strings") flags[f.name] = env.split(",").map((s) => s.trim());
    else if (f.type === "int" || f.type === "int64" || f.type === "uint") {
      const n = parseGoInt(env, f.type === "uint");
      if (typeof n === "string") throw new UsageError(`could not parse ${env} as int value for flag ${flagNames(f).join(", ")}: strconv.ParseInt: parsing ${goQuote(env)}: invalid syntax`);
      flags[f.name] = n;
    } else flags[f.name] = env;
  }
  return flags;
}

/** flag.FlagSet.Parse: flags up to the first argument (or "--"), then urfave's normalizeFlags. */
export function goParse(argv: string[], specs: CtrFlag[]): { flags: FlagValues; args: string[] } {
  const byName = new Map<string, CtrFlag>();
  for (const f of specs) for (const n of flagNames(f)) byName.set(n, f);
  const flags = initialValues(specs);
  const fresh = new Set<string>();
  const seen = new Map<string, Set<string>>();
  let i = 0;
  for (; i < argv.length; i++) {
    const s = argv[i]!;
    if (s.length < 2 || s[0] !== "-") break;
    let minuses = 1;
    if (s[1] === "-") {
      minuses = 2;
      if (s.length === 2) {
        i++;
        break;
      }
    }
    let name = s.slice(minuses);
    if (!name.length || name[0] === "-" || name[0] === "=") throw new UsageError(`bad flag syntax: ${s}`);
    let value: string | undefined;
    const eq = name.indexOf("=", 1);
    if (eq > 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const f = byName.get(name);
    if (!f) throw new UsageError(`flag provided but not defined: -${name}`);
    if (f.type === "bool") setValue(f, flags, value ?? "true", name, fresh);
    else {
      if (value === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
        value = argv[++i]!;
      }
      setValue(f, flags, value, name, fresh);
    }
    let names = seen.get(f.name);
    if (!names) seen.set(f.name, (names = new Set()));
    names.add(name);
  }
  // urfave's normalizeFlags: one flag given under two of its names.
  for (const f of specs) {
    const given = flagNames(f).filter((n) => seen.get(f.name)?.has(n));
    if (given.length > 1) throw new NormalizeError(`Cannot use two forms of the same flag: ${given[1]} ${given[0]}`);
  }
  return { flags, args: argv.slice(i) };
}

/** urfave's reorderArgs: a leaf command's own flags (and their values) move before its arguments. */
export function reorderArgs(specs: CtrFlag[], args: string[]): string[] {
  const names = new Set(specs.flatMap(flagNames));
  const isFlag = (a: string) => {
    if (a === "-" || a === "--" || !a.startsWith("-")) return false;
    let n = a.startsWith("--") ? a.slice(2) : a.slice(1);
    n = n.split("=")[0]!;
    return names.has(n);
  };
  const reordered: string[] = [];
  let remaining: string[] = [];
  let mayBeValue = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (mayBeValue && !isFlag(a)) {
      mayBeValue = false;
      reordered.push(a);
    } else if (a === "--") {
      remaining = ["--", ...remaining, ...args.slice(i + 1)];
      break;
    } else if (isFlag(a)) {
      reordered.push(a);
      mayBeValue = !a.includes("=");
    } else remaining.push(a);
  }
  return [...reordered, ...remaining];
}

// ---------------------------------------------------------------------------------------------
// Help (urfave's templates, through a tabwriter with padding 2)

/** urfave's flag line: "--expires value, -x value\texpiration ... (default: 24h0m0s) [$ENV]". */
function flagLine(f: CtrFlag): string {
  const v = f.type === "bool" ? "" : " value";
  const names = flagNames(f).map((n) => (n.length === 1 ? "-" : "--") + n + v).join(", ");
  const def = f.defaultText !== undefined ? ` (default: ${f.defaultText})` : "";
  const env = f.env ? ` [$${f.env}]` : "";
  return `${names}\t${((f.help ?? "") + def).trim()}${env}`;
}

const visible = (flags: CtrFlag[]) => flags.filter((f) => !f.hidden);
const names = (c: Command) => [c.name, ...(c.aliases ?? [])].join(", ");
const tabbed = (s: string) => new GoTabWriter(1, 2).write(s).flush();

/** One level of the command tree, as urfave runs it: the app, or a command with subcommands. */
interface Level {
  name: string;
  helpName: string;
  usage: string;
  description?: string;
  argsUsage?: string;
  flags: CtrFlag[];
  /** The commands listed in help (the app's include help, a group's do not). */
  listed: Command[];
  /** The commands that run (listed plus help). */
  commands: Command[];
  /** helpName of each command. */
  helpNames: Map<Command, string>;
  root: boolean;
}

const HELP_USAGE = "Shows a list of commands or help for one command";

/** urfave's CommandHelpTemplate. */
function commandHelp(c: Command, helpName: string): string {
  const flags = visible(c.flags ?? []);
  let s = `NAME:\n   ${helpName} - ${c.usage}\n\nUSAGE:\n   ${helpName}${flags.length ? " [command options]" : ""} ${c.argsUsage || "[arguments...]"}`;
  if (c.description) s += `\n\nDESCRIPTION:\n   ${c.description}`;
  if (flags.length) s += `\n\nOPTIONS:\n   ${flags.map((f) => flagLine(f) + "\n   ").join("")}`;
  return tabbed(s + "\n");
}

/** urfave's SubcommandHelpTemplate (`ctr images --help`). */
function subcommandHelp(l: Level): string {
  const flags = visible(l.flags);
  let s = `NAME:\n   ${l.helpName} - ${l.description || l.usage}\n\nUSAGE:\n   ${l.helpName} command${flags.length ? " [command options]" : ""} ${l.argsUsage || "[arguments...]"}\n\nCOMMANDS:`;
  s += l.listed.map((c) => `\n   ${names(c)}\t${c.usage}`).join("") + "\n";
  if (flags.length) s += `\nOPTIONS:\n   ${flags.map((f) => flagLine(f) + "\n   ").join("")}`;
  return tabbed(s + "\n");
}

const BANNER = `
        __
  _____/ /______
 / ___/ __/ ___/
/ /__/ /_/ /
\\___/\\__/_/

containerd CLI
`;

const DESCRIPTION = `
ctr is an unsupported debug and administrative client for interacting
with the containerd daemon. Because it is unsupported, the commands,
options, and operations are not guaranteed to be backward compatible or
stable from release to release of the containerd project.`;

/** urfave's AppHelpTemplate (`ctr --help`, and `ctr images help` for a group). */
function appHelp(l: Level): string {
  const flags = visible(l.flags);
  let s = `NAME:\n   ${l.name}${l.usage ? ` - ${l.usage}` : ""}\n\nUSAGE:\n   ${l.helpName} ${flags.length ? "[global options]" : ""}${l.commands.length ? " command [command options]" : ""} ${l.argsUsage || "[arguments...]"}`;
  s += `\n\nVERSION:\n   ${CONTAINERD_VERSION}`;
  if (l.description) s += `\n\nDESCRIPTION:\n   ${l.description}`;
  if (l.listed.length) s += `\n\nCOMMANDS:${l.listed.map((c) => `\n   ${names(c)}\t${c.usage}`).join("")}`;
  if (flags.length) s += `\n\nGLOBAL OPTIONS:\n   ${flags.map(flagLine).join("\n   ")}`;
  return tabbed(s + "\n");
}

function find(cmds: Command[], name: string): Command | undefined {
  return cmds.find((c) => c.name === name || c.aliases?.includes(name));
}

/** ShowCommandHelp: the help of one of the level's commands, or "No help topic". */
function showCommandHelp(l: Level, name: string): void {
  const c = find(l.commands, name);
  if (!c) throw new ExitError(`No help topic for '${name}'`, 3);
  out(commandHelp(c, l.helpNames.get(c) ?? ""));
}

/** urfave's help command (`ctr help images`, `ctr images help ls`; alone: the level's app help). */
function helpCommand(level: () => Level): Command {
  return {
    name: "help",
    aliases: ["h"],
    usage: HELP_USAGE,
    argsUsage: "[command]",
    action: (c) => {
      if (c.args.length) return showCommandHelp(level(), c.args[0]!);
      out(appHelp(level()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Running

// The top-level commands in ctr 1.6's order (the ones bunker implements).
const TOP_ORDER = ["plugins", "version", "containers", "content", "events", "images", "leases", "namespaces", "pprof", "run", "snapshots", "tasks", "install", "oci", "shim"];

function rootLevel(commands: Command[]): Level {
  const rank = (c: Command) => TOP_ORDER.indexOf(c.name) + 1 || 99;
  const sorted = [...commands].sort((a, b) => rank(a) - rank(b));
  const l: Level = { name: "ctr", helpName: "ctr", usage: BANNER, description: DESCRIPTION, flags: GLOBAL_FLAGS, listed: [], commands: [], helpNames: new Map(), root: true };
  for (const c of sorted) l.helpNames.set(c, `ctr ${c.name}`);
  const help = helpCommand(() => l);
  l.commands = [...sorted, help];
  l.listed = l.commands;
  l.helpNames.set(help, "");
  return l;
}

function groupLevel(parent: Level, c: Command): Level {
  const helpName = `${parent.helpName} ${c.name}`;
  const l: Level = { name: helpName, helpName, usage: c.usage, description: c.description, argsUsage: c.argsUsage, flags: [...(c.flags ?? []), HELP_FLAG], listed: c.subcommands ?? [], commands: [], helpNames: new Map(), root: false };
  const help = helpCommand(() => l);
  l.commands = [...l.listed, help];
  for (const s of l.commands) l.helpNames.set(s, `${helpName} ${s.name}`);
  return l;
}

async function runLevel(l: Level, argv: string[], global: FlagValues, inherited: FlagValues): Promise<number> {
  let parsed;
  try {
    parsed = goParse(argv, l.flags);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const help = l.root ? appHelp(l) : subcommandHelp(l);
    if (e instanceof NormalizeError) out(`${e.message}\n${l.root ? "" : "\n"}${help}`);
    else out(`Incorrect Usage. ${e.message}\n\n${help}`);
    throw e;
  }
  const flags = { ...inherited, ...parsed.flags };
  delete flags.help;
  if (l.root) global = { ...parsed.flags };
  if (parsed.flags.help) return out(l.root ? appHelp(l) : subcommandHelp(l)), 0;
  if (l.root && parsed.flags.version) return out(`ctr ${CONTAINERD_PACKAGE} ${CONTAINERD_VERSION}\n`), 0;
  const [name, ...rest] = parsed.args;
  const c = name === undefined ? undefined : find(l.commands, name);
  if (c?.subcommands) return runLevel(groupLevel(l, c), rest, global, l.root ? {} : flags);
  if (c) return runLeaf(l, c, rest, global, l.root ? {} : flags);
  // No such command: urfave's default action is help (`ctr foo` is `ctr help foo`).
  if (name !== undefined) showCommandHelp(l, name);
  else out(l.root ? appHelp(l) : subcommandHelp(l));
  return 0;
}

async function runLeaf(l: Level, c: Command, argv: string[], global: FlagValues, inherited: FlagValues): Promise<number> {
  const specs = [...(c.flags ?? []), HELP_FLAG];
  const help = () => commandHelp(c, l.helpNames.get(c) ?? "");
  let parsed;
  try {
    parsed = goParse(c.skipArgReorder ? argv : reorderArgs(specs, argv), specs);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    out(`Incorrect Usage: ${e.message}\n\n${help()}`);
    throw e;
  }
  if (parsed.flags.help) return out(help()), 0;
  delete parsed.flags.help;
  const ctx = new Ctx(parsed.args, { ...inherited, ...parsed.flags }, global, help);
  try {
    const code = await c.action?.(ctx);
    return typeof code === "number" ? code : 0;
  } finally {
    ctx.close();
  }
}

export async function runApp(argv: string[], commands: Command[]): Promise<number> {
  try {
    return await runLevel(rootLevel(commands), argv, {}, {});
  } catch (e) {
    if (e instanceof ExitError) {
      if (e.message) err(e.message + "\n");
      return e.code;
    }
    err(`ctr: ${messageOf(e)}\n`);
    return 1;
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
