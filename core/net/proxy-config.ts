// docker-proxy's command line (moby cmd/docker-proxy, 20.10 through 28.x): Go `flag` package rules,
// so `-proto tcp`, `--proto tcp` and `-proto=tcp` all work, and bool flags take no separate value.
//
// dockerd runs it as
//   docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80 [-use-listen-fd]
// with the readiness pipe as fd 3 and, with -use-listen-fd (dockerd >= 28), the socket it bound
// itself as fd 4.
import { parseFlags, UsageError, type FlagSpec } from "../cli/flags";
import { parseIP, type IP } from "./ip";

export type Proto = "tcp" | "udp" | "sctp";

export interface ProxyConfig {
  proto: Proto;
  hostIP: IP;
  /** -1 when not given (Go's default); only meaningful without a listen fd. */
  hostPort: number;
  containerIP: IP;
  containerPort: number;
  /** fd 4 is a socket dockerd bound for us (it carries the host address; -host-* only label it). */
  useListenFd: boolean;
}

export const PARENT_PIPE_FD = 3;
export const LISTEN_SOCK_FD = 4;

export const PROXY_FLAGS: FlagSpec[] = [
  { name: "proto", type: "string", default: "tcp", help: "proxy protocol" },
  { name: "host-ip", type: "string", default: "0.0.0.0", help: "host ip" },
  { name: "host-port", type: "int", default: -1, help: "host port" },
  { name: "container-ip", type: "string", default: "0.0.0.0", help: "container ip" },
  { name: "container-port", type: "int", default: -1, help: "container port" },
  { name: "use-listen-fd", type: "bool", help: "use a supplied listen fd" },
  { name: "v", type: "bool", help: "print version information and quit" },
  { name: "version", type: "bool", help: "print version information and quit" },
];

export type Parsed = { kind: "run"; config: ProxyConfig } | { kind: "version" } | { kind: "help" };

/** The usage text Go's flag package prints (flag.PrintDefaults of moby 28's proxy). */
export function usage(prog: string): string {
  const lines = [`Usage of ${prog}:`];
  for (const f of [...PROXY_FLAGS].sort((a, b) => a.name.localeCompare(b.name))) {
    // The two IP flags are flag.TextVar values: typed "value", default printed unquoted.
    const isIP = f.name.endsWith("-ip");
    const typ = isIP ? " value" : f.type === "int" ? " int" : f.type === "string" ? " string" : "";
    const def = isIP ? ` (default ${f.default})` : f.type === "string" ? ` (default ${JSON.stringify(f.default)})` : f.type === "int" ? ` (default ${f.default})` : "";
    const head = `  -${f.name}${typ}`;
    lines.push(head.length <= 4 ? `${head}\t${f.help}${def}` : `${head}\n    \t${f.help}${def}`);
  }
  return lines.join("\n") + "\n";
}

function ipFlag(name: string, raw: string): IP {
  const ip = parseIP(raw);
  // Go: flag.TextVar with net.IP's UnmarshalText.
  if (!ip) throw new UsageError(`invalid value "${raw}" for flag -${name}: invalid IP address: ${raw}`);
  return ip;
}

/** Throws UsageError with Go's wording for a bad command line. */
export function parseProxyArgs(argv: string[]): Parsed {
  if (argv.some((a) => a === "-h" || a === "-help" || a === "--help" || a === "--h")) return { kind: "help" };
  // Go's flag package stops at the first non-flag argument and ignores the rest.
  const { flags } = parseFlags(argv, PROXY_FLAGS, { stopAtPositional: true });
  if (flags.v || flags.version) return { kind: "version" };
  const proto = String(flags.proto);
  const hostPort = Number(flags["host-port"]);
  const containerPort = Number(flags["container-port"]);
  for (const [n, v] of [["host-port", hostPort], ["container-port", containerPort]] as const) {
    if (!Number.isSafeInteger(v)) throw new UsageError(`invalid value "${v}" for flag -${n}: value out of range`);
  }
  return {
    kind: "run",
    config: {
      proto: proto as Proto, // checked where the listener is made, so the error reaches the parent
      hostIP: ipFlag("host-ip", String(flags["host-ip"])),
      hostPort,
      containerIP: ipFlag("container-ip", String(flags["container-ip"])),
      containerPort,
      useListenFd: Boolean(flags["use-listen-fd"]),
    },
  };
}
