// Registry authentication as docker and containerd do it:
//  - credentials: ~/.docker/config.json (or $DOCKER_CONFIG/config.json): `credHelpers.<host>`,
//    then `credsStore`, each run as the user's `docker-credential-<name> get` helper; else
//    `auths.<host>` (`auth` = base64 "user:pass", or username/password, identitytoken,
//    registrytoken). Docker Hub's key is "https://index.docker.io/v1/".
//  - challenges: `WWW-Authenticate: Bearer realm=...,service=...,scope=...` and `Basic realm=...`.
//  - token auth (distribution's token spec): GET realm?service=&scope=... with basic credentials
//    when there are some (docker's way), or POST grant_type=refresh_token with an identity token
//    (OAuth2, as docker/containerd do after `docker login` to a registry that issued one); the
//    token is `token` or `access_token`, cached per realm/service/scopes until `expires_in`.

import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { DOCKER_HUB_AUTH_KEY } from "./reference";

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (config.json `identitytoken`, or a helper's Username "<token>"). */
  identityToken?: string;
  /** A bearer token sent as is (config.json `registrytoken`). */
  registryToken?: string;
}

/** Looks credentials up for a registry host ("host:port", as in the URL). */
export type CredentialsFunction = (host: string) => Credentials | undefined | Promise<Credentials | undefined>;

export class AuthError extends Error {
  override name = "AuthError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// WWW-Authenticate

export interface Challenge {
  /** Lower-cased scheme: "bearer", "basic"... */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header (RFC 7235): one or more challenges, each a scheme followed by
 * comma-separated `key=value` / `key="quoted, value"` parameters.
 */
export function parseWWWAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipWs();
    if (header[i] === ",") {
      i++;
      continue;
    }
    const start = i;
    const t = token();
    if (!t) {
      i++; // junk: skip a character
      continue;
    }
    skipWs();
    if (header[i] === "=" && current) {
      // key=value of the current challenge
      i++;
      skipWs();
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++; // closing quote
      } else {
        const vs = i;
        while (i < n && header[i] !== "," && header[i] !== " " && header[i] !== "\t") i++;
        value = header.slice(vs, i);
      }
      current.params[t.toLowerCase()] = value;
    } else if (header[i] === "=" && !current) {
      i = start + t.length + 1; // a parameter without a scheme: ignore
    } else {
      current = { scheme: t.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Docker's config.json

export interface DockerAuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  email?: string;
  identitytoken?: string;
  registrytoken?: string;
  serveraddress?: string;
}

export interface DockerConfigFile {
  auths?: Record<string, DockerAuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

/** $DOCKER_CONFIG or ~/.docker: the directory holding config.json. */
export function dockerConfigDir(env: Record<string, string | undefined> = process.env): string {
  return env.DOCKER_CONFIG || join(env.HOME || homedir(), ".docker");
}

/** Reads config.json from a directory (or a file path ending in .json); {} when absent. */
export function loadDockerConfig(dirOrFile: string = dockerConfigDir()): DockerConfigFile {
  const file = dirOrFile.endsWith(".json") ? dirOrFile : join(dirOrFile, "config.json");
  if (!existsSync(file)) return {};
  try {
    const doc = JSON.parse(readFileSync(file, "utf8"));
    return typeof doc === "object" && doc !== null ? (doc as DockerConfigFile) : {};
  } catch (e) {
    throw new AuthError(`loading ${file}: ${(e as Error).message}`);
  }
}

/** docker's ConvertToHostname: "https://host:port/v1/" → "host:port". */
export function convertToHostname(url: string): string {
  let s = url;
  if (s.startsWith("http://")) s = s.slice(7);
  else if (s.startsWith("https://")) s = s.slice(8);
  const i = s.indexOf("/");
  return i === -1 ? s : s.slice(0, i);
}

const DOCKER_HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);

/** The key config.json keeps a registry's credentials under (Docker Hub's is the v1 URL). */
export function dockerConfigKey(host: string): string {
  return DOCKER_HUB_HOSTS.has(host) ? DOCKER_HUB_AUTH_KEY : host;
}

function decodeAuthEntry(e: DockerAuthEntry): Credentials | undefined {
  const c: Credentials = {};
  if (e.auth) {
    const decoded = Buffer.from(e.auth, "base64").toString("utf8");
    const i = decoded.indexOf(":");
    if (i === -1) throw new AuthError("invalid auth configuration file: auth is not base64(user:password)");
    c.username = decoded.slice(0, i);
    c.password = decoded.slice(i + 1).replace(/\0+$/, "");
  } else {
    if (e.username) c.username = e.username;
    if (e.password) c.password = e.password;
  }
  if (e.identitytoken) c.identityToken = e.identitytoken;
  if (e.registrytoken) c.registryToken = e.registrytoken;
  return c.username || c.password || c.identityToken || c.registryToken ? c : undefined;
}

/** The credentials stored in config.json's `auths` for a host (exact key, then by hostname). */
export function credentialsFromAuths(cfg: DockerConfigFile, host: string): Credentials | undefined {
  const auths = cfg.auths ?? {};
  const key = dockerConfigKey(host);
  const exact = auths[key];
  if (exact) return decodeAuthEntry(exact);
  for (const [k, v] of Object.entries(auths)) {
    if (dockerConfigKey(convertToHostname(k)) === key) return decodeAuthEntry(v);
  }
  return undefined;
}

/**
 * Runs the user's credential helper (`docker-credential-<name> get`, server URL on stdin, JSON
 * {ServerURL, Username, Secret} on stdout). "credentials not found" means none.
 */
export async function credentialHelperGet(
  helper: string,
  serverURL: string,
  env: Record<string, string | undefined> = process.env,
): Promise<Credentials | undefined> {
  const bin = `docker-credential-${helper}`;
  const path = Bun.which(bin, { PATH: env.PATH ?? "" });
  if (!path) throw new AuthError(`error getting credentials - err: exec: "${bin}": executable file not found in $PATH`);
  const proc = Bun.spawn([path, "get"], {
    stdin: new TextEncoder().encode(serverURL),
    stdout: "pipe",
    stderr: "pipe",
    env: env as Record<string, string>,
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) {
    const msg = (out.trim() || err.trim());
    if (/credentials not found/i.test(msg)) return undefined;
    throw new AuthError(`error getting credentials - err: exit status ${code}, out: \`${msg}\``);
  }
  let doc: { Username?: string; Secret?: string };
  try {
    doc = JSON.parse(out);
  } catch {
    throw new AuthError(`error getting credentials - ${bin} printed invalid JSON`);
  }
  if (!doc.Secret && !doc.Username) return undefined;
  if (doc.Username === "<token>") return { identityToken: doc.Secret ?? "" };
  return { username: doc.Username ?? "", password: doc.Secret ?? "" };
}

/**
 * docker's GetAuthConfig for a host: credHelpers[host], then credsStore, then auths. Returns a
 * CredentialsFunction reading `dir/config.json` (re-read at each call, as docker re-reads it).
 */
export function dockerConfigCredentials(
  dir: string = dockerConfigDir(),
  env: Record<string, string | undefined> = process.env,
): CredentialsFunction {
  return async (host: string) => {
    const cfg = loadDockerConfig(dir);
    const key = dockerConfigKey(host);
    const helper = cfg.credHelpers?.[key] ?? cfg.credHelpers?.[host] ?? cfg.credsStore;
    if (helper) {
      const c = await credentialHelperGet(helper, key, env);
      if (c) return c;
      // docker falls back to the file store only for credsStore entries without a helper match
      if (cfg.credHelpers?.[key] || cfg.credHelpers?.[host]) return undefined;
    }
    return credentialsFromAuths(cfg, host);
  };
}

export function basicAuthorization(c: Credentials): string {
  return "Basic " + Buffer.from(`${c.username ?? ""}:${c.password ?? ""}`).toString("base64");
}

// ---------------------------------------------------------------------------------------------
// Token auth

export interface TokenResponse {
  token?: string;
  access_token?: string;
  expires_in?: number;
  issued_at?: string;
  refresh_token?: string;
}

/** Repository scopes: "repository:<path>:pull" / ":pull,push". */
export function repositoryScope(path: string, push = false): string {
  return `repository:${path}:${push ? "pull,push" : "pull"}`;
}

/** Merges scopes ("repository:a:pull" + "repository:a:push" → "repository:a:pull,push"), sorted. */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  const others = new Set<string>();
  for (const s of scopes) {
    for (const one of s.split(" ")) {
      if (!one) continue;
      const i = one.lastIndexOf(":");
      const first = one.indexOf(":");
      if (first === -1 || i === first) {
        others.add(one);
        continue;
      }
      const resource = one.slice(0, i);
      const actions = byResource.get(resource) ?? new Set<string>();
      for (const a of one.slice(i + 1).split(",")) if (a) actions.add(a);
      byResource.set(resource, actions);
    }
  }
  const out = [...others];
  for (const [r, a] of byResource) out.push(`${r}:${[...a].sort().join(",")}`);
  return out.sort();
}

interface CachedToken {
  value: string;
  expiresAt: number;
}

interface HostAuthState {
  scheme: "bearer" | "basic";
  params: Record<string, string>;
}

export interface AuthorizerOptions {
  credentials?: CredentialsFunction;
  fetch?: typeof fetch;
  userAgent?: string;
  /** OAuth client id for refresh-token grants. */
  clientId?: string;
  /** TLS options for token requests to this URL (skip-verify registries' realms). */
  tlsFor?: (url: URL) => Record<string, unknown> | undefined;
}

/**
 * Per-client auth state: the challenge each host answered with, credentials, and tokens per
 * scope set. `authorization()` gives the header to send up front; `handleUnauthorized()` takes a
 * 401 and says whether a retry with new credentials is worth it.
 */
export class Authorizer {
  private hosts = new Map<string, HostAuthState>();
  private tokens = new Map<string, CachedToken>();
  private creds = new Map<string, Promise<Credentials | undefined>>();
  /** Token requests made (for tests and debugging). */
  tokenRequests = 0;

  constructor(private opts: AuthorizerOptions = {}) {}

  credentialsFor(host: string): Promise<Credentials | undefined> {
    let p = this.creds.get(host);
    if (!p) {
      p = Promise.resolve(this.opts.credentials ? this.opts.credentials(host) : undefined);
      this.creds.set(host, p);
      p.catch(() => this.creds.delete(host));
    }
    return p;
  }

  private tokenKey(host: string, st: HostAuthState, scopes: string[]): string {
    return JSON.stringify([host, st.params.realm ?? "", st.params.service ?? "", mergeScopes(scopes)]);
  }

  /** The Authorization header for a request to `host` needing `scopes`, if we know how to make one. */
  async authorization(host: string, scopes: string[]): Promise<string | undefined> {
    const st = this.hosts.get(host);
    if (!st) return undefined;
    const c = await this.credentialsFor(host);
    if (st.scheme === "basic") return c && (c.username || c.password) ? basicAuthorization(c) : undefined;
    if (c?.registryToken) return `Bearer ${c.registryToken}`;
    const key = this.tokenKey(host, st, scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.value}`;
    const token = await this.fetchToken(host, st, scopes, c);
    this.tokens.set(key, token);
    return `Bearer ${token.value}`;
  }

  /**
   * A 401 came back. Records the challenge; returns true when retrying is worth it (a new
   * challenge we can answer, or a token that may have expired), false when the request failed
   * for good (we sent what we have).
   */
  async handleUnauthorized(host: string, wwwAuthenticate: string | null, scopes: string[], sent?: string): Promise<boolean> {
    const challenges = parseWWWAuthenticate(wwwAuthenticate ?? "");
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const c = await this.credentialsFor(host);
    if (bearer) {
      if (!bearer.params.realm) throw new AuthError(`registry ${host} sent a Bearer challenge without a realm`);
      const st: HostAuthState = { scheme: "bearer", params: bearer.params };
      const prev = this.hosts.get(host);
      this.hosts.set(host, st);
      if (c?.registryToken) return sent === undefined;
      // Drop the token we sent (expired or revoked), then get one for the scopes the request needs
      // plus the ones the challenge asks for.
      if (prev?.scheme === "bearer") this.tokens.delete(this.tokenKey(host, prev, scopes));
      const all = bearer.params.scope ? [...scopes, bearer.params.scope] : scopes;
      const token = await this.fetchToken(host, st, all, c);
      this.tokens.set(this.tokenKey(host, st, scopes), token);
      if (sent === `Bearer ${token.value}`) return false; // the same token was just refused
      return true;
    }
    if (basic) {
      this.hosts.set(host, { scheme: "basic", params: basic.params });
      if (!c || !(c.username || c.password)) return false;
      return sent !== basicAuthorization(c);
    }
    return false;
  }

  private async fetchToken(host: string, st: HostAuthState, scopes: string[], c: Credentials | undefined): Promise<CachedToken> {
    const f = this.opts.fetch ?? fetch;
    const realm = st.params.realm!;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new AuthError(`invalid token realm ${JSON.stringify(realm)} from ${host}`);
    }
    const merged = mergeScopes(scopes);
    const headers: Record<string, string> = { "user-agent": this.opts.userAgent ?? "bunker" };
    let res: Response;
    this.tokenRequests++;
    const tls = this.opts.tlsFor?.(url);
    try {
      if (c?.identityToken) {
        const form = new URLSearchParams();
        form.set("grant_type", "refresh_token");
        form.set("refresh_token", c.identityToken);
        form.set("client_id", this.opts.clientId ?? "bunker");
        if (st.params.service) form.set("service", st.params.service);
        if (merged.length) form.set("scope", merged.join(" "));
        headers["content-type"] = "application/x-www-form-urlencoded";
        res = await f(url, { method: "POST", headers, body: form.toString(), redirect: "follow", ...(tls ? { tls } : {}) } as RequestInit);
      } else {
        if (st.params.service) url.searchParams.set("service", st.params.service);
        for (const s of merged) url.searchParams.append("scope", s);
        if (c?.username) {
          url.searchParams.set("account", c.username);
          headers.authorization = basicAuthorization(c);
        }
        res = await f(url, { method: "GET", headers, redirect: "follow", ...(tls ? { tls } : {}) } as RequestInit);
      }
    } catch (e) {
      throw new AuthError(`fetching token from ${realm}: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let detail = "";
      try {
        const doc = JSON.parse(text);
        if (Array.isArray(doc.errors) && doc.errors.length) {
          detail = doc.errors.map((e: { code?: string; message?: string }) => `${(e.code ?? "").toLowerCase().replace(/_/g, " ")}: ${e.message ?? ""}`).join("; ");
        } else detail = doc.details ?? doc.error_description ?? doc.error ?? doc.message ?? "";
      } catch {
        detail = text.trim().slice(0, 200);
      }
      if (res.status === 401 || res.status === 403) {
        throw new AuthError(detail.startsWith("unauthorized") || detail.startsWith("denied") ? detail : `unauthorized: ${detail || "authentication required"}`, res.status);
      }
      throw new AuthError(`fetching token from ${realm}: ${res.status} ${res.statusText}${detail ? `: ${detail}` : ""}`, res.status);
    }
    let doc: TokenResponse;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new AuthError(`token server ${realm} answered with invalid JSON`);
    }
    const value = doc.token || doc.access_token;
    if (!value) throw new AuthError(`token server ${realm} answered without a token`);
    const expiresIn = doc.expires_in && doc.expires_in > 0 ? doc.expires_in : 60;
    const issued = doc.issued_at ? Date.parse(doc.issued_at) : NaN;
    const base = Number.isFinite(issued) && Math.abs(issued - Date.now()) < 3600_000 ? issued : Date.now();
    // Renew a little before the deadline.
    return { value, expiresAt: base + Math.max(expiresIn - 5, 1) * 1000 };
  }
}
