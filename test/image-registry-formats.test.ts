// Registry client building blocks that need no server: platforms (containerd's parse, normalise,
// format and matchers), manifest/index/config parsing and platform selection, the hosts.toml
// reader, WWW-Authenticate parsing, scopes, and docker's config.json credential lookup.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  credentialHelperGet,
  credentialsFromAuths,
  convertToHostname,
  dockerConfigCredentials,
  dockerConfigKey,
  mergeScopes,
  parseWWWAuthenticate,
} from "../core/image/auth";
import {
  MediaType,
  allPlatformManifests,
  configPlatform,
  detectManifestMediaType,
  encodeJSON,
  layerCompression,
  matchingManifests,
  parseImageConfig,
  parseManifest,
  selectManifest,
  type Descriptor,
  type ImageIndex,
} from "../core/image/manifest";
import {
  allPlatforms,
  anyMatcher,
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  onlyMatcher,
  orderedMatcher,
  parsePlatform,
  platformMatcher,
  type Platform,
} from "../core/image/platform";
import { sha256Digest } from "../core/image/reference";
import { configureHosts, hostDirectory, parseHostsToml, parseToml } from "../core/image/registry-hosts";
import { formatRegistryErrors, verifyingStream, readAll, DigestMismatchError } from "../core/image/registry";
import { TMP_PREFIX } from "./harness";

let tmp = "";
beforeAll(() => {
  tmp = mkdtempSync(TMP_PREFIX);
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const dg = (s: string) => sha256Digest(s);
const p = (s: string): Platform => {
  const [os, architecture, variant] = s.split("/");
  return variant ? { os: os!, architecture: architecture!, variant } : { os: os!, architecture: architecture! };
};

// ---------------------------------------------------------------------------------------------

describe("platforms (containerd's platforms package)", () => {
  const IS_AMD64 = process.arch === "x64";
  const PARSE: [string, string][] = [
    ["linux/amd64", "linux/amd64"],
    ["Linux/AMD64", "linux/amd64"],
    ["linux/x86_64", "linux/amd64"],
    ["linux/x86-64", "linux/amd64"],
    ["linux/amd64/v1", "linux/amd64"],
    ["linux/amd64/v3", "linux/amd64/v3"],
    ["linux/i386", "linux/386"],
    ["linux/arm64", "linux/arm64"],
    ["linux/aarch64", "linux/arm64"],
    ["linux/arm64/v8", "linux/arm64/v8"],
    ["linux/arm64/8", "linux/arm64/v8"],
    ["linux/arm", "linux/arm"],
    ["linux/arm/v7", "linux/arm/v7"],
    ["linux/arm/7", "linux/arm/v7"],
    ["linux/arm/6", "linux/arm/v6"],
    ["linux/armhf", "linux/arm"],
    ["linux/armel", "linux/arm/v6"],
    ["macos/amd64", "darwin/amd64"],
    ["windows/amd64", "windows/amd64"],
    ["linux/ppc64le", "linux/ppc64le"],
    ["linux/s390x", "linux/s390x"],
    ["linux/riscv64", "linux/riscv64"],
  ];
  for (const [input, want] of PARSE) {
    test(`parse ${input} → ${want}`, () => expect(formatPlatform(parsePlatform(input))).toBe(want));
  }

  test.skipIf(!IS_AMD64)("one-component specifiers use the host for the rest (linux/amd64 here)", () => {
    expect(formatPlatform(parsePlatform("linux"))).toBe("linux/amd64");
    expect(formatPlatform(parsePlatform("amd64"))).toBe("linux/amd64");
    expect(formatPlatform(parsePlatform("aarch64"))).toBe("linux/arm64");
    expect(formatPlatform(parsePlatform("armhf"))).toBe("linux/arm");
    expect(formatPlatform(parsePlatform("armel"))).toBe("linux/arm/v6");
    expect(hostPlatform()).toEqual({ os: "linux", architecture: "amd64" });
    expect(formatPlatform(hostPlatform())).toBe("linux/amd64");
  });

  test("parse errors", () => {
    expect(() => parsePlatform("foo")).toThrow('"foo": unknown operating system or architecture: invalid argument');
    expect(() => parsePlatform("linux/*")).toThrow('"linux/*": wildcards not yet supported: invalid argument');
    expect(() => parsePlatform("linux/amd 64")).toThrow('"amd 64" is an invalid component of "linux/amd 64"');
    expect(() => parsePlatform("linux//amd64")).toThrow("is an invalid component");
    expect(() => parsePlatform("a/b/c/d")).toThrow('"a/b/c/d": cannot parse platform specifier: invalid argument');
  });

  test("normalise and format", () => {
    expect(normalizePlatform({ os: "Linux", architecture: "aarch64", variant: "v8" })).toEqual({ os: "linux", architecture: "arm64" });
    expect(normalizePlatform({ os: "linux", architecture: "arm" })).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
    expect(formatPlatform({ os: "", architecture: "amd64" })).toBe("unknown");
  });

  test("only(): the platform first, then what it can run", () => {
    const amd = onlyMatcher(p("linux/amd64"));
    expect(amd.match(p("linux/amd64"))).toBe(true);
    expect(amd.match(p("linux/386"))).toBe(true);
    expect(amd.match(p("linux/arm64"))).toBe(false);
    expect(amd.match(p("windows/amd64"))).toBe(false);
    expect(amd.less(p("linux/amd64"), p("linux/386"))).toBe(true);
    expect(amd.less(p("linux/386"), p("linux/amd64"))).toBe(false);

    const arm64 = onlyMatcher(p("linux/arm64"));
    for (const ok of ["linux/arm64", "linux/arm64/v8", "linux/aarch64", "linux/arm/v8", "linux/arm/v7", "linux/arm", "linux/arm/v6", "linux/arm/v5"]) {
      expect(arm64.match(p(ok))).toBe(true);
    }
    expect(arm64.match(p("linux/amd64"))).toBe(false);
    expect(arm64.less(p("linux/arm64"), p("linux/arm/v7"))).toBe(true);
    expect(arm64.less(p("linux/arm/v7"), p("linux/arm/v6"))).toBe(true);

    const v7 = onlyMatcher(p("linux/arm/v7"));
    expect(v7.match(p("linux/arm"))).toBe(true); // arm without a variant is v7
    expect(v7.match(p("linux/arm/v6"))).toBe(true);
    expect(v7.match(p("linux/arm/v8"))).toBe(false);
    expect(v7.match(p("linux/arm64"))).toBe(false);

    const v3 = onlyMatcher(p("linux/amd64/v3"));
    for (const ok of ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]) expect(v3.match(p(ok))).toBe(true);
    expect(v3.match(p("linux/amd64/v4"))).toBe(false);
  });

  test("ordered, any, all, and matchers from specifiers", () => {
    const o = orderedMatcher(p("linux/arm64"), p("linux/amd64"));
    expect(o.less(p("linux/arm64"), p("linux/amd64"))).toBe(true);
    expect(o.match(p("linux/386"))).toBe(false);
    const a = anyMatcher(p("linux/arm64"), p("linux/amd64"));
    expect(a.less(p("linux/arm64"), p("linux/amd64"))).toBe(false);
    expect(a.less(p("linux/amd64"), p("linux/s390x"))).toBe(true);
    expect(allPlatforms.match(p("plan9/mips"))).toBe(true);
    expect(platformMatcher("linux/arm64").match(p("linux/arm/v7"))).toBe(true);
    expect(platformMatcher(p("linux/s390x")).match(p("linux/s390x"))).toBe(true);
    expect(platformMatcher(a)).toBe(a);
  });
});

// ---------------------------------------------------------------------------------------------

function desc(content: string, mediaType: string, platform?: Platform, annotations?: Record<string, string>): Descriptor {
  return { mediaType, digest: dg(content), size: content.length, ...(platform ? { platform } : {}), ...(annotations ? { annotations } : {}) };
}

describe("manifests, indexes, configs", () => {
  const config = desc("config", MediaType.DockerConfig);
  const layer = desc("layer", MediaType.DockerLayerGzip);
  const manifest = { schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers: [layer] };

  test("Docker schema 2 manifest and OCI manifest", () => {
    const m = parseManifest(encodeJSON(manifest), MediaType.DockerManifest);
    expect(m.kind).toBe("manifest");
    expect(m.mediaType).toBe(MediaType.DockerManifest);
    // no mediaType field: taken from how it was served, else guessed from the shape
    const { mediaType: _, ...bare } = manifest;
    expect(parseManifest(JSON.stringify(bare), MediaType.OCIManifest + "; charset=utf-8").mediaType).toBe(MediaType.OCIManifest);
    expect(parseManifest(JSON.stringify(bare)).mediaType).toBe(MediaType.OCIManifest);
    expect(detectManifestMediaType({ manifests: [] })).toBe(MediaType.OCIIndex);
  });

  test("indexes and manifest lists", () => {
    const idx = { schemaVersion: 2, manifests: [desc("m1", MediaType.OCIManifest, p("linux/amd64"))] };
    const parsed = parseManifest(JSON.stringify(idx));
    expect(parsed.kind).toBe("index");
    expect(parsed.mediaType).toBe(MediaType.OCIIndex);
    const list = { schemaVersion: 2, mediaType: MediaType.DockerManifestList, manifests: [desc("m1", MediaType.DockerManifest)] };
    expect(() => parseManifest(JSON.stringify(list))).toThrow("manifests[0]: a manifest list entry needs a platform");
  });

  test("refusals", () => {
    expect(() => parseManifest('{"schemaVersion":1,"fsLayers":[]}')).toThrow("schema 1 is not supported");
    expect(() => parseManifest("{}", MediaType.DockerSchema1Signed)).toThrow("schema 1 is not supported");
    expect(() => parseManifest("not json")).toThrow("invalid manifest JSON");
    expect(() => parseManifest(encodeJSON(manifest), MediaType.OCIManifest)).toThrow("media type mismatch");
    expect(() => parseManifest(JSON.stringify({ ...manifest, schemaVersion: 3 }))).toThrow("unsupported manifest schemaVersion 3");
    expect(() => parseManifest(JSON.stringify({ ...manifest, layers: [{ ...layer, digest: "sha256:abc" }] }))).toThrow(
      'layers[0]: digest "sha256:abc": invalid checksum digest length',
    );
    expect(() => parseManifest(JSON.stringify({ ...manifest, layers: [{ ...layer, size: -1 }] }))).toThrow("size must be a non-negative integer");
    expect(() => parseManifest(JSON.stringify({ ...manifest, config: undefined }))).toThrow("config: must be an object");
    expect(() => parseManifest(JSON.stringify({ ...manifest, mediaType: MediaType.OCIIndex, manifests: [] }))).toThrow(
      "media-type: expected index but found manifest",
    );
    expect(() => parseManifest(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OCIManifest, config, layers: [], manifests: [] }))).toThrow(
      "media-type: expected manifest but found index",
    );
  });

  test("platform selection, best first; entries without a platform last; attestations left out of 'all'", () => {
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.OCIIndex,
      manifests: [
        desc("nop", MediaType.OCIManifest),
        desc("386", MediaType.OCIManifest, p("linux/386")),
        desc("arm7", MediaType.OCIManifest, p("linux/arm/v7")),
        desc("arm64", MediaType.OCIManifest, p("linux/arm64/v8")),
        desc("amd64", MediaType.OCIManifest, p("linux/amd64")),
        desc("att", MediaType.OCIManifest, { os: "unknown", architecture: "unknown" }, { "vnd.docker.reference.type": "attestation-manifest" }),
        desc("blob", "application/octet-stream", p("linux/amd64")),
      ],
    };
    expect(matchingManifests(index, onlyMatcher(p("linux/amd64"))).map((d) => d.digest)).toEqual([dg("amd64"), dg("386"), dg("nop")]);
    expect(selectManifest(index, onlyMatcher(p("linux/arm64"))).digest).toBe(dg("arm64"));
    expect(matchingManifests(index, onlyMatcher(p("linux/arm64"))).map((d) => d.digest)).toEqual([dg("arm64"), dg("arm7"), dg("nop")]);
    expect(selectManifest(index, onlyMatcher(p("linux/arm/v6"))).digest).toBe(dg("nop"));
    const strict = { ...index, manifests: index.manifests.filter((d) => d.platform) };
    expect(() => selectManifest(strict, onlyMatcher(p("linux/s390x")))).toThrow("no matching manifest for linux/s390x in the manifest list entries");
    expect(allPlatformManifests(index).map((d) => d.digest)).toEqual([dg("nop"), dg("386"), dg("arm7"), dg("arm64"), dg("amd64")]);
  });

  test("image config", () => {
    const cfg = parseImageConfig(JSON.stringify({ architecture: "arm64", os: "linux", variant: "v8", rootfs: { type: "layers", diff_ids: [dg("x")] }, config: { Cmd: ["sh"] } }));
    expect(cfg.config?.Cmd).toEqual(["sh"]);
    expect(configPlatform(cfg)).toEqual({ os: "linux", architecture: "arm64" });
    expect(() => parseImageConfig('{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')).toThrow('"architecture" and "os" must be strings');
    expect(() => parseImageConfig('{"os":"linux","architecture":"amd64"}')).toThrow("rootfs must be");
    expect(() => parseImageConfig('{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["x"]}}')).toThrow("diff_id");
  });

  test("layer media types", () => {
    expect(layerCompression(MediaType.DockerLayerGzip)).toBe("gzip");
    expect(layerCompression(MediaType.OCILayerZstd)).toBe("zstd");
    expect(layerCompression(MediaType.OCILayer)).toBe("none");
    expect(layerCompression(MediaType.DockerForeignLayerGzip)).toBe("gzip");
    expect(layerCompression("application/json")).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------

describe("digest-verifying streams", () => {
  const stream = (...parts: string[]) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (const s of parts) c.enqueue(new TextEncoder().encode(s));
        c.close();
      },
    });
  test("good content passes, whole", async () => {
    const out = await readAll(verifyingStream(stream("hel", "lo ", "world"), dg("hello world"), 11));
    expect(new TextDecoder().decode(out)).toBe("hello world");
  });
  test("bad content errors; the last chunk is withheld", async () => {
    const reader = verifyingStream(stream("hel", "lo ", "wOrld"), dg("hello world")).getReader();
    const got: string[] = [];
    let err: unknown;
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        got.push(new TextDecoder().decode(r.value));
      }
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(got).toEqual(["hel", "lo "]);
  });
  test("sha512 digests", async () => {
    const d = "sha512:" + new Bun.CryptoHasher("sha512").update("abc").digest("hex");
    expect(new TextDecoder().decode(await readAll(verifyingStream(stream("a", "bc"), d)))).toBe("abc");
  });
});

// ---------------------------------------------------------------------------------------------

describe("hosts.toml", () => {
  test("TOML subset", () => {
    const doc = parseToml(`
# comment
server = "https://registry.example.com" # trailing comment
skip_verify = false
n = 1_000
f = 1.5
lit = 'C:\\path\\no\\escapes'
esc = "tab\\tquote\\"\\u00e9"
multi = """
line1
line2"""
arr = [
  "a", # one
  "b",
]
nested = [["cert.pem", "key.pem"], ["other.pem"]]
inline = { a = 1, b = "two" }
dotted.key = true

[host."https://mirror.example.com:5000/path"]
  capabilities = ["pull", "resolve"]
  [host."https://mirror.example.com:5000/path".header]
    x-a = "1"

[[list]]
name = "x"
[[list]]
name = "y"
`);
    expect(doc.server).toBe("https://registry.example.com");
    expect(doc.n).toBe(1000);
    expect(doc.f).toBe(1.5);
    expect(doc.lit).toBe("C:\\path\\no\\escapes");
    expect(doc.esc).toBe('tab\tquote"é');
    expect(doc.multi).toBe("line1\nline2");
    expect(doc.arr).toEqual(["a", "b"]);
    expect(doc.nested).toEqual([["cert.pem", "key.pem"], ["other.pem"]]);
    expect(doc.inline).toEqual({ a: 1, b: "two" });
    expect(doc.dotted).toEqual({ key: true });
    expect(doc.host).toEqual({ "https://mirror.example.com:5000/path": { capabilities: ["pull", "resolve"], header: { "x-a": "1" } } });
    expect(doc.list).toEqual([{ name: "x" }, { name: "y" }]);
    expect(() => parseToml('a = "x"\na = "y"', "f.toml")).toThrow("f.toml:2: duplicate key a");
    expect(() => parseToml('a = "unterminated', "f.toml")).toThrow("f.toml:1: unterminated string");
    expect(() => parseToml("a = [1, 2", "f.toml")).toThrow("expected , or ] in array");
    expect(() => parseToml("a = 1 b = 2", "f.toml")).toThrow("after value");
  });

  test("hosts: mirrors in file order, the server last; paths, schemes, capabilities", () => {
    const hosts = parseHostsToml(
      `server = "https://registry-1.docker.io"
[host."https://mirror-a.example"]
  capabilities = ["pull", "resolve"]
[host."mirror-b.example:5000"]
  plain_http = true
  skip_verify = true
  ca = ["/a.pem", "/b.pem"]
  client = [["/c.pem", "/k.pem"]]
[host."http://mirror-c.example/custom"]
  override_path = true
[host."https://mirror-d.example/prefix"]
`,
      "docker.io",
    );
    expect(hosts.map((h) => `${h.scheme}://${h.host}${h.path}`)).toEqual([
      "https://mirror-a.example/v2",
      "http://mirror-b.example:5000/v2",
      "http://mirror-c.example/custom",
      "https://mirror-d.example/prefix/v2",
      "https://registry-1.docker.io/v2",
    ]);
    expect(hosts[0]!.capabilities).toEqual(["pull", "resolve"]);
    expect(hosts[1]!.capabilities).toEqual(["pull", "resolve", "push"]);
    expect(hosts[1]!.skipVerify).toBe(true);
    expect(hosts[1]!.caFiles).toEqual(["/a.pem", "/b.pem"]);
    expect(hosts[1]!.clientCerts).toEqual([["/c.pem", "/k.pem"]]);
    expect(hosts[0]!.query).toEqual({ ns: "docker.io" });
    expect(hosts[4]!.isServer).toBe(true);
    expect(hosts[4]!.query).toBeUndefined();
    expect(() => parseHostsToml('[host."https://x"]\ncapabilities = ["pull", "fly"]', "docker.io", "h.toml")).toThrow('unknown capability "fly"');
    expect(() => parseHostsToml('server = "ftp://x"', "docker.io", "h.toml")).toThrow("scheme must be http or https");
    // without server: the domain itself (docker.io → registry-1.docker.io)
    expect(parseHostsToml("", "docker.io").map((h) => h.host)).toEqual(["registry-1.docker.io"]);
  });

  test("configureHosts: directory lookup (host_port_, host:port, _default) and defaults", () => {
    const dir = join(tmp, "certs.d");
    mkdirSync(join(dir, "reg.example_5000_"), { recursive: true });
    mkdirSync(join(dir, "other.example:6000"), { recursive: true });
    mkdirSync(join(dir, "_default"), { recursive: true });
    writeFileSync(join(dir, "reg.example_5000_", "hosts.toml"), 'server = "http://127.0.0.1:1"\n');
    writeFileSync(join(dir, "other.example:6000", "hosts.toml"), 'server = "http://127.0.0.1:2"\n');
    writeFileSync(join(dir, "_default", "hosts.toml"), "skip_verify = true\n");
    expect(hostDirectory("reg.example:5000")).toBe("reg.example_5000_");
    expect(configureHosts("reg.example:5000", { configDirs: [dir] })[0]!.host).toBe("127.0.0.1:1");
    expect(configureHosts("other.example:6000", { configDirs: [dir] })[0]!.host).toBe("127.0.0.1:2");
    const def = configureHosts("quay.io", { configDirs: [dir] });
    expect(def.map((h) => `${h.scheme}://${h.host}`)).toEqual(["https://quay.io"]);
    expect(def[0]!.skipVerify).toBe(true);
    // no directory: https, docker.io mapped; loopback: unverified https with an http fallback
    expect(configureHosts("docker.io")[0]).toMatchObject({ host: "registry-1.docker.io", scheme: "https", skipVerify: false, httpFallback: false });
    expect(configureHosts("localhost:5000")[0]).toMatchObject({ scheme: "https", skipVerify: true, httpFallback: true });
    expect(configureHosts("127.0.0.1:5000", { plainHttp: true })[0]).toMatchObject({ scheme: "http", httpFallback: false });
  });
});

// ---------------------------------------------------------------------------------------------

describe("auth building blocks", () => {
  test("WWW-Authenticate", () => {
    expect(
      parseWWWAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"'),
    ).toEqual([
      { scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:samalba/my-app:pull,push" } },
    ]);
    expect(parseWWWAuthenticate('Basic realm="Registry Realm"')).toEqual([{ scheme: "basic", params: { realm: "Registry Realm" } }]);
    expect(parseWWWAuthenticate('Basic realm="a", Bearer realm="https://t/x",error="insufficient_scope",scope="a b"')).toEqual([
      { scheme: "basic", params: { realm: "a" } },
      { scheme: "bearer", params: { realm: "https://t/x", error: "insufficient_scope", scope: "a b" } },
    ]);
    expect(parseWWWAuthenticate('Bearer realm=https://t/token, service=svc')).toEqual([
      { scheme: "bearer", params: { realm: "https://t/token", service: "svc" } },
    ]);
    expect(parseWWWAuthenticate('Bearer realm="quote\\"d"')[0]!.params.realm).toBe('quote"d');
  });

  test("scopes merge per resource", () => {
    expect(mergeScopes(["repository:a:pull", "repository:a:push", "repository:b:pull", "repository:a:pull"])).toEqual([
      "repository:a:pull,push",
      "repository:b:pull",
    ]);
    expect(mergeScopes(["repository:a:pull repository:c:pull"])).toEqual(["repository:a:pull", "repository:c:pull"]);
    expect(mergeScopes(["registry:catalog:*", "repository:localhost:5000/x:pull"])).toEqual(["registry:catalog:*", "repository:localhost:5000/x:pull"]);
  });

  test("config.json: keys, auths, helpers", async () => {
    expect(dockerConfigKey("docker.io")).toBe("https://index.docker.io/v1/");
    expect(dockerConfigKey("registry-1.docker.io")).toBe("https://index.docker.io/v1/");
    expect(dockerConfigKey("quay.io")).toBe("quay.io");
    expect(convertToHostname("https://quay.io/v1/")).toBe("quay.io");
    expect(convertToHostname("localhost:5000")).toBe("localhost:5000");
    const cfg = {
      auths: {
        "https://index.docker.io/v1/": { auth: Buffer.from("hubuser:hub:pass").toString("base64") },
        "https://quay.io": { username: "q", password: "p" },
        "localhost:5000": { identitytoken: "idt" },
      },
    };
    expect(credentialsFromAuths(cfg, "registry-1.docker.io")).toEqual({ username: "hubuser", password: "hub:pass" });
    expect(credentialsFromAuths(cfg, "quay.io")).toEqual({ username: "q", password: "p" });
    expect(credentialsFromAuths(cfg, "localhost:5000")).toEqual({ identityToken: "idt" });
    expect(credentialsFromAuths(cfg, "ghcr.io")).toBeUndefined();

    const dir = join(tmp, "dockercfg");
    const bin = join(tmp, "bin");
    mkdirSync(dir, { recursive: true });
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, "docker-credential-store"),
      `#!/bin/sh
read -r s
case "$s" in
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"<token>","Secret":"refresh"}' ;;
  ghcr.io) echo '{"ServerURL":"ghcr.io","Username":"gh","Secret":"ghp"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
      { mode: 0o755 },
    );
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, credsStore: "store", credHelpers: { "broken.example": "missing" } }));
    const env = { ...process.env, PATH: `${bin}:/usr/bin:/bin` };
    const creds = dockerConfigCredentials(dir, env);
    expect(await creds("registry-1.docker.io")).toEqual({ identityToken: "refresh" });
    expect(await creds("ghcr.io")).toEqual({ username: "gh", password: "ghp" });
    // the store has nothing: the file's auths
    expect(await creds("quay.io")).toEqual({ username: "q", password: "p" });
    await expect(Promise.resolve(creds("broken.example"))).rejects.toThrow('exec: "docker-credential-missing": executable file not found in $PATH');
    expect(await credentialHelperGet("store", "nope.example", env)).toBeUndefined();
  });

  test("registry error format (distribution's errcode)", () => {
    expect(formatRegistryErrors([{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }])).toBe("manifest unknown: manifest unknown");
    expect(formatRegistryErrors([{ code: "DENIED", message: "a" }, { code: "UNAUTHORIZED", message: "b" }])).toBe("errors:\ndenied: a\nunauthorized: b\n");
  });
});
