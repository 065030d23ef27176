// docker-proxy, driven only through its command line and fds as dockerd drives it, with real
// traffic on loopback. The "containers" are servers in this test process.
//
//   bun test test/docker-proxy.test.ts                                 ours (dist/bin/docker-proxy)
//   PROXY_BIN=/usr/sbin/docker-proxy bun test test/docker-proxy.test.ts   Debian's (moby 20.10)
//   BUNKER_PROXY_ENGINE=sockets bun test test/docker-proxy.test.ts     ours, Bun-socket TCP engine
//
// Each proxy gets a pipe as fd 3 (the status pipe) and its stderr in a file under the test's temp
// dir /tmp/bunker-test-<rand>/; every proxy, server and socket is closed after each test, failed
// or not, and the temp dir removed after the file.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, realpathSync, rmSync } from "node:fs";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, connect, type Server, type Socket } from "node:net";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { rand, sleep, TMP_PREFIX, waitFor } from "./harness";

const PROXY = process.env.PROXY_BIN || join(import.meta.dir, "..", "dist/bin/docker-proxy");
const IS_OURS = (() => {
  try {
    return realpathSync(PROXY).endsWith("/bunker");
  } catch {
    return false;
  }
})();

let dir = "";
const procs = new Set<ReturnType<typeof Bun.spawn>>();
const cleanups: (() => void | Promise<void>)[] = [];
const later = (fn: () => void | Promise<void>) => cleanups.push(fn);

beforeAll(() => {
  dir = mkdtempSync(`${TMP_PREFIX}proxy-`);
  console.log(`docker-proxy under test: ${PROXY}${IS_OURS ? ` (ours${process.env.BUNKER_PROXY_ENGINE ? `, engine ${process.env.BUNKER_PROXY_ENGINE}` : ""})` : ""}`);
});

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      await fn();
    } catch {}
  }
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await p.exited;
  }
  procs.clear();
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Running the proxy

interface Proxy {
  proc: ReturnType<typeof Bun.spawn>;
  /** What came on fd 3 before "0\n" or EOF. */
  status: string;
  port: number;
  stderr(): string;
}

/** Read the status pipe as dockerd does: until "0\n", or EOF (the failure text follows "1\n"). */
async function readStatus(fd: number, timeoutMs = 10_000): Promise<string> {
  const buf = Buffer.alloc(4096);
  let status = "";
  const end = Date.now() + timeoutMs;
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e: any) {
        if (e.code !== "EAGAIN") throw e;
        if (Date.now() > end) return status + "<timeout>";
        await sleep(5);
        continue;
      }
      if (n === 0) return status;
      status += buf.subarray(0, n).toString();
      if (status === "0\n") return status;
    }
  } finally {
    closeSync(fd);
  }
}

let stderrSeq = 0;

/** Start the proxy with a status pipe on fd 3 (and `listenFd` as fd 4); wait for its status. */
async function spawnProxy(args: string[], opts: { listenFd?: number } = {}): Promise<Omit<Proxy, "port">> {
  const errFile = join(dir, `proxy-${++stderrSeq}.err`);
  const errFd = openSync(errFile, "w");
  const stdio = ["ignore", "ignore", errFd, "pipe", ...(opts.listenFd !== undefined ? [opts.listenFd] : [])] as ["ignore", "ignore", number, "pipe"];
  const proc = Bun.spawn([PROXY, ...args], { stdio });
  closeSync(errFd);
  procs.add(proc);
  const status = await readStatus(proc.stdio[3] as unknown as number);
  return { proc, status, stderr: () => readFileSync(errFile, "utf8") };
}

type Proto = "tcp" | "udp";

async function freePort(proto: Proto, host: string): Promise<number> {
  if (proto === "tcp") {
    const l = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
    const p = l.port;
    l.stop(true);
    return p;
  }
  const s = await Bun.udpSocket({ hostname: host, port: 0 });
  const p = s.port;
  s.close();
  return p;
}

/** A running proxy host:port -> backend; retried on a port someone else took meanwhile. */
async function startProxy(proto: Proto, hostIP: string, backendIP: string, backendPort: number): Promise<Proxy> {
  for (let i = 0; ; i++) {
    const port = await freePort(proto, hostIP);
    const p = await spawnProxy(["-proto", proto, "-host-ip", hostIP, "-host-port", String(port), "-container-ip", backendIP, "-container-port", String(backendPort)]);
    if (p.status === "0\n") return { ...p, port };
    await p.proc.exited;
    if (i < 4 && p.status.includes("address already in use")) continue;
    throw new Error(`proxy did not start: status ${JSON.stringify(p.status)}, exit ${p.proc.exitCode}, stderr: ${p.stderr()}`);
  }
}

/** A process's open fds by kind: "socket", "pipe", "anon_inode", or "file". */
function fdKinds(pid: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = "";
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while we looked
    }
    const kind = /^(socket|pipe|anon_inode):/.exec(target)?.[1] ?? "file";
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

const total = (k: Record<string, number>) => Object.values(k).reduce((a, b) => a + b, 0);

const hasIPv6 = (() => {
  try {
    Bun.listen({ hostname: "::1", port: 0, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
})();

/** Does the proxy under test know -use-listen-fd (moby >= 28; Debian's 20.10 does not)? */
const supportsListenFd = (() => {
  const r = Bun.spawnSync([PROXY, "-h"], { stdio: ["ignore", "pipe", "pipe"] });
  return (r.stderr.toString() + r.stdout.toString()).includes("use-listen-fd");
})();

// ---------------------------------------------------------------------------------------------
// The "containers"

function listenTcp(host: string, onConn: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer({ allowHalfOpen: true }, onConn);
    server.on("error", reject);
    server.listen(0, host, () => {
      later(() => new Promise<void>((r) => server.close(() => r())));
      resolve({ server, port: (server.address() as { port: number }).port });
    });
  });
}

/** Echoes everything; half-closes back when the client half-closes. */
function echoServer(host: string) {
  return listenTcp(host, (s) => {
    s.on("data", (d) => s.write(d));
    s.on("end", () => s.end());
    s.on("error", () => {});
  });
}

interface Exchange {
  received: Buffer;
  /** The other side's FIN arrived. */
  gotEnd: boolean;
}

/** Connect (allowHalfOpen), send `data`, half-close, collect everything until the peer's FIN. */
function exchange(host: string, port: number, data: Buffer | string, timeoutMs = 20_000): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let gotEnd = false;
    const s = connect({ host, port, allowHalfOpen: true }, () => {
      s.end(data);
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`exchange with ${host}:${port} timed out after ${Buffer.concat(chunks).length} bytes`));
    }, timeoutMs);
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("end", () => {
      gotEnd = true;
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(chunks), gotEnd });
    });
  });
}

function pattern(id: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = (id * 2654435761) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

// ---------------------------------------------------------------------------------------------

describe("docker-proxy: start-up protocol", () => {
  test('writes "0\\n" on fd 3 once listening, and the port takes connections at once', async () => {
    const { port: bport } = await echoServer("127.0.0.1");
    const p = await startProxy("tcp", "127.0.0.1", "127.0.0.1", bport);
    expect(p.status).toBe("0\n");
    const r = await exchange("127.0.0.1", p.port, "ping");
    expect(r.received.toString()).toBe("ping");
  });

  test('host port in use: "1\\n<error>" on fd 3 and a non-zero exit (tcp and udp)', async () => {
    const port = await freePort("tcp", "127.0.0.1");
    const holder = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    later(() => holder.stop(true));
    const p = await spawnProxy(["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(port), "-container-ip", "127.0.0.1", "-container-port", "9"]);
    expect(p.status.startsWith("1\n"), JSON.stringify(p.status)).toBe(true);
    expect(p.status).toContain("address already in use");
    expect(p.status).toContain(`127.0.0.1:${port}`);
    expect(await p.proc.exited).not.toBe(0);

    const uport = await freePort("udp", "127.0.0.1");
    const uholder = await Bun.udpSocket({ hostname: "127.0.0.1", port: uport });
    later(() => uholder.close());
    const u = await spawnProxy(["-proto", "udp", "-host-ip", "127.0.0.1", "-host-port", String(uport), "-container-ip", "127.0.0.1", "-container-port", "9"]);
    expect(u.status.startsWith("1\n"), JSON.stringify(u.status)).toBe(true);
    expect(u.status).toContain("address already in use");
    expect(await u.proc.exited).not.toBe(0);
  });

  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    test(`${sig}: exits 0, with a connection open, and the port is free again`, async () => {
      const { port: bport } = await echoServer("127.0.0.1");
      const p = await startProxy("tcp", "127.0.0.1", "127.0.0.1", bport);
      const c = connect({ host: "127.0.0.1", port: p.port });
      c.on("error", () => {});
      later(() => void c.destroy());
      await new Promise<void>((r) => c.once("connect", () => r()));
      c.write("x");
      await new Promise<void>((r) => c.once("data", () => r()));
      p.proc.kill(sig);
      expect(await p.proc.exited).toBe(0);
      expect(p.proc.signalCode).toBeNull();
      // The connection went with it.
      await waitFor(() => c.destroyed || c.readableEnded, 5000);
      expect(c.destroyed || c.readableEnded).toBe(true);
      const again = Bun.listen({ hostname: "127.0.0.1", port: p.port, socket: { data() {} } });
      again.stop(true);
    });
  }

  test("sctp: refused on the status pipe (this kernel or this proxy has no SCTP)", async () => {
    const p = await spawnProxy(["-proto", "sctp", "-host-ip", "127.0.0.1", "-host-port", String(await freePort("tcp", "127.0.0.1")), "-container-ip", "127.0.0.1", "-container-port", "9"]);
    expect(p.status.startsWith("1\n"), JSON.stringify(p.status)).toBe(true);
    expect(await p.proc.exited).not.toBe(0);
    if (IS_OURS) expect(p.status).toBe("1\nsctp is not supported by bunker's docker-proxy");
  });

  test("an unknown protocol or flag: non-zero exit, Go flag package wording", async () => {
    const x = await spawnProxy(["-proto", "xyz", "-host-ip", "127.0.0.1", "-host-port", "1", "-container-ip", "127.0.0.1", "-container-port", "9"]);
    expect(await x.proc.exited).toBe(1);
    if (IS_OURS) expect(x.status).toBe("1\nunsupported protocol xyz");
    const b = await spawnProxy(["-bogus"]);
    expect(await b.proc.exited).toBe(2);
    expect(b.status).toBe("");
    expect(b.stderr()).toContain("flag provided but not defined: -bogus");
    expect(b.stderr()).toContain("-container-port int");
  });

  // Go's proxy writes its status into whatever fd 3 is (its own epoll fd, when none was passed), so
  // this is ours only.
  test.skipIf(!IS_OURS)("started without a status pipe (fd 3 closed), it leaves the runtime's fd 3 alone and serves", async () => {
    const { port: bport } = await echoServer("127.0.0.1");
    const port = await freePort("tcp", "127.0.0.1");
    const proc = Bun.spawn([PROXY, "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(port), "-container-ip", "127.0.0.1", "-container-port", String(bport)], { stdio: ["ignore", "ignore", "ignore"] });
    procs.add(proc);
    let got = "";
    for (let i = 0; i < 100 && got !== "still works"; i++) {
      got = await exchange("127.0.0.1", port, "still works", 2000).then(
        (r) => r.received.toString(),
        () => "",
      );
      if (got !== "still works") await sleep(50);
    }
    expect(got).toBe("still works");
    expect(proc.exitCode).toBeNull();
  });
});

describe("docker-proxy: tcp", () => {
  test("round trips, small and 8 MiB (both directions at once), byte for byte", async () => {
    const { port: bport } = await echoServer("127.0.0.1");
    const p = await startProxy("tcp", "127.0.0.1", "127.0.0.1", bport);
    for (const msg of ["a", "hello through the proxy", "x".repeat(70_000)]) {
      const r = await exchange("127.0.0.1", p.port, msg);
      expect(r.received.toString()).toBe(msg);
      expect(r.gotEnd).toBe(true);
    }
    const big = pattern(7, 8 * 1024 * 1024);
    const r = await exchange("127.0.0.1", p.port, big, 60_000);
    expect(r.received.length).toBe(big.length);
    expect(sha(r.received)).toBe(sha(big));
  });

  test.skipIf(!hasIPv6)("IPv6: [::1] to [::1], and 127.0.0.1 to [::1]", async () => {
    const { port: bport } = await echoServer("::1");
    const p6 = await startProxy("tcp", "::1", "::1", bport);
    expect((await exchange("::1", p6.port, "over-v6")).received.toString()).toBe("over-v6");
    const p4 = await startProxy("tcp", "127.0.0.1", "::1", bport);
    expect((await exchange("127.0.0.1", p4.port, "v4-to-v6")).received.toString()).toBe("v4-to-v6");
  });

  test.skipIf(!hasIPv6)('"::" is IPv6 only, as Go\'s tcp6: 0.0.0.0 and :: on one port are two proxies', async () => {
    const { port: bport } = await echoServer("127.0.0.1");
    const p6 = await startProxy("tcp", "::", "127.0.0.1", bport);
    const p4 = await spawnProxy(["-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", String(p6.port), "-container-ip", "127.0.0.1", "-container-port", String(bport)]);
    expect(p4.status).toBe("0\n");
    expect((await exchange("127.0.0.1", p6.port, "via-v4")).received.toString()).toBe("via-v4");
    expect((await exchange("::1", p6.port, "via-v6")).received.toString()).toBe("via-v6");
  });

  test("half-close: the client shuts its write side and still gets the reply", async () => {
    const { port: bport } = await listenTcp("127.0.0.1", (s) => {
      const got: Buffer[] = [];
      s.on("data", (d: Buffer) => got.push(d));
      s.on("end", () => {
        // Only now, after the client's FIN came through the proxy, answer.
        const all = Buffer.concat(got);
        s.end(`got ${all.length} bytes, sha ${sha(all)}`);
      });
      s.on("error", () => {});
    });
    const p = await startProxy("tcp", "127.0.0.1", "127.0.0.1", bport);
    const data = pattern(3, 300_000);
    const r = await exchange("127.0.0.1", p.port, data);
    expect(r.received.toString()).toBe(`got ${data.length} bytes, sha ${sha(data)}`);
    expect(r.gotEnd).toBe(true);
  });

  test("half-close the other way: the container shuts first and still receives", async () => {
    let serverGot = "";
    let serverSawEnd = false;
    const { port: bport } = await listenTcp("127.0.0.1", (s) => {
      s.end("banner then FIN\n");
      s.on("data", (d) => (serverGot += d.toString()));
      s.on("end", () => (serverSawEnd = true));
      s.on("error", () => {});
    });
    const p = await startProxy("tcp", "127.0.0.1", "127.0.0.1", bport);
    const c = connect({ host: "127.0.0.1", port: p.port, allowHalfOpen: true });
    later(() => void c.destroy());
    let clientGot = "";
    c.on("data", (d) => (clientGot += d.toString()));
    await new Promise<void>((r, j) => {
      c.once("end", () => r());
      c.once("error", j);
    });
    expect(clientGot).toBe("banner then FIN\n");
    // The proxy passed the FIN on; the client->container direction still flows.
    c.write("sent after the container's FIN");
    c.end();
    await waitFor(() => serverSawEnd, 5000);
    expect(serverGot).toBe("sent after the container's FIN");
    expect(serverSawEnd).toBe(true);
  });

  test("200 concurrent clients, each its own data back; no sockets (ours: no fds at all) left behind", async () => {
    const { port: bport } = await echoServer("127.0.0.1");
    const p = await startProxy("tcp", "127.0.0.1", "127.0.0.1", bport);
    // Warm up (lazily opened runtime fds), let it settle, then count.
    await exchange("127.0.0.1", p.port, "warm-up");
    await sleep(200);
    const before = fdKinds(p.proc.pid);
    const N = 200;
    const size = 48 * 1024;
    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const data = pattern(1000 + i, size);
        const r = await exchange("127.0.0.1", p.port, data, 60_000);
        return r.received.equals(data);
      }),
    );
    expect(results.filter((ok) => !ok).length).toBe(0);
    // Every connection's two sockets are closed. Ours closes its splice pipes with them too; Go's
    // proxy keeps the pipes of finished splices in a pool (freed by a later GC), so for the real
    // one only sockets are counted.
    const settled = () => {
      const now = fdKinds(p.proc.pid);
      return (now.socket ?? 0) <= (before.socket ?? 0) && (!IS_OURS || total(now) <= total(before));
    };
    await waitFor(settled, 5000, 50);
    const after = fdKinds(p.proc.pid);
    const shown = `fds before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`;
    expect(after.socket ?? 0, shown).toBe(before.socket ?? 0);
    if (IS_OURS) expect(total(after), shown).toBe(total(before));
    else console.log(`real proxy after 200 connections: ${shown}`);
    // Still serving.
    expect((await exchange("127.0.0.1", p.port, "after")).received.toString()).toBe("after");
  }, 90_000);

  test("clients that reset mid-transfer (EPIPE/ECONNRESET on the proxy's writes) leave it running, with no sockets left", async () => {
    // The container streams 4 MiB at every client; the clients read a little, then reset.
    const { port: bport } = await listenTcp("127.0.0.1", (s) => {
      s.on("error", () => {});
      s.resume(); // read (and drop) what the client sends, so its FIN is seen and the socket closes
      s.end(pattern(9, 4 * 1024 * 1024));
    });
    const p = await startProxy("tcp", "127.0.0.1", "127.0.0.1", bport);
    await exchange("127.0.0.1", p.port, "warm-up");
    await sleep(200);
    const before = fdKinds(p.proc.pid);
    await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<void>((resolve) => {
            const c = connect({ host: "127.0.0.1", port: p.port });
            c.on("error", () => resolve());
            c.once("data", () => {
              c.resetAndDestroy();
              resolve();
            });
          }),
      ),
    );
    await waitFor(() => (fdKinds(p.proc.pid).socket ?? 0) <= (before.socket ?? 0), 10_000, 50);
    expect(p.proc.exitCode).toBeNull();
    expect(fdKinds(p.proc.pid).socket ?? 0).toBe(before.socket ?? 0);
    const r = await exchange("127.0.0.1", p.port, "still there?");
    expect(r.received.length).toBe(4 * 1024 * 1024);
  });

  test("nothing listening in the container: the client is closed, the proxy keeps running", async () => {
    const dead = await freePort("tcp", "127.0.0.1");
    const p = await startProxy("tcp", "127.0.0.1", "127.0.0.1", dead);
    for (let i = 0; i < 3; i++) {
      const r = await exchange("127.0.0.1", p.port, "anyone?", 10_000).catch((e) => ({ received: Buffer.alloc(0), gotEnd: false, error: e }));
      expect(r.received.length).toBe(0);
    }
    expect(p.proc.exitCode).toBeNull();
    await waitFor(() => p.stderr().includes("Can't forward traffic to backend"), 3000);
    expect(p.stderr()).toContain(`Can't forward traffic to backend tcp/127.0.0.1:${dead}`);
  });
});

// ---------------------------------------------------------------------------------------------

function udpEcho(type: "udp4" | "udp6", host: string): Promise<{ sock: UdpSocket; port: number; peers: Set<number> }> {
  return new Promise((resolve) => {
    const sock = createSocket(type);
    const peers = new Set<number>();
    sock.on("message", (m, r) => {
      peers.add(r.port);
      sock.send(Buffer.concat([Buffer.from("echo:"), m]), r.port, r.address);
    });
    sock.bind(0, host, () => {
      later(() => void sock.close());
      resolve({ sock, port: sock.address().port, peers });
    });
  });
}

/** Send each message from its own socket (several per socket), gather what each socket gets back. */
async function udpClients(type: "udp4" | "udp6", host: string, port: number, clients: number, perClient: number): Promise<string[][]> {
  const socks = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<UdpSocket>((r) => {
          const s = createSocket(type);
          s.bind(0, host, () => r(s));
          later(() => void s.close());
        }),
    ),
  );
  const got: string[][] = socks.map(() => []);
  socks.forEach((s, i) => s.on("message", (m) => got[i]!.push(m.toString())));
  for (let k = 0; k < perClient; k++) {
    for (let i = 0; i < clients; i++) socks[i]!.send(`client ${i} msg ${k}`, port, host);
    await sleep(20);
  }
  await waitFor(() => got.every((g) => g.length >= perClient), 5000);
  return got.map((g) => [...g].sort());
}

describe("docker-proxy: udp", () => {
  const cases: ["udp4" | "udp6", string][] = [["udp4", "127.0.0.1"]];
  if (hasIPv6) cases.push(["udp6", "::1"]);
  for (const [type, host] of cases) {
    test(`${host}: replies reach the client that asked, one flow per client`, async () => {
      const echo = await udpEcho(type, host);
      const p = await startProxy("udp", host, host, echo.port);
      const clients = 6;
      const per = 4;
      const got = await udpClients(type, host, p.port, clients, per);
      for (let i = 0; i < clients; i++) {
        expect(got[i]).toEqual(Array.from({ length: per }, (_, k) => `echo:client ${i} msg ${k}`).sort());
      }
      // Each client address got its own socket towards the container.
      expect(echo.peers.size).toBe(clients);
    });
  }

  test("a 60000-byte datagram goes through whole", async () => {
    const echo = await udpEcho("udp4", "127.0.0.1");
    const p = await startProxy("udp", "127.0.0.1", "127.0.0.1", echo.port);
    const c = createSocket("udp4");
    later(() => void c.close());
    const big = pattern(5, 60_000);
    const reply = new Promise<Buffer>((r) => c.once("message", (m) => r(m)));
    c.send(big, p.port, "127.0.0.1");
    const m = await Promise.race([reply, sleep(5000).then(() => Buffer.alloc(0))]);
    expect(m.length).toBe(big.length + 5);
    expect(m.subarray(5).equals(big)).toBe(true);
  });

  test("nothing listening in the container (ICMP port unreachable): the proxy stays up and recovers", async () => {
    const port = await freePort("udp", "127.0.0.1");
    const p = await startProxy("udp", "127.0.0.1", "127.0.0.1", port);
    const c = createSocket("udp4");
    later(() => void c.close());
    await new Promise<void>((r) => c.bind(0, "127.0.0.1", () => r()));
    c.send("into the void", p.port, "127.0.0.1");
    await sleep(200);
    expect(p.proc.exitCode).toBeNull();
    // The container's server comes up on that port: the same client's flow now gets answers.
    const late = createSocket("udp4");
    later(() => void late.close());
    await new Promise<void>((r) => late.bind(port, "127.0.0.1", () => r()));
    late.on("message", (m, r) => late.send(Buffer.concat([Buffer.from("late:"), m]), r.port, r.address));
    const reply = new Promise<string>((r) => c.once("message", (m) => r(m.toString())));
    c.send("hello again", p.port, "127.0.0.1");
    expect(await Promise.race([reply, sleep(5000).then(() => "<no reply>")])).toBe("late:hello again");
  });

  test("SIGTERM: exits 0 and the udp port is free again", async () => {
    const echo = await udpEcho("udp4", "127.0.0.1");
    const p = await startProxy("udp", "127.0.0.1", "127.0.0.1", echo.port);
    await udpClients("udp4", "127.0.0.1", p.port, 2, 1);
    p.proc.kill("SIGTERM");
    expect(await p.proc.exited).toBe(0);
    const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: p.port });
    s.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe.skipIf(!supportsListenFd)("docker-proxy: -use-listen-fd (dockerd >= 28 binds, passes fd 4)", () => {
  // The socket is made here the way dockerd makes it: bound (and for TCP listening) before exec.
  async function boundSocket(type: "tcp" | "udp"): Promise<{ fd: number; port: number }> {
    const sys = await import("../core/net/sys");
    const fd = sys.socket(sys.AF_INET, (type === "tcp" ? sys.SOCK_STREAM : sys.SOCK_DGRAM) | sys.SOCK_CLOEXEC);
    if (fd < 0) throw new Error(`socket: ${-fd}`);
    later(() => void sys.close(fd));
    if (sys.bind(fd, sys.sockaddr(4, "127.0.0.1", 0)) < 0) throw new Error("bind failed");
    if (type === "tcp" && sys.listen(fd, 128) < 0) throw new Error("listen failed");
    return { fd, port: sys.localPort(fd) };
  }

  test("tcp: serves the inherited listener", async () => {
    const { port: bport } = await echoServer("127.0.0.1");
    const { fd, port } = await boundSocket("tcp");
    const p = await spawnProxy(["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(port), "-container-ip", "127.0.0.1", "-container-port", String(bport), "-use-listen-fd"], { listenFd: fd });
    expect(p.status).toBe("0\n");
    expect((await exchange("127.0.0.1", port, "inherited")).received.toString()).toBe("inherited");
  });

  test("udp: serves the inherited socket", async () => {
    const echo = await udpEcho("udp4", "127.0.0.1");
    const { fd, port } = await boundSocket("udp");
    const p = await spawnProxy(["-proto", "udp", "-host-ip", "127.0.0.1", "-host-port", String(port), "-container-ip", "127.0.0.1", "-container-port", String(echo.port), "-use-listen-fd"], { listenFd: fd });
    expect(p.status).toBe("0\n");
    const got = await udpClients("udp4", "127.0.0.1", port, 3, 2);
    expect(got[2]).toEqual(["echo:client 2 msg 0", "echo:client 2 msg 1"]);
  });

  test("no socket on fd 4: refused on the status pipe", async () => {
    const p = await spawnProxy(["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", "1", "-container-ip", "127.0.0.1", "-container-port", "9", "-use-listen-fd"]);
    expect(p.status.startsWith("1\n"), JSON.stringify(p.status)).toBe(true);
    expect(await p.proc.exited).not.toBe(0);
  });

  test("a udp socket passed for tcp: refused", async () => {
    const { fd, port } = await boundSocket("udp");
    const p = await spawnProxy(["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(port), "-container-ip", "127.0.0.1", "-container-port", "9", "-use-listen-fd"], { listenFd: fd });
    expect(p.status.startsWith("1\n"), JSON.stringify(p.status)).toBe(true);
    expect(await p.proc.exited).not.toBe(0);
  });
});
