// Debian's docker-registry (distribution 2.8) for tests: installed when missing (root can
// apt-get), started on a free 127.0.0.1 port under a test's directory, open or with htpasswd
// basic auth or Bearer token auth. The caller kills `proc` (or lets its afterAll do it).
import { spawnSync, type Subprocess } from "bun";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const REGISTRY_BIN = "/usr/bin/docker-registry";
if (!existsSync(REGISTRY_BIN) && process.getuid?.() === 0) {
  spawnSync(["bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null"], { stdout: "inherit", stderr: "inherit" });
}
export const HAVE_REGISTRY = existsSync(REGISTRY_BIN);

export async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

export interface RegistryOptions {
  htpasswd?: { user: string; password: string };
  /** distribution's `auth: token:` (tokens are JWTs signed by a key whose certificate is in rootcertbundle). */
  token?: { realm: string; service: string; issuer: string; rootcertbundle: string };
}

export interface DockerRegistry {
  host: string;
  port: number;
  proc: Subprocess;
  log: string;
}

/** Start a registry in `<dir>/<name>`; `children` collects the process for the caller's cleanup. */
export async function startDockerRegistry(dir: string, name: string, opts: RegistryOptions = {}, children?: Subprocess[]): Promise<DockerRegistry> {
  const rdir = join(dir, name);
  mkdirSync(join(rdir, "data"), { recursive: true });
  let auth = "";
  if (opts.htpasswd) {
    const hash = await Bun.password.hash(opts.htpasswd.password, { algorithm: "bcrypt", cost: 4 });
    writeFileSync(join(rdir, "htpasswd"), `${opts.htpasswd.user}:${hash}\n`);
    auth = `auth:\n  htpasswd:\n    realm: bunker-test\n    path: ${join(rdir, "htpasswd")}\n`;
  } else if (opts.token) {
    const t = opts.token;
    auth = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.rootcertbundle}\n`;
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(
      join(rdir, "config.yml"),
      `version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: ${join(rdir, "data")}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bunker-test-secret\n${auth}`,
    );
    const log = join(rdir, "registry.log");
    const fd = openSync(log, "a");
    const proc = Bun.spawn([REGISTRY_BIN, "serve", join(rdir, "config.yml")], { stdout: fd, stderr: fd, stdin: "ignore" });
    closeSync(fd);
    children?.push(proc);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && proc.exitCode === null) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/v2/`);
        await r.body?.cancel();
        if (r.status === 200 || r.status === 401) return { host: `127.0.0.1:${port}`, port, proc, log };
      } catch {}
      await Bun.sleep(50);
    }
    proc.kill("SIGKILL");
    if (attempt >= 2) throw new Error(`docker-registry did not start:\n${existsSync(log) ? readFileSync(log, "utf8") : ""}`);
  }
}
