// OUR ctr's `images push`, `images pull` and `content fetch` between Debian's docker-registry
// (distribution 2.8, plain HTTP on 127.0.0.1) and OUR containerd; and Debian's REAL ctr 1.6
// pulling from the same registry into OUR containerd.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec, type ExecResult, rand, TMP_PREFIX, waitFor } from "./harness";
import { tar } from "./fixtures/tiny-tar";
import { ensurePeerPackages } from "./peers";
import { HAVE_REGISTRY, startDockerRegistry } from "./docker-registry";
import { busyboxImage, BUSYBOX_REF } from "./fixtures/busybox-image";
import { MediaType, encodeJSON, type Descriptor, type ImageConfig, type ImageManifest } from "../core/image/manifest";
import { sha256Digest } from "../core/image/reference";
import { RegistryClient } from "../core/image/registry";
import { hostPlatform } from "../core/image/platform";
import { bar, displayStatuses, refKey } from "../core/ctr/transfer";

const BIN = join(import.meta.dir, "..", "dist", "bin");
const OUR_CONTAINERD = join(BIN, "containerd");
const OUR_CTR = join(BIN, "ctr");
const REAL_CTR = "/usr/bin/ctr";
const peerSkip = ensurePeerPackages(["containerd"], [REAL_CTR]);

const HOST_AMD64 = hostPlatform().architecture === "amd64";

const dir = `${TMP_PREFIX}${rand()}`;
const children: Subprocess[] = [];

async function startRegistry(name = "registry", htpasswd?: { user: string; password: string }): Promise<string> {
  return (await startDockerRegistry(dir, name, { htpasswd }, children)).host;
}

const root = join(dir, "root");
const address = join(dir, "run", "containerd.sock");
const logFile = join(dir, "containerd.log");

function daemonLog(): string {
  try {
    return readFileSync(logFile, "utf8");
  } catch {
    return "";
  }
}

async function startDaemon(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const fd = openSync(logFile, "a");
  const proc = Bun.spawn([OUR_CONTAINERD, "--root", root, "--state", join(dir, "state"), "--address", address, "--log-level", "debug"], { stdin: "ignore", stdout: fd, stderr: fd });
  closeSync(fd);
  children.push(proc);
  const up = await waitFor(() => daemonLog().includes("successfully booted") || proc.exitCode !== null, 15_000, 20);
  if (!up || proc.exitCode !== null) throw new Error(`our containerd did not start:\n${daemonLog()}`);
}

function run(bin: string, ns: string, ...args: string[]): ExecResult {
  return exec([bin, "--address", address, "-n", ns, ...args], { timeoutMs: 60_000 });
}

function ok(bin: string, ns: string, ...args: string[]): string {
  const r = run(bin, ns, ...args);
  if (r.code !== 0) throw new Error(`${bin} ${args.join(" ")} failed (${r.code}): ${r.stdout}\n${r.stderr}\n--- daemon log tail:\n${daemonLog().split("\n").slice(-20).join("\n")}`);
  return r.stdout;
}

const rows = (out: string) => out.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/));

/** The last frame of ctr's progress display (frames are separated by cursor-up/erase sequences). */
function lastFrame(out: string): string {
  const parts = out.split("\x1b[1A\x1b[2K\r");
  return parts[parts.length - 1]!;
}

/**
 * Whether some overlayfs snapshot of the daemon holds `file` (with `content` when given). The
 * snapshot's own directory is not asked for through a view: the daemon's GC may collect an
 * unreferenced view between `ctr snapshots view` and `ctr snapshots mounts`.
 */
function snapshotHas(file: string, content?: string | number): boolean {
  const base = join(root, "io.containerd.snapshotter.v1.overlayfs", "snapshots");
  for (const id of readdirSync(base)) {
    const p = join(base, id, "fs", file);
    if (!existsSync(p)) continue;
    if (content === undefined) return true;
    if (typeof content === "number" ? statSync(p).size === content : readFileSync(p, "utf8") === content) return true;
  }
  return false;
}

// A tiny two-platform image (gzip layers), pushed by the test through the RegistryClient.

interface Tiny {
  layer: { desc: Descriptor; bytes: Uint8Array };
  config: { desc: Descriptor; bytes: Uint8Array };
  manifest: { desc: Descriptor; bytes: Uint8Array };
  diffID: string;
}

function tiny(arch: string): Tiny {
  const layerTar = tar({ "hello.txt": `hello from ${arch}\n` });
  const gz = Bun.gzipSync(layerTar as Uint8Array<ArrayBuffer>);
  const layer = { desc: { mediaType: MediaType.DockerLayerGzip, digest: sha256Digest(gz), size: gz.byteLength }, bytes: gz };
  const diffID = sha256Digest(layerTar);
  const configDoc: ImageConfig = { architecture: arch, os: "linux", config: { Cmd: ["/bin/sh"] }, rootfs: { type: "layers", diff_ids: [diffID] } };
  const cb = encodeJSON(configDoc);
  const config = { desc: { mediaType: MediaType.DockerConfig, digest: sha256Digest(cb), size: cb.byteLength }, bytes: cb };
  const mdoc: ImageManifest = { schemaVersion: 2, mediaType: MediaType.DockerManifest, config: config.desc, layers: [layer.desc] };
  const mb = encodeJSON(mdoc);
  return { layer, config, manifest: { desc: { mediaType: MediaType.DockerManifest, digest: sha256Digest(mb), size: mb.byteLength }, bytes: mb }, diffID };
}

const G = "\x1b[32m";
const R = "\x1b[0m";
/** A full bar as ctr draws it (green pluses), as a regexp source. */
const FULL = "\\|\\x1b\\[32m\\+{38}\\x1b\\[0m\\|";

describe("ctr progress display", () => {
  test("bars, keys and the totals line are ctr's", () => {
    expect(bar(1)).toBe(`|${G}++++++++++++++++++++++++++++++++++++++${R}|`);
    expect(bar(0)).toBe(`|${G}${R}${"-".repeat(38)}|`);
    expect(bar(0.5)).toBe(`|${G}${"+".repeat(19)}${R}${"-".repeat(19)}|`);
    expect(refKey({ mediaType: MediaType.DockerManifest, digest: "sha256:ab" })).toBe("manifest-sha256:ab");
    expect(refKey({ mediaType: "application/vnd.oci.image.index.v1+json", digest: "sha256:ab" })).toBe("index-sha256:ab");
    expect(refKey({ mediaType: MediaType.DockerLayerGzip, digest: "sha256:ab" })).toBe("layer-sha256:ab");
    expect(refKey({ mediaType: MediaType.DockerConfig, digest: "sha256:ab" })).toBe("config-sha256:ab");
    const s = displayStatuses(
      [
        { ref: "docker.io/library/busybox:latest", status: "resolved", offset: 0, total: 0 },
        { ref: "manifest-sha256:ab", status: "done", offset: 0, total: 0 },
      ],
      100,
    );
    // Go's tabwriter (minwidth 1, padding 1): the elapsed line shares the columns.
    expect(s).toBe(
      `docker.io/library/busybox:latest: resolved       |${G}++++++++++++++++++++++++++++++++++++++${R}| \n` +
        `manifest-sha256:ab:               done           |${G}++++++++++++++++++++++++++++++++++++++${R}| \n` +
        `elapsed: 0.1 s                    total:   0.0 B (0.0 B/s)                                         \n`,
    );
    const t = displayStatuses([{ ref: "x", status: "done", offset: 2 * 1024 * 1024, total: 2 * 1024 * 1024 }], 100);
    expect(t).toContain("total:  2.0 Mi");
    expect(t).toContain("(20.0 MiB/s)");
  });
});

describe.skipIf(!HAVE_REGISTRY || !!peerSkip)("ctr images push/pull against docker-registry and our containerd", () => {
  let host = "";
  const img = busyboxImage();
  const chainID = img.layerDigest; // one uncompressed layer

  beforeAll(async () => {
    if (!existsSync(OUR_CONTAINERD) || !existsSync(OUR_CTR)) throw new Error(`${BIN} missing: build with node_modules/.bin/bun run build.ts`);
    mkdirSync(dir, { recursive: true });
    host = await startRegistry();
    await startDaemon();
  }, 60_000);

  afterAll(async () => {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch {}
    }
    await Promise.all(children.map((c) => c.exited.catch(() => {})));
    const mounts = readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(dir)).reverse();
    for (const m of mounts) exec(["umount", "-l", m]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("push an imported image, remove it, pull it back: same digests, unpacked", async () => {
    const ref = `${host}/test/busybox:latest`;
    // The image comes in through our ctr's import (or the real one's, when ours has none).
    const imp = run(OUR_CTR, "p", "images", "import", img.archive);
    if (imp.code !== 0) ok(REAL_CTR, "p", "images", "import", img.archive);

    const push = ok(OUR_CTR, "p", "images", "push", "--plain-http", ref, BUSYBOX_REF);
    const pushFrame = lastFrame(push);
    expect(pushFrame).toMatch(new RegExp(`manifest-${img.manifestDigest}:\\s+done\\s+${FULL}`));
    expect(pushFrame).toMatch(new RegExp(`layer-${img.layerDigest}:\\s+done`));
    expect(pushFrame).toMatch(new RegExp(`config-${img.configDigest}:\\s+done`));
    expect(pushFrame).toMatch(/elapsed: \d+\.\d\s*s\s+total:/);

    const reg = new RegistryClient({ plainHttp: true, dockerConfigDir: false });
    expect((await reg.resolve(ref)).descriptor.digest).toBe(img.manifestDigest);

    // Pull into a fresh namespace: nothing there yet.
    const pull = ok(OUR_CTR, "q", "images", "pull", "--plain-http", ref);
    const frame = lastFrame(pull.slice(0, pull.indexOf("unpacking")));
    expect(frame).toMatch(new RegExp(`^${ref.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\s+resolved\\s+${FULL}`, "m"));
    expect(frame).toMatch(new RegExp(`manifest-${img.manifestDigest}:\\s+done\\s+${FULL}`));
    expect(frame).toMatch(/^elapsed: \d+\.\d\s*s\s+total:\s+\S+ \S+\s+\(.+\/s\)/m);
    expect(pull).toContain(`unpacking linux/${hostPlatform().architecture} ${img.manifestDigest}...\n`);
    expect(pull).toMatch(/done: \S+\t\n$/);

    const images = rows(ok(OUR_CTR, "q", "images", "ls"));
    expect(images.length).toBe(1);
    expect(images[0]![0]).toBe(ref);
    expect(images[0]![2]).toBe(img.manifestDigest);
    const content = ok(REAL_CTR, "q", "content", "ls");
    for (const dg of [img.manifestDigest, img.configDigest, img.layerDigest]) expect(content).toContain(dg);
    expect(content).toContain(`containerd.io/gc.ref.content.config=${img.configDigest}`);
    expect(content).toContain(`containerd.io/gc.ref.snapshot.overlayfs=${chainID}`);
    expect(rows(ok(REAL_CTR, "q", "snapshots", "ls"))).toContainEqual([chainID, "Committed"]);
    expect(snapshotHas("bin/busybox")).toBe(true);

    // rm, then pull again: blobs are still in the store ("exists" is fine), the image comes back.
    ok(OUR_CTR, "q", "images", "rm", ref);
    expect(rows(ok(OUR_CTR, "q", "images", "ls"))).toEqual([]);
    const again = ok(OUR_CTR, "q", "images", "pull", "--plain-http", "--print-chainid", ref);
    expect(again).toContain(`image chain ID: ${chainID}`);
    expect(rows(ok(OUR_CTR, "q", "images", "ls"))[0]![2]).toBe(img.manifestDigest);

    // content fetch: no unpack, the image is there.
    const fetched = ok(OUR_CTR, "f", "content", "fetch", "--plain-http", ref);
    expect(fetched).not.toContain("unpacking");
    expect(rows(ok(OUR_CTR, "f", "images", "ls"))[0]![2]).toBe(img.manifestDigest);
    expect(rows(ok(REAL_CTR, "f", "snapshots", "ls"))).toEqual([]);
  }, 120_000);

  test.skipIf(!HOST_AMD64)("a two-platform index: amd64 by default, arm64 with --platform", async () => {
    const ref = `${host}/test/multi:latest`;
    const reg = new RegistryClient({ plainHttp: true, dockerConfigDir: false });
    const amd = tiny("amd64");
    const arm = tiny("arm64");
    for (const t of [amd, arm]) {
      await reg.pushBlob(ref, t.layer.desc, t.layer.bytes);
      await reg.pushBlob(ref, t.config.desc, t.config.bytes);
      await reg.pushManifest(`${host}/test/multi@${t.manifest.desc.digest}`, t.manifest.bytes, MediaType.DockerManifest);
    }
    const index = encodeJSON({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [
        { ...amd.manifest.desc, platform: { architecture: "amd64", os: "linux" } },
        { ...arm.manifest.desc, platform: { architecture: "arm64", os: "linux" } },
      ],
    });
    const indexDigest = sha256Digest(index);
    await reg.pushManifest(ref, index, MediaType.DockerManifestList);

    const pull = ok(OUR_CTR, "m", "images", "pull", "--plain-http", ref);
    const frame = lastFrame(pull.slice(0, pull.indexOf("unpacking")));
    expect(frame).toContain(`index-${indexDigest}:`);
    expect(frame).toContain(`manifest-${amd.manifest.desc.digest}:`);
    expect(frame).not.toContain(arm.manifest.desc.digest);
    expect(pull).toContain(`unpacking linux/amd64 ${indexDigest}...`);
    let content = ok(REAL_CTR, "m", "content", "ls");
    expect(content).toContain(amd.layer.desc.digest);
    expect(content).not.toContain(arm.layer.desc.digest);
    expect(content).toContain(`containerd.io/gc.ref.content.m.0=${amd.manifest.desc.digest}`);
    expect(rows(ok(REAL_CTR, "m", "snapshots", "ls"))).toEqual([[amd.diffID, "Committed"]]);
    expect(snapshotHas("hello.txt", "hello from amd64\n")).toBe(true);

    const pullArm = ok(OUR_CTR, "m", "images", "pull", "--plain-http", "--platform", "linux/arm64", ref);
    expect(pullArm).toContain(`manifest-${arm.manifest.desc.digest}:`);
    expect(pullArm).toContain(`unpacking linux/arm64 ${indexDigest}...`);
    content = ok(REAL_CTR, "m", "content", "ls");
    expect(content).toContain(arm.layer.desc.digest);
    expect(rows(ok(REAL_CTR, "m", "snapshots", "ls"))).toContainEqual([arm.diffID, "Committed"]);
    expect(snapshotHas("hello.txt", "hello from arm64\n")).toBe(true);
    expect(rows(ok(OUR_CTR, "m", "images", "ls"))[0]![2]).toBe(indexDigest);

    // --all-platforms: both manifests fetched and unpacked.
    const all = ok(OUR_CTR, "all", "images", "pull", "--plain-http", "--all-platforms", ref);
    expect(all).toContain(`unpacking linux/amd64 ${indexDigest}...`);
    expect(all).toContain(`unpacking linux/arm64 ${indexDigest}...`);
    const snaps = rows(ok(REAL_CTR, "all", "snapshots", "ls"));
    expect(snaps).toContainEqual([amd.diffID, "Committed"]);
    expect(snaps).toContainEqual([arm.diffID, "Committed"]);
  }, 120_000);

  test.skipIf(!HOST_AMD64)("push --platform pushes that platform's manifest only", async () => {
    const ref = `${host}/test/armonly:v1`;
    // Namespace "all" holds both platforms of test/multi (the previous test).
    const push = ok(OUR_CTR, "all", "images", "push", "--plain-http", "--platform", "linux/arm64", ref, `${host}/test/multi:latest`);
    expect(push).not.toContain("index-");
    const reg = new RegistryClient({ plainHttp: true, dockerConfigDir: false });
    const d = (await reg.resolve(ref)).descriptor;
    expect(d.mediaType).toBe(MediaType.DockerManifest);
    expect((await reg.resolveImage(ref, "linux/arm64")).config.architecture).toBe("arm64");
  }, 60_000);

  test("--user authenticates against a registry with basic auth", async () => {
    const authHost = await startRegistry("registry-auth", { user: "alice", password: "s3cret" });
    const ref = `${authHost}/test/busybox:latest`;
    const denied = run(OUR_CTR, "p", "images", "push", "--plain-http", ref, BUSYBOX_REF);
    expect(denied.code).toBe(1);
    ok(OUR_CTR, "p", "images", "push", "--plain-http", "--user", "alice:s3cret", ref, BUSYBOX_REF);
    const pull = ok(OUR_CTR, "auth", "images", "pull", "--plain-http", "-u", "alice:s3cret", ref);
    expect(pull).toContain(`unpacking linux/${hostPlatform().architecture} ${img.manifestDigest}...`);
    expect(run(OUR_CTR, "auth2", "images", "pull", "--plain-http", ref).code).toBe(1);
  }, 60_000);

  test("a 9 MiB layer: pulled in many WRITE chunks, pushed to another repository (mounted or streamed)", async () => {
    const reg = new RegistryClient({ plainHttp: true, dockerConfigDir: false });
    const src = `${host}/test/big:v1`;
    const dst = `${host}/test/big-copy:v1`;
    let text = "";
    for (let i = 0; text.length < 9 * 1024 * 1024; i++) text += `${i.toString(36)}-${Math.random().toString(36)}\n`;
    const layerTar = tar({ "big.txt": text });
    const layer = { mediaType: "application/vnd.docker.image.rootfs.diff.tar", digest: sha256Digest(layerTar), size: layerTar.byteLength };
    const cb = encodeJSON({ architecture: hostPlatform().architecture, os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [layer.digest] } });
    const config = { mediaType: MediaType.DockerConfig, digest: sha256Digest(cb), size: cb.byteLength };
    const mb = encodeJSON({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers: [layer] });
    await reg.pushBlob(src, layer, layerTar);
    await reg.pushBlob(src, config, cb);
    await reg.pushManifest(src, mb, MediaType.DockerManifest);

    const pull = ok(OUR_CTR, "big", "images", "pull", "--plain-http", src);
    expect(lastFrame(pull.slice(0, pull.indexOf("unpacking")))).toMatch(new RegExp(`layer-${layer.digest}:\\s+done`));
    expect(snapshotHas("big.txt", new TextEncoder().encode(text).byteLength)).toBe(true);

    ok(OUR_CTR, "big", "images", "push", "--plain-http", dst, src);
    expect((await reg.resolve(dst)).descriptor.digest).toBe(sha256Digest(mb));
    expect(sha256Digest(await reg.readBlob(dst, layer))).toBe(layer.digest);

    // Labels cleared: no mount source, the blob is streamed to the registry in chunks.
    ok(REAL_CTR, "big", "content", "label", layer.digest, "containerd.io/distribution.source.127.0.0.1=");
    expect(ok(REAL_CTR, "big", "content", "ls").split("\n").find((l) => l.startsWith(layer.digest))).not.toContain("distribution.source");
    ok(OUR_CTR, "big", "images", "push", "--plain-http", `${host}/test/big-streamed:v1`, src);
    expect(sha256Digest(await reg.readBlob(`${host}/test/big-streamed:v1`, layer))).toBe(layer.digest);
  }, 120_000);

  // Content.Write streams into Go's gRPC server: its flow-control window grows while a stream is
  // open (core/h2/initial-window.ts). Uses test/busybox and test/big from the tests above.
  test.skipIf(!existsSync("/usr/bin/containerd"))("our ctr pulls into the REAL containerd (shared content store semantics) and pushes from it", async () => {
    const rd = join(dir, "real-containerd");
    mkdirSync(rd, { recursive: true });
    const sock = join(rd, "c.sock");
    writeFileSync(join(rd, "config.toml"), `version = 2\nroot = "${rd}/root"\nstate = "${rd}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n`);
    const fd = openSync(join(rd, "log"), "a");
    const proc = Bun.spawn(["/usr/bin/containerd", "--config", join(rd, "config.toml")], { stdin: "ignore", stdout: fd, stderr: fd });
    closeSync(fd);
    children.push(proc);
    try {
      expect(await waitFor(() => readFileSync(join(rd, "log"), "utf8").includes("successfully booted") || proc.exitCode !== null, 15_000, 20)).toBe(true);
      const on = (bin: string, ns: string, ...args: string[]) => {
        const r = exec([bin, "--address", sock, "-n", ns, ...args], { timeoutMs: 20_000 });
        if (r.code !== 0) throw new Error(`${bin} ${args.join(" ")} failed (${r.code}): ${r.stdout}\n${r.stderr}`);
        return r.stdout;
      };
      const ref = `${host}/test/busybox:latest`;
      // Twice in two namespaces: the second finds the blobs in the shared store (STAT offset = size).
      for (const ns of ["r1", "r2"]) {
        const out = on(OUR_CTR, ns, "images", "pull", "--plain-http", ref);
        expect(out).toContain(`unpacking linux/${hostPlatform().architecture} ${img.manifestDigest}...`);
        expect(rows(on(REAL_CTR, ns, "images", "ls"))[0]![2]).toBe(img.manifestDigest);
        expect(rows(on(REAL_CTR, ns, "snapshots", "ls"))).toContainEqual([chainID, "Committed"]);
        const content = on(REAL_CTR, ns, "content", "ls");
        expect(content).toContain(`containerd.io/gc.ref.content.config=${img.configDigest}`);
        expect(content).toContain(`containerd.io/gc.ref.snapshot.overlayfs=${chainID}`);
      }
      // The 9 MiB layer: nine 1 MiB WRITE messages on one stream.
      const reg = new RegistryClient({ plainHttp: true, dockerConfigDir: false });
      const big = await reg.resolveImage(`${host}/test/big:v1`);
      const bigLayer = big.manifest.manifest.layers[0]!;
      expect(bigLayer.size).toBeGreaterThan(9 << 20);
      expect(on(OUR_CTR, "r1", "images", "pull", "--plain-http", `${host}/test/big:v1`)).toContain(`unpacking linux/${hostPlatform().architecture} ${big.manifestDescriptor.digest}...`);
      expect(rows(on(REAL_CTR, "r1", "content", "ls")).find((r) => r[0] === bigLayer.digest)?.[1]).toBe(`${(bigLayer.size / 1e6).toPrecision(4)}MB`);
      expect(rows(on(REAL_CTR, "r1", "snapshots", "ls"))).toContainEqual([bigLayer.digest, "Committed"]);
      on(OUR_CTR, "r1", "images", "push", "--plain-http", `${host}/test/from-real:v1`, ref);
      expect((await reg.resolve(`${host}/test/from-real:v1`)).descriptor.digest).toBe(img.manifestDigest);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 120_000);

  test("a missing image fails as ctr fails", () => {
    const r = run(OUR_CTR, "e", "images", "pull", "--plain-http", `${host}/test/nope:latest`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ctr: failed to resolve reference "${host}/test/nope:latest"`);
    expect(r.stderr).toContain("not found");
    expect(rows(ok(OUR_CTR, "e", "images", "ls"))).toEqual([]);
  }, 60_000);

  test("a layer missing from the registry fails the pull; the unpack that runs alongside the fetch leaves nothing half-done", async () => {
    // Our ctr unpacks a layer as soon as it is stored, while later ones still download: when one
    // of them cannot be fetched, the pull fails with the fetch's error (not a hang waiting for
    // the layer), and no extraction snapshot is left active.
    const reg = new RegistryClient({ plainHttp: true, dockerConfigDir: false });
    const ref = `${host}/test/partial:v1`;
    const layers = [tar({ "one.txt": "one\n" }), tar({ "two.txt": "two\n".repeat(100_000) })];
    const descs = layers.map((b) => ({ mediaType: "application/vnd.docker.image.rootfs.diff.tar", digest: sha256Digest(b), size: b.byteLength }));
    const cfg = encodeJSON({ architecture: hostPlatform().architecture, os: "linux", rootfs: { type: "layers", diff_ids: descs.map((d) => d.digest) } });
    const cfgDesc = { mediaType: MediaType.DockerConfig, digest: sha256Digest(cfg), size: cfg.byteLength };
    for (let i = 0; i < layers.length; i++) await reg.pushBlob(ref, descs[i]!, layers[i]!);
    await reg.pushBlob(ref, cfgDesc, cfg);
    await reg.pushManifest(ref, encodeJSON({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config: cfgDesc, layers: descs }), MediaType.DockerManifest);
    const del = await fetch(`http://${host}/v2/test/partial/blobs/${descs[1]!.digest}`, { method: "DELETE" });
    expect(del.status).toBe(202);

    const r = run(OUR_CTR, "partial", "images", "pull", "--plain-http", ref);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/blob unknown|not found/);
    expect(rows(ok(OUR_CTR, "partial", "images", "ls"))).toEqual([]);
    const snaps = ok(REAL_CTR, "partial", "snapshots", "ls");
    expect(snaps).not.toContain("extract-");
    expect(snaps).not.toContain("Active");
  }, 60_000);

  test("Debian's real ctr pulls from the registry into our containerd and unpacks", () => {
    const ref = `${host}/test/busybox:latest`;
    const out = ok(REAL_CTR, "real", "images", "pull", "--plain-http", ref);
    expect(out).toContain(`unpacking linux/${hostPlatform().architecture} ${img.manifestDigest}...`);
    expect(rows(ok(REAL_CTR, "real", "images", "ls"))[0]![2]).toBe(img.manifestDigest);
    expect(rows(ok(REAL_CTR, "real", "snapshots", "ls"))).toContainEqual([chainID, "Committed"]);
    expect(snapshotHas("bin/busybox")).toBe(true);
  }, 120_000);
});
