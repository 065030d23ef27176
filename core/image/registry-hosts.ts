// Registry hosts: where the API of a registry domain is reached, as containerd's
// remotes/docker/config does with a hosts directory (`<config_path>/<host>/hosts.toml`):
//
//   server = "https://registry.example.com"          # the upstream, tried last
//   capabilities = ["pull", "resolve", "push"]        # of the server (default: all)
//   skip_verify = false
//   ca = "/path/ca.pem"                               # or a list
//   client = [["/path/cert.pem", "/path/key.pem"]]    # or "/path/cert+key.pem"
//   [header]  x-custom = "value"
//
//   [host."http://127.0.0.1:5000"]                    # mirrors, tried first, in file order
//     capabilities = ["pull", "resolve"]
//     skip_verify = true
//     plain_http = true                               # bunker extension: no scheme in the key → http
//     override_path = true                            # the URL's path is the API root (no /v2 added)
//     [host."http://127.0.0.1:5000".header]
//       x-mirror = "1"
//
// The directory for host "h:p" is looked up as "h_p_" then "h:p", then "_default". Without a
// hosts.toml a domain has one host, https://<domain> (docker.io → https://registry-1.docker.io);
// loopback registries are tried over HTTPS without verification and then over plain HTTP, as
// docker treats 127.0.0.0/8 and localhost as insecure registries by default.
//
// TOML: a small reader covering what hosts.toml uses (tables with quoted keys, dotted keys,
// strings, literal strings, multi-line strings, integers, floats, booleans, arrays, inline tables).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { isLoopbackHost, registryApiHost } from "./reference";

export type Capability = "pull" | "resolve" | "push";
export const ALL_CAPABILITIES: Capability[] = ["pull", "resolve", "push"];

export interface RegistryHost {
  /** host[:port] as in the URL. */
  host: string;
  scheme: "http" | "https";
  /** API root, "/v2" normally. */
  path: string;
  capabilities: Capability[];
  skipVerify: boolean;
  /** PEM CA certificate files to trust. */
  caFiles?: string[];
  /** Client certificate (and key) files for mTLS. */
  clientCerts?: [cert: string, key?: string][];
  header: Record<string, string[]>;
  /** Query parameters added to each request (containerd's ns=<domain> on mirrors). */
  query?: Record<string, string>;
  /** Try https first, then plain http when the TLS handshake fails (docker's insecure registries). */
  httpFallback: boolean;
  /** True for the upstream server entry (not a mirror). */
  isServer: boolean;
}

export class HostsConfigError extends Error {
  override name = "HostsConfigError";
}

// ---------------------------------------------------------------------------------------------
// TOML (the subset hosts.toml needs)

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export function parseToml(src: string, file = "toml"): TomlTable {
  const root: TomlTable = {};
  let table = root;
  let i = 0;
  let line = 1;
  const n = src.length;
  const fail = (msg: string): never => {
    throw new HostsConfigError(`${file}:${line}: ${msg}`);
  };
  const peek = () => src[i];
  const skipWs = () => {
    while (i < n && (src[i] === " " || src[i] === "\t")) i++;
  };
  const skipComment = () => {
    if (src[i] === "#") while (i < n && src[i] !== "\n") i++;
  };
  /** Whitespace, newlines and comments (inside arrays). */
  const skipAll = () => {
    for (;;) {
      skipWs();
      skipComment();
      if (src[i] === "\n") {
        line++;
        i++;
      } else if (src[i] === "\r" && src[i + 1] === "\n") i++;
      else return;
    }
  };
  const endOfLine = () => {
    skipWs();
    skipComment();
    if (i < n && src[i] === "\r") i++;
    if (i < n && src[i] !== "\n") fail(`unexpected ${JSON.stringify(src[i])} after value`);
  };
  const basicString = (): string => {
    // at opening quote
    if (src.startsWith('"""', i)) {
      i += 3;
      if (src[i] === "\n") {
        i++;
        line++;
      }
      let s = "";
      while (i < n && !src.startsWith('"""', i)) {
        if (src[i] === "\\") {
          if (src[i + 1] === "\n" || (src[i + 1] === "\r" && src[i + 2] === "\n")) {
            i++;
            while (i < n && /[\s]/.test(src[i]!)) {
              if (src[i] === "\n") line++;
              i++;
            }
            continue;
          }
          s += escape();
          continue;
        }
        if (src[i] === "\n") line++;
        s += src[i++];
      }
      if (i >= n) fail("unterminated multi-line string");
      i += 3;
      return s;
    }
    i++;
    let s = "";
    while (i < n && src[i] !== '"') {
      if (src[i] === "\n") fail("newline in string");
      if (src[i] === "\\") {
        s += escape();
        continue;
      }
      s += src[i++];
    }
    if (i >= n) fail("unterminated string");
    i++;
    return s;
  };
  const escape = (): string => {
    const c = src[i + 1];
    i += 2;
    switch (c) {
      case "b":
        return "\b";
      case "t":
        return "\t";
      case "n":
        return "\n";
      case "f":
        return "\f";
      case "r":
        return "\r";
      case '"':
        return '"';
      case "\\":
        return "\\";
      case "u":
      case "U": {
        const len = c === "u" ? 4 : 8;
        const hex = src.slice(i, i + len);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) fail("invalid unicode escape");
        i += len;
        return String.fromCodePoint(parseInt(hex, 16));
      }
    }
    return fail(`invalid escape \\${c}`);
  };
  const literalString = (): string => {
    if (src.startsWith("'''", i)) {
      i += 3;
      if (src[i] === "\n") {
        i++;
        line++;
      }
      const end = src.indexOf("'''", i);
      if (end === -1) fail("unterminated multi-line literal string");
      const s = src.slice(i, end);
      line += s.split("\n").length - 1;
      i = end + 3;
      return s;
    }
    i++;
    const start = i;
    while (i < n && src[i] !== "'" && src[i] !== "\n") i++;
    if (src[i] !== "'") fail("unterminated literal string");
    return src.slice(start, i++);
  };
  const key = (): string[] => {
    const parts: string[] = [];
    for (;;) {
      skipWs();
      const c = peek();
      if (c === '"') parts.push(basicString());
      else if (c === "'") parts.push(literalString());
      else {
        const start = i;
        while (i < n && /[A-Za-z0-9_-]/.test(src[i]!)) i++;
        if (start === i) fail("expected a key");
        parts.push(src.slice(start, i));
      }
      skipWs();
      if (peek() === ".") {
        i++;
        continue;
      }
      return parts;
    }
  };
  const value = (): TomlValue => {
    skipWs();
    const c = peek();
    if (c === '"') return basicString();
    if (c === "'") return literalString();
    if (c === "[") {
      i++;
      const arr: TomlValue[] = [];
      for (;;) {
        skipAll();
        if (peek() === "]") {
          i++;
          return arr;
        }
        arr.push(value());
        skipAll();
        if (peek() === ",") {
          i++;
          continue;
        }
        skipAll();
        if (peek() === "]") {
          i++;
          return arr;
        }
        fail("expected , or ] in array");
      }
    }
    if (c === "{") {
      i++;
      const t: TomlTable = {};
      skipWs();
      if (peek() === "}") {
        i++;
        return t;
      }
      for (;;) {
        const k = key();
        if (peek() !== "=") fail("expected = in inline table");
        i++;
        setPath(t, k, value());
        skipWs();
        if (peek() === ",") {
          i++;
          continue;
        }
        if (peek() === "}") {
          i++;
          return t;
        }
        fail("expected , or } in inline table");
      }
    }
    const m = /^[^\s,\]}#]+/.exec(src.slice(i, i + 200));
    if (!m) return fail("expected a value");
    const tok = m[0];
    i += tok.length;
    if (tok === "true") return true;
    if (tok === "false") return false;
    if (tok === "inf" || tok === "+inf") return Infinity;
    if (tok === "-inf") return -Infinity;
    if (tok === "nan" || tok === "+nan" || tok === "-nan") return NaN;
    const num = tok.replace(/_/g, "");
    if (/^[+-]?\d+$/.test(num)) return parseInt(num, 10);
    if (/^0x[0-9a-fA-F]+$/.test(num)) return parseInt(num.slice(2), 16);
    if (/^0o[0-7]+$/.test(num)) return parseInt(num.slice(2), 8);
    if (/^0b[01]+$/.test(num)) return parseInt(num.slice(2), 2);
    if (/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(num)) return parseFloat(num);
    // dates and times are kept as strings
    if (/^\d{4}-\d{2}-\d{2}/.test(tok) || /^\d{2}:\d{2}/.test(tok)) return tok;
    return fail(`invalid value ${JSON.stringify(tok)}`);
  };
  const setPath = (t: TomlTable, path: string[], v: TomlValue) => {
    let cur = t;
    for (const p of path.slice(0, -1)) {
      const next = cur[p];
      if (next === undefined) cur = cur[p] = {};
      else if (typeof next === "object" && !Array.isArray(next)) cur = next;
      else fail(`key ${path.join(".")} conflicts with a value`);
    }
    const last = path[path.length - 1]!;
    if (last in cur) fail(`duplicate key ${path.join(".")}`);
    cur[last] = v;
  };
  const openTable = (path: string[], array: boolean): TomlTable => {
    let cur = root;
    path.forEach((p, idx) => {
      const isLast = idx === path.length - 1;
      let next = cur[p];
      if (isLast && array) {
        if (next === undefined) next = cur[p] = [];
        if (!Array.isArray(next)) fail(`${path.join(".")} is not an array of tables`);
        const t: TomlTable = {};
        (next as TomlValue[]).push(t);
        cur = t;
        return;
      }
      if (next === undefined) next = cur[p] = {};
      if (Array.isArray(next)) {
        const lastT = next[next.length - 1];
        if (typeof lastT !== "object" || Array.isArray(lastT)) fail(`${path.join(".")} is not a table`);
        cur = lastT as TomlTable;
      } else if (typeof next === "object") cur = next;
      else fail(`${path.join(".")} is not a table`);
    });
    return cur;
  };

  while (i < n) {
    skipAll();
    if (i >= n) break;
    if (peek() === "[") {
      const array = src[i + 1] === "[";
      i += array ? 2 : 1;
      const path = key();
      if (array) {
        if (!src.startsWith("]]", i)) fail("expected ]]");
        i += 2;
      } else {
        if (peek() !== "]") fail("expected ]");
        i++;
      }
      table = openTable(path, array);
      endOfLine();
      continue;
    }
    const k = key();
    if (peek() !== "=") fail("expected =");
    i++;
    setPath(table, k, value());
    endOfLine();
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// hosts.toml

/** containerd's hostDirectory: "host:port" → "host_port_". */
export function hostDirectory(host: string): string {
  const idx = host.lastIndexOf(":");
  if (idx > 0 && !host.endsWith("]")) return `${host.slice(0, idx)}_${host.slice(idx + 1)}_`;
  return host;
}

/** The hosts.toml files that may configure a domain, in lookup order (first existing wins). */
export function hostsFileCandidates(configDirs: string[], domain: string): string[] {
  const out: string[] = [];
  for (const dir of configDirs) {
    const hd = hostDirectory(domain);
    if (hd !== domain) out.push(join(dir, hd, "hosts.toml"));
    out.push(join(dir, domain, "hosts.toml"));
  }
  for (const dir of configDirs) out.push(join(dir, "_default", "hosts.toml"));
  return out;
}

function stringList(v: TomlValue | undefined, what: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  throw new HostsConfigError(`${what}: expected a string or a list of strings`);
}

function parseHeaders(v: TomlValue | undefined, what: string): Record<string, string[]> {
  if (v === undefined) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new HostsConfigError(`${what}: header must be a table`);
  const out: Record<string, string[]> = {};
  for (const [k, val] of Object.entries(v)) out[k] = stringList(val, `${what}: header ${k}`)!;
  return out;
}

function parseClient(v: TomlValue | undefined, what: string): [string, string?][] | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "string") return [[v]];
  if (!Array.isArray(v)) throw new HostsConfigError(`${what}: client must be a path or a list`);
  return v.map((e): [string, string?] => {
    if (typeof e === "string") return [e];
    if (Array.isArray(e) && e.length >= 1 && e.length <= 2 && e.every((x) => typeof x === "string")) {
      return e.length === 2 ? [e[0] as string, e[1] as string] : [e[0] as string];
    }
    throw new HostsConfigError(`${what}: client entries are "cert" or ["cert", "key"]`);
  });
}

function parseCapabilities(v: TomlValue | undefined, what: string): Capability[] | undefined {
  const list = stringList(v, `${what}: capabilities`);
  if (!list) return undefined;
  for (const c of list) {
    if (!ALL_CAPABILITIES.includes(c as Capability)) throw new HostsConfigError(`${what}: unknown capability ${JSON.stringify(c)}`);
  }
  return list as Capability[];
}

function boolOpt(v: TomlValue | undefined, what: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw new HostsConfigError(`${what}: expected true or false`);
  return v;
}

function hostFromTable(urlStr: string, t: TomlTable, domain: string, isServer: boolean, file: string): RegistryHost {
  const what = `${file}: ${isServer ? "server" : `host ${JSON.stringify(urlStr)}`}`;
  const plainHttp = boolOpt(t.plain_http, `${what}: plain_http`);
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(urlStr);
  let u: URL;
  try {
    u = new URL(hasScheme ? urlStr : `${plainHttp ? "http" : "https"}://${urlStr}`);
  } catch {
    throw new HostsConfigError(`${what}: invalid URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new HostsConfigError(`${what}: scheme must be http or https`);
  if (plainHttp && u.protocol === "https:" && hasScheme) throw new HostsConfigError(`${what}: plain_http with an https URL`);
  const overridePath = boolOpt(t.override_path, `${what}: override_path`) ?? false;
  let path = u.pathname.replace(/\/+$/, "");
  if (path === "") path = "/v2";
  else if (!overridePath && !path.endsWith("/v2")) path += "/v2";
  const host: RegistryHost = {
    host: u.host,
    scheme: u.protocol === "http:" ? "http" : "https",
    path,
    capabilities: parseCapabilities(t.capabilities, what) ?? [...ALL_CAPABILITIES],
    skipVerify: boolOpt(t.skip_verify, `${what}: skip_verify`) ?? false,
    header: parseHeaders(t.header, what),
    httpFallback: false,
    isServer,
  };
  const ca = stringList(t.ca, `${what}: ca`);
  if (ca) host.caFiles = ca;
  const client = parseClient(t.client, what);
  if (client) host.clientCerts = client;
  if (!isServer && u.host !== domain) host.query = { ns: domain };
  return host;
}

/** Parses a hosts.toml for `domain` into its hosts, mirrors first, the server last. */
export function parseHostsToml(src: string, domain: string, file = "hosts.toml"): RegistryHost[] {
  const doc = parseToml(src, file);
  const hosts: RegistryHost[] = [];
  const hostTables = doc.host;
  if (hostTables !== undefined) {
    if (typeof hostTables !== "object" || Array.isArray(hostTables)) throw new HostsConfigError(`${file}: [host] must be tables`);
    for (const [url, t] of Object.entries(hostTables)) {
      if (typeof t !== "object" || Array.isArray(t)) throw new HostsConfigError(`${file}: host ${JSON.stringify(url)} must be a table`);
      hosts.push(hostFromTable(url, t, domain, false, file));
    }
  }
  let server: string | undefined;
  if (doc.server !== undefined) {
    if (typeof doc.server !== "string") throw new HostsConfigError(`${file}: server must be a string`);
    server = doc.server;
  }
  const { host: _h, server: _s, ...serverOpts } = doc;
  void _h;
  void _s;
  const serverHost = hostFromTable(server ?? defaultServerURL(domain), serverOpts, domain, true, file);
  if (server === undefined && isLoopbackHost(domain) && !doc.plain_http && !doc.skip_verify) serverHost.httpFallback = true;
  hosts.push(serverHost);
  return hosts;
}

function defaultServerURL(domain: string): string {
  return `https://${registryApiHost(domain)}`;
}

export interface ConfigureHostsOptions {
  /** Hosts directories (containerd's config_path), searched in order. */
  configDirs?: string[];
  /** Plain HTTP for the default host (ctr --plain-http). */
  plainHttp?: boolean;
  /** Skip TLS verification on the default host (ctr --skip-verify). */
  skipVerify?: boolean;
}

/** The hosts to use for a registry domain, in the order to try them. */
export function configureHosts(domain: string, opts: ConfigureHostsOptions = {}): RegistryHost[] {
  for (const file of hostsFileCandidates(opts.configDirs ?? [], domain)) {
    if (!existsSync(file)) continue;
    const hosts = parseHostsToml(readFileSync(file, "utf8"), domain, file);
    if (opts.skipVerify) for (const h of hosts) h.skipVerify = true;
    return hosts;
  }
  const apiHost = registryApiHost(domain);
  const loopback = isLoopbackHost(apiHost);
  return [
    {
      host: apiHost,
      scheme: opts.plainHttp ? "http" : "https",
      path: "/v2",
      capabilities: [...ALL_CAPABILITIES],
      skipVerify: !!opts.skipVerify || loopback,
      header: {},
      httpFallback: !opts.plainHttp && loopback,
      isServer: true,
    },
  ];
}
