// Distribution (OCI distribution-spec / Docker registry HTTP API v2) client over fetch.
//
//  - resolve: HEAD /v2/<name>/manifests/<tag|digest> with Accept for the four manifest media
//    types; Docker-Content-Digest, Content-Type and Content-Length give the descriptor (GET and
//    hash the body when HEAD does not tell).
//  - fetch: manifests and blobs by digest, streamed through a sha256 (or sha384/512) check: a
//    body whose digest or size differs from the descriptor ends in an error instead of a clean end
//    of stream (the last chunk is held back until the check passes), so a consumer never
//    finishes on corrupted data.
//  - blob redirects (307 to storage) are followed by hand: the Authorization header is only sent
//    to the registry's own origin, never to another host or port.
//  - auth: anonymous, then whatever the 401 asks for (Bearer token auth / Basic), retried once;
//    tokens cached per scope set (see auth.ts).
//  - push: HEAD blob existence, cross-repository mount (POST ?mount=&from=), monolithic (POST
//    then PUT ?digest=) and chunked (POST, PATCH with Content-Range..., PUT ?digest=) uploads,
//    manifest PUT with its media type.
//  - hosts: containerd's hosts.toml (registry-hosts.ts): mirrors by capability, then the server.
//  - errors: the registry's {"errors":[{code,message,detail}]} in distribution's format
//    ("manifest unknown: manifest unknown"), wrapped with docker's pull messages where docker has
//    them ("manifest for busybox:nope not found: ...", "pull access denied for x, ...").

import { readFileSync } from "node:fs";
import { Authorizer, dockerConfigCredentials, repositoryScope, type CredentialsFunction } from "./auth";
import {
  MANIFEST_ACCEPT,
  MediaType,
  configPlatform,
  isIndexMediaType,
  isManifestMediaType,
  isSchema1MediaType,
  matchingManifests,
  parseImageConfig,
  parseManifest,
  type Descriptor,
  type ImageConfig,
  type ParsedManifest,
} from "./manifest";
import { platformMatcher, type Platform, type PlatformMatcher } from "./platform";
import { isLoopbackHost, normalizeReference, parseDigest, Reference, type DigestAlgorithm } from "./reference";
import { configureHosts, type Capability, type RegistryHost } from "./registry-hosts";

export type { RegistryHost } from "./registry-hosts";

/** Docker's limit on a manifest body. */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
const MAX_REDIRECTS = 10;

// ---------------------------------------------------------------------------------------------
// Errors

export interface RegistryErrorDetail {
  code: string;
  message: string;
  detail?: unknown;
}

/** distribution's errcode.Error text: "manifest unknown: manifest unknown". */
export function formatRegistryErrors(errors: RegistryErrorDetail[]): string {
  const one = (e: RegistryErrorDetail) => {
    const code = (e.code || "unknown").toLowerCase().replace(/_/g, " ");
    return e.message ? `${code}: ${e.message}` : code;
  };
  if (errors.length === 1) return one(errors[0]!);
  return "errors:\n" + errors.map((e) => one(e) + "\n").join("");
}

/** An HTTP-level failure from a registry, with the registry's error JSON when it sent one. */
export class RegistryError extends Error {
  override name = "RegistryError";
  constructor(
    message: string,
    readonly status: number,
    readonly errors: RegistryErrorDetail[] = [],
    readonly url?: string,
  ) {
    super(message);
  }
  get code(): string | undefined {
    return this.errors[0]?.code;
  }
}

/** The reference or blob does not exist (404, MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN). */
export class NotFoundError extends RegistryError {
  override name = "NotFoundError";
}

/** 401/403 (UNAUTHORIZED, DENIED). */
export class UnauthorizedError extends RegistryError {
  override name = "UnauthorizedError";
}

/** Content whose digest or size is not the descriptor's. */
export class DigestMismatchError extends Error {
  override name = "DigestMismatchError";
}

/** The registry could not be reached (connection refused, TLS failure...). */
export class RegistryConnectionError extends Error {
  override name = "RegistryConnectionError";
}

async function errorFromResponse(res: Response, method: string, url: string): Promise<RegistryError> {
  let errors: RegistryErrorDetail[] = [];
  let text = "";
  if (method !== "HEAD") {
    try {
      text = await res.text();
      const doc = JSON.parse(text);
      if (doc && Array.isArray(doc.errors)) {
        errors = doc.errors.map((e: Record<string, unknown>) => ({
          code: String(e.code ?? "UNKNOWN"),
          message: String(e.message ?? ""),
          ...(e.detail !== undefined ? { detail: e.detail } : {}),
        }));
      }
    } catch {
      // not JSON
    }
  } else {
    await res.body?.cancel().catch(() => {});
  }
  const msg = errors.length
    ? formatRegistryErrors(errors)
    : `unexpected status from ${method} request to ${url}: ${res.status} ${res.statusText}`;
  const Cls = res.status === 404 ? NotFoundError : res.status === 401 || res.status === 403 ? UnauthorizedError : RegistryError;
  return new Cls(msg, res.status, errors, url);
}

// ---------------------------------------------------------------------------------------------
// Digest verification

const DIGEST_ALGORITHMS: Record<DigestAlgorithm, "sha256" | "sha384" | "sha512"> = {
  sha256: "sha256",
  sha384: "sha384",
  sha512: "sha512",
};

/** A hasher for the digest's algorithm, and its expected hex. */
function hasherFor(digest: string): { hasher: Bun.CryptoHasher; algorithm: DigestAlgorithm; encoded: string } {
  const { algorithm, encoded } = parseDigest(digest);
  return { hasher: new Bun.CryptoHasher(DIGEST_ALGORITHMS[algorithm]), algorithm, encoded };
}

/** The digest of some bytes with the algorithm of `like` (sha256 by default). */
export function digestOf(data: Uint8Array | string, like = "sha256:"): string {
  const alg = (like.split(":")[0] || "sha256") as DigestAlgorithm;
  return `${alg}:${new Bun.CryptoHasher(DIGEST_ALGORITHMS[alg] ?? "sha256").update(data).digest("hex")}`;
}

/**
 * Passes a stream through, checking its digest (and size when given). Bytes flow as they come
 * except the last chunk, which is released only once the whole content verified; on a mismatch
 * the stream errors with DigestMismatchError (and a size overflow errors as soon as it happens).
 */
export function verifyingStream(source: ReadableStream<Uint8Array>, digest: string, size?: number): ReadableStream<Uint8Array> {
  const { hasher, algorithm, encoded } = hasherFor(digest);
  const reader = source.getReader();
  let pending: Uint8Array | undefined;
  let total = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        let r: Awaited<ReturnType<typeof reader.read>>;
        try {
          r = await reader.read();
        } catch (e) {
          controller.error(e);
          return;
        }
        if (r.done) {
          const got = hasher.digest("hex");
          if (size !== undefined && total !== size) {
            controller.error(new DigestMismatchError(`content size mismatch for ${digest}: expected ${size} bytes, got ${total}`));
            return;
          }
          if (got !== encoded) {
            controller.error(new DigestMismatchError(`digest mismatch: expected ${digest}, got ${algorithm}:${got}`));
            return;
          }
          if (pending) controller.enqueue(pending);
          controller.close();
          return;
        }
        const chunk = r.value;
        if (!chunk || chunk.byteLength === 0) continue;
        total += chunk.byteLength;
        if (size !== undefined && total > size) {
          reader.cancel().catch(() => {});
          controller.error(new DigestMismatchError(`content size mismatch for ${digest}: more than the expected ${size} bytes`));
          return;
        }
        hasher.update(chunk);
        const out = pending;
        pending = chunk;
        if (out) {
          controller.enqueue(out);
          return;
        }
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Passes a stream through, erroring (DigestMismatchError) unless it is exactly `size` bytes. */
export function lengthCheckingStream(source: ReadableStream<Uint8Array>, digest: string, size: number): ReadableStream<Uint8Array> {
  let total = 0;
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        total += chunk.byteLength;
        if (total > size) throw new DigestMismatchError(`content size mismatch for ${digest}: more than the expected ${size} bytes`);
        controller.enqueue(chunk);
      },
      flush() {
        if (total !== size) throw new DigestMismatchError(`content size mismatch for ${digest}: expected ${size} bytes, got ${total}`);
      },
    }),
  );
}

/** Reads a whole stream into memory, refusing more than `limit` bytes. */
export async function readAll(stream: ReadableStream<Uint8Array>, limit = Infinity): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new RegistryError(`content larger than ${limit} bytes`, 0);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The client

export interface RegistryClientOptions {
  /** containerd-style hosts directories (`<dir>/<host>/hosts.toml`). */
  hostsDirs?: string[];
  /** Plain HTTP for registries without a hosts.toml (ctr --plain-http). */
  plainHttp?: boolean;
  /** Skip TLS verification for every registry (ctr --skip-verify / docker insecure registries). */
  insecure?: boolean;
  /** Where credentials come from; default: docker's config.json (`dockerConfigDir`). */
  credentials?: CredentialsFunction;
  /** The directory of config.json for the default credentials; false: no credentials at all. */
  dockerConfigDir?: string | false;
  /** Environment for credential helpers (PATH) and $DOCKER_CONFIG/$HOME. */
  env?: Record<string, string | undefined>;
  userAgent?: string;
  /** Extra headers for every registry request. */
  headers?: Record<string, string>;
  /** Replaces fetch (tests, proxies). */
  fetch?: typeof fetch;
  /** Largest manifest body accepted. */
  maxManifestSize?: number;
}

/** A resolved reference: the normalised name and the descriptor of what it points to. */
export interface Resolved {
  ref: Reference;
  descriptor: Descriptor;
}

export interface PushBlobOptions {
  /** Upload in chunks of this many bytes (PATCH with Content-Range) instead of one PUT. */
  chunkSize?: number;
  /** Try a cross-repository mount from this repository (a path, or a reference on the same registry). */
  mountFrom?: string | Reference;
  /** Skip the existence check (HEAD). */
  noExistCheck?: boolean;
}

export interface PushBlobResult {
  /** exists: already there; mounted: cross-repository mount; uploaded: sent. */
  status: "exists" | "mounted" | "uploaded";
  digest: string;
}

export type BlobSource = Uint8Array | Blob | ReadableStream<Uint8Array>;

interface RequestSpec {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Uint8Array | Blob | ReadableStream<Uint8Array> | null;
  scopes: string[];
  /** Follow 3xx (blob fetches): Authorization is dropped for other origins. */
  followRedirects?: boolean;
}

/** What `pull` needs to know about an image for one platform. */
export interface ImageForPlatform {
  ref: Reference;
  /** The top-level descriptor (index or manifest) the reference resolved to. */
  target: Descriptor;
  /** The index, when the reference points to one. */
  index?: ParsedManifest & { kind: "index" };
  /** The platform manifest's descriptor and content. */
  manifestDescriptor: Descriptor;
  manifest: ParsedManifest & { kind: "manifest" };
  config: ImageConfig;
  configBytes: Uint8Array;
  platform: Platform;
}

function toRef(ref: string | Reference): Reference {
  if (typeof ref !== "string") return ref.domain ? ref : normalizeReference(ref.toString());
  return normalizeReference(ref);
}

function appendQuery(url: URL, q?: Record<string, string>): URL {
  if (q) for (const [k, v] of Object.entries(q)) if (!url.searchParams.has(k)) url.searchParams.set(k, v);
  return url;
}

function isReplayable(body: RequestSpec["body"]): boolean {
  return body === undefined || body === null || body instanceof Uint8Array || body instanceof Blob;
}

function bodyLength(body: BlobSource): number | undefined {
  if (body instanceof Uint8Array) return body.byteLength;
  if (body instanceof Blob) return body.size;
  return undefined;
}

export class RegistryClient {
  readonly auth: Authorizer;
  private fetchImpl: typeof fetch;
  /** Hosts (host:port) that answered TLS with plain HTTP: talked to over http from then on. */
  private httpHosts = new Set<string>();
  private tlsCache = new Map<string, Record<string, unknown>>();

  constructor(readonly opts: RegistryClientOptions = {}) {
    this.fetchImpl = opts.fetch ?? fetch;
    const env = opts.env ?? process.env;
    let credentials = opts.credentials;
    if (!credentials && opts.dockerConfigDir !== false) {
      credentials = dockerConfigCredentials(opts.dockerConfigDir ?? undefined, env);
    }
    this.auth = new Authorizer({
      credentials,
      fetch: this.fetchImpl,
      userAgent: this.userAgent,
      // Token realms of loopback registries are as unverified as the registries themselves.
      tlsFor: (u) => (this.opts.insecure || isLoopbackHost(u.host) ? { rejectUnauthorized: false } : undefined),
    });
  }

  private get userAgent(): string {
    return this.opts.userAgent ?? "bunker/0.1.0";
  }

  /** The hosts serving a reference's domain that have a capability, in the order to try. */
  hosts(ref: Reference, cap: Capability): RegistryHost[] {
    const hosts = configureHosts(ref.domain, {
      configDirs: this.opts.hostsDirs,
      plainHttp: this.opts.plainHttp,
      skipVerify: this.opts.insecure,
    }).filter((h) => h.capabilities.includes(cap));
    if (hosts.length === 0) throw new RegistryError(`no host for ${ref.domain} has the ${cap} capability`, 0);
    return hosts;
  }

  private origin(h: RegistryHost): string {
    const scheme = h.scheme === "https" && this.httpHosts.has(h.host) ? "http" : h.scheme;
    return `${scheme}://${h.host}`;
  }

  /** The URL of an API path ("/<name>/manifests/<ref>") on a host. */
  url(h: RegistryHost, apiPath: string): URL {
    return appendQuery(new URL(`${this.origin(h)}${h.path}${apiPath}`), h.query);
  }

  private tlsOptions(h: RegistryHost): Record<string, unknown> | undefined {
    const key = `${h.host}|${h.skipVerify}|${h.caFiles?.join(",")}|${JSON.stringify(h.clientCerts)}`;
    let t = this.tlsCache.get(key);
    if (t) return t;
    t = {};
    if (h.skipVerify || this.opts.insecure) t.rejectUnauthorized = false;
    if (h.caFiles?.length) t.ca = h.caFiles.map((f) => readFileSync(f, "utf8"));
    const cc = h.clientCerts?.[0];
    if (cc) {
      t.cert = readFileSync(cc[0], "utf8");
      t.key = readFileSync(cc[1] ?? cc[0], "utf8");
    }
    this.tlsCache.set(key, t);
    return t;
  }

  /**
   * One API request with auth (challenge → credentials → retry once), HTTP fallback for
   * insecure hosts, and manual redirects that never carry Authorization to another origin.
   */
  async request(h: RegistryHost, spec: RequestSpec): Promise<Response> {
    let url = new URL(spec.url);
    if (url.protocol === "https:" && url.host === h.host && this.httpHosts.has(h.host)) url.protocol = "http:";
    let method = spec.method;
    let body = spec.body;
    let retriedAuth = false;
    let redirects = 0;
    let fellBack = false;
    for (;;) {
      const registryOrigin = this.origin(h);
      const sameOrigin = url.origin === registryOrigin;
      const headers = new Headers();
      headers.set("user-agent", this.userAgent);
      if (sameOrigin) {
        for (const [k, vs] of Object.entries(h.header)) for (const v of vs) headers.append(k, v);
        for (const [k, v] of Object.entries(this.opts.headers ?? {})) headers.set(k, v);
      }
      for (const [k, v] of Object.entries(spec.headers ?? {})) headers.set(k, v);
      let sent: string | undefined;
      if (sameOrigin) {
        sent = await this.auth.authorization(h.host, spec.scopes);
        if (sent) headers.set("authorization", sent);
      }
      const init: RequestInit & { tls?: Record<string, unknown> } = { method, headers, redirect: "manual" };
      if (body !== undefined && body !== null) {
        init.body = body;
        if (body instanceof ReadableStream) (init as Record<string, unknown>).duplex = "half";
      }
      if (url.protocol === "https:") {
        const tls = sameOrigin ? this.tlsOptions(h) : this.opts.insecure ? { rejectUnauthorized: false } : undefined;
        if (tls && Object.keys(tls).length) init.tls = tls;
      }
      let res: Response;
      try {
        res = await this.fetchImpl(url, init);
      } catch (e) {
        if (sameOrigin && h.httpFallback && url.protocol === "https:" && !fellBack && isReplayable(body)) {
          // docker's insecure registries: TLS failed, speak plain HTTP to this host from now on.
          fellBack = true;
          this.httpHosts.add(h.host);
          url = new URL(url);
          url.protocol = "http:";
          continue;
        }
        throw new RegistryConnectionError(`${method} ${url.href}: ${(e as Error).message}`);
      }
      if (res.status === 401 && sameOrigin && !retriedAuth && isReplayable(body)) {
        const retry = await this.auth.handleUnauthorized(h.host, res.headers.get("www-authenticate"), spec.scopes, sent);
        if (retry) {
          retriedAuth = true;
          await res.body?.cancel().catch(() => {});
          continue;
        }
      }
      if (spec.followRedirects && [301, 302, 303, 307, 308].includes(res.status)) {
        const loc = res.headers.get("location");
        if (!loc) return res;
        if (++redirects > MAX_REDIRECTS) throw new RegistryError(`${method} ${spec.url.href}: stopped after ${MAX_REDIRECTS} redirects`, res.status);
        await res.body?.cancel().catch(() => {});
        url = new URL(loc, url);
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        continue;
      }
      return res;
    }
  }

  /** Tries each host in turn: the next one on connection errors and 404s. */
  private async withHosts<T>(ref: Reference, cap: Capability, fn: (h: RegistryHost) => Promise<T>): Promise<T> {
    let firstErr: unknown;
    let notFound: unknown;
    for (const h of this.hosts(ref, cap)) {
      try {
        return await fn(h);
      } catch (e) {
        if (e instanceof NotFoundError) notFound ??= e;
        else if (e instanceof RegistryConnectionError) firstErr ??= e;
        else throw e;
      }
    }
    throw notFound ?? firstErr;
  }

  private pullScopes(ref: Reference): string[] {
    return [repositoryScope(ref.path)];
  }

  // -------------------------------------------------------------------------------------------
  // Resolve / fetch

  /** Resolves a reference (tag or digest) to the descriptor of its manifest or index. */
  async resolve(refIn: string | Reference): Promise<Resolved> {
    const ref = toRef(refIn);
    try {
      return await this.withHosts(ref, "resolve", (h) => this.resolveOn(h, ref));
    } catch (e) {
      throw this.pullError(ref, e);
    }
  }

  /** docker's wording for pull failures on a reference. */
  private pullError(ref: Reference, e: unknown): unknown {
    if (e instanceof NotFoundError) {
      const msg = `manifest for ${ref.familiarString} not found: ${e.errors.length ? e.message : "manifest unknown: manifest unknown"}`;
      return new NotFoundError(msg, e.status, e.errors, e.url);
    }
    if (e instanceof UnauthorizedError) {
      const detail = e.errors.length ? e.message : "unauthorized: authentication required";
      const msg = `pull access denied for ${ref.familiarName}, repository does not exist or may require 'docker login': ${detail}`;
      return new UnauthorizedError(msg, e.status, e.errors, e.url);
    }
    return e;
  }

  private async resolveOn(h: RegistryHost, ref: Reference): Promise<Resolved> {
    const url = this.url(h, `/${ref.path}/manifests/${ref.object}`);
    const accept = MANIFEST_ACCEPT.join(", ");
    const scopes = this.pullScopes(ref);
    const head = await this.request(h, { method: "HEAD", url, headers: { accept }, scopes });
    await head.body?.cancel().catch(() => {});
    if (head.ok) {
      const dcd = head.headers.get("docker-content-digest") ?? undefined;
      const mediaType = head.headers.get("content-type")?.split(";")[0]?.trim();
      const len = head.headers.get("content-length");
      const size = len !== null ? Number(len) : NaN;
      const digest = ref.digest ?? dcd;
      if (ref.digest && dcd && dcd !== ref.digest) {
        throw new DigestMismatchError(`registry ${h.host} answered ${dcd} for ${ref.toString()}`);
      }
      if (digest && mediaType && (isManifestMediaType(mediaType) || isIndexMediaType(mediaType)) && Number.isSafeInteger(size) && size > 0) {
        return { ref, descriptor: { mediaType, digest, size } };
      }
      if (mediaType && isSchema1MediaType(mediaType)) {
        throw new RegistryError(`${ref.familiarString}: Docker Image manifest version 2, schema 1 is not supported`, 0);
      }
    }
    // GET: gives the error body, or the content to hash when HEAD does not say enough.
    const res = await this.request(h, { method: "GET", url, headers: { accept }, scopes });
    if (!res.ok) throw await errorFromResponse(res, "GET", url.href);
    const bytes = await readAll(res.body ?? new Blob([]).stream(), this.opts.maxManifestSize ?? MAX_MANIFEST_SIZE);
    const served = res.headers.get("content-type") ?? undefined;
    const parsed = parseManifest(bytes, served && served !== "application/octet-stream" ? served : undefined);
    const computed = digestOf(bytes, ref.digest ?? "sha256:");
    if (ref.digest && computed !== ref.digest) {
      throw new DigestMismatchError(`digest mismatch: expected ${ref.digest}, got ${computed}`);
    }
    const dcd = res.headers.get("docker-content-digest");
    if (!ref.digest && dcd && dcd.startsWith("sha256:") && dcd !== computed) {
      throw new DigestMismatchError(`registry ${h.host} sent Docker-Content-Digest ${dcd} for content whose digest is ${computed}`);
    }
    return { ref, descriptor: { mediaType: parsed.mediaType, digest: ref.digest ?? computed, size: bytes.byteLength } };
  }

  /** Fetches and verifies a manifest or index by descriptor (or resolves the reference first). */
  async fetchManifest(refIn: string | Reference, desc?: Descriptor): Promise<ParsedManifest & { descriptor: Descriptor }> {
    const ref = toRef(refIn);
    const d = desc ?? (await this.resolve(ref)).descriptor;
    const limit = this.opts.maxManifestSize ?? MAX_MANIFEST_SIZE;
    if (d.size > limit) throw new RegistryError(`manifest ${d.digest} is ${d.size} bytes, more than the ${limit} allowed`, 0);
    try {
      return await this.withHosts(ref, "pull", async (h) => {
        const url = this.url(h, `/${ref.path}/manifests/${d.digest}`);
        const res = await this.request(h, {
          method: "GET",
          url,
          headers: { accept: isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType) ? d.mediaType : MANIFEST_ACCEPT.join(", ") },
          scopes: this.pullScopes(ref),
        });
        if (!res.ok) throw await errorFromResponse(res, "GET", url.href);
        const bytes = await readAll(verifyingStream(res.body ?? new Blob([]).stream(), d.digest, d.size));
        return { ...parseManifest(bytes, d.mediaType), descriptor: d };
      });
    } catch (e) {
      throw this.pullError(ref, e);
    }
  }

  /**
   * A blob's content as a stream, checked against the descriptor's digest and size while it
   * flows: a corrupted body ends with DigestMismatchError (discard what was read). `verify:
   * false`: unchecked (see fetchBlobFrom).
   */
  async fetchBlob(refIn: string | Reference, desc: Pick<Descriptor, "digest"> & { size?: number }, opts: { verify?: boolean } = {}): Promise<ReadableStream<Uint8Array>> {
    const ref = toRef(refIn);
    parseDigest(desc.digest);
    return this.withHosts(ref, "pull", async (h) => {
      const url = this.url(h, `/${ref.path}/blobs/${desc.digest}`);
      const res = await this.request(h, { method: "GET", url, scopes: this.pullScopes(ref), followRedirects: true });
      if (!res.ok) throw await errorFromResponse(res, "GET", res.url || url.href);
      if (!res.body) throw new RegistryError(`GET ${url.href}: no body`, res.status);
      return opts.verify === false ? res.body : verifyingStream(res.body, desc.digest, desc.size);
    });
  }

  /**
   * A blob from `offset` on, as containerd's fetcher resumes one (`Range: bytes=<offset>-`). A
   * partial answer whose Content-Range starts at the offset gives the rest, checked for its size
   * only (the digest covers bytes the caller already has: whoever holds them verifies the whole).
   * A registry that ignores Range answers with everything: that comes verified, with `offset: 0`,
   * and the caller starts over. Offset 0 is fetchBlob.
   *
   * `verify: false`: the body as it comes, unchecked, for a caller that checks size and digest
   * itself (ctr writing into containerd's content store, whose commit verifies both).
   */
  async fetchBlobFrom(refIn: string | Reference, desc: Pick<Descriptor, "digest" | "size">, offset: number, opts: { verify?: boolean } = {}): Promise<{ body: ReadableStream<Uint8Array>; offset: number }> {
    const verify = opts.verify ?? true;
    if (offset <= 0 || offset >= desc.size) return { body: await this.fetchBlob(refIn, desc, { verify }), offset: 0 };
    const ref = toRef(refIn);
    parseDigest(desc.digest);
    return this.withHosts(ref, "pull", async (h) => {
      const url = this.url(h, `/${ref.path}/blobs/${desc.digest}`);
      const res = await this.request(h, { method: "GET", url, headers: { range: `bytes=${offset}-` }, scopes: this.pullScopes(ref), followRedirects: true });
      if (res.status === 416) {
        await res.body?.cancel().catch(() => {});
        return { body: await this.fetchBlob(ref, desc), offset: 0 };
      }
      if (!res.ok) throw await errorFromResponse(res, "GET", res.url || url.href);
      if (!res.body) throw new RegistryError(`GET ${url.href}: no body`, res.status);
      const cr = res.headers.get("content-range");
      if (res.status === 206 || cr) {
        if (!cr?.startsWith(`bytes ${offset}-`)) {
          await res.body.cancel().catch(() => {});
          throw new RegistryError(`unhandled content range in response: ${cr ?? "(none)"}`, res.status);
        }
        return { body: verify ? lengthCheckingStream(res.body, desc.digest, desc.size - offset) : res.body, offset };
      }
      return { body: verify ? verifyingStream(res.body, desc.digest, desc.size) : res.body, offset: 0 };
    });
  }

  /** A whole blob in memory, verified. */
  async readBlob(ref: string | Reference, desc: Pick<Descriptor, "digest"> & { size?: number }): Promise<Uint8Array> {
    return readAll(await this.fetchBlob(ref, desc));
  }

  /**
   * Resolves a reference and walks it down to the image for a platform (default: the host's,
   * with what it can run, as containerd's platforms.Default()): index → best manifest → config.
   * A manifest without a platform is checked against its config's platform.
   */
  async resolveImage(refIn: string | Reference, platform?: string | Platform | PlatformMatcher): Promise<ImageForPlatform> {
    const ref = toRef(refIn);
    const matcher = platformMatcher(platform);
    const { descriptor: target } = await this.resolve(ref);
    let desc = target;
    let index: (ParsedManifest & { kind: "index" }) | undefined;
    for (let depth = 0; depth < 4; depth++) {
      const m = await this.fetchManifest(ref, desc);
      if (m.kind === "index") {
        index ??= m;
        const choice = matchingManifests(m.index, matcher)[0];
        if (!choice) {
          throw new NotFoundError(`no matching manifest for ${matcher.description} in the manifest list entries`, 404);
        }
        desc = choice;
        continue;
      }
      const cfgDesc = m.manifest.config;
      const configBytes = await this.readBlob(ref, cfgDesc);
      if (cfgDesc.mediaType !== MediaType.DockerConfig && cfgDesc.mediaType !== MediaType.OCIConfig) {
        throw new RegistryError(`${ref.familiarString}: not a container image (config media type ${cfgDesc.mediaType})`, 0);
      }
      const config = parseImageConfig(configBytes);
      const p = configPlatform(config);
      if (!desc.platform && !matcher.match(p)) {
        throw new NotFoundError(
          `image with reference ${ref.familiarString} was found but does not match the specified platform: wanted ${matcher.description}, actual: ${[p.os, p.architecture, p.variant].filter(Boolean).join("/")}`,
          404,
        );
      }
      return { ref, target, index, manifestDescriptor: desc, manifest: m as ParsedManifest & { kind: "manifest" }, config, configBytes, platform: p };
    }
    throw new RegistryError(`${ref.familiarString}: indexes nested too deep`, 0);
  }

  /** The tags of a repository (GET /v2/<name>/tags/list, following Link pagination). */
  async listTags(refIn: string | Reference): Promise<string[]> {
    const ref = toRef(refIn);
    return this.withHosts(ref, "resolve", async (h) => {
      const tags: string[] = [];
      let url: URL | undefined = this.url(h, `/${ref.path}/tags/list`);
      for (let page = 0; url && page < 1000; page++) {
        const res: Response = await this.request(h, { method: "GET", url, headers: { accept: "application/json" }, scopes: this.pullScopes(ref) });
        if (!res.ok) throw await errorFromResponse(res, "GET", url.href);
        const doc = (await res.json()) as { tags?: string[] | null };
        tags.push(...(doc.tags ?? []));
        const link = res.headers.get("link");
        const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
        url = m ? appendQuery(new URL(m[1]!, url), h.query) : undefined;
      }
      return tags;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Push

  private pushScopes(ref: Reference, mountFrom?: Reference): string[] {
    const s = [repositoryScope(ref.path, true)];
    if (mountFrom) s.push(repositoryScope(mountFrom.path));
    return s;
  }

  /** HEAD /v2/<name>/blobs/<digest>: the blob's descriptor if the repository has it. */
  async blobExists(refIn: string | Reference, digest: string): Promise<Descriptor | undefined> {
    const ref = toRef(refIn);
    parseDigest(digest);
    const [h] = this.hosts(ref, "push");
    const url = this.url(h!, `/${ref.path}/blobs/${digest}`);
    const res = await this.request(h!, { method: "HEAD", url, scopes: this.pushScopes(ref) });
    await res.body?.cancel().catch(() => {});
    if (res.status === 404) return undefined;
    if (!res.ok) throw await errorFromResponse(res, "HEAD", url.href);
    const len = Number(res.headers.get("content-length") ?? "NaN");
    return {
      mediaType: res.headers.get("content-type") ?? "application/octet-stream",
      digest,
      size: Number.isSafeInteger(len) ? len : -1,
    };
  }

  /**
   * Uploads a blob unless the repository has it: HEAD, then a cross-repository mount when
   * `mountFrom` is given, then a monolithic (POST + PUT) or chunked (POST + PATCH... + PUT) upload.
   */
  async pushBlob(refIn: string | Reference, desc: Pick<Descriptor, "digest" | "size">, data: BlobSource, opts: PushBlobOptions = {}): Promise<PushBlobResult> {
    const ref = toRef(refIn);
    parseDigest(desc.digest);
    const mountFrom = opts.mountFrom === undefined ? undefined : typeof opts.mountFrom === "string" ? mountRef(ref, opts.mountFrom) : opts.mountFrom;
    if (mountFrom && mountFrom.domain !== ref.domain) throw new RegistryError(`cannot mount from ${mountFrom.name} into ${ref.name}: not the same registry`, 0);
    const len = bodyLength(data);
    if (len !== undefined && len !== desc.size) throw new DigestMismatchError(`blob ${desc.digest}: ${len} bytes given, the descriptor says ${desc.size}`);
    if (!opts.noExistCheck && (await this.blobExists(ref, desc.digest))) return { status: "exists", digest: desc.digest };
    const [h] = this.hosts(ref, "push");
    const host = h!;
    const scopes = this.pushScopes(ref, mountFrom);

    // Start an upload (or mount).
    const start = this.url(host, `/${ref.path}/blobs/uploads/`);
    if (mountFrom) {
      start.searchParams.set("mount", desc.digest);
      start.searchParams.set("from", mountFrom.path);
    }
    const post = await this.request(host, { method: "POST", url: start, headers: { "content-length": "0" }, body: new Uint8Array(0), scopes });
    if (post.status === 201 && mountFrom) {
      await post.body?.cancel().catch(() => {});
      return { status: "mounted", digest: desc.digest };
    }
    if (post.status !== 202) throw await errorFromResponse(post, "POST", start.href);
    await post.body?.cancel().catch(() => {});
    let location = uploadLocation(post, start, host);

    const chunkSize = opts.chunkSize;
    if (chunkSize && chunkSize > 0) {
      let offset = 0;
      for await (const chunk of chunksOf(data, chunkSize)) {
        const res = await this.request(host, {
          method: "PATCH",
          url: location,
          headers: {
            "content-type": "application/octet-stream",
            "content-range": `${offset}-${offset + chunk.byteLength - 1}`,
            "content-length": String(chunk.byteLength),
          },
          body: chunk,
          scopes,
        });
        if (res.status !== 202) throw await errorFromResponse(res, "PATCH", location.href);
        await res.body?.cancel().catch(() => {});
        offset += chunk.byteLength;
        const range = res.headers.get("range");
        if (range) {
          const m = /^(?:bytes=)?0-(\d+)$/.exec(range);
          if (m && Number(m[1]) !== offset - 1) {
            throw new RegistryError(`upload of ${desc.digest}: registry has bytes ${range}, we sent up to ${offset - 1}`, res.status);
          }
        }
        location = uploadLocation(res, location, host);
      }
      if (offset !== desc.size) throw new DigestMismatchError(`blob ${desc.digest}: ${offset} bytes given, the descriptor says ${desc.size}`);
      location.searchParams.set("digest", desc.digest);
      const put = await this.request(host, { method: "PUT", url: location, headers: { "content-length": "0" }, body: new Uint8Array(0), scopes });
      return this.checkUploaded(put, location, desc.digest);
    }
    location.searchParams.set("digest", desc.digest);
    const put = await this.request(host, {
      method: "PUT",
      url: location,
      headers: { "content-type": "application/octet-stream", ...(len !== undefined ? { "content-length": String(len) } : {}) },
      body: data,
      scopes,
    });
    return this.checkUploaded(put, location, desc.digest);
  }

  private async checkUploaded(res: Response, url: URL, digest: string): Promise<PushBlobResult> {
    if (res.status !== 201 && res.status !== 204) throw await errorFromResponse(res, "PUT", url.href);
    await res.body?.cancel().catch(() => {});
    const dcd = res.headers.get("docker-content-digest");
    if (dcd && dcd !== digest) throw new DigestMismatchError(`registry stored ${dcd} for the upload of ${digest}`);
    return { status: "uploaded", digest };
  }

  /**
   * PUT /v2/<name>/manifests/<tag|digest> with the manifest's media type. The reference's tag is
   * used (its digest when it has only one); returns the descriptor of what was pushed.
   */
  async pushManifest(refIn: string | Reference, bytes: Uint8Array, mediaType: string, opts: { tag?: string } = {}): Promise<Descriptor> {
    const ref = toRef(refIn);
    const digest = digestOf(bytes);
    parseManifest(bytes, mediaType); // refuse to push what we could not pull back
    const object = opts.tag ?? ref.tag ?? digest;
    if (ref.digest && ref.digest !== digest && !opts.tag && !ref.tag) {
      throw new DigestMismatchError(`manifest digest ${digest} is not the reference's ${ref.digest}`);
    }
    const [h] = this.hosts(ref, "push");
    const url = this.url(h!, `/${ref.path}/manifests/${object}`);
    const res = await this.request(h!, {
      method: "PUT",
      url,
      headers: { "content-type": mediaType, "content-length": String(bytes.byteLength) },
      body: bytes,
      scopes: this.pushScopes(ref),
    });
    if (res.status !== 201 && res.status !== 200 && res.status !== 204) throw await errorFromResponse(res, "PUT", url.href);
    await res.body?.cancel().catch(() => {});
    const dcd = res.headers.get("docker-content-digest");
    if (dcd && dcd !== digest) throw new DigestMismatchError(`registry stored ${dcd} for a manifest whose digest is ${digest}`);
    return { mediaType, digest, size: bytes.byteLength };
  }

  /** DELETE /v2/<name>/manifests/<digest> (registries must enable deletes). */
  async deleteManifest(refIn: string | Reference, digest: string): Promise<void> {
    const ref = toRef(refIn);
    parseDigest(digest);
    const [h] = this.hosts(ref, "push");
    const url = this.url(h!, `/${ref.path}/manifests/${digest}`);
    const res = await this.request(h!, { method: "DELETE", url, scopes: [`repository:${ref.path}:delete`] });
    if (res.status !== 202 && res.status !== 200 && res.status !== 204) throw await errorFromResponse(res, "DELETE", url.href);
    await res.body?.cancel().catch(() => {});
  }

  /**
   * GET /v2/ with auth: checks credentials as `docker login` does (a Bearer challenge is
   * answered by a token request without scopes).
   */
  async ping(domain: string): Promise<void> {
    const ref = new Reference(domain, "x");
    const [h] = this.hosts(ref, "resolve");
    const url = this.url(h!, "/");
    const res = await this.request(h!, { method: "GET", url, scopes: [] });
    if (!res.ok) throw await errorFromResponse(res, "GET", url.href);
    await res.body?.cancel().catch(() => {});
  }
}

/** A mount source on the same registry as `ref`: a bare path, or a full reference. */
function mountRef(ref: Reference, from: string): Reference {
  if (from.includes("/") && /[.:]|^localhost\//.test(from.split("/")[0]!)) return normalizeReference(from);
  return new Reference(ref.domain, from);
}

/** An upload session's Location (absolute or relative), with the host's query parameters. */
function uploadLocation(res: Response, base: URL, h: RegistryHost): URL {
  const loc = res.headers.get("location");
  if (!loc) throw new RegistryError(`${base.href}: upload response without a Location`, res.status);
  return appendQuery(new URL(loc, base), h.query);
}

/** Splits a blob source into chunks of at most `size` bytes. */
async function* chunksOf(data: BlobSource, size: number): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    for (let off = 0; off < data.byteLength; off += size) yield data.subarray(off, Math.min(off + size, data.byteLength));
    return;
  }
  if (data instanceof Blob) {
    for (let off = 0; off < data.size; off += size) yield new Uint8Array(await data.slice(off, Math.min(off + size, data.size)).arrayBuffer());
    return;
  }
  let buf = new Uint8Array(0);
  const reader = data.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (value) {
      const merged = new Uint8Array(buf.byteLength + value.byteLength);
      merged.set(buf);
      merged.set(value, buf.byteLength);
      buf = merged;
      while (buf.byteLength >= size) {
        yield buf.slice(0, size);
        buf = buf.slice(size);
      }
    }
    if (done) break;
  }
  if (buf.byteLength) yield buf;
}
