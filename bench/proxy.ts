// Driver for bench/proxy.sh: our docker-proxy against Debian's (moby's Go proxy), interleaved.
//
//   throughput   SIZE_MIB (default 1024) through one TCP connection into a sink that counts the
//                bytes and answers with the count once the sender's FIN arrives (so the clock stops
//                when the last byte went through the proxy, and half-close is exercised too)
//   conn rate    CONNS (default 3000) short connections, CONC (default 32) at a time: connect,
//                send 64 bytes, read the 64-byte echo, close
//
// Three processes per measurement, the same for every proxy: this driver (client), a backend (the
// "container": this file with `backend`) and the proxy. ROUNDS rounds (default 5), the order of
// the proxies reversed every round. Reported: medians, the median of the per-round ours/real ratios
// (neighbouring runs share the machine's mood), and the proxy's own CPU time per GiB and per
// connection from /proc/<pid>/stat, which the noise of a shared machine disturbs least.
//
//   bun bench/proxy.ts                     (run through bench/proxy.sh, which builds and checks)
//   OURS=... REAL=... SIZE_MIB=... CONNS=... CONC=... ROUNDS=...
//   SOCKETS=1   also ours with BUNKER_PROXY_ENGINE=sockets (bytes copied through Bun's sockets)
import { closeSync, readFileSync, readSync } from "node:fs";
import type { Socket } from "bun";

const env = process.env;

// ---- backend role: a sink that reports the byte count, and an echo server ---------------------------
if (process.argv[2] === "backend") {
  const sink = Bun.listen<{ n: number }>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.data = { n: 0 };
      },
      data(s, d) {
        s.data.n += d.byteLength;
      },
      end(s) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(BigInt(s.data.n));
        s.write(b);
        s.end();
      },
      close() {},
    },
  });
  const echo = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, d) {
        s.write(d);
      },
      end(s) {
        s.end();
      },
      close() {},
    },
  });
  console.log(JSON.stringify({ sink: sink.port, echo: echo.port }));
  process.on("SIGTERM", () => process.exit(0));
  await new Promise(() => {});
}

// ---- driver ------------------------------------------------------------------------------------------
const OURS = env.OURS ?? `${import.meta.dir}/../dist/bin/docker-proxy`;
const REAL = env.REAL ?? "/usr/sbin/docker-proxy";
const SIZE_MIB = Number(env.SIZE_MIB ?? 1024);
const CONNS = Number(env.CONNS ?? 3000);
const CONC = Number(env.CONC ?? 32);
const ROUNDS = Math.max(1, Number(env.ROUNDS ?? 5));

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

interface Contender {
  name: string;
  bin: string;
  env?: Record<string, string>;
}

interface Proxy {
  name: string;
  port: number;
  proc: ReturnType<typeof Bun.spawn>;
}

/** Start a proxy to the backend port, wait for "0\n" on fd 3. */
async function startProxy(c: Contender, backendPort: number): Promise<Proxy> {
  const name = c.name;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    // stderr ignored: moby's proxy logs a line at every SIGTERM.
    const proc = Bun.spawn([c.bin, "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", String(port), "-container-ip", "127.0.0.1", "-container-port", String(backendPort)], {
      stdio: ["ignore", "ignore", "ignore", "pipe"],
      env: { ...process.env, ...c.env },
    });
    const fd = proc.stdio[3] as unknown as number;
    let status = "";
    const end = Date.now() + 10_000;
    const buf = Buffer.alloc(256);
    for (;;) {
      let n = 0;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e: any) {
        if (e.code !== "EAGAIN") throw e;
        if (Date.now() > end) throw new Error(`${name}: no readiness within 10 s`);
        await sleep(2);
        continue;
      }
      if (n === 0) break;
      status += buf.subarray(0, n).toString();
      if (status === "0\n") break;
    }
    closeSync(fd);
    if (status === "0\n") return { name, port, proc };
    proc.kill("SIGKILL");
    await proc.exited;
    if (!status.includes("address already in use")) throw new Error(`${name} failed to start: ${JSON.stringify(status)}`);
  }
  throw new Error(`${name}: no free port`);
}

async function stopProxy(p: Proxy): Promise<void> {
  p.proc.kill("SIGTERM");
  await p.proc.exited;
}

/** Send `mib` MiB through `port` into the sink; returns MB/s (10^6 bytes per second). */
function throughput(port: number, mib = SIZE_MIB): Promise<number> {
  const total = mib * 1024 * 1024;
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let off = 0; // offset into the current chunk after a partial write
    let t0 = 0;
    let reply = Buffer.alloc(0);
    const pump = (s: Socket<undefined>) => {
      while (sent < total) {
        const len = Math.min(chunk.length - off, total - sent);
        const n = s.write(chunk.subarray(off, off + len));
        sent += Math.max(n, 0);
        off = (off + Math.max(n, 0)) % chunk.length;
        if (n < len) return; // wait for drain
      }
      s.shutdown();
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        open(s) {
          t0 = performance.now();
          pump(s);
        },
        drain: pump,
        data(_s, d) {
          reply = Buffer.concat([reply, d]);
        },
        // The sink's count then its FIN. Bun reports a FIN that arrives after our own shutdown()
        // as close, not end: finish on whichever comes first.
        end(s) {
          s.end();
        },
        close() {
          const secs = (performance.now() - t0) / 1000;
          if (reply.length !== 8 || Number(reply.readBigUInt64BE()) !== total) reject(new Error(`sink counted ${reply.length === 8 ? reply.readBigUInt64BE() : "?"} of ${total} bytes`));
          else resolve(total / 1e6 / secs);
        },
        connectError(_s, e) {
          reject(e);
        },
      },
    }).catch(reject);
  });
}

/** CONNS short echo connections, CONC at a time; returns connections per second. */
async function connRate(port: number): Promise<number> {
  const msg = Buffer.alloc(64, 0x62);
  let started = 0;
  let failed = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      let got = 0;
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open(s) {
            s.write(msg);
          },
          data(s, d) {
            got += d.byteLength;
            if (got >= msg.length) s.end();
          },
          close() {
            if (got < msg.length) failed++;
            resolve();
          },
          connectError() {
            failed++;
            resolve();
          },
        },
      }).catch(() => {});
    });
  const worker = async () => {
    while (started < CONNS) {
      started++;
      await one();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONC }, worker));
  const secs = (performance.now() - t0) / 1000;
  if (failed) throw new Error(`${failed} of ${CONNS} connections failed`);
  return CONNS / secs;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const f0 = (n: number) => n.toFixed(0);
const f2 = (n: number) => n.toFixed(2);

interface Series {
  tp: number[]; // MB/s
  tpCpu: number[]; // proxy CPU seconds per GiB
  cr: number[]; // connections/s
  crCpu: number[]; // proxy CPU milliseconds per connection
}
const series = (): Series => ({ tp: [], tpCpu: [], cr: [], crCpu: [] });

async function measure(c: Contender, ports: { sink: number; echo: number }, s: Series): Promise<void> {
  const ps = await startProxy(c, ports.sink);
  try {
    const c0 = cpuSeconds(ps.proc.pid);
    s.tp.push(await throughput(ps.port));
    s.tpCpu.push((cpuSeconds(ps.proc.pid) - c0) / (SIZE_MIB / 1024));
  } finally {
    await stopProxy(ps);
  }
  const pe = await startProxy(c, ports.echo);
  try {
    const c0 = cpuSeconds(pe.proc.pid);
    s.cr.push(await connRate(pe.port));
    s.crCpu.push(((cpuSeconds(pe.proc.pid) - c0) * 1000) / CONNS);
  } finally {
    await stopProxy(pe);
  }
}

async function main() {
  const backend = Bun.spawn([process.execPath, import.meta.path, "backend"], { stdio: ["ignore", "pipe", "inherit"] });
  const reader = backend.stdout.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  reader.releaseLock();
  const ports = JSON.parse(first.split("\n")[0]!) as { sink: number; echo: number };
  const contenders: Contender[] = [
    { name: "ours", bin: OURS },
    { name: "real", bin: REAL },
  ];
  if (env.SOCKETS === "1") contenders.push({ name: "ours-sockets", bin: OURS, env: { BUNKER_PROXY_ENGINE: "sockets" } });
  const S: Record<string, Series> = Object.fromEntries(contenders.map((c) => [c.name, series()]));
  const direct = { tp: [] as number[], cr: [] as number[] };
  console.log(`docker-proxy benchmark: ${SIZE_MIB} MiB per transfer, ${CONNS} connections (${CONC} at a time), ${ROUNDS} rounds, interleaved`);
  const shown = (c: Contender) => (c.bin === OURS && env.OURS_SHOWN ? `${env.OURS_SHOWN} (a copy, ${c.bin})` : c.bin);
  for (const c of contenders) console.log(`  ${c.name.padEnd(12)} ${shown(c)}${c.env ? ` ${JSON.stringify(c.env)}` : ""}`);
  try {
    // Warm-up: each proxy once, with a little data (page cache, CPU frequency, the backend's JIT).
    for (const c of contenders) {
      const p = await startProxy(c, ports.sink);
      await throughput(p.port, 64);
      await stopProxy(p);
    }
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? contenders : [...contenders].reverse();
      for (const c of order) await measure(c, ports, S[c.name]!);
      direct.tp.push(await throughput(ports.sink));
      direct.cr.push(await connRate(ports.echo));
      const line = contenders.map((c) => `${c.name} ${f0(S[c.name]!.tp.at(-1)!)}`).join(" ");
      const cline = contenders.map((c) => `${c.name} ${f0(S[c.name]!.cr.at(-1)!)}`).join(" ");
      console.log(`  round ${r + 1}: MB/s ${line} direct ${f0(direct.tp.at(-1)!)} | conn/s ${cline} direct ${f0(direct.cr.at(-1)!)}`);
    }
  } finally {
    backend.kill("SIGTERM");
    await backend.exited;
  }
  const o = S.ours!, g = S.real!;
  const ratios = (a: number[], b: number[]) => a.map((x, i) => x / b[i]!);
  const tpRatio = median(ratios(o.tp, g.tp));
  const crRatio = median(ratios(o.cr, g.cr));
  console.log("");
  console.log(`throughput: ${SIZE_MIB} MiB over one connection (MB/s = 10^6 bytes/s; medians of ${ROUNDS} rounds)`);
  for (const c of contenders) {
    const x = S[c.name]!;
    console.log(`  ${c.name.padEnd(12)} ${f0(median(x.tp)).padStart(6)} MB/s   proxy CPU ${f2(median(x.tpCpu))} s/GiB`);
  }
  console.log(`  ${"direct".padEnd(12)} ${f0(median(direct.tp)).padStart(6)} MB/s   (no proxy, for scale)`);
  console.log(`  ratio ours/real ${f2(tpRatio)}x (median of per-round ratios); CPU per GiB ours/real ${f2(median(o.tpCpu) / median(g.tpCpu))}x`);
  console.log(`connection rate: ${CONNS} short echo connections, ${CONC} at a time`);
  for (const c of contenders) {
    const x = S[c.name]!;
    console.log(`  ${c.name.padEnd(12)} ${f0(median(x.cr)).padStart(6)} conn/s   proxy CPU ${f2(median(x.crCpu))} ms/conn`);
  }
  console.log(`  ${"direct".padEnd(12)} ${f0(median(direct.cr)).padStart(6)} conn/s   (no proxy, for scale)`);
  console.log(`  ratio ours/real ${f2(crRatio)}x; CPU per connection ours/real ${f2(median(o.crCpu) / median(g.crCpu))}x`);
  console.log("");
  console.log("goal: ours >= 1.0x the real proxy's throughput");
  console.log(`result: throughput ${f2(tpRatio)}x (${tpRatio >= 1 ? "met" : "NOT met"}), connection rate ${f2(crRatio)}x`);
  if (tpRatio < 1) process.exitCode = 2;
}

await main();
