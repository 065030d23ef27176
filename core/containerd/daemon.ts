// The containerd daemon: load the plugins, serve their gRPC services on the unix socket, stop on
// SIGTERM/SIGINT. Logs like containerd ("loading plugin ...", "serving...", "containerd
// successfully booted in 0.036278s").
import * as grpc from "@grpc/grpc-js";
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server as NetServer } from "node:net";
import { dirname, join } from "node:path";
import { InitialWindowFixSocket } from "../h2/initial-window";
import { installPooledDecoder } from "./grpc-recv";
import { type Config, pluginConfig, pluginDisabled } from "./config";
import { q } from "./errdefs";
import { defineService, grpcDefinition, grpcImplementation, type ServiceImpl } from "./grpc";
import type { Logger } from "./log";
import { type GrpcPlugin, hostPlatform, type InitContext, type LoadedPlugin, type PluginRegistration, PluginType, pluginURI, SkipPlugin } from "./plugin";
import { builtinPlugins, CONTAINERD_SERVICES } from "./plugins";
import { CONTAINERD_REVISION, CONTAINERD_VERSION } from "./version";

export class DaemonError extends Error {}

/** Is something accepting connections on the unix socket? */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    setTimeout(() => done(false), 1000).unref();
  });
}

export class Daemon {
  readonly plugins: LoadedPlugin[] = [];
  private server?: grpc.Server;
  private listener?: NetServer;
  private closers: Array<() => void | Promise<void>> = [];
  private stoppers: Array<() => void | Promise<void>> = [];
  private served = new Set<string>();
  private stopping?: Promise<void>;
  /** Set once our socket is bound: only then is the socket file ours to remove. */
  private bound = false;

  constructor(
    readonly config: Config,
    readonly log: Logger,
    private readonly registrations: PluginRegistration[] = builtinPlugins(() => this.plugins),
  ) {}

  get address(): string {
    return this.config.grpc.address;
  }

  private instance<T>(type: string, id?: string): T {
    const p = this.plugins.find((x) => x.reg.type === type && (id === undefined || x.reg.id === id));
    if (!p) throw new Error(`no plugins registered for ${type}${id ? `.${id}` : ""}: not found`);
    if (p.error) throw p.error;
    return p.instance as T;
  }

  private async loadPlugins(): Promise<void> {
    const cfg = this.config;
    for (const reg of this.registrations) {
      const uri = pluginURI(reg);
      if (pluginDisabled(cfg, reg.type, reg.id)) {
        this.log.info(`skip loading plugin ${q(uri)}...`, { type: reg.type, error: "disabled" });
        continue;
      }
      this.log.info(`loading plugin ${q(uri)}...`, { type: reg.type });
      const lp: LoadedPlugin = { reg, exports: {}, platforms: [], capabilities: [] };
      const ic: InitContext = {
        root: join(cfg.root, uri),
        state: join(cfg.state, uri),
        config: cfg,
        pluginConfig: pluginConfig(cfg, reg.type, reg.id),
        address: cfg.grpc.address,
        log: this.log.with({}),
        exports: lp.exports,
        platforms: lp.platforms,
        capabilities: lp.capabilities,
        get: (type, id) => this.instance(type, id),
        getAll: (type) => new Map(this.plugins.filter((x) => x.reg.type === type && !x.error).map((x) => [x.reg.id, x.instance as any])),
        onClose: (fn) => this.closers.push(fn),
        onStop: (fn) => this.stoppers.push(fn),
      };
      try {
        lp.instance = await reg.init(ic);
      } catch (e: any) {
        lp.error = e instanceof Error ? e : new Error(String(e));
        if (e instanceof SkipPlugin) this.log.info(`skip loading plugin ${q(uri)}...`, { type: reg.type, error: lp.error.message });
        else this.log.warn(`failed to load plugin ${uri}`, { error: lp.error.message });
      }
      this.plugins.push(lp);
    }
    for (const req of cfg.requiredPlugins) {
      const p = this.plugins.find((x) => pluginURI(x.reg) === req);
      if (!p || p.error) throw new DaemonError(`required plugin ${req} not included`);
    }
  }

  private addService(server: grpc.Server, svc: ServiceImpl): void {
    if (this.served.has(svc.name)) throw new DaemonError(`two plugins serve ${svc.name}`);
    server.addService(grpcDefinition(svc.name), grpcImplementation(svc, this.log));
    this.served.add(svc.name);
  }

  /** Remove a stale socket; refuse when a live server answers on it. */
  private async prepareSocket(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o711 });
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return;
    }
    if (st.isSocket() && (await socketInUse(path))) throw new DaemonError(`another containerd is serving on ${path}`);
    unlinkSync(path);
  }

  /**
   * Listen on the unix socket and hand each connection to grpc-js through InitialWindowFixSocket
   * (core/h2/initial-window.ts): Bun's HTTP/2 server does not grow open streams' send windows
   * when the client raises SETTINGS_INITIAL_WINDOW_SIZE, as Go's gRPC client does during a long
   * response (a big Content.Read from the real ctr stalled forever without it).
   */
  private bind(server: grpc.Server, path: string): Promise<void> {
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = createServer((socket) => injector.injectConnection(new InitialWindowFixSocket(socket, "server")));
    // The socket is created 0660 (umask 0117) so it is never more open than that, then chowned.
    const old = process.umask(0o117);
    return new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => {
        process.umask(old);
        injector.destroy();
        reject(new DaemonError(`failed to get listener for main endpoint: ${e.message}`));
      };
      listener.once("error", fail);
      listener.listen(path, () => {
        listener.off("error", fail);
        process.umask(old);
        this.listener = listener;
        listener.on("error", (e) => this.log.error("accept failed", { error: e.message }));
        try {
          chmodSync(path, 0o660);
          chownSync(path, this.config.grpc.uid, this.config.grpc.gid);
        } catch (err: any) {
          return reject(new DaemonError(`failed to set up ${path}: ${err.message}`));
        }
        resolve();
      });
    });
  }

  async start(): Promise<void> {
    const t0 = performance.now();
    const cfg = this.config;
    this.log.info("starting containerd", { revision: CONTAINERD_REVISION, version: CONTAINERD_VERSION });
    if (cfg.oomScore) {
      try {
        writeFileSync("/proc/self/oom_score_adj", String(cfg.oomScore));
      } catch (e: any) {
        this.log.warn("failed to adjust OOM score for containerd", { error: e.message });
      }
    }
    for (const d of [cfg.root, cfg.state]) mkdirSync(d, { recursive: true, mode: 0o711 });
    await this.loadPlugins();

    installPooledDecoder(); // WRITE messages into reused buffers (grpc-recv.ts)
    const server = new grpc.Server({
      "grpc.max_receive_message_length": cfg.grpc.maxRecvMessageSize,
      "grpc.max_send_message_length": cfg.grpc.maxSendMessageSize,
    });
    for (const p of this.plugins) {
      if (p.reg.type !== PluginType.GRPC || p.error) continue;
      for (const svc of (p.instance as GrpcPlugin).services) this.addService(server, svc);
    }
    for (const name of CONTAINERD_SERVICES) if (!this.served.has(name)) this.addService(server, defineService(name, {}));
    this.server = server;

    await this.prepareSocket(cfg.grpc.address);
    await this.bind(server, cfg.grpc.address);
    this.bound = true;
    this.log.info("serving...", { address: cfg.grpc.address });
    this.log.info(`containerd successfully booted in ${((performance.now() - t0) / 1000).toFixed(6)}s`);
  }

  /**
   * Stop: run the plugins' onStop hooks (ending event subscriptions), let in-flight calls finish
   * for up to `graceMs`, cancel the rest, run the onClose hooks last-registered first (the
   * database closes last), remove the socket.
   */
  stop(graceMs = 2000): Promise<void> {
    this.stopping ??= (async () => {
      for (const fn of this.stoppers) await Promise.resolve().then(fn).catch(() => {});
      // No new connections; grpc-js then closes the open ones (GOAWAY, in-flight calls finish).
      this.listener?.close();
      const server = this.server;
      if (server) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([new Promise<void>((r) => server.tryShutdown(() => r())), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
        server.forceShutdown();
      }
      for (const fn of this.closers.reverse()) await Promise.resolve().then(fn).catch((e) => this.log.warn("plugin close failed", { error: e?.message ?? String(e) }));
      try {
        if (this.bound && lstatSync(this.address).isSocket()) unlinkSync(this.address);
      } catch {}
    })();
    return this.stopping;
  }
}

/** Run until SIGTERM or SIGINT; returns the exit status. */
export async function runDaemon(config: Config, log: Logger): Promise<number> {
  const d = new Daemon(config, log);
  const done = new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      log.info("received signal, stopping containerd", { signal: sig === "SIGTERM" ? "terminated" : "interrupt" });
      d.stop().then(
        () => resolve(0),
        (e) => {
          log.error("failed to stop cleanly", { error: e?.message ?? String(e) });
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    process.on("SIGPIPE", () => {});
  });
  try {
    await d.start();
  } catch (e: any) {
    await d.stop(0).catch(() => {});
    log.log("fatal", `containerd: ${e?.message ?? e}`);
    return 1;
  }
  return done;
}
