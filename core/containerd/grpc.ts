// A small framework between protobufjs reflection and grpc-js: a service is its full proto name
// plus typed handlers; this file turns it into a grpc-js ServiceDefinition and implementation.
//
//   export const versionService = defineService("containerd.services.version.v1.Version", {
//     Version: unary<Empty, VersionResponse>(() => ({ version: "...", revision: "..." })),
//   });
//
// * Paths are `/<package>.<Service>/<Method>`, serializers come from the proto types.
// * Messages are plain objects (see proto/index.ts for the conventions: camelCase, int64 as strings).
// * Methods without a handler answer UNIMPLEMENTED with a clear message, so a service can be
//   registered before it is written (`defineService(name, {})` is a stub of the whole service).
// * Handlers throw ErrDef (errdefs.ts) to answer a gRPC status; any other error is UNKNOWN with
//   its message. Every call gets a CallContext: the namespace from the `containerd-namespace`
//   metadata, the lease from `containerd-lease`, an AbortSignal fired when the client cancels.
import * as grpc from "@grpc/grpc-js";
import type protobuf from "protobufjs";
import { lookupService, lookupType } from "./proto";
import { Code, ErrDef, failedPrecondition, messageOf } from "./errdefs";
import { validateIdentifier } from "./identifiers";
import type { Any } from "./types";
import type { Logger } from "./log";

// ---------------------------------------------------------------------------------------------
// Codec

export const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, arrays: true, objects: true };

export interface Codec<T = any> {
  encode(obj: T): Buffer;
  decode(buf: Uint8Array): T;
}

const codecs = new WeakMap<protobuf.Type, Codec>();

/** Encode/decode plain objects of a message type. Unknown fields of the object are ignored. */
export function codecFor<T = any>(type: protobuf.Type | string): Codec<T> {
  const t = typeof type === "string" ? lookupType(type) : type;
  let c = codecs.get(t);
  if (!c) {
    c = {
      encode(obj) {
        const u8 = t.encode(t.fromObject(normalizeInt64(obj ?? {}) as object)).finish();
        return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
      },
      decode: (buf) => t.toObject(t.decode(buf), DECODE_OPTIONS),
    };
    codecs.set(t, c);
  }
  return c as Codec<T>;
}

/** bigint values become strings (protobufjs takes strings and numbers for int64 fields). */
function normalizeInt64(v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v === null || typeof v !== "object" || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.some((x) => typeof x === "bigint" || (x && typeof x === "object")) ? v.map(normalizeInt64) : v;
  let copy: Record<string, unknown> | undefined;
  for (const [k, x] of Object.entries(v)) {
    const n = normalizeInt64(x);
    if (n !== x) (copy ??= { ...(v as Record<string, unknown>) })[k] = n;
  }
  return copy ?? v;
}

/** Pack a message into a google.protobuf.Any whose type URL is its full name (containerd's typeurl for protos). */
export function packAny(typeName: string, obj: object): Any {
  return { typeUrl: typeName, value: codecFor(typeName).encode(obj) };
}

/** Pack a JSON document under a type URL (how containerd carries OCI specs: types.containerd.io/...). */
export function packJSONAny(typeUrl: string, obj: unknown): Any {
  return { typeUrl, value: Buffer.from(JSON.stringify(obj)) };
}

/** Unpack an Any: decoded proto when its type is known, else the parsed JSON for JSON type URLs. */
export function unpackAny<T = any>(any: Any): T {
  const name = any.typeUrl.replace(/^.*\//, "");
  if (!any.typeUrl.startsWith("types.containerd.io/")) {
    try {
      return codecFor<T>(name).decode(any.value);
    } catch (e) {
      if (!/no such type/i.test(messageOf(e))) throw e;
    }
  }
  return JSON.parse(Buffer.from(any.value).toString("utf8")) as T;
}

// ---------------------------------------------------------------------------------------------
// Method definitions shared by the server and the clients

export interface MethodInfo {
  service: string;
  name: string;
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  request: Codec;
  response: Codec;
}

const methodCache = new Map<string, MethodInfo[]>();

/** The methods of a service as the proto declares them, with their codecs. */
export function serviceMethods(serviceName: string): MethodInfo[] {
  let ms = methodCache.get(serviceName);
  if (ms) return ms;
  const svc = lookupService(serviceName);
  ms = svc.methodsArray.map((m) => {
    m.resolve();
    return {
      service: serviceName,
      name: m.name,
      path: `/${serviceName}/${m.name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      request: codecFor(m.resolvedRequestType!),
      response: codecFor(m.resolvedResponseType!),
    };
  });
  methodCache.set(serviceName, ms);
  return ms;
}

export function serviceMethod(serviceName: string, method: string): MethodInfo {
  const m = serviceMethods(serviceName).find((x) => x.name === method);
  if (!m) throw new Error(`${serviceName} has no method ${method}`);
  return m;
}

export function grpcDefinition(serviceName: string): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const m of serviceMethods(serviceName)) {
    def[m.name] = {
      path: m.path,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (o: any) => m.request.encode(o),
      requestDeserialize: (b: Buffer) => m.request.decode(b),
      responseSerialize: (o: any) => m.response.encode(o),
      responseDeserialize: (b: Buffer) => m.response.decode(b),
      originalName: m.name,
    };
  }
  return def;
}

// ---------------------------------------------------------------------------------------------
// Calls

export const NAMESPACE_KEY = "containerd-namespace";
export const LEASE_KEY = "containerd-lease";
export const DEFAULT_NAMESPACE = "default";

export interface CallContext {
  /** "/containerd.services.images.v1.Images/List" */
  readonly method: string;
  readonly metadata: grpc.Metadata;
  /** Fired when the client cancels or goes away. */
  readonly signal: AbortSignal;
  /**
   * The namespace the call runs in: the `containerd-namespace` metadata ("default" when absent),
   * validated as containerd does (`namespace is required: failed precondition` for an empty
   * one, `namespace validation: identifier "x" must match ...: invalid argument`).
   */
  namespace(): string;
  /** The `containerd-lease` metadata: the lease new resources are added to, if any. */
  lease(): string | undefined;
  readonly log: Logger;
}

function metaString(md: grpc.Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return v === undefined ? undefined : typeof v === "string" ? v : v.toString("utf8");
}

/** The namespace rules of CallContext.namespace(), for callers that hold raw metadata. */
export function namespaceFromMetadata(md: grpc.Metadata): string {
  const ns = metaString(md, NAMESPACE_KEY) ?? DEFAULT_NAMESPACE;
  if (ns === "") throw failedPrecondition("namespace is required");
  try {
    validateIdentifier(ns);
  } catch (e) {
    if (e instanceof ErrDef) throw new ErrDef(e.code, `namespace validation: ${e.message}`);
    throw e;
  }
  return ns;
}

function makeContext(method: string, call: grpc.ServerUnaryCall<any, any> | grpc.ServerReadableStream<any, any> | grpc.ServerWritableStream<any, any> | grpc.ServerDuplexStream<any, any>, log: Logger): CallContext {
  const ac = new AbortController();
  (call as NodeJS.EventEmitter).on("cancelled", () => ac.abort());
  return {
    method,
    metadata: call.metadata,
    signal: ac.signal,
    namespace: () => namespaceFromMetadata(call.metadata),
    lease: () => metaString(call.metadata, LEASE_KEY) || undefined,
    log,
  };
}

/** The status a thrown value answers with. */
export function toStatus(e: unknown): Partial<grpc.StatusObject> {
  if (e instanceof ErrDef) return { code: e.code as grpc.status, details: e.message };
  // A snapshotter's error keeps its class's code, as errdefs.ToGRPC gives containerd's.
  if (typeof (e as any)?.grpcCode === "number") return { code: (e as any).grpcCode, details: messageOf(e) };
  return { code: grpc.status.UNKNOWN, details: messageOf(e) };
}

// ---------------------------------------------------------------------------------------------
// Handlers

export type Send<Res> = (res: Res) => Promise<void>;

export type Handler =
  | { kind: "unary"; fn: (req: any, ctx: CallContext) => unknown }
  | { kind: "serverStream"; fn: (req: any, ctx: CallContext, send: Send<any>) => Promise<void> }
  | { kind: "clientStream"; fn: (reqs: AsyncIterable<any>, ctx: CallContext) => Promise<unknown> }
  | { kind: "bidi"; fn: (reqs: AsyncIterable<any>, ctx: CallContext, send: Send<any>) => Promise<void> };

export const unary = <Req, Res>(fn: (req: Req, ctx: CallContext) => Res | Promise<Res>): Handler => ({ kind: "unary", fn });
export const serverStream = <Req, Res>(fn: (req: Req, ctx: CallContext, send: Send<Res>) => Promise<void>): Handler => ({ kind: "serverStream", fn });
export const clientStream = <Req, Res>(fn: (reqs: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>): Handler => ({ kind: "clientStream", fn });
export const bidiStream = <Req, Res>(fn: (reqs: AsyncIterable<Req>, ctx: CallContext, send: Send<Res>) => Promise<void>): Handler => ({ kind: "bidi", fn });

export interface ServiceImpl {
  /** Full proto name, e.g. "containerd.services.images.v1.Images". */
  name: string;
  handlers: Record<string, Handler>;
}

export function defineService(name: string, handlers: Record<string, Handler>): ServiceImpl {
  return { name, handlers };
}

function kindOf(m: MethodInfo): Handler["kind"] {
  return m.requestStream ? (m.responseStream ? "bidi" : "clientStream") : m.responseStream ? "serverStream" : "unary";
}

function unimplemented(m: MethodInfo): grpc.ServiceError {
  const e = new Error(`${m.path} is not implemented by bunker's containerd yet`) as grpc.ServiceError;
  e.code = grpc.status.UNIMPLEMENTED;
  e.details = e.message;
  return e;
}

/** Await the stream's drain when its buffer is full; fail when the client went away. */
function sender(call: grpc.ServerWritableStream<any, any> | grpc.ServerDuplexStream<any, any>, ctx: CallContext): Send<any> {
  return async (res) => {
    if (ctx.signal.aborted || call.destroyed) throw new ErrDef(Code.CANCELLED, "context canceled");
    if (!call.write(res)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          call.off("drain", done);
          ctx.signal.removeEventListener("abort", done);
          resolve();
        };
        call.once("drain", done);
        ctx.signal.addEventListener("abort", done);
      });
    }
  };
}

/**
 * The grpc-js implementation of a service: each handler wrapped with the context, the error
 * mapping and a debug log line for failed calls. Throws when a handler's kind does not match
 * the proto (a unary handler for a streaming method...) or names a method the proto lacks.
 */
export function grpcImplementation(svc: ServiceImpl, log: Logger): grpc.UntypedServiceImplementation {
  const methods = serviceMethods(svc.name);
  for (const name of Object.keys(svc.handlers)) {
    if (!methods.some((m) => m.name === name)) throw new Error(`${svc.name}: handler for unknown method ${name}`);
  }
  const impl: grpc.UntypedServiceImplementation = {};
  for (const m of methods) {
    const h = svc.handlers[m.name];
    const kind = kindOf(m);
    if (h && h.kind !== kind) throw new Error(`${m.path}: handler is ${h.kind}, the method is ${kind}`);
    const failed = (e: unknown) => {
      const st = toStatus(e);
      log.debug("rpc failed", { method: m.path, code: st.code, error: st.details });
      return st;
    };
    switch (kind) {
      case "unary":
        impl[m.name] = (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
          if (!h) return cb(unimplemented(m));
          const ctx = makeContext(m.path, call, log);
          Promise.resolve()
            .then(() => (h as any).fn(call.request, ctx))
            .then((res) => cb(null, res ?? {}), (e) => cb(failed(e)));
        };
        break;
      case "serverStream":
        impl[m.name] = (call: grpc.ServerWritableStream<any, any>) => {
          if (!h) return call.emit("error", unimplemented(m));
          const ctx = makeContext(m.path, call, log);
          (h as any)
            .fn(call.request, ctx, sender(call, ctx))
            .then(() => call.end(), (e: unknown) => call.emit("error", failed(e)));
        };
        break;
      case "clientStream":
        impl[m.name] = (call: grpc.ServerReadableStream<any, any>, cb: grpc.sendUnaryData<any>) => {
          if (!h) return cb(unimplemented(m));
          const ctx = makeContext(m.path, call, log);
          Promise.resolve()
            .then(() => (h as any).fn(call as AsyncIterable<any>, ctx))
            .then((res) => cb(null, res ?? {}), (e) => cb(failed(e)));
        };
        break;
      case "bidi":
        impl[m.name] = (call: grpc.ServerDuplexStream<any, any>) => {
          if (!h) return call.emit("error", unimplemented(m));
          const ctx = makeContext(m.path, call, log);
          (h as any)
            .fn(call as AsyncIterable<any>, ctx, sender(call, ctx))
            .then(() => call.end(), (e: unknown) => call.emit("error", failed(e)));
        };
        break;
    }
  }
  return impl;
}
