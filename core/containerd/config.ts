// containerd's configuration: defaults, the TOML file (--config, default /etc/containerd/config.toml;
// a missing file is fine, as with containerd), then the command line. Only the keys we honour are
// read; the rest of a real containerd config (cri, runtimes, snapshotter options, timeouts...) is
// accepted and ignored, and `disabled_plugins` naming plugins we don't have is fine.
//
// Honoured: version (1 or 2), root, state, imports, disabled_plugins, required_plugins, oom_score,
// [grpc] address uid gid max_recv_message_size max_send_message_size, [debug] level,
// [plugins."<type>.<id>"] handed to the plugin as its pluginConfig.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

export interface Config {
  version: number;
  root: string;
  state: string;
  imports: string[];
  disabledPlugins: string[];
  requiredPlugins: string[];
  oomScore: number;
  grpc: { address: string; uid: number; gid: number; maxRecvMessageSize: number; maxSendMessageSize: number };
  debug: { level: string };
  plugins: Record<string, Record<string, unknown>>;
}

export const DEFAULT_CONFIG_PATH = "/etc/containerd/config.toml";
const MIB16 = 16 << 20;

export function defaultConfig(): Config {
  return {
    version: 2,
    root: "/var/lib/containerd",
    state: "/run/containerd",
    imports: [],
    disabledPlugins: [],
    requiredPlugins: [],
    oomScore: 0,
    grpc: { address: "/run/containerd/containerd.sock", uid: 0, gid: 0, maxRecvMessageSize: MIB16, maxSendMessageSize: MIB16 },
    debug: { level: "" },
    plugins: {},
  };
}

export class ConfigError extends Error {}

type Tbl = Record<string, unknown>;

function parseTOML(path: string): Tbl {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e: any) {
    throw new ConfigError(`failed to load TOML: ${path}: ${e?.code === "ENOENT" ? "no such file or directory" : e?.message ?? e}`);
  }
  try {
    return (Bun as any).TOML.parse(text) as Tbl;
  } catch (e: any) {
    throw new ConfigError(`failed to load TOML: ${path}: ${e?.message ?? e}`);
  }
}

function str(t: Tbl, k: string, where: string): string | undefined {
  const v = t[k];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new ConfigError(`${where}${k}: expected a string`);
  return v;
}

function int(t: Tbl, k: string, where: string): number | undefined {
  const v = t[k];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw new ConfigError(`${where}${k}: expected an integer`);
  return v;
}

function strs(t: Tbl, k: string, where: string): string[] | undefined {
  const v = t[k];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new ConfigError(`${where}${k}: expected an array of strings`);
  return v as string[];
}

/** Version 1 names plugins by their short id ("cri"); version 2 by type.id. */
function pluginsTable(t: Tbl): Record<string, Record<string, unknown>> {
  const p = t.plugins;
  if (!p || typeof p !== "object") return {};
  return p as Record<string, Record<string, unknown>>;
}

/** Apply one parsed TOML document to cfg. */
function apply(cfg: Config, t: Tbl): void {
  const v = int(t, "version", "");
  if (v !== undefined) {
    if (v > 2) throw new ConfigError(`expected containerd config version equal to or less than 2, got ${v}`);
    cfg.version = v;
  }
  cfg.root = str(t, "root", "") ?? cfg.root;
  cfg.state = str(t, "state", "") ?? cfg.state;
  cfg.disabledPlugins = strs(t, "disabled_plugins", "") ?? cfg.disabledPlugins;
  cfg.requiredPlugins = strs(t, "required_plugins", "") ?? cfg.requiredPlugins;
  cfg.oomScore = int(t, "oom_score", "") ?? cfg.oomScore;
  const g = (t.grpc ?? {}) as Tbl;
  cfg.grpc.address = str(g, "address", "grpc.") ?? cfg.grpc.address;
  cfg.grpc.uid = int(g, "uid", "grpc.") ?? cfg.grpc.uid;
  cfg.grpc.gid = int(g, "gid", "grpc.") ?? cfg.grpc.gid;
  cfg.grpc.maxRecvMessageSize = int(g, "max_recv_message_size", "grpc.") ?? cfg.grpc.maxRecvMessageSize;
  cfg.grpc.maxSendMessageSize = int(g, "max_send_message_size", "grpc.") ?? cfg.grpc.maxSendMessageSize;
  const d = (t.debug ?? {}) as Tbl;
  cfg.debug.level = str(d, "level", "debug.") ?? cfg.debug.level;
  Object.assign(cfg.plugins, pluginsTable(t));
}

/**
 * Read the config file into cfg (plus its `imports`, resolved against its directory). A missing
 * file leaves cfg alone, as containerd does; a malformed one throws ConfigError.
 */
export function loadConfig(path: string, cfg: Config = defaultConfig()): Config {
  if (!existsSync(path)) return cfg;
  const t = parseTOML(path);
  apply(cfg, t);
  const imports = strs(t, "imports", "") ?? [];
  for (const imp of imports) {
    const p = resolve(dirname(path), imp);
    if (p === resolve(path) || !existsSync(p)) continue;
    apply(cfg, parseTOML(p));
  }
  cfg.imports = imports;
  return cfg;
}

/** Is the plugin "<type>.<id>" disabled (by its full name, or by its id in a version 1 config)? */
export function pluginDisabled(cfg: Config, type: string, id: string): boolean {
  return cfg.disabledPlugins.includes(`${type}.${id}`) || (cfg.version < 2 && cfg.disabledPlugins.includes(id));
}

export function pluginConfig(cfg: Config, type: string, id: string): Record<string, unknown> {
  return cfg.plugins[`${type}.${id}`] ?? (cfg.version < 2 ? cfg.plugins[id] : undefined) ?? {};
}

const tomlString = (s: string) => JSON.stringify(s);
const tomlArray = (a: string[]) => `[${a.map(tomlString).join(", ")}]`;

function tomlValue(v: unknown): string {
  if (typeof v === "string") return tomlString(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(", ")}]`;
  return String(v);
}

/** The config as TOML, in containerd's layout (`containerd config default` / `config dump`). */
export function configText(cfg: Config): string {
  const lines = [
    `disabled_plugins = ${tomlArray(cfg.disabledPlugins)}`,
    `imports = ${tomlArray(cfg.imports)}`,
    `oom_score = ${cfg.oomScore}`,
    `required_plugins = ${tomlArray(cfg.requiredPlugins)}`,
    `root = ${tomlString(cfg.root)}`,
    `state = ${tomlString(cfg.state)}`,
    `version = ${cfg.version}`,
    "",
    "[debug]",
    `  level = ${tomlString(cfg.debug.level)}`,
    "",
    "[grpc]",
    `  address = ${tomlString(cfg.grpc.address)}`,
    `  gid = ${cfg.grpc.gid}`,
    `  max_recv_message_size = ${cfg.grpc.maxRecvMessageSize}`,
    `  max_send_message_size = ${cfg.grpc.maxSendMessageSize}`,
    `  uid = ${cfg.grpc.uid}`,
    "",
    "[plugins]",
  ];
  for (const name of Object.keys(cfg.plugins).sort()) {
    lines.push("", `  [plugins.${tomlString(name)}]`);
    for (const [k, v] of Object.entries(cfg.plugins[name]!)) {
      if (v && typeof v === "object" && !Array.isArray(v)) continue;
      lines.push(`    ${k} = ${tomlValue(v)}`);
    }
  }
  return lines.join("\n") + "\n";
}
