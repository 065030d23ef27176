// The registry client against a real registry (Debian's docker-registry: distribution 2.8) on
// 127.0.0.1, one instance without auth and one with htpasswd basic auth, and against small
// Bun.serve fakes for what a well-behaved registry never does (corrupted blobs), token auth
// (a token server + a registry that challenges), redirects to another loopback host, and TLS.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync, type Subprocess } from "bun";
import { closeSync, existsSync, mkdirSync, openSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  MediaType,
  allPlatformManifests,
  encodeJSON,
  parseManifest,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from "../core/image/manifest";
import { normalizeReference, sha256Digest } from "../core/image/reference";
import {
  DigestMismatchError,
  NotFoundError,
  RegistryClient,
  RegistryConnectionError,
  UnauthorizedError,
  readAll,
  type RegistryClientOptions,
} from "../core/image/registry";
import { TMP_PREFIX } from "./harness";
import { tar } from "./fixtures/tiny-tar";

// ---------------------------------------------------------------------------------------------
// docker-registry: installed from Debian when missing (the tests need it; root can apt-get)

const REGISTRY_BIN = "/usr/bin/docker-registry";
if (!existsSync(REGISTRY_BIN) && process.getuid?.() === 0) {
  spawnSync(["bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null"], {
    stdout: "inherit",
    stderr: "inherit",
  });
}
const HAVE_REGISTRY = existsSync(REGISTRY_BIN);
const HAVE_OPENSSL = !!Bun.which("openssl");

let tmp = "";
const children: Subprocess[] = [];
const servers: { stop(force?: boolean): unknown }[] = [];

beforeAll(() => {
  tmp = mkdtempSync(TMP_PREFIX);
});

afterAll(async () => {
  for (const s of servers) s.stop(true);
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
  await Promise.all(children.map((c) => c.exited.catch(() => {})));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

interface RegistryInstance {
  port: number;
  host: string;
  proc: Subprocess;
  log: string;
}

async function startRegistry(name: string, htpasswd?: { user: string; password: string }): Promise<RegistryInstance> {
  const dir = join(tmp, name);
  mkdirSync(join(dir, "data"), { recursive: true });
  let authSection = "";
  if (htpasswd) {
    const hash = await Bun.password.hash(htpasswd.password, { algorithm: "bcrypt", cost: 4 });
    writeFileSync(join(dir, "htpasswd"), `${htpasswd.user}:${hash}\n`);
    authSection = `auth:\n  htpasswd:\n    realm: bunker-test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(
      join(dir, "config.yml"),
      `version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: bunker-test-secret
${authSection}`,
    );
    const log = join(dir, "registry.log");
    const fd = openSync(log, "a");
    const proc = Bun.spawn([REGISTRY_BIN, "serve", join(dir, "config.yml")], { stdout: fd, stderr: fd, stdin: "ignore" });
    closeSync(fd);
    children.push(proc);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && proc.exitCode === null) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/v2/`);
        await r.body?.cancel();
        if (r.status === 200 || r.status === 401) return { port, host: `127.0.0.1:${port}`, proc, log };
      } catch {}
      await Bun.sleep(50);
    }
    proc.kill("SIGKILL");
    if (attempt >= 2) throw new Error(`docker-registry did not start:\n${existsSync(log) ? readFileSync(log, "utf8") : ""}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Tiny images

/** A ustar archive of regular files. */

interface Blob_ {
  desc: Descriptor;
  bytes: Uint8Array;
}

function blob(bytes: Uint8Array, mediaType: string): Blob_ {
  return { desc: { mediaType, digest: sha256Digest(bytes), size: bytes.byteLength }, bytes };
}

interface TinyImage {
  config: Blob_;
  layer: Blob_;
  manifest: Blob_;
  configDoc: ImageConfig;
}

function tinyImage(arch = "amd64", variant?: string, text = "hello"): TinyImage {
  const layerTar = tar({ "hello.txt": `${text} from ${arch}\n` });
  const layer = blob(Bun.gzipSync(layerTar as Uint8Array<ArrayBuffer>), MediaType.DockerLayerGzip);
  const configDoc: ImageConfig = {
    architecture: arch,
    os: "linux",
    ...(variant ? { variant } : {}),
    config: { Cmd: ["/bin/sh"], Env: ["PATH=/bin"] },
    rootfs: { type: "layers", diff_ids: [sha256Digest(layerTar)] },
    history: [{ created_by: "bunker test" }],
  };
  const config = blob(encodeJSON(configDoc), MediaType.DockerConfig);
  const manifestDoc: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.DockerManifest,
    config: config.desc,
    layers: [layer.desc],
  };
  const manifest = blob(encodeJSON(manifestDoc), MediaType.DockerManifest);
  return { config, layer, manifest, configDoc };
}

async function pushImage(c: RegistryClient, ref: string, img: TinyImage, tag = true): Promise<Descriptor> {
  await c.pushBlob(ref, img.layer.desc, img.layer.bytes);
  await c.pushBlob(ref, img.config.desc, img.config.bytes);
  const r = normalizeReference(ref);
  return c.pushManifest(tag ? r : r.nameOnly().withDigest(img.manifest.desc.digest), img.manifest.bytes, MediaType.DockerManifest);
}

/** Options for tests: no config.json from the machine's HOME. */
function client(extra: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient({ dockerConfigDir: false, ...extra });
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

// ---------------------------------------------------------------------------------------------
// A real registry, no auth

describe.skipIf(!HAVE_REGISTRY)("docker-registry (distribution 2.8)", () => {
  let reg: RegistryInstance;
  beforeAll(async () => {
    reg = await startRegistry("open");
  });

  test("push a tiny image, resolve it, pull manifest and blobs back verified", async () => {
    // No plainHttp: a loopback registry is tried over HTTPS first and falls back to HTTP, as docker does.
    const c = client();
    const img = tinyImage();
    const ref = `${reg.host}/tiny/busy:v1`;
    const first = await c.pushBlob(ref, img.layer.desc, img.layer.bytes);
    expect(first.status).toBe("uploaded");
    expect((await c.pushBlob(ref, img.layer.desc, img.layer.bytes)).status).toBe("exists");
    await c.pushBlob(ref, img.config.desc, img.config.bytes);
    const pushed = await c.pushManifest(ref, img.manifest.bytes, MediaType.DockerManifest);
    expect(pushed).toEqual(img.manifest.desc);

    const { descriptor, ref: resolvedRef } = await c.resolve(ref);
    expect(resolvedRef.toString()).toBe(`${reg.host}/tiny/busy:v1`);
    expect(descriptor).toEqual(img.manifest.desc);

    const m = await c.fetchManifest(ref, descriptor);
    expect(m.kind).toBe("manifest");
    if (m.kind !== "manifest") throw new Error("not a manifest");
    expect(eq(m.bytes, img.manifest.bytes)).toBe(true);
    expect(m.manifest.layers[0]!.digest).toBe(img.layer.desc.digest);

    expect(eq(await c.readBlob(ref, m.manifest.config), img.config.bytes)).toBe(true);
    const layer = await c.readBlob(ref, m.manifest.layers[0]!);
    expect(eq(layer, img.layer.bytes)).toBe(true);
    expect(new TextDecoder().decode(Bun.gunzipSync(layer as Uint8Array<ArrayBuffer>))).toContain("hello from amd64");

    // by digest too, and the whole walk for the host platform
    const byDigest = await c.resolve(`${reg.host}/tiny/busy@${img.manifest.desc.digest}`);
    expect(byDigest.descriptor).toEqual(img.manifest.desc);
    const image = await c.resolveImage(ref);
    expect(image.config.architecture).toBe("amd64");
    expect(image.manifestDescriptor.digest).toBe(img.manifest.desc.digest);
    expect(await c.listTags(ref)).toEqual(["v1"]);
  });

  test("plain HTTP configured explicitly", async () => {
    const c = client({ plainHttp: true });
    const img = tinyImage("amd64", undefined, "plain");
    await pushImage(c, `${reg.host}/plain/img:t`, img);
    expect((await c.resolve(`${reg.host}/plain/img:t`)).descriptor.digest).toBe(img.manifest.desc.digest);
  });

  test("chunked upload (POST, PATCH with Content-Range, PUT)", async () => {
    const c = client();
    const data = new Uint8Array(100_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
    const b = blob(data, "application/octet-stream");
    const ref = `${reg.host}/chunked/blob:x`;
    const res = await c.pushBlob(ref, b.desc, data, { chunkSize: 16 * 1024 });
    expect(res.status).toBe("uploaded");
    expect(eq(await c.readBlob(ref, b.desc), data)).toBe(true);
    // the registry's access log: 7 PATCHes (6 × 16 KiB + the rest)
    const patches = readFileSync(reg.log, "utf8").split("\n").filter((l) => /"PATCH \/v2\/chunked\/blob\/blobs\/uploads\//.test(l));
    expect(patches).toHaveLength(7);
    // a stream source, chunked too
    const data2 = data.map((x) => x ^ 0x5a);
    const b2 = blob(data2, "application/octet-stream");
    const stream = new Blob([data2]).stream();
    expect((await c.pushBlob(ref, b2.desc, stream, { chunkSize: 30_000 })).status).toBe("uploaded");
    expect(eq(await c.readBlob(ref, b2.desc), data2)).toBe(true);
  });

  test("fetchBlobFrom: the rest of a blob by Range (206), checked for size; offset 0 is the whole, verified", async () => {
    const c = client({ plainHttp: true });
    const data = new Uint8Array(50_000).map((_, i) => (i * 13 + (i >> 9)) & 0xff);
    const b = blob(data, "application/octet-stream");
    const ref = `${reg.host}/ranged/blob:x`;
    await c.pushBlob(ref, b.desc, data);
    const rest = await c.fetchBlobFrom(ref, b.desc, 20_000);
    expect(rest.offset).toBe(20_000);
    expect(eq(await readAll(rest.body), data.subarray(20_000))).toBe(true);
    const whole = await c.fetchBlobFrom(ref, b.desc, 0);
    expect(whole.offset).toBe(0);
    expect(eq(await readAll(whole.body), data)).toBe(true);
    // The range is checked for its size: a descriptor claiming more bytes fails at the end.
    const longer = await c.fetchBlobFrom(ref, { digest: b.desc.digest, size: 60_000 }, 20_000);
    await expect(readAll(longer.body)).rejects.toThrow(/expected 40000 bytes, got 30000/);
  });

  test("a blob whose bytes are not its digest is refused by the registry", async () => {
    const c = client();
    const data = new TextEncoder().encode("some bytes");
    const wrong = { digest: sha256Digest("other bytes"), size: data.byteLength };
    await expect(c.pushBlob(`${reg.host}/bad/upload:x`, wrong, data)).rejects.toThrow(/digest invalid/);
  });

  test("cross-repository mount", async () => {
    const c = client();
    const data = new TextEncoder().encode("mount me ".repeat(100));
    const b = blob(data, "application/octet-stream");
    expect((await c.pushBlob(`${reg.host}/mount/src:x`, b.desc, data)).status).toBe("uploaded");
    expect(await c.blobExists(`${reg.host}/mount/dst:x`, b.desc.digest)).toBeUndefined();
    const res = await c.pushBlob(`${reg.host}/mount/dst:x`, b.desc, data, { mountFrom: "mount/src" });
    expect(res.status).toBe("mounted");
    const there = await c.blobExists(`${reg.host}/mount/dst:x`, b.desc.digest);
    expect(there?.size).toBe(data.byteLength);
    // a mount from a repository without the blob falls back to an upload
    const other = blob(new TextEncoder().encode("not in src"), "application/octet-stream");
    expect((await c.pushBlob(`${reg.host}/mount/dst:x`, other.desc, other.bytes, { mountFrom: "mount/src" })).status).toBe("uploaded");
  });

  test("manifest list with linux/amd64 and linux/arm64 resolves per platform", async () => {
    const c = client();
    const ref = `${reg.host}/multi/img:latest`;
    const amd = tinyImage("amd64", undefined, "amd");
    const arm = tinyImage("arm64", "v8", "arm");
    const amdDesc = await pushImage(c, ref, amd, false);
    const armDesc = await pushImage(c, ref, arm, false);
    const listDoc: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [
        { ...amdDesc, platform: { architecture: "amd64", os: "linux" } },
        { ...armDesc, platform: { architecture: "arm64", os: "linux", variant: "v8" } },
      ],
    };
    const listBytes = encodeJSON(listDoc);
    const listDesc = await c.pushManifest(ref, listBytes, MediaType.DockerManifestList);

    const { descriptor } = await c.resolve(ref);
    expect(descriptor.mediaType).toBe(MediaType.DockerManifestList);
    expect(descriptor.digest).toBe(listDesc.digest);

    const armImage = await c.resolveImage(ref, "linux/arm64");
    expect(armImage.manifestDescriptor.digest).toBe(arm.manifest.desc.digest);
    expect(armImage.config.architecture).toBe("arm64");
    expect(armImage.index?.kind).toBe("index");
    expect(new TextDecoder().decode(Bun.gunzipSync((await c.readBlob(ref, armImage.manifest.manifest.layers[0]!)) as Uint8Array<ArrayBuffer>))).toContain("arm from arm64");
    expect((await c.resolveImage(ref, "linux/arm64/v8")).manifestDescriptor.digest).toBe(arm.manifest.desc.digest);
    expect((await c.resolveImage(ref, "linux/amd64")).manifestDescriptor.digest).toBe(amd.manifest.desc.digest);
    expect((await c.resolveImage(ref)).config.architecture).toBe("amd64"); // the host (linux/amd64)
    await expect(c.resolveImage(ref, "linux/arm/v7")).rejects.toThrow("no matching manifest for linux/arm/v7 in the manifest list entries");
    await expect(c.resolveImage(ref, "windows/amd64")).rejects.toThrow(/no matching manifest for windows\/amd64/);

    const list = await c.fetchManifest(ref, descriptor);
    if (list.kind !== "index") throw new Error("not an index");
    expect(allPlatformManifests(list.index).map((d) => d.digest)).toEqual([amd.manifest.desc.digest, arm.manifest.desc.digest]);
  });

  test("an OCI index and manifest", async () => {
    const c = client();
    const ref = `${reg.host}/oci/img:1`;
    const img = tinyImage("amd64", undefined, "oci");
    const cfg = blob(img.config.bytes, MediaType.OCIConfig);
    const layer = blob(img.layer.bytes, MediaType.OCILayerGzip);
    await c.pushBlob(ref, layer.desc, layer.bytes);
    await c.pushBlob(ref, cfg.desc, cfg.bytes);
    const man = encodeJSON({ schemaVersion: 2, mediaType: MediaType.OCIManifest, config: cfg.desc, layers: [layer.desc] });
    const manDesc = await c.pushManifest(normalizeReference(ref).nameOnly().withDigest(sha256Digest(man)), man, MediaType.OCIManifest);
    const idx = encodeJSON({
      schemaVersion: 2,
      mediaType: MediaType.OCIIndex,
      manifests: [{ ...manDesc, platform: { architecture: "amd64", os: "linux" } }],
    });
    await c.pushManifest(ref, idx, MediaType.OCIIndex);
    const { descriptor } = await c.resolve(ref);
    expect(descriptor.mediaType).toBe(MediaType.OCIIndex);
    const image = await c.resolveImage(ref, "linux/amd64");
    expect(image.manifest.mediaType).toBe(MediaType.OCIManifest);
    expect(image.config.rootfs.diff_ids).toEqual(img.configDoc.rootfs.diff_ids);
  });

  test("not found: docker's messages with the registry's error", async () => {
    const c = client();
    await expect(c.resolve(`${reg.host}/tiny/busy:nope`)).rejects.toThrow(
      `manifest for ${reg.host}/tiny/busy:nope not found: manifest unknown: manifest unknown`,
    );
    const err = await c.resolve(`${reg.host}/no/such/repo`).catch((e) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(`manifest for ${reg.host}/no/such/repo:latest not found: manifest unknown: manifest unknown`);
    await expect(c.listTags(`${reg.host}/no/such/repo`)).rejects.toThrow("name unknown: repository name not known to registry");
    const missing = await c.readBlob(`${reg.host}/tiny/busy`, { digest: sha256Digest("nothing"), size: 7 }).catch((e) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing.message).toBe("blob unknown: blob unknown to registry");
  });

  test("hosts.toml: a dead mirror is skipped, the configured server answers", async () => {
    const dead = await freePort();
    const dirs = join(tmp, "hosts.d");
    mkdirSync(join(dirs, "mirror.invalid_5000_"), { recursive: true });
    writeFileSync(
      join(dirs, "mirror.invalid_5000_", "hosts.toml"),
      `# test hosts
server = "http://${reg.host}"

[host."http://127.0.0.1:${dead}"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  [host."http://127.0.0.1:${dead}".header]
    x-test = ["a", "b"]
`,
    );
    const c = client({ hostsDirs: [dirs] });
    const ref = "mirror.invalid:5000/hosts/img:v1";
    const hosts = c.hosts(normalizeReference(ref), "resolve");
    expect(hosts.map((h) => `${h.scheme}://${h.host}${h.path}`)).toEqual([`http://127.0.0.1:${dead}/v2`, `http://${reg.host}/v2`]);
    expect(hosts[0]!.query).toEqual({ ns: "mirror.invalid:5000" });
    expect(c.hosts(normalizeReference(ref), "push").map((h) => h.host)).toEqual([reg.host]);
    const img = tinyImage("amd64", undefined, "mirror");
    await pushImage(c, ref, img);
    expect((await c.resolve(ref)).descriptor.digest).toBe(img.manifest.desc.digest);
    expect(eq(await c.readBlob(ref, img.layer.desc), img.layer.bytes)).toBe(true);
    // the same image is in the server's own namespace
    expect((await client().resolve(`${reg.host}/hosts/img:v1`)).descriptor.digest).toBe(img.manifest.desc.digest);
  });
});

// ---------------------------------------------------------------------------------------------
// A real registry with htpasswd basic auth

describe.skipIf(!HAVE_REGISTRY)("docker-registry with htpasswd basic auth", () => {
  let reg: RegistryInstance;
  const user = "bunker";
  const password = "s3cret-p4ss";
  beforeAll(async () => {
    reg = await startRegistry("basic", { user, password });
  });

  test("anonymous pull is refused with docker's message", async () => {
    const err = await client().resolve(`${reg.host}/private/img:v1`).catch((e) => e);
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err.message).toBe(
      `pull access denied for ${reg.host}/private/img, repository does not exist or may require 'docker login': unauthorized: authentication required`,
    );
  });

  test("credentials from config.json auths (base64 user:pass)", async () => {
    const dir = join(tmp, "docker-config-basic");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ auths: { [`http://${reg.host}`]: { auth: Buffer.from(`${user}:${password}`).toString("base64") } } }),
    );
    const c = new RegistryClient({ dockerConfigDir: dir });
    const img = tinyImage("amd64", undefined, "basic");
    await pushImage(c, `${reg.host}/private/img:v1`, img);
    const { descriptor } = await c.resolve(`${reg.host}/private/img:v1`);
    expect(descriptor.digest).toBe(img.manifest.desc.digest);
    expect(eq(await c.readBlob(`${reg.host}/private/img`, img.layer.desc), img.layer.bytes)).toBe(true);
    await c.ping(reg.host);
  });

  test("credentials from the user's credential helper (credHelpers)", async () => {
    const dir = join(tmp, "docker-config-helper");
    const bin = join(tmp, "helper-bin");
    mkdirSync(dir, { recursive: true });
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(dir, "config.json"), JSON.stringify({ credHelpers: { [reg.host]: "bunkertest" } }));
    writeFileSync(
      join(bin, "docker-credential-bunkertest"),
      `#!/bin/sh
[ "$1" = get ] || exit 1
read -r server
echo "$server" > "${join(tmp, "helper-asked")}"
if [ "$server" = "${reg.host}" ]; then
  printf '{"ServerURL":"%s","Username":"${user}","Secret":"${password}"}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
`,
      { mode: 0o755 },
    );
    const c = new RegistryClient({ dockerConfigDir: dir, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    const img = tinyImage("amd64", undefined, "helper");
    await pushImage(c, `${reg.host}/private/helper:v1`, img);
    expect((await c.resolve(`${reg.host}/private/helper:v1`)).descriptor.digest).toBe(img.manifest.desc.digest);
    expect(readFileSync(join(tmp, "helper-asked"), "utf8").trim()).toBe(reg.host);
  });

  test("a wrong password is refused", async () => {
    const c = client({ credentials: () => ({ username: user, password: "wrong" }) });
    const err = await c.resolve(`${reg.host}/private/img:v1`).catch((e) => e);
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err.message).toContain("unauthorized: authentication required");
    await expect(c.ping(reg.host)).rejects.toThrow("unauthorized: authentication required");
  });
});

// ---------------------------------------------------------------------------------------------
// Fakes: a registry that can lie, challenge with Bearer, and redirect

interface FakeRegistry {
  port: number;
  host: string;
  blobs: Map<string, Uint8Array>;
  manifests: Map<string, { bytes: Uint8Array; mediaType: string }>;
  /** Requests seen: method, path, authorization. */
  seen: { method: string; path: string; authorization: string | null }[];
  /** Bytes served instead of the real ones, per digest. */
  corrupt: Map<string, Uint8Array>;
  /** Blob digests redirected elsewhere (a URL builder). */
  redirect: Map<string, string>;
  /** Require Bearer tokens from this token server; repos listed in `denied` never get access. */
  bearer?: { realm: string; service: string; valid: Set<string>; denied: Set<string> };
  stop(): void;
}

function fakeRegistry(hostname = "127.0.0.1"): FakeRegistry {
  const f = {
    port: 0,
    host: "",
    stop: () => {},
    blobs: new Map(),
    manifests: new Map(),
    seen: [],
    corrupt: new Map(),
    redirect: new Map(),
  } as FakeRegistry;
  const errors = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify({ errors: [{ code, message, detail: null }] }), {
      status,
      headers: { "content-type": "application/json", ...headers },
    });
  const server = Bun.serve({
    hostname,
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      const authz = req.headers.get("authorization");
      f.seen.push({ method: req.method, path: url.pathname, authorization: authz });
      const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
      if (f.bearer) {
        const repo = m?.[1] ?? "";
        const scope = `repository:${repo}:pull`;
        const token = authz?.startsWith("Bearer ") ? authz.slice(7) : "";
        const ok = f.bearer.valid.has(`${token}|${scope}`) && !f.bearer.denied.has(repo);
        if (!ok) {
          const challenge = `Bearer realm="${f.bearer.realm}",service="${f.bearer.service}",scope="${scope}"${token ? ',error="insufficient_scope"' : ""}`;
          if (token && f.bearer.denied.has(repo)) {
            return errors(401, "DENIED", "requested access to the resource is denied", { "www-authenticate": challenge });
          }
          return errors(401, "UNAUTHORIZED", "authentication required", { "www-authenticate": challenge });
        }
      }
      if (url.pathname === "/v2/" || url.pathname === "/v2") return Response.json({});
      if (!m) return errors(404, "NOT_FOUND", "not found");
      const [, , kind, ref] = m;
      if (kind === "manifests") {
        const entry = f.manifests.get(ref!);
        if (!entry) return errors(404, "MANIFEST_UNKNOWN", "manifest unknown");
        const body = f.corrupt.get(sha256Digest(entry.bytes)) ?? entry.bytes;
        const headers = { "content-type": entry.mediaType, "docker-content-digest": sha256Digest(entry.bytes), "content-length": String(body.byteLength) };
        return new Response(req.method === "HEAD" ? null : body, { headers });
      }
      const target = f.redirect.get(ref!);
      if (target) return new Response(null, { status: 307, headers: { location: target } });
      const data = f.blobs.get(ref!);
      if (!data) return errors(404, "BLOB_UNKNOWN", "blob unknown to registry");
      const body = f.corrupt.get(ref!) ?? data;
      if (req.method === "HEAD") return new Response(null, { headers: { "content-length": String(data.byteLength) } });
      // Sent in small pieces so that the client sees several chunks.
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          for (let off = 0; off < body.byteLength; off += 1000) c.enqueue(body.slice(off, off + 1000));
          c.close();
        },
      });
      return new Response(stream, { headers: { "content-type": "application/octet-stream", "content-length": String(body.byteLength) } });
    },
  });
  servers.push(server);
  f.port = server.port!;
  f.host = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${server.port}`;
  f.stop = () => server.stop(true);
  return f;
}

function addImage(f: FakeRegistry, img: TinyImage, tag: string): void {
  f.blobs.set(img.layer.desc.digest, img.layer.bytes);
  f.blobs.set(img.config.desc.digest, img.config.bytes);
  const entry = { bytes: img.manifest.bytes, mediaType: MediaType.DockerManifest };
  f.manifests.set(tag, entry);
  f.manifests.set(img.manifest.desc.digest, entry);
}

describe("corrupted content", () => {
  test("a blob with the wrong bytes is refused, at the end of the stream", async () => {
    const f = fakeRegistry();
    const img = tinyImage();
    const big = blob(new Uint8Array(10_000).map((_, i) => i & 0xff), "application/octet-stream");
    f.blobs.set(big.desc.digest, big.bytes);
    const bad = big.bytes.slice();
    bad[9_999] = bad[9_999]! ^ 1; // same size, one bit flipped in the last chunk
    f.corrupt.set(big.desc.digest, bad);
    addImage(f, img, "v1");
    const c = client({ plainHttp: true });
    const ref = `${f.host}/corrupt/img:v1`;

    const err = await c.readBlob(ref, big.desc).catch((e) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toBe(`digest mismatch: expected ${big.desc.digest}, got ${sha256Digest(bad)}`);

    // Streaming: the consumer gets bytes, but never a clean end; the last chunk is withheld.
    const stream = await c.fetchBlob(ref, big.desc);
    const reader = stream.getReader();
    let got = 0;
    let failure: unknown;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.byteLength;
      }
    } catch (e) {
      failure = e;
    }
    expect(failure).toBeInstanceOf(DigestMismatchError);
    expect(got).toBeLessThan(big.bytes.byteLength);

    // Too many bytes, and too few.
    const longer = new Uint8Array(big.bytes.byteLength + 10);
    longer.set(big.bytes);
    f.corrupt.set(big.desc.digest, longer);
    await expect(c.readBlob(ref, big.desc)).rejects.toThrow(/content size mismatch.*more than the expected 10000 bytes/);
    f.corrupt.set(big.desc.digest, big.bytes.slice(0, 5000));
    await expect(c.readBlob(ref, big.desc)).rejects.toThrow(/expected 10000 bytes, got 5000/);

    // The right bytes pass.
    f.corrupt.delete(big.desc.digest);
    expect(eq(await c.readBlob(ref, big.desc), big.bytes)).toBe(true);
  });

  test("a manifest with the wrong bytes is refused", async () => {
    const f = fakeRegistry();
    const img = tinyImage();
    addImage(f, img, "v1");
    const c = client({ plainHttp: true });
    const ref = `${f.host}/corrupt/img:v1`;
    const { descriptor } = await c.resolve(ref);
    const tampered = new TextEncoder().encode(new TextDecoder().decode(img.manifest.bytes).replace('"schemaVersion":2', '"schemaVersion":2 '));
    f.corrupt.set(img.manifest.desc.digest, tampered);
    await expect(c.fetchManifest(ref, descriptor)).rejects.toThrow(DigestMismatchError);
    await expect(c.resolveImage(ref, "linux/amd64")).rejects.toThrow(DigestMismatchError);
  });
});

// ---------------------------------------------------------------------------------------------
// Token auth

interface TokenServer {
  url: string;
  requests: { method: string; params: URLSearchParams; authorization: string | null; form?: URLSearchParams }[];
}

function tokenServer(reg: FakeRegistry, creds?: { user: string; password: string }, refreshToken?: string): TokenServer {
  const ts: TokenServer = { url: "", requests: [] };
  let n = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      const authz = req.headers.get("authorization");
      let form: URLSearchParams | undefined;
      let scopes = url.searchParams.getAll("scope");
      if (req.method === "POST") {
        form = new URLSearchParams(await req.text());
        scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
      }
      ts.requests.push({ method: req.method, params: url.searchParams, authorization: authz, form });
      if (form) {
        if (form.get("grant_type") !== "refresh_token" || form.get("refresh_token") !== refreshToken) {
          return Response.json({ error: "invalid_grant", error_description: "bad refresh token" }, { status: 401 });
        }
      } else if (creds) {
        if (authz !== "Basic " + Buffer.from(`${creds.user}:${creds.password}`).toString("base64")) {
          return Response.json({ details: "incorrect username or password" }, { status: 401 });
        }
      }
      const token = `tok${++n}`;
      for (const s of scopes) for (const part of s.split(" ")) {
        // "repository:x:pull,push" grants pull on x
        const m = /^repository:(.+):([a-z,]+)$/.exec(part);
        if (m && m[2]!.split(",").includes("pull")) reg.bearer!.valid.add(`${token}|repository:${m[1]}:pull`);
      }
      return form ? Response.json({ access_token: token, expires_in: 300 }) : Response.json({ token, expires_in: 300, issued_at: new Date().toISOString() });
    },
  });
  servers.push(server);
  ts.url = `http://127.0.0.1:${server.port}/token`;
  return ts;
}

describe("resuming a blob", () => {
  test("a registry that ignores Range: everything, verified, from offset 0", async () => {
    const f = fakeRegistry();
    const data = new Uint8Array(10_000).map((_, i) => i & 0xff);
    const b = blob(data, "application/octet-stream");
    f.blobs.set(b.desc.digest, data);
    const c = client({ plainHttp: true });
    const got = await c.fetchBlobFrom(`${f.host}/norange/img:v1`, b.desc, 4000);
    expect(got.offset).toBe(0);
    expect(eq(await readAll(got.body), data)).toBe(true);
    // ... and a corrupted whole is refused as fetchBlob refuses it.
    const bad = data.slice();
    bad[9999] = bad[9999]! ^ 1;
    f.corrupt.set(b.desc.digest, bad);
    const again = await c.fetchBlobFrom(`${f.host}/norange/img:v1`, b.desc, 4000);
    await expect(readAll(again.body)).rejects.toThrow(DigestMismatchError);
  });
});

describe("token auth (WWW-Authenticate: Bearer)", () => {
  test("challenge → token with basic credentials → retry; tokens cached per scope", async () => {
    const reg = fakeRegistry();
    reg.bearer = { realm: "", service: "fake-registry", valid: new Set(), denied: new Set() };
    const ts = tokenServer(reg, { user: "alice", password: "pw" });
    reg.bearer.realm = ts.url;
    const img = tinyImage();
    addImage(reg, img, "v1");
    const c = client({ plainHttp: true, credentials: (host) => (host === reg.host ? { username: "alice", password: "pw" } : undefined) });
    const ref = `${reg.host}/team/app:v1`;

    const { descriptor } = await c.resolve(ref);
    expect(descriptor.digest).toBe(img.manifest.desc.digest);
    // first request anonymous, then the token
    expect(reg.seen[0]!.authorization).toBeNull();
    expect(reg.seen[1]!.authorization).toBe("Bearer tok1");
    expect(ts.requests).toHaveLength(1);
    const tr = ts.requests[0]!;
    expect(tr.params.get("service")).toBe("fake-registry");
    expect(tr.params.getAll("scope")).toEqual(["repository:team/app:pull"]);
    expect(tr.params.get("account")).toBe("alice");
    expect(tr.authorization).toBe("Basic " + Buffer.from("alice:pw").toString("base64"));

    // Everything else on the same repository reuses the token up front: no more 401s.
    const seenBefore = reg.seen.length;
    const image = await c.resolveImage(ref, "linux/amd64");
    expect(eq(await c.readBlob(ref, image.manifest.manifest.layers[0]!), img.layer.bytes)).toBe(true);
    expect(ts.requests).toHaveLength(1);
    expect(reg.seen.slice(seenBefore).every((s) => s.authorization === "Bearer tok1")).toBe(true);

    // Another repository is another scope: one more token.
    addImage(reg, img, "v1");
    await c.resolve(`${reg.host}/team/other:v1`);
    expect(ts.requests).toHaveLength(2);
    expect(ts.requests[1]!.params.getAll("scope")).toEqual(["repository:team/other:pull"]);

    // A token the registry stops accepting is replaced once.
    reg.bearer.valid.clear();
    expect((await c.resolve(ref)).descriptor.digest).toBe(img.manifest.desc.digest);
    expect(ts.requests).toHaveLength(3);
  });

  test("anonymous token auth, and access denied after one retry", async () => {
    const reg = fakeRegistry();
    reg.bearer = { realm: "", service: "svc", valid: new Set(), denied: new Set(["secret/app"]) };
    const ts = tokenServer(reg);
    reg.bearer.realm = ts.url;
    addImage(reg, tinyImage(), "v1");
    const c = client({ plainHttp: true });
    expect((await c.resolve(`${reg.host}/public/app:v1`)).descriptor.size).toBeGreaterThan(0);
    expect(ts.requests[0]!.authorization).toBeNull();
    expect(ts.requests[0]!.params.get("account")).toBeNull();

    const before = reg.seen.length;
    const err = await c.resolve(`${reg.host}/secret/app:v1`).catch((e) => e);
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err.message).toBe(
      `pull access denied for ${reg.host}/secret/app, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`,
    );
    // HEAD: anonymous → token → refused; GET (for the error body) with the token, refused, retried once.
    expect(reg.seen.length - before).toBeLessThanOrEqual(5);
  });

  test("wrong credentials: the token server's answer is the error", async () => {
    const reg = fakeRegistry();
    reg.bearer = { realm: "", service: "svc", valid: new Set(), denied: new Set() };
    const ts = tokenServer(reg, { user: "alice", password: "pw" });
    reg.bearer.realm = ts.url;
    addImage(reg, tinyImage(), "v1");
    const c = client({ plainHttp: true, credentials: () => ({ username: "alice", password: "nope" }) });
    await expect(c.resolve(`${reg.host}/team/app:v1`)).rejects.toThrow("unauthorized: incorrect username or password");
  });

  test("identity token (OAuth2 refresh token grant)", async () => {
    const reg = fakeRegistry();
    reg.bearer = { realm: "", service: "svc", valid: new Set(), denied: new Set() };
    const ts = tokenServer(reg, undefined, "refresh-123");
    reg.bearer.realm = ts.url;
    addImage(reg, tinyImage(), "v1");
    const c = client({ plainHttp: true, credentials: () => ({ identityToken: "refresh-123" }) });
    expect((await c.resolve(`${reg.host}/team/app:v1`)).descriptor.size).toBeGreaterThan(0);
    expect(ts.requests[0]!.method).toBe("POST");
    expect(ts.requests[0]!.form?.get("grant_type")).toBe("refresh_token");
    expect(ts.requests[0]!.form?.get("scope")).toBe("repository:team/app:pull");
    expect(ts.requests[0]!.form?.get("service")).toBe("svc");
  });
});

// ---------------------------------------------------------------------------------------------
// Redirects

describe("blob redirects", () => {
  test("a 307 to another loopback host and port is followed without the Authorization header", async () => {
    const reg = fakeRegistry("127.0.0.1");
    reg.bearer = { realm: "", service: "svc", valid: new Set(), denied: new Set() };
    const ts = tokenServer(reg);
    reg.bearer.realm = ts.url;
    const img = tinyImage();
    addImage(reg, img, "v1");
    // The storage: another loopback address and port, serving the layer under an opaque path.
    const storageSeen: { path: string; authorization: string | null }[] = [];
    const storage = Bun.serve({
      hostname: "127.0.0.2",
      port: 0,
      fetch(req) {
        storageSeen.push({ path: new URL(req.url).pathname, authorization: req.headers.get("authorization") });
        return new Response(img.layer.bytes);
      },
    });
    servers.push(storage);
    reg.redirect.set(img.layer.desc.digest, `http://127.0.0.2:${storage.port}/storage/layer?sig=abc`);
    const c = client({ plainHttp: true });
    const ref = `${reg.host}/team/app:v1`;
    const layer = await c.readBlob(ref, img.layer.desc);
    expect(eq(layer, img.layer.bytes)).toBe(true);
    expect(storageSeen).toEqual([{ path: "/storage/layer", authorization: null }]);
    // the registry itself got the token
    expect(reg.seen.filter((s) => s.path.endsWith(img.layer.desc.digest)).at(-1)!.authorization).toMatch(/^Bearer /);

    // A redirect to the same origin keeps it.
    reg.redirect.set(img.config.desc.digest, `http://${reg.host}/v2/team/app/blobs/${img.layer.desc.digest}`);
    reg.redirect.delete(img.layer.desc.digest);
    const before = reg.seen.length;
    await expect(c.readBlob(ref, img.config.desc)).rejects.toThrow(DigestMismatchError); // the layer's bytes, not the config's
    expect(reg.seen.slice(before).every((s) => s.authorization?.startsWith("Bearer "))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// TLS

describe.skipIf(!HAVE_OPENSSL)("HTTPS registries", () => {
  let cert = "";
  let key = "";
  let server: ReturnType<typeof Bun.serve>;
  let host = "";
  const img = tinyImage();
  beforeAll(() => {
    const dir = join(tmp, "tls");
    mkdirSync(dir, { recursive: true });
    cert = join(dir, "cert.pem");
    key = join(dir, "key.pem");
    const r = spawnSync([
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert,
    ], { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(r.stderr.toString());
    const manifests = new Map([["v1", img.manifest], [img.manifest.desc.digest, img.manifest]]);
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: Bun.file(cert), key: Bun.file(key) },
      fetch(req) {
        const m = /^\/v2\/.+\/manifests\/([^/]+)$/.exec(new URL(req.url).pathname);
        const e = m && manifests.get(m[1]!);
        if (!e) return new Response("{}", { status: 404 });
        return new Response(req.method === "HEAD" ? null : e.bytes, {
          headers: { "content-type": MediaType.DockerManifest, "docker-content-digest": e.desc.digest, "content-length": String(e.bytes.byteLength) },
        });
      },
    });
    servers.push(server);
    host = `127.0.0.1:${server.port}`;
  });

  function hostsDir(name: string, toml: string): string {
    const d = join(tmp, `tls-${name}`);
    mkdirSync(join(d, "secure.example_443_"), { recursive: true });
    writeFileSync(join(d, "secure.example_443_", "hosts.toml"), toml);
    return d;
  }

  test("verification on by default for a configured server: a self-signed certificate is refused", async () => {
    const c = client({ hostsDirs: [hostsDir("verify", `server = "https://${host}"\n`)] });
    await expect(c.resolve("secure.example:443/app:v1")).rejects.toThrow(RegistryConnectionError);
  });

  test("skip_verify = true, or the CA given with ca = ...", async () => {
    const skip = client({ hostsDirs: [hostsDir("skip", `server = "https://${host}"\nskip_verify = true\n`)] });
    expect((await skip.resolve("secure.example:443/app:v1")).descriptor).toEqual(img.manifest.desc);
    const withCa = client({ hostsDirs: [hostsDir("ca", `server = "https://${host}"\nca = "${cert}"\n`)] });
    expect((await withCa.resolve("secure.example:443/app:v1")).descriptor).toEqual(img.manifest.desc);
  });

  test("insecure option, and loopback registries default to unverified HTTPS like docker", async () => {
    expect((await client({ insecure: true }).resolve(`${host}/app:v1`)).descriptor).toEqual(img.manifest.desc);
    expect((await client().resolve(`${host}/app:v1`)).descriptor).toEqual(img.manifest.desc);
  });
});

// ---------------------------------------------------------------------------------------------
// IPv6 loopback

test("a registry on [::1]", async () => {
  let f: FakeRegistry;
  try {
    f = fakeRegistry("::1");
  } catch {
    return; // no IPv6 loopback here
  }
  const img = tinyImage();
  addImage(f, img, "v1");
  const c = client();
  const ref = `${f.host}/six/img:v1`;
  expect(f.host).toBe(`[::1]:${f.port}`);
  const image = await c.resolveImage(ref, "linux/amd64");
  expect(parseManifest(image.manifest.bytes, MediaType.DockerManifest).kind).toBe("manifest");
  expect(image.manifestDescriptor.digest).toBe(img.manifest.desc.digest);
  expect(eq(await readAll(await c.fetchBlob(ref, img.layer.desc)), img.layer.bytes)).toBe(true);
});
