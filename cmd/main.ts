// The one binary: picks a personality from the basename of argv[0] (busybox style), or from the
// first argument when called as `bunker <personality> ...`.
import { basename } from "node:path";
import { out, err } from "../core/cli/io";

type Entry = (argv: string[]) => Promise<number> | number;

const PERSONALITIES: Record<string, { about: string; load?: () => Promise<Entry> }> = {
  docker: { about: "Docker CLI client (Engine API over DOCKER_HOST)" },
  dockerd: { about: "Docker engine daemon (Engine API server, talks to containerd)" },
  containerd: { about: "container supervisor (containerd gRPC API)", load: async () => (await import("./containerd")).main },
  "containerd-shim-runc-v2": { about: "per-container shim (shim v2 task API over ttrpc)" },
  ctr: { about: "containerd client", load: async () => (await import("./ctr")).main },
  "docker-proxy": { about: "userland port forwarder (docker's proxy flags)", load: async () => (await import("./docker-proxy")).main },
  "docker-init": { about: "tini-compatible init for containers", load: async () => (await import("./docker-init")).main },
  runc: { about: "OCI runtime (runc command line)", load: async () => (await import("./runc")).main },
};

export const VERSION = "0.1.0";

function help(): string {
  const rows = Object.entries(PERSONALITIES).map(([n, p]) => `  ${n.padEnd(26)} ${p.about}${p.load ? "" : " (not built yet)"}`);
  return `bunker ${VERSION}: the Docker engine stack in one executable.

Usage:
  <personality> [args...]          when started through a symlink named after a personality
  bunker <personality> [args...]

Personalities:
${rows.join("\n")}
`;
}

async function dispatch(name: string, args: string[]): Promise<number> {
  const p = PERSONALITIES[name];
  if (!p) {
    err(`bunker: unknown personality "${name}"; run 'bunker --help' for the list\n`);
    return 1;
  }
  if (!p.load) {
    err(`bunker: ${name} is not built yet in this version of bunker\n`);
    return 1;
  }
  return (await p.load())(args);
}

async function main(): Promise<number> {
  const argv = process.argv;
  // Compiled: argv[0] is "bun"-ish and argv[1] the path we were started as; process.argv0 keeps the
  // name the user typed (the symlink), which is what busybox-style dispatch needs.
  // The runtime's own init process is recognised by its channel, whatever name it shows in ps
  // (as dockerd's --init it shows as "/sbin/docker-init -- cmd").
  if (process.env._BUNKER_INIT_CHANNEL) return dispatch("runc", ["init"]);
  const self = basename(process.argv0 || argv[0] || "bunker");
  if (self in PERSONALITIES) return dispatch(self, argv.slice(2));
  const [first, ...rest] = argv.slice(2);
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    out(help());
    return first === undefined ? 1 : 0;
  }
  if (first === "--version" || first === "-v") {
    out(`bunker version ${VERSION}\n`);
    return 0;
  }
  return dispatch(first, rest);
}

main().then(
  (code) => process.exit(code),
  (err) => {
    err(`bunker: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
