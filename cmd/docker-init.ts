// docker-init: tini's command line (dockerd runs `docker-init --version` and, for --init,
// `/sbin/docker-init -- CMD...`).
import { parseTiniArgs, runTini } from "../core/init/tini";

export async function main(argv: string[]): Promise<number> {
  const parsed = parseTiniArgs(process.argv0 || "docker-init", argv, process.env);
  if ("exit" in parsed) return parsed.exit;
  const env = Object.entries(process.env).map(([k, v]) => `${k}=${v}`);
  return runTini(parsed.run, env);
}
