// `ctr images import` against OUR containerd, driven by Debian's REAL ctr 1.6.20: the content
// store (Write/Info/Read/Update/List/Delete/ListStatuses), the metadata snapshotter (overlayfs
// and native) and the diff service's Apply. Plus the local content store on its own (locks,
// resumed ingests, digest verification before the rename).
//
// Every daemon gets its own /tmp/bunker-test-<rand>/, removed afterwards; mounts made here are
// unmounted in finally blocks.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { exec, type ExecResult, rand, TMP_PREFIX, waitFor } from "./harness";
import { OUR_CONTAINERD, OUR_CTR, OurContainerd, REAL_CTR } from "./our-containerd";
import { ensurePeerPackages } from "./peers";
import { busyboxImage, BUSYBOX_REF } from "./fixtures/busybox-image";
import { ContentStore } from "../core/content/store";
import { codeOf, Code } from "../core/containerd/errdefs";

const peerSkip = ensurePeerPackages(["containerd"], [REAL_CTR]);

class Daemon extends OurContainerd {
  ctr(ns: string, ...args: string[]): ExecResult {
    return this.run(REAL_CTR, ns, args);
  }
  ok(ns: string, ...args: string[]): string {
    return this.runOk(REAL_CTR, ns, args);
  }
}

const rows = (out: string) => out.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/));

describe("real ctr images import against our containerd", () => {
  let d: Daemon;
  const img = busyboxImage();
  // One uncompressed layer: its chain ID is its diffID is its digest.
  const chainID = img.layerDigest;

  beforeAll(async () => {
    if (!existsSync(OUR_CONTAINERD)) throw new Error(`${OUR_CONTAINERD} missing: build with node_modules/.bin/bun run build.ts`);
    d = new Daemon();
    await d.start();
  }, 30_000);

  afterAll(async () => {
    await d?.cleanup();
  });

  test.skipIf(!!peerSkip)("plugins ls lists the content store, both snapshotters, the differ and their services", () => {
    const out = d.ok("default", "plugins", "ls");
    for (const re of [/io\.containerd\.content\.v1\s+content\s+.*ok/, /io\.containerd\.snapshotter\.v1\s+overlayfs\s+.*ok/, /io\.containerd\.snapshotter\.v1\s+native\s+.*ok/, /io\.containerd\.differ\.v1\s+walking\s+.*ok/, /io\.containerd\.grpc\.v1\s+content\s+.*ok/, /io\.containerd\.grpc\.v1\s+snapshots\s+.*ok/, /io\.containerd\.grpc\.v1\s+diff\s+.*ok/]) {
      expect(out).toMatch(re);
    }
  });

  test.skipIf(!!peerSkip)("import, then images ls / content ls / snapshots ls show what containerd shows", () => {
    const out = d.ok("imp", "images", "import", img.archive);
    expect(out).toContain(`unpacking ${BUSYBOX_REF} (${img.manifestDigest})...done`);

    const images = rows(d.ok("imp", "images", "ls"));
    expect(images.length).toBe(1);
    const [ref, type, digest, size, unit, platforms] = images[0]!;
    expect(ref).toBe(BUSYBOX_REF);
    expect(type).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(digest).toBe(img.manifestDigest);
    expect(Number(size)).toBeGreaterThan(0);
    expect(unit).toMatch(/^(KiB|MiB)$/);
    expect(platforms).toBe("linux/amd64");

    const content = d.ok("imp", "content", "ls");
    for (const dg of [img.manifestDigest, img.configDigest, img.layerDigest]) expect(content).toContain(dg);
    // ctr's gc labels were set through Content.Update
    expect(content).toContain(`containerd.io/gc.ref.content.config=${img.configDigest}`);
    expect(content).toContain(`containerd.io/gc.ref.snapshot.overlayfs=${chainID}`);

    const snaps = rows(d.ok("imp", "snapshots", "ls"));
    expect(snaps).toEqual([[chainID, "Committed"]]);
    const info = JSON.parse(d.ok("imp", "snapshots", "info", chainID));
    expect(info.Kind).toBe("Committed");
    expect(info.Name).toBe(chainID);

    // Blobs on disk in containerd's layout; no ingest left behind.
    const cs = join(d.root, "io.containerd.content.v1.content");
    for (const dg of [img.manifestDigest, img.configDigest, img.layerDigest]) expect(existsSync(join(cs, "blobs", "sha256", dg.slice(7)))).toBe(true);
    expect(readdirSync(join(cs, "ingest"))).toEqual([]);

    // Another namespace sees none of it.
    expect(rows(d.ok("other", "images", "ls"))).toEqual([]);
    expect(rows(d.ok("other", "content", "ls"))).toEqual([]);
    expect(rows(d.ok("other", "snapshots", "ls"))).toEqual([]);
  }, 60_000);

  test.skipIf(!!peerSkip)("the layer is really unpacked: the committed snapshot holds bin/busybox, an overlay on it shows it", () => {
    d.ok("imp", "snapshots", "view", "v1", chainID);
    const view = d.ok("imp", "snapshots", "mounts", "/MNT", "v1").trim();
    expect(view).toMatch(/^mount -t bind (\S+) \/MNT -o ro,rbind$/);
    const src = /^mount -t bind (\S+)/.exec(view)![1]!;
    expect(statSync(join(src, "bin", "busybox")).isFile()).toBe(true);
    expect(statSync(join(src, "bin", "busybox")).size).toBeGreaterThan(100_000);

    d.ok("imp", "snapshots", "prepare", "k1", chainID);
    const cmd = d.ok("imp", "snapshots", "mounts", "/MNT", "k1").trim();
    expect(cmd).toMatch(/^mount -t overlay overlay \/MNT -o .*upperdir=.*lowerdir=/);
    const opts = / -o (\S+)$/.exec(cmd)![1]!;
    const mnt = mkdtempSync(join(d.dir, "mnt-"));
    const m = exec(["mount", "-t", "overlay", "overlay", mnt, "-o", opts]);
    expect(m.stderr).toBe("");
    try {
      expect(existsSync(join(mnt, "bin", "busybox"))).toBe(true);
      expect(exec([join(mnt, "bin", "busybox"), "true"]).code).toBe(0);
    } finally {
      exec(["umount", mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
    expect(rows(d.ok("imp", "snapshots", "ls")).map((r) => r[0]).sort()).toEqual(["k1", chainID, "v1"].sort());
    // containerd's refusal and error texts
    const rm = d.ctr("imp", "snapshots", "rm", chainID);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain("cannot remove snapshot with child: failed precondition");
    d.ok("imp", "snapshots", "rm", "k1", "v1");
    const usage = d.ok("imp", "snapshots", "usage", chainID);
    expect(usage).toMatch(/MiB\s+\d+/);
    expect(rows(d.ok("imp", "snapshots", "ls"))).toEqual([[chainID, "Committed"]]);
  }, 60_000);

  test.skipIf(!!peerSkip)("snapshots diff: an active overlay snapshot's changes as a layer in the content store", () => {
    d.ok("imp", "snapshots", "prepare", "k2", chainID);
    const opts = / -o (\S+)$/.exec(d.ok("imp", "snapshots", "mounts", "/MNT", "k2").trim())![1]!;
    const mnt = mkdtempSync(join(d.dir, "mnt-"));
    expect(exec(["mount", "-t", "overlay", "overlay", mnt, "-o", opts]).code).toBe(0);
    try {
      writeFileSync(join(mnt, "newfile"), "hi\n");
      rmSync(join(mnt, "bin", "ls"));
    } finally {
      exec(["umount", mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
    const list = exec(["sh", "-c", `${REAL_CTR} --address ${d.address} -n imp snapshots diff --media-type application/vnd.oci.image.layer.v1.tar k2 | tar t`]);
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split("\n").sort()).toEqual(["bin/", "bin/.wh.ls", "newfile"]);
    // the gzip default, committed and then read back by ctr
    const gz = exec(["sh", "-c", `${REAL_CTR} --address ${d.address} -n imp snapshots diff k2 | tar tz`]);
    expect(gz.stdout).toContain("newfile");
    expect(d.ok("imp", "content", "ls")).toContain("containerd.io/uncompressed=sha256:");
    d.ok("imp", "snapshots", "rm", "k2");
  }, 60_000);

  test.skipIf(!!peerSkip)("import again is a no-op; another namespace with the native snapshotter shares the blobs", () => {
    d.ok("imp", "images", "import", img.archive);
    expect(rows(d.ok("imp", "images", "ls")).length).toBe(1);
    d.ok("nat", "images", "import", "--snapshotter", "native", img.archive);
    expect(rows(d.ok("nat", "images", "ls"))[0]![0]).toBe(BUSYBOX_REF);
    expect(rows(d.ok("nat", "snapshots", "--snapshotter", "native", "ls"))).toEqual([[chainID, "Committed"]]);
    const nativeSnaps = join(d.root, "io.containerd.snapshotter.v1.native", "snapshots");
    expect(readdirSync(nativeSnaps).some((id) => existsSync(join(nativeSnaps, id, "bin", "busybox")))).toBe(true);
  }, 60_000);

  test.skipIf(!!peerSkip)("a docker save archive with a gzip layer: imported, unpacked through the gzip, exportable", () => {
    // Build it from the fixture with the host's tar and gzip: manifest.json only, layer gzipped.
    const work = mkdtempSync(join(d.dir, "dk-"));
    const hex = img.layerDigest.slice(7);
    const sh = (c: string) => {
      const r = exec(["sh", "-c", c], { cwd: work });
      if (r.code !== 0) throw new Error(`${c}: ${r.stderr}`);
      return r.stdout;
    };
    sh(`tar xf ${img.archive} && gzip -n -c blobs/sha256/${hex} > layer.tar.gz && rm -f index.json oci-layout repositories blobs/sha256/${hex} blobs/sha256/${img.manifestDigest.slice(7)}`);
    writeFileSync(join(work, "manifest.json"), JSON.stringify([{ Config: `blobs/sha256/${img.configDigest.slice(7)}`, RepoTags: ["busybox:gz"], Layers: ["layer.tar.gz"] }]));
    const gzDigest = `sha256:${sh("sha256sum layer.tar.gz").slice(0, 64)}`;
    sh("tar cf ../dk.tar .");
    d.ok("dk", "images", "import", join(d.dir, "dk.tar"));
    const [row] = rows(d.ok("dk", "images", "ls"));
    expect(row![0]).toBe("docker.io/library/busybox:gz");
    expect(row![1]).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(row![row!.length - 2]).toBe("linux/amd64");
    expect(d.ok("dk", "content", "ls")).toContain(`${gzDigest}\t`);
    expect(d.ok("dk", "content", "ls")).toContain(`containerd.io/uncompressed=${img.layerDigest}`);
    // Apply answered the uncompressed diffID, so the chain ID is the same as the plain layer's.
    expect(rows(d.ok("dk", "snapshots", "ls"))).toEqual([[chainID, "Committed"]]);
    expect(d.ok("dk", "images", "check")).toContain("complete (2/2)");
    const exp = join(d.dir, "dk-export.tar");
    d.ok("dk", "images", "export", exp, "docker.io/library/busybox:gz");
    expect(exec(["tar", "tf", exp]).stdout).toContain(`blobs/sha256/${gzDigest.slice(7)}`);
    d.ok("dk", "images", "rm", "docker.io/library/busybox:gz");
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  test.skipIf(!!peerSkip)("content ingest: digest verified at commit, the failed ingest stays active", () => {
    const bad = d.ctr("imp", "content", "ingest", "--expected-digest", `sha256:${"0".repeat(64)}`, "r-bad");
    // ctr's stdin is /dev/null: an empty blob, whose digest is not the expected one
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(`unexpected commit digest sha256:${createHash("sha256").update("").digest("hex")}, expected sha256:${"0".repeat(64)}: failed precondition`);
    expect(d.ok("imp", "content", "active")).toContain("r-bad");
    expect(existsSync(join(d.root, "io.containerd.content.v1.content", "blobs", "sha256", "0".repeat(64)))).toBe(false);
  });

  test.skipIf(!!peerSkip)("images rm and content rm", () => {
    d.ok("imp", "images", "rm", BUSYBOX_REF);
    expect(rows(d.ok("imp", "images", "ls"))).toEqual([]);
    d.ok("imp", "content", "rm", img.manifestDigest);
    expect(rows(d.ok("imp", "content", "ls")).map((r) => r[0])).not.toContain(img.manifestDigest);
    // still referenced by the "nat" namespace: the blob stays
    expect(existsSync(join(d.root, "io.containerd.content.v1.content", "blobs", "sha256", img.manifestDigest.slice(7)))).toBe(true);
    expect(rows(d.ok("nat", "content", "ls")).map((r) => r[0])).toContain(img.manifestDigest);
  });
});

describe("local content store", () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(`${TMP_PREFIX}cs-`);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const sha = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

  test("a ref is locked while written; an ingest resumes at its end; commit verifies before renaming", () => {
    const cs = new ContentStore(root);
    const w = cs.writer("ref1", { total: 10 });
    let err: unknown;
    try {
      cs.writer("ref1");
    } catch (e) {
      err = e;
    }
    expect(codeOf(err)).toBe(Code.UNAVAILABLE);
    expect(String((err as Error).message)).toMatch(/^ref ref1 locked/);
    w.write(Buffer.from("hello"));
    w.close();

    const w2 = cs.writer("ref1");
    expect(w2.offset).toBe(5);
    expect(w2.total).toBe(10);
    expect(cs.status("ref1")).toMatchObject({ ref: "ref1", offset: 5, total: 10 });
    w2.write(Buffer.from("world"));
    expect(() => w2.commit(10, sha("nope"))).toThrow(/unexpected commit digest/);
    expect(cs.exists(sha("helloworld"))).toBe(false);
    expect(() => w2.commit(11, sha("helloworld"))).toThrow(/unexpected commit size 10, expected 11/);
    expect(w2.commit(10, sha("helloworld"))).toBe(sha("helloworld"));
    expect(cs.readAt(sha("helloworld"), 5, 3).toString()).toBe("wor");
    expect(cs.listStatuses()).toEqual([]);
    expect(cs.info(sha("helloworld")).size).toBe(10);
    expect(statSync(cs.blobPath(sha("helloworld"))).mode & 0o777).toBe(0o444);

    // A writer for content that exists: AlreadyExists.
    expect(() => cs.writer("ref2", { expected: sha("helloworld") })).toThrow(/already exists/);
    // Abort removes the ingest.
    cs.writer("ref3").close();
    cs.abort("ref3");
    expect(() => cs.status("ref3")).toThrow(/not found/);
  });
});
