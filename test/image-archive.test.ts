// Image archives (core/image/archive.ts): import of OCI layout tars and `docker save` archives
// (written by the fixture and by Debian's skopeo, an independent implementation), export in both
// formats read back by skopeo, hostile archives, and flat memory for a 200 MB layer.
//
// Needs skopeo (apt-get install skopeo); the skopeo tests are skipped without it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArchiveError, exportArchive, importArchive, importRootfsTar, MemoryBlobStore, type ArchiveImage } from "../core/image/archive";
import { MediaType } from "../core/image/manifest";
import { encodeHeader, END_OF_ARCHIVE, paddingFor } from "../core/image/tar";
import { BUSYBOX_REF, busyboxImage, type BusyboxImage } from "./fixtures/busybox-image";
import { busyboxRootfs, exec } from "./harness";

const SKOPEO = ["/usr/bin/skopeo", "/usr/local/bin/skopeo"].find((p) => existsSync(p));
const BUN = join(import.meta.dir, "../node_modules/.bin/bun");

let dir: string;
let img: BusyboxImage;
let ociDir: string;

function sh(argv: string[], timeoutMs = 120_000): string {
  const r = exec(argv, { timeoutMs });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
function sha(data: Uint8Array | string): string {
  return "sha256:" + new Bun.CryptoHasher("sha256").update(data).digest("hex");
}
function fileStream(path: string): ReadableStream<Uint8Array> {
  return Bun.file(path).stream();
}
function json(store: MemoryBlobStore, digest: string): any {
  const b = store.blobs.get(digest);
  if (!b) throw new Error(`no blob ${digest}`);
  return JSON.parse(new TextDecoder().decode(b.data));
}
async function exportTo(path: string, images: ArchiveImage[], store: MemoryBlobStore, format: "oci" | "docker") {
  const w = Bun.file(path).writer();
  await exportArchive(images, store, (c) => w.write(c), { format });
  await w.end();
}
/** A tar from [name, content] pairs, written with our encoder (which does not judge names). */
function tarOf(entries: [string, Uint8Array | string][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, content] of entries) {
    const data = typeof content === "string" ? new TextEncoder().encode(content) : content;
    parts.push(encodeHeader({ name, type: "file", mode: 0o644, size: data.byteLength }), data, paddingFor(data.byteLength));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

beforeAll(() => {
  img = busyboxImage();
  dir = mkdtempSync("/tmp/bunker-test-archive-");
  ociDir = join(dir, "oci");
  mkdirSync(ociDir);
  sh(["tar", "-C", ociDir, "-xf", img.archive]);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Checks the busybox image landed in the store, and returns its manifest. */
function checkBusybox(store: MemoryBlobStore, target: string): any {
  const m = json(store, target);
  expect(m.config.digest).toBe(img.configDigest);
  expect(m.layers.map((l: any) => l.digest)).toEqual([img.layerDigest]);
  for (const d of [target, img.configDigest, img.layerDigest]) expect(sha(store.blobs.get(d)!.data)).toBe(d);
  return m;
}

describe("import", () => {
  test("the fixture archive (OCI layout + manifest.json): OCI wins, names from annotations", async () => {
    const store = new MemoryBlobStore();
    const r = await importArchive(fileStream(img.archive), store);
    expect(r.format).toBe("oci");
    expect(r.images).toHaveLength(1);
    expect(r.images[0]!.name).toBe(BUSYBOX_REF);
    expect(r.images[0]!.target.digest).toBe(img.manifestDigest);
    checkBusybox(store, img.manifestDigest);
  });

  test.skipIf(!SKOPEO)("skopeo's oci-archive", async () => {
    const out = join(dir, "skopeo-oci.tar");
    sh([SKOPEO!, "copy", `oci:${ociDir}`, `oci-archive:${out}:busybox:latest`]);
    const raw = sh([SKOPEO!, "inspect", "--raw", `oci-archive:${out}`]);
    const store = new MemoryBlobStore();
    const r = await importArchive(fileStream(out), store);
    expect(r.format).toBe("oci");
    expect(r.images.map((i) => i.name)).toEqual([BUSYBOX_REF]);
    expect(r.images[0]!.target.digest).toBe(sha(raw));
    // skopeo gzips layers for OCI destinations: the same config, a gzip layer of the same tar.
    const m = json(store, sha(raw));
    expect(m.config.digest).toBe(img.configDigest);
    expect(m.layers).toHaveLength(1);
    expect(m.layers[0].mediaType).toBe(MediaType.OCILayerGzip);
    const gz = store.blobs.get(m.layers[0].digest)!.data;
    expect(sha(gz)).toBe(m.layers[0].digest);
    expect(sha(Bun.gunzipSync(new Uint8Array(gz)))).toBe(img.layerDigest);
    expect(JSON.parse(raw).layers[0].digest).toBe(m.layers[0].digest);
  });

  test.skipIf(!SKOPEO)("skopeo's docker-archive: converted to a Docker schema2 manifest", async () => {
    const out = join(dir, "skopeo-docker.tar");
    sh([SKOPEO!, "copy", `oci:${ociDir}`, `docker-archive:${out}:busybox:latest`]);
    const store = new MemoryBlobStore();
    const r = await importArchive(fileStream(out), store);
    expect(r.format).toBe("docker");
    expect(r.images.map((i) => i.name)).toEqual([BUSYBOX_REF]);
    const t = r.images[0]!.target;
    expect(t.mediaType).toBe(MediaType.DockerManifest);
    const m = checkBusybox(store, t.digest);
    expect(m.mediaType).toBe(MediaType.DockerManifest);
    expect(m.config.mediaType).toBe(MediaType.DockerConfig);
    expect(m.layers[0].mediaType).toBe(MediaType.DockerLayer);
    // skopeo's own view of the archive names the same config and layer.
    const raw = JSON.parse(sh([SKOPEO!, "inspect", "--raw", `docker-archive:${out}`]));
    expect(raw.config.digest).toBe(img.configDigest);
    expect(raw.layers.map((l: any) => l.digest)).toEqual([img.layerDigest]);
  });

  test("docker 25+ archive without names in index.json: names from manifest.json; ref.name as a bare tag", async () => {
    const files: [string, Uint8Array | string][] = [];
    for (const name of readdirSync(join(ociDir, "blobs/sha256"))) files.push([`blobs/sha256/${name}`, readFileSync(join(ociDir, "blobs/sha256", name))]);
    const index = JSON.parse(readFileSync(join(ociDir, "index.json"), "utf8"));
    index.manifests[0].annotations = { "org.opencontainers.image.ref.name": "latest" };
    const manifestJson = readFileSync(join(ociDir, "manifest.json"));
    const withIndex = (mj: boolean) => tarOf([["index.json", JSON.stringify(index)], ...(mj ? [["manifest.json", manifestJson] as [string, Uint8Array]] : []), ["oci-layout", '{"imageLayoutVersion":"1.0.0"}'], ...files]);
    let r = await importArchive(new Blob([withIndex(true)]).stream(), new MemoryBlobStore());
    expect(r.format).toBe("oci");
    expect(r.images.map((i) => [i.name, i.target.digest])).toEqual([[BUSYBOX_REF, img.manifestDigest]]);
    expect(r.index.manifests[0]!.annotations).toEqual({ "io.containerd.image.name": BUSYBOX_REF });
    r = await importArchive(new Blob([withIndex(false)]).stream(), new MemoryBlobStore());
    expect(r.images.map((i) => i.name)).toEqual([""]);
    r = await importArchive(new Blob([withIndex(false)]).stream(), new MemoryBlobStore(), { baseName: "example.com/x/y" });
    expect(r.images.map((i) => i.name)).toEqual(["example.com/x/y:latest"]);
    // manifest.json alone, pointing into blobs/ (members in another order): the docker path.
    const store = new MemoryBlobStore();
    r = await importArchive(new Blob([tarOf([["manifest.json", manifestJson], ...files.reverse()])]).stream(), store);
    expect(r.format).toBe("docker");
    expect(r.images.map((i) => i.name)).toEqual([BUSYBOX_REF]);
    checkBusybox(store, r.images[0]!.target.digest);
  });

  test("a gzip-compressed archive (docker save | gzip)", async () => {
    const r = await importArchive(new Blob([Bun.gzipSync(readFileSync(img.archive))]).stream(), new MemoryBlobStore());
    expect(r.images.map((i) => [i.name, i.target.digest])).toEqual([[BUSYBOX_REF, img.manifestDigest]]);
  });

  test("a plain rootfs tarball (docker import), gzip-compressed", async () => {
    const rootfsTar = join(dir, "rootfs.tar.gz");
    sh(["tar", "-C", busyboxRootfs(), "-czf", rootfsTar, "."]);
    const store = new MemoryBlobStore();
    const r = await importRootfsTar(fileStream(rootfsTar), store, { ref: "myimg", config: { Cmd: ["sh"] } });
    expect(r.name).toBe("docker.io/library/myimg:latest");
    const m = json(store, r.target.digest);
    expect(m.layers[0].mediaType).toBe(MediaType.DockerLayer);
    const cfg = json(store, m.config.digest);
    expect(cfg.rootfs.diff_ids).toEqual([m.layers[0].digest]);
    expect(cfg.config.Cmd).toEqual(["sh"]);
    const plain = Bun.gunzipSync(readFileSync(rootfsTar));
    expect(m.layers[0].digest).toBe(sha(plain));
    await expect(importRootfsTar(new Blob(["not a tar at all"]).stream(), new MemoryBlobStore(), { ref: "x" })).rejects.toThrow();
  });
});

describe("export", () => {
  async function loaded(): Promise<{ store: MemoryBlobStore; images: ArchiveImage[] }> {
    const store = new MemoryBlobStore();
    const r = await importArchive(fileStream(img.archive), store);
    return { store, images: r.images };
  }

  test.skipIf(!SKOPEO)("OCI layout: skopeo reads the same manifest, config and layer", async () => {
    const { store, images } = await loaded();
    const out = join(dir, "export-oci.tar");
    await exportTo(out, images, store, "oci");
    const raw = sh([SKOPEO!, "inspect", "--raw", `oci-archive:${out}`]);
    expect(sha(raw)).toBe(img.manifestDigest);
    const copy = join(dir, "copy-oci");
    sh([SKOPEO!, "copy", `oci-archive:${out}:latest`, `dir:${copy}`]);
    const names = readdirSync(copy).sort();
    expect(names).toContain(img.configDigest.slice(7));
    expect(names).toContain(img.layerDigest.slice(7));
    expect(sha(readFileSync(join(copy, img.layerDigest.slice(7))))).toBe(img.layerDigest);
    // And it reads back through our importer with the names.
    const again = await importArchive(fileStream(out), new MemoryBlobStore());
    expect(again.images.map((i) => [i.name, i.target.digest])).toEqual([[BUSYBOX_REF, img.manifestDigest]]);
    const index = JSON.parse(sh(["tar", "-xOf", out, "index.json"]));
    expect(index.manifests[0].annotations).toEqual({ "io.containerd.image.name": BUSYBOX_REF, "org.opencontainers.image.ref.name": "latest" });
  });

  test.skipIf(!SKOPEO)("docker save format: skopeo reads the same config and layer; old layout re-imports", async () => {
    const { store, images } = await loaded();
    const out = join(dir, "export-docker.tar");
    await exportTo(out, images, store, "docker");
    const listing = sh(["tar", "-tf", out]).split("\n").filter(Boolean);
    const layerDir = img.layerDigest.slice(7);
    expect(listing).toEqual(expect.arrayContaining([`${layerDir}/layer.tar`, `${layerDir}/VERSION`, `${layerDir}/json`, `${img.configDigest.slice(7)}.json`, "manifest.json", "repositories"]));
    const manifest = JSON.parse(sh(["tar", "-xOf", out, "manifest.json"]));
    expect(manifest).toEqual([{ Config: `${img.configDigest.slice(7)}.json`, RepoTags: ["busybox:latest"], Layers: [`${layerDir}/layer.tar`] }]);
    expect(JSON.parse(sh(["tar", "-xOf", out, "repositories"]))).toEqual({ busybox: { latest: layerDir } });

    const raw = JSON.parse(sh([SKOPEO!, "inspect", "--raw", `docker-archive:${out}`]));
    expect(raw.config.digest).toBe(img.configDigest);
    expect(raw.layers.map((l: any) => l.digest)).toEqual([img.layerDigest]);
    const info = JSON.parse(sh([SKOPEO!, "inspect", `docker-archive:${out}`]));
    expect(info.RepoTags ?? []).toBeDefined();
    const copy = join(dir, "copy-docker");
    sh([SKOPEO!, "copy", `docker-archive:${out}`, `dir:${copy}`]);
    expect(sha(readFileSync(join(copy, img.layerDigest.slice(7))))).toBe(img.layerDigest);

    // Our importer reads the old (docker 20.10) layout back.
    const s2 = new MemoryBlobStore();
    const r = await importArchive(fileStream(out), s2);
    expect(r.format).toBe("docker");
    expect(r.images.map((i) => i.name)).toEqual([BUSYBOX_REF]);
    checkBusybox(s2, r.images[0]!.target.digest);
  });

  test.skipIf(!SKOPEO)("a multi-platform index: one platform by default or chosen, or all of them (OCI)", async () => {
    const { store } = await loaded();
    const cfgA = readFileSync(join(ociDir, "blobs/sha256", img.configDigest.slice(7)));
    const manA = readFileSync(join(ociDir, "blobs/sha256", img.manifestDigest.slice(7)));
    const other = process.arch === "arm64" ? "amd64" : "arm64";
    const cfgB = new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(cfgA)), architecture: other }));
    await store.write({ mediaType: MediaType.OCIConfig, digest: sha(cfgB), size: cfgB.byteLength }, cfgB);
    const mB = JSON.parse(new TextDecoder().decode(manA));
    mB.config = { ...mB.config, digest: sha(cfgB), size: cfgB.byteLength };
    const manB = new TextEncoder().encode(JSON.stringify(mB));
    await store.write({ mediaType: MediaType.OCIManifest, digest: sha(manB), size: manB.byteLength }, manB);
    const hostArch = JSON.parse(new TextDecoder().decode(cfgA)).architecture;
    const idx = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OCIIndex,
        manifests: [
          { mediaType: MediaType.OCIManifest, digest: sha(manB), size: manB.byteLength, platform: { os: "linux", architecture: other } },
          { mediaType: MediaType.OCIManifest, digest: img.manifestDigest, size: manA.byteLength, platform: { os: "linux", architecture: hostArch } },
        ],
      }),
    );
    await store.write({ mediaType: MediaType.OCIIndex, digest: sha(idx), size: idx.byteLength }, idx);
    const images = [{ name: "docker.io/library/multi:1", target: { mediaType: MediaType.OCIIndex, digest: sha(idx), size: idx.byteLength } }];

    const one = join(dir, "multi-one.tar");
    const w1 = Bun.file(one).writer();
    await exportArchive(images, store, (c) => w1.write(c), { format: "oci" });
    await w1.end();
    expect(sha(sh([SKOPEO!, "inspect", "--raw", `oci-archive:${one}`]))).toBe(img.manifestDigest);

    const all = join(dir, "multi-all.tar");
    const w2 = Bun.file(all).writer();
    await exportArchive(images, store, (c) => w2.write(c), { format: "oci", allPlatforms: true });
    await w2.end();
    expect(sha(sh([SKOPEO!, "inspect", "--raw", `oci-archive:${all}`]))).toBe(sha(idx));
    const r = await importArchive(fileStream(all), new MemoryBlobStore());
    expect(r.images.map((i) => [i.name, i.target.digest])).toEqual([["docker.io/library/multi:1", sha(idx)]]);

    const dk = join(dir, "multi-docker.tar");
    const w3 = Bun.file(dk).writer();
    await exportArchive(images, store, (c) => w3.write(c), { format: "docker", platform: `linux/${other}` });
    await w3.end();
    const raw = JSON.parse(sh([SKOPEO!, "inspect", "--raw", `docker-archive:${dk}`]));
    expect(raw.config.digest).toBe(sha(cfgB));
  });

  test("a gzip layer is written uncompressed in docker format (diff id checked)", async () => {
    const layer = readFileSync(join(ociDir, "blobs/sha256", img.layerDigest.slice(7)));
    const gz = Bun.gzipSync(layer);
    const cfg = readFileSync(join(ociDir, "blobs/sha256", img.configDigest.slice(7)));
    const store = new MemoryBlobStore();
    await store.write({ mediaType: MediaType.OCILayerGzip, digest: sha(gz), size: gz.byteLength }, gz);
    await store.write({ mediaType: MediaType.OCIConfig, digest: sha(cfg), size: cfg.byteLength }, cfg);
    const m = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OCIManifest, config: { mediaType: MediaType.OCIConfig, digest: sha(cfg), size: cfg.byteLength }, layers: [{ mediaType: MediaType.OCILayerGzip, digest: sha(gz), size: gz.byteLength }] }),
    );
    await store.write({ mediaType: MediaType.OCIManifest, digest: sha(m), size: m.byteLength }, m);
    const chunks: Uint8Array[] = [];
    const ws = new WritableStream<Uint8Array>({ write: (c) => void chunks.push(new Uint8Array(c)) });
    await exportArchive([{ name: "docker.io/library/gz:1", target: { mediaType: MediaType.OCIManifest, digest: sha(m), size: m.byteLength } }], store, ws, { format: "docker" });
    const s2 = new MemoryBlobStore();
    const r = await importArchive(new Blob([Buffer.concat(chunks)]).stream(), s2);
    expect(r.images[0]!.name).toBe("docker.io/library/gz:1");
    expect(json(s2, r.images[0]!.target.digest).layers[0].digest).toBe(img.layerDigest);
  });
});

describe("hostile archives", () => {
  const ociFiles = () => {
    const f: [string, Uint8Array | string][] = [["oci-layout", '{"imageLayoutVersion":"1.0.0"}']];
    for (const name of readdirSync(join(ociDir, "blobs/sha256"))) f.push([`blobs/sha256/${name}`, readFileSync(join(ociDir, "blobs/sha256", name))]);
    f.push(["index.json", readFileSync(join(ociDir, "index.json"))]);
    return f;
  };

  test("sanity: the hand-built OCI tar imports", async () => {
    const r = await importArchive(new Blob([tarOf(ociFiles())]).stream(), new MemoryBlobStore());
    expect(r.images[0]!.target.digest).toBe(img.manifestDigest);
  });

  test("a member path with ../ is refused", async () => {
    const files = ociFiles();
    files.splice(1, 0, ["../x", "evil"]);
    await expect(importArchive(new Blob([tarOf(files)]).stream(), new MemoryBlobStore())).rejects.toThrow(/escapes the archive/);
    await expect(importArchive(new Blob([tarOf([["blobs/sha256/../../../x", "evil"]])]).stream(), new MemoryBlobStore())).rejects.toThrow(/escapes the archive/);
    await expect(importArchive(new Blob([tarOf([["/etc/x", "evil"]])]).stream(), new MemoryBlobStore())).rejects.toThrow(/absolute/);
  });

  test("a docker manifest.json layer path with ../ is refused", async () => {
    const cfg = readFileSync(join(ociDir, "blobs/sha256", img.configDigest.slice(7)));
    const t = tarOf([
      ["c.json", cfg],
      ["manifest.json", JSON.stringify([{ Config: "c.json", RepoTags: ["x:y"], Layers: ["../../etc/passwd"] }])],
    ]);
    await expect(importArchive(new Blob([t]).stream(), new MemoryBlobStore())).rejects.toThrow(/escapes the archive/);
  });

  test("a manifest naming a missing blob is refused, and nothing is named", async () => {
    const files = ociFiles().filter(([n]) => n !== `blobs/sha256/${img.layerDigest.slice(7)}`);
    await expect(importArchive(new Blob([tarOf(files)]).stream(), new MemoryBlobStore())).rejects.toThrow(/layer sha256:[a-f0-9]+ is referenced but missing/);
    const cfg = readFileSync(join(ociDir, "blobs/sha256", img.configDigest.slice(7)));
    const t = tarOf([
      ["c.json", cfg],
      ["manifest.json", JSON.stringify([{ Config: "c.json", RepoTags: ["x:y"], Layers: ["nothere/layer.tar"] }])],
    ]);
    await expect(importArchive(new Blob([t]).stream(), new MemoryBlobStore())).rejects.toThrow(/missing from the archive/);
  });

  test("a blob whose digest does not match is refused (small and streamed)", async () => {
    const files = ociFiles().map(([n, d]): [string, Uint8Array | string] => {
      if (n !== `blobs/sha256/${img.configDigest.slice(7)}`) return [n, d];
      const b = new Uint8Array(d as Uint8Array);
      b[b.length - 2] = b[b.length - 2]! ^ 1;
      return [n, b];
    });
    await expect(importArchive(new Blob([tarOf(files)]).stream(), new MemoryBlobStore())).rejects.toThrow(/digest mismatch/);
    // A big blob (streamed to the sink): the sink's stream errors, nothing is stored.
    const big = new Uint8Array(6 << 20);
    const wrong = sha(new Uint8Array(6 << 20).fill(1));
    const store = new MemoryBlobStore();
    await expect(importArchive(new Blob([tarOf([[`blobs/sha256/${wrong.slice(7)}`, big]])]).stream(), store)).rejects.toThrow(/digest mismatch/);
    expect(store.blobs.size).toBe(0);
    // A docker layer whose content does not match the config's diff id.
    const cfg = readFileSync(join(ociDir, "blobs/sha256", img.configDigest.slice(7)));
    const t = tarOf([
      ["l/layer.tar", "not the layer"],
      ["c.json", cfg],
      ["manifest.json", JSON.stringify([{ Config: "c.json", RepoTags: ["x:y"], Layers: ["l/layer.tar"] }])],
    ]);
    await expect(importArchive(new Blob([t]).stream(), new MemoryBlobStore())).rejects.toThrow(/does not match the config's diff id/);
  });

  test("not an archive of images", async () => {
    await expect(importArchive(new Blob([tarOf([["hello", "x"]])]).stream(), new MemoryBlobStore())).rejects.toBeInstanceOf(ArchiveError);
  });
});

describe("memory", () => {
  function run(layout: string, mib: number): { hwm: number; layer: number } {
    const out = sh([BUN, join(import.meta.dir, "image-archive-memory-child.ts"), layout, String(mib), dir], 120_000);
    return JSON.parse(out.trim().split("\n").pop()!);
  }
  for (const layout of ["docker", "oci"]) {
    test(`flat for a 200 MB layer (${layout} layout)`, () => {
      const small = run(layout, 10);
      const big = run(layout, 200);
      expect(big.layer).toBe(200 * 1024 * 1024);
      // 190 MB more layer may cost a little (GC timing), not the layer.
      expect(big.hwm - small.hwm).toBeLessThan(64 * 1024 * 1024);
    }, 120_000);
  }
});
