// Our containerd killed with SIGKILL at random moments of an `images import` (with unpack) by the
// REAL ctr, then started again: what it lists must be whole (every blob's bytes match its
// digest, no ingest shows as a blob), the same import must then succeed and check complete, and
// once the dead client's leases and the image are removed, a synchronous GC must leave nothing:
// no blob, no snapshot, no snapshot directory, no ingest, no mount.
//
// The archive is made here: an OCI layout with a busybox layer and four layers of random data,
// gzip-compressed, so an import takes long enough to be cut at different stages.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { exec, rand, sleep, TMP_PREFIX, waitFor } from "./harness";
import { tarEntries } from "./fixtures/tiny-tar";
import { OurContainerd, REAL_CTR } from "./our-containerd";
import { ensurePeerPackages } from "./peers";

const peerSkip = ensurePeerPackages(["containerd"], [REAL_CTR]);
const NS = "crash";
const REF = "docker.io/library/crash:1";
const dir = `${TMP_PREFIX}${rand()}`;
const d = new OurContainerd();

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function buildArchive(): string {
  const layout = join(dir, "layout");
  const blobs = join(layout, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const put = (b: Uint8Array) => {
    const h = sha(b);
    writeFileSync(join(blobs, h), b);
    return { digest: `sha256:${h}`, size: b.byteLength };
  };
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  const addLayer = (files: { name: string; data: Uint8Array; mode?: number }[]) => {
    const raw = tarEntries(files);
    diffIds.push(`sha256:${sha(raw)}`);
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...put(gzipSync(raw, { level: 1 })) });
  };
  addLayer([{ name: "bin/busybox", data: readFileSync("/bin/busybox"), mode: 0o755 }]);
  for (let i = 0; i < 4; i++) addLayer(Array.from({ length: 4 }, (_, j) => ({ name: `data${i}/f${j}`, data: randomBytes(1 << 20) })));
  const config = put(Buffer.from(JSON.stringify({ architecture: process.arch === "arm64" ? "arm64" : "amd64", os: "linux", config: { Cmd: ["sh"] }, rootfs: { type: "layers", diff_ids: diffIds } })));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config }, layers }));
  const m = put(manifest);
  writeFileSync(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...m, annotations: { "io.containerd.image.name": REF } }] }));
  const archive = join(dir, "crash.tar");
  const r = exec(["tar", "-C", layout, "-cf", archive, "."]);
  if (r.code !== 0) throw new Error(`tar: ${r.stderr}`);
  return archive;
}

let archive = "";
beforeAll(async () => {
  if (peerSkip) return;
  mkdirSync(dir, { recursive: true });
  archive = buildArchive();
  await d.start();
}, 60_000);

afterAll(async () => {
  await d.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const ctr = (...args: string[]) => d.run(REAL_CTR, NS, args);
const ok = (...args: string[]) => d.runOk(REAL_CTR, NS, args);
const lines = (s: string) => s.split("\n").filter(Boolean);
const contentDir = () => join(d.root, "io.containerd.content.v1.content");
const snapshotDirs = () => {
  const p = join(d.root, "io.containerd.snapshotter.v1.overlayfs", "snapshots");
  return existsSync(p) ? readdirSync(p) : [];
};
const ingests = () => {
  const p = join(contentDir(), "ingest");
  return existsSync(p) ? readdirSync(p) : [];
};

describe.skipIf(!!peerSkip)("our containerd killed during an import", () => {
  // Kill points spread over the import: while blobs are written, while layers unpack, near the end.
  for (const delay of [150, 600, 1200, 2000]) {
    test(`SIGKILL after ${delay} ms: a whole store after restart, the import then completes, and GC leaves nothing`, async () => {
      const imp = Bun.spawn([REAL_CTR, "--address", d.address, "-n", NS, "images", "import", archive], { stdout: "ignore", stderr: "ignore" });
      await sleep(delay);
      await d.kill();
      // containerd's client waits for a connection to come back (WaitForReady) when a call starts
      // after the crash; the import may then carry on against the restarted daemon, or fail. Either
      // way it must end; a client still stuck after 30 s is killed (it's the daemon under test).
      await d.start();
      const ended = await Promise.race([imp.exited.then(() => true), sleep(30_000).then(() => false)]);
      if (!ended) {
        imp.kill("SIGKILL");
        await imp.exited;
      }

      for (const dg of lines(ok("content", "ls", "-q"))) {
        const bytes = readFileSync(join(contentDir(), "blobs", "sha256", dg.replace("sha256:", "")));
        expect(`sha256:${sha(bytes)}`).toBe(dg);
      }

      ok("images", "import", archive);
      const check = ok("images", "check");
      expect(check).toContain(REF);
      expect(check).toMatch(/complete \(6\/6\)/);

      // The killed client's lease (ctr's leases last a day) holds what it made: drop it as an
      // operator would, then the image, and collect.
      for (const l of lines(ok("leases", "ls", "-q"))) ok("leases", "rm", "--sync", l);
      ok("images", "rm", "--sync", REF);
      expect(lines(ok("content", "ls", "-q"))).toEqual([]);
      expect(await waitFor(() => lines(ok("snapshots", "ls")).length <= 1, 5000)).toBe(true);
      expect(snapshotDirs()).toEqual([]);
      expect(ingests()).toEqual([]);
      expect(readFileSync("/proc/self/mounts", "utf8")).not.toContain(d.root);
    }, 120_000);
  }
});
