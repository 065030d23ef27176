// A containerd gRPC client for our ctr (and anything else of ours that talks to containerd, e.g.
// dockerd): one connection to the unix socket, every call carrying the `containerd-namespace`
// metadata. Errors come back as ErrDef with the server's message rebased as containerd's
// errdefs.FromGRPC does ("image \"x\": not found"), so callers can test isNotFound(e).
import * as grpc from "@grpc/grpc-js";
import { connect as netConnect, type Socket } from "node:net";
import { Code, CODE_NAMES, ErrDef } from "../containerd/errdefs";
import { LEASE_KEY, NAMESPACE_KEY, serviceMethod } from "../containerd/grpc";
import { InitialWindowFixSocket } from "../h2/initial-window";
import { isPreframed } from "./content-write";

export const DEFAULT_ADDRESS = "/run/containerd/containerd.sock";
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const MAX_MESSAGE = 16 << 20;

export interface ClientOptions {
  /** How long to wait for the socket to accept connections (ctr --connect-timeout; 0 = 10 s). */
  connectTimeoutMs?: number;
  /** Deadline of every call (ctr --timeout; 0 = none). */
  timeoutMs?: number;
  /** Added to every call as `containerd-lease`. */
  lease?: string;
  /**
   * Fail at once when the socket refuses (or is no socket), as containerd's dialer does for ctr;
   * otherwise that is waited out like a missing socket (a daemon restarting over a stale one).
   */
  failFast?: boolean;
}

/** containerd's errdefs.FromGRPC: the class's text is re-appended to the server's message. */
const CLASS_TEXT: Record<number, string> = {
  [Code.INVALID_ARGUMENT]: "invalid argument",
  [Code.ALREADY_EXISTS]: "already exists",
  [Code.NOT_FOUND]: "not found",
  [Code.UNAVAILABLE]: "unavailable",
  [Code.FAILED_PRECONDITION]: "failed precondition",
  [Code.UNIMPLEMENTED]: "not implemented",
  [Code.CANCELLED]: "context canceled",
  [Code.DEADLINE_EXCEEDED]: "context deadline exceeded",
};

/**
 * The status text Go's grpc gives the errors grpc-js makes on the client side: a call past its
 * deadline is "context deadline exceeded" (grpc-js: "Deadline exceeded after 0.499s,..."), a
 * cancelled one "context canceled".
 */
export function statusDetails(e: any): string {
  const desc: string = e?.details ?? e?.message ?? String(e);
  if (e?.code === Code.DEADLINE_EXCEEDED && /^Deadline exceeded/.test(desc)) return "context deadline exceeded";
  if (e?.code === Code.CANCELLED && /^Cancelled on client/.test(desc)) return "context canceled";
  return desc;
}

export function fromGRPC(e: any): ErrDef {
  if (e instanceof ErrDef) return e;
  const code: number = typeof e?.code === "number" ? e.code : Code.UNKNOWN;
  const desc = statusDetails(e);
  const cls = CLASS_TEXT[code] ?? "unknown";
  const msg = desc === cls ? "" : desc.endsWith(": " + cls) ? desc.slice(0, -(cls.length + 2)) : desc;
  return new ErrDef(code in CLASS_TEXT ? code : Code.UNKNOWN, msg ? `${msg}: ${cls}` : cls);
}

/** "unix:///x.sock", "unix:/x.sock" or "/x.sock" -> "/x.sock". */
export function socketPath(address: string): string {
  return address.replace(/^unix:\/\//, "").replace(/^unix:/, "");
}

/** Connect once: undefined when the socket accepts, else the errno code and Go's text for it. */
function probe(path: string): Promise<{ code: string; why: string } | undefined> {
  return new Promise((resolve) => {
    const s = netConnect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(undefined);
    });
    s.once("error", (e: any) => {
      s.destroy();
      const why: Record<string, string> = { ENOENT: "no such file or directory", ECONNREFUSED: "connection refused", EACCES: "permission denied", ENOTSOCK: "socket operation on non-socket", ENOTDIR: "not a directory" };
      resolve({ code: e?.code ?? "", why: `connect: ${why[e?.code] ?? e?.message ?? e}` });
    });
  });
}

/**
 * grpc-js's insecure credentials, except that Bun's HTTP/2 session gets the socket through
 * InitialWindowFixSocket (see core/h2/initial-window.ts: Bun does not grow open streams' send
 * windows when the server raises SETTINGS_INITIAL_WINDOW_SIZE, and long Content.Write streams
 * into Go's containerd stall). The connector is grpc-js's hook between the connected socket and
 * http2.connect (SecureConnector in channel-credentials.d.ts).
 */
class WindowFixCredentials extends grpc.ChannelCredentials {
  override compose(): grpc.ChannelCredentials {
    throw new Error("Cannot compose insecure credentials");
  }
  _isSecure(): boolean {
    return false;
  }
  _equals(other: grpc.ChannelCredentials): boolean {
    return other instanceof WindowFixCredentials;
  }
  _createSecureConnector() {
    return {
      connect: (socket: Socket) => Promise.resolve({ socket: new InitialWindowFixSocket(socket) as unknown as Socket, secure: false }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => grpc.CallCredentials.createEmpty(),
      destroy: () => {},
    };
  }
}

export class Client {
  private readonly client: grpc.Client;
  readonly address: string;

  private constructor(
    address: string,
    public namespace: string,
    private opts: ClientOptions,
  ) {
    this.address = address;
    this.client = new grpc.Client(`unix:${socketPath(address)}`, new WindowFixCredentials(), {
      "grpc.max_receive_message_length": MAX_MESSAGE,
      "grpc.max_send_message_length": MAX_MESSAGE,
    });
  }

  /**
   * Connect once the socket accepts connections, as containerd's dialer does for ctr: a socket
   * that does not exist yet is waited for (a daemon that is starting) until the connect timeout,
   * which fails with `failed to dial "/x.sock": context deadline exceeded`, plus, when grpc got to
   * record it (timeouts over a second; at one second it is a coin toss), `: connection error:
   * desc = "transport: error while dialing: dial unix:///x.sock: timeout"`. With failFast (ctr),
   * any other error fails at once: `failed to dial "/x.sock": connection error: desc =
   * "transport: error while dialing: dial unix /x.sock: connect: connection refused"`; without
   * it, a refusing socket is waited out too (a daemon restarting over its stale socket).
   */
  static async connect(address: string, namespace: string, opts: ClientOptions = {}): Promise<Client> {
    const path = socketPath(address);
    const timeout = opts.connectTimeoutMs || DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeout;
    const start = performance.now();
    for (;;) {
      const failed = await probe(path);
      // A connection made after the deadline (a timeout of microseconds) is too late all the same.
      if (!failed && performance.now() - start <= timeout) break;
      if (!failed) throw new ErrDef(Code.DEADLINE_EXCEEDED, `failed to dial ${JSON.stringify(address)}: context deadline exceeded`);
      const transport = (why: string) => `connection error: desc = "transport: error while dialing: ${why}"`;
      if (failed.code !== "ENOENT" && opts.failFast) {
        throw new ErrDef(Code.UNAVAILABLE, `failed to dial ${JSON.stringify(address)}: ${transport(`dial unix ${address}: ${failed.why}`)}`);
      }
      if (Date.now() >= deadline) {
        const why = failed.code === "ENOENT" ? `dial unix://${address}: timeout` : `dial unix ${address}: ${failed.why}`;
        const detail = timeout > 1000 ? `: ${transport(why)}` : "";
        throw new ErrDef(Code.DEADLINE_EXCEEDED, `failed to dial ${JSON.stringify(address)}: context deadline exceeded${detail}`);
      }
      await Bun.sleep(Math.min(10, Math.max(1, deadline - Date.now())));
    }
    return new Client(address, namespace, opts);
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(NAMESPACE_KEY, this.namespace);
    if (this.opts.lease) md.set(LEASE_KEY, this.opts.lease);
    return md;
  }

  private callOptions(): grpc.CallOptions {
    return this.opts.timeoutMs ? { deadline: Date.now() + this.opts.timeoutMs } : {};
  }

  /** A unary call; `service` is the full proto name ("containerd.services.images.v1.Images"). */
  call<Res = any>(service: string, method: string, req: object = {}): Promise<Res> {
    const m = serviceMethod(service, method);
    return new Promise<Res>((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        (o: object) => m.request.encode(o),
        (b: Buffer) => m.response.decode(b),
        req,
        this.metadata(),
        this.callOptions(),
        (e, res) => (e ? reject(fromGRPC(e)) : resolve(res as Res)),
      );
    });
  }

  /**
   * A unary call whose error is Go's grpc status text ("rpc error: code = DeadlineExceeded desc =
   * context deadline exceeded"), for what containerd's client returns unconverted (Version, Server).
   */
  async callRaw<Res = any>(service: string, method: string, req: object = {}): Promise<Res> {
    const m = serviceMethod(service, method);
    return new Promise<Res>((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        (o: object) => m.request.encode(o),
        (b: Buffer) => m.response.decode(b),
        req,
        this.metadata(),
        this.callOptions(),
        (e, res) => (e ? reject(new Error(`rpc error: code = ${CODE_NAMES[e.code] ?? e.code} desc = ${statusDetails(e)}`)) : resolve(res as Res)),
      );
    });
  }

  /** A server-streaming call, as an async iterable of responses. */
  async *stream<Res = any>(service: string, method: string, req: object = {}, signal?: AbortSignal): AsyncGenerator<Res> {
    const m = serviceMethod(service, method);
    const call = this.client.makeServerStreamRequest(m.path, (o: object) => m.request.encode(o), (b: Buffer) => m.response.decode(b), req, this.metadata(), this.callOptions());
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort);
    try {
      for await (const res of call) yield res as Res;
    } catch (e) {
      if ((e as any)?.code === Code.CANCELLED && signal?.aborted) return;
      throw fromGRPC(e);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * A server-streaming call whose errors stay the raw gRPC status (code, details), for callers
   * that print them as Go's grpc status does ("rpc error: code = ... desc = ..."), like ctr events.
   */
  async *streamRaw<Res = any>(service: string, method: string, req: object = {}): AsyncGenerator<Res> {
    const m = serviceMethod(service, method);
    const call = this.client.makeServerStreamRequest(m.path, (o: object) => m.request.encode(o), (b: Buffer) => m.response.decode(b), req, this.metadata(), this.callOptions());
    try {
      for await (const res of call) yield res as Res;
    } finally {
      call.cancel();
    }
  }

  /** Set (or clear) the `containerd-lease` sent with every later call. */
  setLease(id: string | undefined): void {
    this.opts.lease = id;
  }

  /**
   * A bidirectional-streaming call whose every request gets one response (the content service's
   * Write): send() resolves with the request's response. Requests may be sent before earlier
   * ones are answered (the responses come back in order). A request may be a message body
   * content-write.ts encoded already (it goes out as it is).
   */
  duplex<Req extends object = any, Res = any>(service: string, method: string): { send(req: Req): Promise<Res>; close(): void } {
    const m = serviceMethod(service, method);
    const call = this.client.makeBidiStreamRequest(m.path, (o: object) => (isPreframed(o) ? o : m.request.encode(o)), (b: Buffer) => m.response.decode(b), this.metadata(), this.callOptions());
    const waiting: { resolve(r: Res): void; reject(e: unknown): void }[] = [];
    let failure: unknown;
    let closed = false;
    call.on("data", (r: Res) => waiting.shift()?.resolve(r));
    call.on("error", (e: unknown) => {
      failure = fromGRPC(e);
      for (const w of waiting.splice(0)) w.reject(failure);
    });
    call.on("end", () => {
      failure ??= new ErrDef(Code.UNKNOWN, "stream ended");
      for (const w of waiting.splice(0)) w.reject(failure);
    });
    return {
      send: (req: Req) =>
        new Promise<Res>((resolve, reject) => {
          if (failure) return reject(failure);
          waiting.push({ resolve, reject });
          call.write(req);
        }),
      close: () => {
        if (closed) return;
        closed = true;
        call.end();
        call.cancel();
      },
    };
  }

  close(): void {
    this.client.close();
  }
}
