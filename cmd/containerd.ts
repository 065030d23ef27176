// containerd's command line: `containerd [global options]` runs the daemon; `containerd config
// default|dump` prints the configuration as TOML.
import { parseFlags, UsageError, type FlagSpec } from "../core/cli/flags";
import { out, err } from "../core/cli/io";
import { ConfigError, configText, DEFAULT_CONFIG_PATH, defaultConfig, loadConfig, type Config } from "../core/containerd/config";
import { Logger, parseLevel } from "../core/containerd/log";
import { CONTAINERD_PACKAGE, CONTAINERD_REVISION, CONTAINERD_VERSION } from "../core/containerd/version";

const GLOBAL: FlagSpec[] = [
  { name: "config", aliases: ["c"], type: "string", default: DEFAULT_CONFIG_PATH, help: "path to the configuration file" },
  { name: "log-level", aliases: ["l"], type: "string", default: "", help: "set the logging level [trace, debug, info, warn, error, fatal, panic]" },
  { name: "address", aliases: ["a"], type: "string", default: "", help: "address for containerd's GRPC server" },
  { name: "root", type: "string", default: "", help: "containerd root directory" },
  { name: "state", type: "string", default: "", help: "containerd state directory" },
  { name: "help", aliases: ["h"], type: "bool", help: "show help" },
  { name: "version", aliases: ["v"], type: "bool", help: "print the version" },
];

function helpText(): string {
  const opts = GLOBAL.map((f) => {
    const names = [`--${f.name}${f.type === "bool" ? "" : " value"}`, ...(f.aliases ?? []).map((a) => `-${a}${f.type === "bool" ? "" : " value"}`)].join(", ");
    const def = f.name === "config" ? ` (default: "${DEFAULT_CONFIG_PATH}")` : "";
    return `   ${names.padEnd(28)} ${f.help}${def}`;
  });
  return `NAME:
   containerd - high performance container runtime (bunker)

USAGE:
   containerd [global options] command [command options] [arguments...]

VERSION:
   ${CONTAINERD_VERSION}

DESCRIPTION:
   containerd serves containerd's gRPC API on a unix socket. Without a command it runs the daemon
   in the foreground; \`containerd config default\` prints the default configuration.

COMMANDS:
   config    information on the containerd config
   help, h   Shows a list of commands or help for one command

GLOBAL OPTIONS:
${opts.join("\n")}
`;
}

const CONFIG_HELP = `NAME:
   containerd config - information on the containerd config

USAGE:
   containerd config command [command options] [arguments...]

COMMANDS:
   default  see the output of the default config
   dump     see the output of the final main config with imported in subconfig files
`;

/** Defaults, then the file, then the command line. */
function effectiveConfig(f: Record<string, any>): Config {
  const cfg = loadConfig(String(f.config), defaultConfig());
  if (f.root) cfg.root = String(f.root);
  if (f.state) cfg.state = String(f.state);
  if (f.address) cfg.grpc.address = String(f.address);
  if (f["log-level"]) cfg.debug.level = String(f["log-level"]);
  return cfg;
}

export async function main(argv: string[]): Promise<number> {
  let g;
  try {
    g = parseFlags(argv, GLOBAL);
  } catch (e: any) {
    if (e instanceof UsageError) {
      out(`Incorrect Usage. ${e.message}\n\n${helpText()}`);
      err(`containerd: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const f = g.flags;
  if (f.version) return out(`containerd ${CONTAINERD_PACKAGE} ${CONTAINERD_VERSION} ${CONTAINERD_REVISION}\n`), 0;
  const [cmd, ...rest] = g.args;
  if (f.help || cmd === "help" || cmd === "h") return out(helpText()), 0;
  try {
    if (cmd === "config") {
      const sub = rest[0];
      if (sub === "default") return out(configText(defaultConfig())), 0;
      if (sub === "dump") return out(configText(effectiveConfig(f))), 0;
      out(CONFIG_HELP);
      return sub === undefined || sub === "--help" || sub === "-h" ? 0 : 3;
    }
    if (cmd !== undefined) {
      err(`containerd: no such command: ${cmd}\n`);
      return 3;
    }
    const cfg = effectiveConfig(f);
    const log = new Logger({ level: cfg.debug.level ? parseLevel(cfg.debug.level) : "info" });
    const { runDaemon } = await import("../core/containerd/daemon");
    return await runDaemon(cfg, log);
  } catch (e: any) {
    if (e instanceof ConfigError || /logrus Level/.test(e?.message)) {
      err(`containerd: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
