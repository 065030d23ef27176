// OUR ctr's images import/export/check/mount/unmount, content ls/get/rm/active and snapshots
// ls/info/usage/tree/rm: against OUR containerd (compared with Debian's real ctr 1.6 where the
// output can be compared), and against the REAL containerd (import, images ls, snapshots ls).
//
// Every daemon gets its own /tmp/bunker-test-<rand>/, removed afterwards; mounts made here are
// unmounted in finally blocks / cleanup.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { exec, type ExecResult, rand, TMP_PREFIX, waitFor } from "./harness";
import { OUR_CONTAINERD, OUR_CTR, OurContainerd, REAL_CTR } from "./our-containerd";
import { describePeer, ensurePeerPackages, fmt, PeerSession } from "./peers";
import { busyboxImage, BUSYBOX_REF } from "./fixtures/busybox-image";

const realSkip = ensurePeerPackages(["containerd"], [REAL_CTR]);

class Daemon extends OurContainerd {
  ours(ns: string, ...args: string[]): ExecResult {
    return this.run(OUR_CTR, ns, args);
  }
  real(ns: string, ...args: string[]): ExecResult {
    return this.run(REAL_CTR, ns, args);
  }
  ok(ns: string, ...args: string[]): string {
    return this.runOk(OUR_CTR, ns, args);
  }
}

const rows = (out: string) => out.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/));
/** AGE columns differ by the second; drop them before comparing. */
const noAge = (s: string) => s.replace(/(Less than a second|\d+ seconds?|About a minute|\d+ minutes)/g, "AGE");
/** content ls rows without their ages, labels sorted (the real ctr prints them in map order). */
const contentRows = (s: string) =>
  noAge(s)
    .trim()
    .split("\n")
    .map((l) => l.split("\t").filter(Boolean).map((f, i) => (i === 3 ? f.split(",").sort().join(",") : f)));
const sha256 = (b: Uint8Array | string) => "sha256:" + createHash("sha256").update(b).digest("hex");

describe("our ctr against our containerd", () => {
  let d: Daemon;
  const img = busyboxImage();
  const chainID = img.layerDigest; // one uncompressed layer

  beforeAll(async () => {
    if (!existsSync(OUR_CONTAINERD) || !existsSync(OUR_CTR)) throw new Error(`dist missing: build with node_modules/.bin/bun run build.ts`);
    d = new Daemon();
    await d.start();
  }, 30_000);

  afterAll(async () => {
    await d?.cleanup();
  });

  test("images import unpacks, images ls / check show it", () => {
    const out = d.ok("imp", "images", "import", img.archive);
    expect(out).toBe(`unpacking ${BUSYBOX_REF} (${img.manifestDigest})...done\n`);
    const images = rows(d.ok("imp", "images", "ls"));
    expect(images.length).toBe(1);
    expect(images[0]![0]).toBe(BUSYBOX_REF);
    expect(images[0]![2]).toBe(img.manifestDigest);
    const check = d.ok("imp", "images", "check");
    expect(check).toMatch(new RegExp(`^REF +TYPE +DIGEST +STATUS +SIZE +UNPACKED \\n${BUSYBOX_REF.replace(/\./g, "\\.")} +application/vnd\\.oci\\.image\\.manifest\\.v1\\+json +${img.manifestDigest} +complete \\(2/2\\) +[\\d.]+ MiB/[\\d.]+ MiB +true\\n$`));
    expect(d.ok("imp", "images", "check", "-q")).toBe(BUSYBOX_REF + "\n");
    // ctr's gc labels on the manifest and config
    const content = d.ok("imp", "content", "ls");
    expect(content).toContain(`containerd.io/gc.ref.content.config=${img.configDigest}`);
    expect(content).toContain(`containerd.io/gc.ref.snapshot.overlayfs=${chainID}`);
    // no lease left behind
    expect(rows(d.ok("imp", "leases", "ls"))).toEqual([]);
  }, 60_000);

  test.skipIf(!!realSkip)("tables are byte for byte the real ctr's", () => {
    for (const args of [["images", "ls"], ["images", "check"], ["snapshots", "ls"], ["snapshots", "usage"], ["snapshots", "usage", "-b"], ["snapshots", "tree"], ["snapshots", "info", chainID], ["content", "active"], ["content", "ls", "-q"]]) {
      const o = d.ours("imp", ...args);
      const r = d.real("imp", ...args);
      expect(o.code, fmt(o)).toBe(0);
      expect(o.stdout, args.join(" ")).toBe(r.stdout);
    }
    // content ls: the tab-padded table, ages aside (its tab padding is checked on the header)
    expect(d.ok("imp", "content", "ls").split("\n")[0]).toMatch(/^DIGEST\t{9}SIZE\tAGE\t+LABELS$/);
    expect(contentRows(d.ok("imp", "content", "ls"))).toEqual(contentRows(d.real("imp", "content", "ls").stdout));
  });

  test("content get returns the blob; rm removes it", () => {
    const r = exec([OUR_CTR, "--address", d.address, "-n", "imp", "content", "get", img.manifestDigest], { timeoutMs: 30_000 });
    expect(r.code, fmt(r)).toBe(0);
    expect(sha256(r.stdout)).toBe(img.manifestDigest);
    expect(d.ok("imp", "content", "ls", "-q").split("\n")).toContain(img.layerDigest);

    // A blob of our own, written through the real ctr, removed by ours.
    const extra = "hello from ctr-images\n";
    const w = exec([REAL_CTR, "--address", d.address, "-n", "imp", "content", "ingest", "extra-1"], { stdin: extra, timeoutMs: 30_000 });
    if (w.code === 0) {
      const dg = sha256(extra);
      expect(d.ok("imp", "content", "ls", "-q")).toContain(dg);
      expect(d.ok("imp", "content", "rm", dg)).toBe(dg + "\n");
      expect(d.ok("imp", "content", "ls", "-q")).not.toContain(dg);
    }
    expect(d.ours("imp", "content", "get", "sha256:" + "0".repeat(64)).code).toBe(1);
  });

  test("snapshots ls / info / usage / tree", () => {
    expect(rows(d.ok("imp", "snapshots", "ls"))).toEqual([[chainID, "Committed"]]);
    const info = JSON.parse(d.ok("imp", "snapshots", "info", chainID));
    expect(info.Kind).toBe("Committed");
    expect(info.Name).toBe(chainID);
    expect(info.Labels["containerd.io/snapshot.ref"]).toBe(chainID);
    const usage = rows(d.ok("imp", "snapshots", "usage", "-b"));
    expect(usage[0]![0]).toBe(chainID);
    expect(Number(usage[0]![1])).toBeGreaterThan(1_000_000);
    expect(Number(usage[0]![2])).toBeGreaterThan(10);
    expect(d.ok("imp", "snapshots", "tree")).toBe(` ${chainID}\n`);
  });

  test("export, re-import into another namespace: identical digests", () => {
    const tar = join(d.dir, "export.tar");
    expect(d.ok("imp", "images", "export", tar, BUSYBOX_REF)).toBe("");
    const list = exec(["tar", "tf", tar]).stdout.split("\n");
    for (const dg of [img.manifestDigest, img.configDigest, img.layerDigest]) expect(list).toContain(`blobs/sha256/${dg.slice(7)}`);
    expect(list).toContain("index.json");
    // ctr's Docker-compatible manifest.json, unless --skip-manifest-json
    const mj = JSON.parse(exec(["tar", "xOf", tar, "manifest.json"]).stdout);
    expect(mj).toEqual([{ Config: `blobs/sha256/${img.configDigest.slice(7)}`, RepoTags: ["busybox:latest"], Layers: [`blobs/sha256/${img.layerDigest.slice(7)}`] }]);
    // byte for byte what the real ctr exports (entry order, modes, index.json, manifest.json)
    if (!realSkip) {
      const realTar = join(d.dir, "export-real.tar");
      const r = d.real("imp", "images", "export", realTar, BUSYBOX_REF);
      expect(r.code, fmt(r)).toBe(0);
      expect(sha256(readFileSync(tar))).toBe(sha256(readFileSync(realTar)));
    }
    // containerd 1.6's --skip-manifest-json still writes manifest.json, only without RepoTags.
    const tar2 = join(d.dir, "export-skip.tar");
    d.ok("imp", "images", "export", "--skip-manifest-json", tar2, BUSYBOX_REF);
    expect(JSON.parse(exec(["tar", "xOf", tar2, "manifest.json"]).stdout)).toEqual([{ Config: `blobs/sha256/${img.configDigest.slice(7)}`, RepoTags: null, Layers: [`blobs/sha256/${img.layerDigest.slice(7)}`] }]);
    if (!realSkip) {
      const realTar = join(d.dir, "export-skip-real.tar");
      expect(d.real("imp", "images", "export", "--skip-manifest-json", realTar, BUSYBOX_REF).code).toBe(0);
      expect(sha256(readFileSync(tar2))).toBe(sha256(readFileSync(realTar)));
    }
    expect(d.ok("rt", "images", "import", tar)).toBe(`unpacking ${BUSYBOX_REF} (${img.manifestDigest})...done\n`);
    const a = rows(d.ok("imp", "images", "ls"));
    const b = rows(d.ok("rt", "images", "ls"));
    expect(b).toEqual(a);
    expect(d.ok("rt", "content", "ls", "-q").split("\n").sort()).toEqual(d.ok("imp", "content", "ls", "-q").split("\n").sort());
    // The real ctr imports our export too.
    if (!realSkip) {
      const r = d.real("rt2", "images", "import", tar);
      expect(r.code, fmt(r)).toBe(0);
      expect(r.stdout).toContain(img.manifestDigest);
    }
  }, 60_000);

  test("images mount shows bin/busybox; unmount --rm removes the view and lease", () => {
    const target = join(d.dir, "mnt");
    mkdirSync(target, { recursive: true });
    try {
      expect(d.ok("imp", "images", "mount", BUSYBOX_REF, target)).toBe(`${chainID}\n${target}\n`);
      expect(existsSync(join(target, "bin", "busybox"))).toBe(true);
      expect(rows(d.ok("imp", "snapshots", "ls"))).toContainEqual([target, chainID, "View"]);
      expect(d.ok("imp", "leases", "ls", "-q")).toContain(target);
    } finally {
      const u = d.ours("imp", "images", "unmount", "--rm", target);
      expect(u.code, fmt(u)).toBe(0);
      expect(u.stdout).toBe(target + "\n");
    }
    expect(existsSync(join(target, "bin", "busybox"))).toBe(false);
    expect(rows(d.ok("imp", "snapshots", "ls"))).toEqual([[chainID, "Committed"]]);
    expect(d.ok("imp", "leases", "ls", "-q")).not.toContain(target);
  });

  test.skipIf(!!realSkip)("help of the new commands is the real ctr's", () => {
    for (const c of [["images", "import"], ["images", "export"], ["images", "check"], ["images", "mount"], ["images", "unmount"], ["content", "ls"], ["content", "get"], ["content", "rm"], ["content", "active"], ["snapshots", "ls"], ["snapshots", "info"], ["snapshots", "rm"], ["snapshots", "usage"], ["snapshots", "tree"]]) {
      expect(d.ours("x", ...c, "--help").stdout, c.join(" ")).toBe(d.real("x", ...c, "--help").stdout);
    }
  });

  test("snapshots --snapshotter native (the group flag, or $CONTAINERD_SNAPSHOTTER)", () => {
    expect(d.ok("nat", "images", "import", "--snapshotter", "native", img.archive)).toBe(`unpacking ${BUSYBOX_REF} (${img.manifestDigest})...done\n`);
    expect(rows(d.ok("nat", "snapshots", "--snapshotter", "native", "ls"))).toEqual([[chainID, "Committed"]]);
    expect(d.ok("nat", "content", "ls")).toContain(`containerd.io/gc.ref.snapshot.native=${chainID}`);
    const env = exec([OUR_CTR, "--address", d.address, "-n", "nat", "snapshots", "ls"], { env: { ...process.env, CONTAINERD_SNAPSHOTTER: "native" } });
    expect(rows(env.stdout)).toEqual([[chainID, "Committed"]]);
    if (!realSkip) expect(d.ok("nat", "snapshots", "--snapshotter", "native", "info", chainID)).toBe(d.real("nat", "snapshots", "--snapshotter", "native", "info", chainID).stdout);
    expect(d.ok("nat", "images", "check", "--snapshotter", "native")).toMatch(/ true\n$/);
    expect(d.ok("nat", "snapshots", "--snapshotter", "native", "rm", chainID)).toBe("");
    expect(d.ok("nat", "images", "check", "--snapshotter", "native")).toMatch(/ false\n$/);
  });

  test.skipIf(!!realSkip)("import --digests --index-name from stdin: the same images and blobs as the real ctr's", () => {
    const o = exec(["sh", "-c", `"$0" --address "$1" -n dg1 images import --digests --index-name myidx --no-unpack - < "$2"`, OUR_CTR, d.address, img.archive], { timeoutMs: 60_000 });
    expect(o.code, fmt(o)).toBe(0);
    expect(o.stdout).toBe("");
    const r = d.real("dg2", "images", "import", "--digests", "--index-name", "myidx", "--no-unpack", img.archive);
    expect(r.code, fmt(r)).toBe(0);
    expect(d.ok("dg1", "images", "ls")).toBe(d.real("dg2", "images", "ls").stdout);
    expect(d.ok("dg1", "images", "check")).toBe(d.real("dg2", "images", "check").stdout);
    expect(d.ok("dg1", "content", "ls", "-q")).toBe(d.real("dg2", "content", "ls", "-q").stdout);
    const bad = d.ours("dg1", "images", "import", join(d.dir, "missing.tar"));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`ctr: open ${join(d.dir, "missing.tar")}: no such file or directory\n`);
  });

  test.skipIf(!!realSkip)("snapshots prepare / mounts / commit / view: the real ctr's output", () => {
    const norm = (x: string) => x.replace(/snapshots\/\d+\//g, "snapshots/N/").replace(/"containerd\.io\/gc\.root": "[^"]+"/g, "ROOT");
    const pairs: [string[], string[]][] = [
      [["prepare", "--mounts", "-t", "/mnt/x", "o-a"], ["prepare", "--mounts", "-t", "/mnt/x", "r-a"]],
      [["mounts", "/mnt/y", "o-a"], ["mounts", "/mnt/y", "r-a"]],
      [["commit", "o-c", "o-a"], ["commit", "r-c", "r-a"]],
      [["view", "--target", "/t", "o-v", "o-c"], ["view", "--target", "/t", "r-v", "r-c"]],
    ];
    for (const [o, r] of pairs) {
      const a = d.ours("pv", "snapshots", ...o);
      const b = d.real("pv", "snapshots", ...r);
      expect(a.code, fmt(a)).toBe(0);
      expect(norm(a.stdout), o.join(" ")).toBe(norm(b.stdout));
    }
    expect(d.ok("pv", "snapshots", "tree")).toBe(" o-c\n  \\_ o-v\n r-c\n  \\_ r-v\n");
    expect(norm(d.ok("pv", "snapshots", "info", "o-c")).replace(/o-c/g, "K").replace(/"\d{4}-[^"]+"/g, "T")).toBe(norm(d.real("pv", "snapshots", "info", "r-c").stdout).replace(/r-c/g, "K").replace(/"\d{4}-[^"]+"/g, "T"));
  });

  test("a corrupt layer fails the import: no image, no ingest left behind", () => {
    const b = Buffer.from(readFileSync(img.archive));
    // Walk the tar headers to the layer's data and flip one byte in it.
    for (let off = 0; off + 512 <= b.length; ) {
      const name = b.subarray(off, off + 100).toString("latin1").replace(/\0.*$/s, "");
      if (!name) break;
      const size = parseInt(b.subarray(off + 124, off + 136).toString("latin1").replace(/\0.*$/s, "").trim() || "0", 8);
      if (name.endsWith(img.layerDigest.slice(7))) b[off + 512 + 1000] = b[off + 512 + 1000]! ^ 0xff;
      off += 512 + Math.ceil(size / 512) * 512;
    }
    const bad = join(d.dir, "bad.tar");
    writeFileSync(bad, b);
    const r = d.ours("bad", "images", "import", bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("digest mismatch");
    expect(d.ok("bad", "images", "ls", "-q")).toBe("");
    expect(d.ok("bad", "content", "active")).toBe("REF\tSIZE\tAGE\t\n");
    expect(d.ok("bad", "leases", "ls", "-q")).toBe("");
  });

  test("snapshots rm; images import --no-unpack then check shows unpacked false", () => {
    // Remove the image in a fresh namespace, then its snapshot.
    expect(d.ok("nu", "images", "import", "--no-unpack", img.archive)).toBe("");
    expect(rows(d.ok("nu", "snapshots", "ls"))).toEqual([]);
    expect(d.ok("nu", "images", "check")).toMatch(/complete \(2\/2\) +\S+ MiB\/\S+ MiB +false\n$/);
    expect(d.ok("rt", "snapshots", "rm", chainID)).toBe("");
    expect(rows(d.ok("rt", "snapshots", "ls"))).toEqual([]);
    const r = d.ours("rt", "snapshots", "rm", chainID);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("failed to remove");
  });
});

describePeer("our ctr against the real containerd", realSkip, () => {
  let s: PeerSession | undefined;
  const img = busyboxImage();

  beforeAll(async () => {
    s = new PeerSession();
    await s.startContainerd();
  }, 60_000);

  afterAll(() => {
    if (!s) return;
    const problems = s.cleanup();
    s = undefined;
    if (problems.length) throw new Error(`peer cleanup left resources behind:\n  ${problems.join("\n  ")}`);
  }, 60_000);

  const ours = (args: string[]) => exec(s!.inNs([OUR_CTR, "--address", s!.containerd!.address, "-n", "ourctr", ...args]), { timeoutMs: 60_000 });
  const real = (args: string[]) => exec(s!.inNs([REAL_CTR, "--address", s!.containerd!.address, "-n", "ourctr", ...args]), { timeoutMs: 60_000 });

  test("import, images ls, snapshots ls, content ls match the real ctr", () => {
    const o = ours(["images", "import", img.archive]);
    expect(o.code, fmt(o)).toBe(0);
    expect(o.stdout).toBe(`unpacking ${BUSYBOX_REF} (${img.manifestDigest})...done\n`);
    for (const args of [["images", "ls"], ["images", "check"], ["snapshots", "ls"], ["snapshots", "tree"], ["snapshots", "usage"], ["snapshots", "info", img.layerDigest], ["content", "ls", "-q"]]) {
      const a = ours(args);
      const b = real(args);
      expect(a.code, fmt(a)).toBe(0);
      expect(a.stdout, args.join(" ")).toBe(b.stdout);
    }
    expect(contentRows(ours(["content", "ls"]).stdout)).toEqual(contentRows(real(["content", "ls"]).stdout));
    expect(rows(ours(["snapshots", "ls"]).stdout)).toEqual([[img.layerDigest, "Committed"]]);
    expect(rows(ours(["leases", "ls"]).stdout)).toEqual([]);
  }, 60_000);

  test("images mount / unmount --rm on the real containerd (in the session's mount namespace)", () => {
    const target = join(s!.dir, "mnt");
    mkdirSync(target, { recursive: true });
    const m = ours(["images", "mount", BUSYBOX_REF, target]);
    try {
      expect(m.code, fmt(m)).toBe(0);
      expect(m.stdout).toBe(`${img.layerDigest}\n${target}\n`);
      expect(exec(s!.inNs(["test", "-x", join(target, "bin", "busybox")])).code).toBe(0);
      expect(ours(["leases", "ls", "-q"]).stdout).toContain(target);
    } finally {
      const u = ours(["images", "unmount", "--rm", target]);
      expect(u.code, fmt(u)).toBe(0);
    }
    expect(exec(s!.inNs(["test", "-e", join(target, "bin", "busybox")])).code).not.toBe(0);
    expect(rows(ours(["snapshots", "ls"]).stdout)).toEqual([[img.layerDigest, "Committed"]]);
    expect(ours(["leases", "ls", "-q"]).stdout).toBe("");
  }, 60_000);

  test("export from the real containerd, re-import: same digests", () => {
    const tar = join(s!.dir, "export.tar");
    const e = ours(["images", "export", tar, BUSYBOX_REF]);
    expect(e.code, fmt(e)).toBe(0);
    const realTar = join(s!.dir, "export-real.tar");
    const r = real(["images", "export", realTar, BUSYBOX_REF]);
    expect(r.code, fmt(r)).toBe(0);
    expect(sha256(readFileSync(tar))).toBe(sha256(readFileSync(realTar)));
    const i = ours(["-n", "ourctr2", "images", "import", tar]);
    expect(i.code, fmt(i)).toBe(0);
    expect(i.stdout).toBe(`unpacking ${BUSYBOX_REF} (${img.manifestDigest})...done\n`);
    // cleanup of this namespace's image so the session cleanup finds nothing odd
    ours(["-n", "ourctr2", "images", "rm", BUSYBOX_REF]);
  }, 60_000);
});
