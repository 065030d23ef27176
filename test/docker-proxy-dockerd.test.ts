// The REAL dockerd (Debian's docker.io 20.10, on the real containerd and runc) publishing a port
// through the docker-proxy under test (`--userland-proxy-path`), with real container networking.
//
//   bun test test/docker-proxy-dockerd.test.ts                                 ours
//   PROXY_BIN=/usr/sbin/docker-proxy bun test test/docker-proxy-dockerd.test.ts   Debian's
//
// Fully private: containerd and dockerd come from test/peers.ts' PeerSession (private mount
// namespace with its own /run, state under /tmp/bunker-test-<tag>, cgroups /bunker-test-<tag>-*),
// and dockerd gets its own socket, data root (vfs), exec root and pidfile, and a bridge made for the
// test: bunkerbr<rand> with 198.18.N.1/24 (the benchmarking range, RFC 2544), never docker0.
// --iptables=false and --ip-forward/--ip-masq=false: the host's tables and sysctls stay untouched;
// dockerd still starts the userland proxy for every published port, which is what is tested.
//
// Cleanup (afterAll, also after failures): the PeerSession's (kill everything in its cgroups, which
// includes dockerd's docker-proxy children, unmount, rm -rf), then every veth on the bridge and the
// bridge itself.
import { afterAll, beforeAll, expect } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { busyboxImage, BUSYBOX_SHORT } from "./fixtures/busybox-image";
import { cgroupHierarchies, exec, rand, waitFor } from "./harness";
import { describePeer, ensurePeerPackages, fmt, ok, PeerSession, peerTest } from "./peers";

const PROXY = process.env.PROXY_BIN || join(import.meta.dir, "..", "dist/bin/docker-proxy");

function why(): string | undefined {
  const missing = ensurePeerPackages(["containerd", "docker.io"], ["/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/dockerd", "/usr/bin/docker", "/usr/sbin/runc"]);
  if (missing) return missing;
  if (exec(["sh", "-c", "command -v ip"]).code !== 0) return "iproute2's `ip` is not installed";
  if (!existsSync(PROXY)) return `docker-proxy under test not found: ${PROXY} (build with: node_modules/.bin/bun run build.ts, or set PROXY_BIN)`;
  return undefined;
}
const skip = why();

let s: PeerSession | undefined;
const S = () => s;
const bridge = `bunkerbr${rand(6)}`;
let subnet = ""; // "198.18.N"
let bridgeMade = false;

function ip(args: string[]): string {
  return ok(exec(["ip", ...args]), `ip ${args.join(" ")}`);
}

/** A 198.18.N.0/24 no interface on this host uses. */
function pickSubnet(): string {
  const used = exec(["ip", "-4", "-o", "addr"]).stdout;
  for (let i = 0; i < 50; i++) {
    const n = 1 + Math.floor(Math.random() * 250);
    if (!used.includes(`198.18.${n}.`)) return `198.18.${n}`;
  }
  throw new Error("no free 198.18.N.0/24 subnet");
}

function makeBridge(): void {
  subnet = pickSubnet();
  ip(["link", "add", bridge, "type", "bridge"]);
  bridgeMade = true;
  ip(["addr", "add", `${subnet}.1/24`, "dev", bridge]);
  ip(["link", "set", bridge, "up"]);
}

function removeBridge(): string[] {
  const problems: string[] = [];
  if (!bridgeMade) return problems;
  // Veths dockerd left on it (it removes them itself when it gets to stop its containers).
  const ports = exec(["ip", "-o", "link", "show", "master", bridge]).stdout;
  for (const m of ports.matchAll(/^\d+:\s+([^:@\s]+)/gm)) exec(["ip", "link", "del", m[1]!]);
  const r = exec(["ip", "link", "del", bridge]);
  if (r.code !== 0 && exec(["ip", "link", "show", bridge]).code === 0) problems.push(`bridge ${bridge} not removed: ${r.stderr.trim()}`);
  return problems;
}

/** dockerd with the proxy under test, in the session's namespace and daemon cgroup. */
async function startDockerd(sess: PeerSession): Promise<void> {
  const dataRoot = join(sess.dir, "docker-data");
  const execRoot = join(sess.dir, "docker-exec");
  const cliConfig = join(sess.dir, "docker-cli");
  const host = `unix://${join(sess.dir, "docker.sock")}`;
  const log = join(sess.dir, "dockerd.log");
  mkdirSync(cliConfig, { recursive: true });
  const daemonJson = join(sess.dir, "daemon.json");
  // dockerd 20.10 would otherwise write its trust key to /etc/docker/key.json.
  writeFileSync(daemonJson, JSON.stringify({ "deprecated-key-path": join(sess.dir, "docker-key.json") }));
  const argv = sess.inNs([
    "dockerd",
    "--host", host,
    "--config-file", daemonJson,
    "--data-root", dataRoot,
    "--exec-root", execRoot,
    "--pidfile", join(sess.dir, "docker.pid"),
    "--containerd", sess.containerd!.address,
    "--containerd-namespace", `${sess.namespace}-moby`,
    "--containerd-plugins-namespace", `${sess.namespace}-plugins`,
    "--bridge", bridge,
    "--iptables=false",
    "--ip6tables=false",
    "--ip-masq=false",
    "--ip-forward=false",
    "--userland-proxy=true",
    "--userland-proxy-path", PROXY,
    "--storage-driver", "vfs",
    "--cgroup-parent", sess.dockerCgroupParent,
    "--exec-opt", "native.cgroupdriver=cgroupfs",
    "--debug",
  ]);
  // Join the session's daemon cgroup first, so its cleanup kills dockerd and its proxies.
  const procs = cgroupHierarchies()
    .map((h) => join(h, sess.daemonCgroup.replace(/^\/+/, ""), "cgroup.procs"))
    .filter((f) => existsSync(f));
  const script = `for f in ${procs.map((p) => `'${p}'`).join(" ")}; do echo $$ > "$f" || exit 125; done; exec "$@"`;
  const fd = openSync(log, "a");
  const p = Bun.spawn(["sh", "-c", script, "sh", ...argv], {
    stdin: "ignore",
    stdout: fd,
    stderr: fd,
    env: { PATH: "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: sess.dir },
  });
  closeSync(fd);
  p.unref();
  sess.dockerd = { pid: p.pid, host, log, dataRoot, execRoot, cliConfig };
  const up = await waitFor(() => sess.docker(["version", "--format", "{{.Server.Version}}"], { timeoutMs: 5000 }).code === 0, 30_000, 100);
  if (!up) throw new Error(`dockerd did not come up:\n${readFileSync(log, "utf8").slice(-3000)}`);
}

interface ProxyProc {
  pid: number;
  argv: string[];
  exe: string;
}

/** docker-proxy processes publishing `hostPort` (found by argv, as `ps` shows them). */
function proxiesFor(hostPort: number): ProxyProc[] {
  const out: ProxyProc[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").filter(Boolean);
      const i = argv.indexOf("-host-port");
      if (i < 0 || argv[i + 1] !== String(hostPort) || !argv.includes("-container-port")) continue;
      out.push({ pid: Number(e), argv, exe: readlinkSync(`/proc/${e}/exe`) });
    } catch {}
  }
  return out;
}

function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return Promise.resolve(p);
}

/** Send `msg` (no half-close: busybox `nc -e cat` echoes line by line), read until it is back. */
function echoOnce(port: number, msg: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const c = connect({ host: "127.0.0.1", port }, () => c.write(msg));
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no echo through 127.0.0.1:${port} (got ${JSON.stringify(got)})`));
    }, timeoutMs);
    c.on("data", (d) => {
      got += d.toString();
      if (got.length >= msg.length) {
        clearTimeout(timer);
        c.destroy();
        resolve(got);
      }
    });
    c.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

describePeer("real dockerd publishing ports through the docker-proxy under test", skip, () => {
  beforeAll(async () => {
    console.log(`docker-proxy under test: ${PROXY}`);
    const img = busyboxImage();
    s = new PeerSession();
    try {
      makeBridge();
      await s.startContainerd();
      await startDockerd(s);
      ok(s.docker(["load", "-i", img.archive], { timeoutMs: 60_000 }), "docker load");
      const ls = ok(s.docker(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]), "docker image ls");
      if (!ls.split("\n").includes(BUSYBOX_SHORT)) throw new Error(`loaded image not listed: ${ls}`);
    } catch (e) {
      const problems = [...(s?.cleanup() ?? []), ...removeBridge()];
      s = undefined;
      if (problems.length) console.error(`cleanup after a failed start left:\n  ${problems.join("\n  ")}`);
      throw e;
    }
  }, 180_000);

  afterAll(() => {
    const problems = [...(s?.cleanup() ?? []), ...removeBridge()];
    s = undefined;
    if (problems.length) throw new Error(`cleanup left resources behind:\n  ${problems.join("\n  ")}`);
  }, 60_000);

  peerTest(
    S,
    "docker run -p 127.0.0.1:P:8080: traffic flows through the proxy under test; stop ends it",
    async () => {
      const port = await freePort();
      const r = s!.docker(["run", "-d", "-p", `127.0.0.1:${port}:8080`, "busybox", "nc", "-ll", "-p", "8080", "-e", "cat"], { timeoutMs: 60_000 });
      const id = ok(r, "docker run -d -p").trim().split("\n").pop()!;
      try {
        const cip = ok(s!.docker(["inspect", "--format", "{{.NetworkSettings.IPAddress}}", id]), "docker inspect").trim();
        expect(cip.startsWith(`${subnet}.`), `container ip ${cip} on ${subnet}.0/24`).toBe(true);

        // dockerd started exactly one proxy for the port: ours (or the PROXY_BIN under test), with
        // moby's argv.
        const ps = proxiesFor(port);
        expect(ps.length, JSON.stringify(ps)).toBe(1);
        const p = ps[0]!;
        expect(p.argv.slice(1)).toEqual(["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(port), "-container-ip", cip, "-container-port", "8080"]);
        expect(p.exe).toBe(realpathSync(PROXY));

        // The container's nc may take a moment to listen: retry the first exchange.
        let first = "";
        for (let i = 0; i < 50 && first !== "hello docker\n"; i++) {
          first = await echoOnce(port, "hello docker\n", 2000).catch(() => "");
          if (first !== "hello docker\n") await Bun.sleep(100);
        }
        expect(first).toBe("hello docker\n");
        // One connection after the other: busybox nc listens with a backlog of 2, and a burst of
        // connects overflows its accept queue (SYN/ACK drops, seconds of retransmits) whatever the
        // proxy in front of it.
        for (let i = 0; i < 20; i++) {
          const msg = `line ${i} ${"x".repeat(i * 500)}\n`;
          expect(await echoOnce(port, msg)).toBe(msg);
        }

        // Stopping the container stops the proxy (dockerd signals it) and frees the port.
        ok(s!.docker(["stop", "-t", "1", id], { timeoutMs: 30_000 }), "docker stop");
        expect(await waitFor(() => proxiesFor(port).length === 0, 10_000, 100)).toBe(true);
        const again = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
        again.stop(true);
      } finally {
        s!.docker(["rm", "-f", id], { timeoutMs: 30_000 });
      }
    },
    120_000,
  );

  peerTest(S, "a host port that is taken: docker run fails with the proxy's own error", async () => {
    const port = await freePort();
    const holder = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      const r = s!.docker(["run", "-d", "--name", `taken-${rand(4)}`, "-p", `127.0.0.1:${port}:8080`, "busybox", "sleep", "30"], { timeoutMs: 60_000 });
      expect(r.code, fmt(r)).not.toBe(0);
      // dockerd: "Error starting userland proxy: <what the proxy wrote after 1\n>".
      expect(r.stderr).toContain("Error starting userland proxy");
      expect(r.stderr).toContain("address already in use");
      expect(proxiesFor(port).length).toBe(0);
    } finally {
      holder.stop(true);
      const ids = ok(s!.docker(["ps", "-aq"]), "docker ps").trim().split("\n").filter(Boolean);
      if (ids.length) s!.docker(["rm", "-f", ...ids], { timeoutMs: 30_000 });
    }
  });
});
