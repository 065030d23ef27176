// Image archives against the REAL dockerd (Debian's docker.io 20.10, see test/peers.ts):
// `docker load` of a `docker save` archive written by exportArchive, and importArchive of what
// `docker save` writes (the old layout: <v1 id>/layer.tar, <config hex>.json, manifest.json).
// No container is run, so the runtime under test does not matter here.
import { afterAll, beforeAll, expect } from "bun:test";
import { join } from "node:path";
import { exportArchive, importArchive, MemoryBlobStore } from "../core/image/archive";
import { MediaType } from "../core/image/manifest";
import { BUSYBOX_REF, busyboxImage } from "./fixtures/busybox-image";
import { exec } from "./harness";
import { describePeer, ensurePeerPackages, ok, PeerSession, peerTest } from "./peers";

const skip = ensurePeerPackages(["containerd", "docker.io"], ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/dockerd", "/usr/bin/docker"]);

let s: PeerSession | undefined;
const S = () => s;

describePeer("image archives with the real dockerd", skip, () => {
  beforeAll(async () => {
    s = new PeerSession();
    try {
      await s.startDockerd();
    } catch (e) {
      s.cleanup();
      s = undefined;
      throw e;
    }
  }, 120_000);

  afterAll(() => {
    if (!s) return;
    const problems = s.cleanup();
    s = undefined;
    if (problems.length) throw new Error(`cleanup left:\n  ${problems.join("\n  ")}`);
  }, 60_000);

  peerTest(S, "docker load reads our docker-format export with the same digests", async () => {
    const img = busyboxImage();
    const store = new MemoryBlobStore();
    const r = await importArchive(Bun.file(img.archive).stream(), store);
    const out = join(s!.dir, "export-docker.tar");
    const w = Bun.file(out).writer();
    await exportArchive(
      [...r.images, { name: "example.com/team/bb:v1", target: r.images[0]!.target }],
      store,
      (c) => w.write(c),
      { format: "docker" },
    );
    await w.end();
    const load = ok(s!.docker(["load", "-i", out], { timeoutMs: 60_000 }), "docker load");
    expect(load).toContain("Loaded image: busybox:latest");
    expect(load).toContain("Loaded image: example.com/team/bb:v1");
    for (const ref of ["busybox:latest", "example.com/team/bb:v1"]) {
      const info = ok(s!.docker(["image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}}", ref]), "docker image inspect").trim();
      expect(info).toBe(`${img.configDigest} ${JSON.stringify([img.layerDigest])}`);
    }
  });

  peerTest(S, "importArchive reads what docker save writes", async () => {
    const img = busyboxImage();
    const out = join(s!.dir, "docker-save.tar");
    const have = s!.docker(["image", "inspect", "busybox:latest"]);
    if (have.code !== 0) ok(s!.docker(["load", "-i", img.archive], { timeoutMs: 60_000 }), "docker load");
    ok(s!.docker(["save", "-o", out, "busybox:latest"], { timeoutMs: 60_000 }), "docker save");
    const listing = ok(exec(["tar", "-tf", out]), "tar -tf");
    expect(listing).toMatch(/^[0-9a-f]{64}\/layer\.tar$/m);
    const store = new MemoryBlobStore();
    const r = await importArchive(Bun.file(out).stream(), store);
    expect(r.format).toBe("docker");
    expect(r.images.map((i) => i.name)).toEqual([BUSYBOX_REF]);
    const m = JSON.parse(new TextDecoder().decode(store.blobs.get(r.images[0]!.target.digest)!.data));
    expect(m.mediaType).toBe(MediaType.DockerManifest);
    expect(m.config.digest).toBe(img.configDigest);
    expect(m.layers).toEqual([{ mediaType: MediaType.DockerLayer, digest: img.layerDigest, size: expect.any(Number) }]);
  });
});
