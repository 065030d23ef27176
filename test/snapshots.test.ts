// Snapshotters (core/snapshots): containerd 1.6 semantics for the overlayfs and native
// snapshotters, their metadata store, mountAll/unmountAll, and crash consistency.
//
// Every test works in its own /tmp/bunker-test-<rand>/ dir. afterEach closes what the test opened,
// kills child processes it started, unmounts everything below the dir (deepest first, even when
// the test failed) and removes it; a mount that can't be removed fails the test.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { makedev, mknod, mount as sysMount } from "../ffi/libc";
import { MS, S_IFCHR, S_IFIFO } from "../ffi/consts";
import {
  compactLowerdirOption,
  Kind,
  mountAll,
  NativeSnapshotter,
  OverlaySnapshotter,
  parseMountOptions,
  SnapshotError,
  supportsIndex,
  unmountAll,
  withTempMount,
  type DirSnapshotter,
  type Mount,
} from "../core/snapshots";
import { lgetxattr, lsetxattr, lutimesNs } from "../core/snapshots/sys";
import { mountsUnder, rand, TMP_PREFIX, unmountUnder } from "./harness";

// ---------------------------------------------------------------------------------------------
// Lifecycle

let dir = "";
const opened: DirSnapshotter[] = [];
const children: { kill(sig?: number | string): void; exitCode: number | null }[] = [];
const startCwd = process.cwd();

beforeEach(() => {
  dir = `${TMP_PREFIX}${rand()}`;
  mkdirSync(dir, { recursive: true });
});

afterEach(() => {
  const problems: string[] = [];
  for (const c of children.splice(0)) {
    try {
      if (c.exitCode === null) c.kill("SIGKILL");
    } catch {}
  }
  for (const s of opened.splice(0)) {
    try {
      s.close();
    } catch {}
  }
  if (process.cwd() !== startCwd) problems.push(`cwd changed to ${process.cwd()}`);
  const left = unmountUnder(dir);
  problems.push(...left);
  if (!left.length) rmSync(dir, { recursive: true, force: true });
  if (problems.length) throw new Error(`cleanup: ${problems.join("; ")}`);
});

type Name = "overlayfs" | "native";
const IMPLS: Name[] = ["overlayfs", "native"];

async function openSn(name: Name, root: string): Promise<DirSnapshotter> {
  const s = name === "overlayfs" ? await OverlaySnapshotter.open(root) : await NativeSnapshotter.open(root);
  opened.push(s);
  return s;
}
function reopen(s: DirSnapshotter, name: Name): Promise<DirSnapshotter> {
  s.close();
  opened.splice(opened.indexOf(s), 1);
  return openSn(name, s.root);
}

/** A fresh mount point under the test dir. */
function mnt(name = "mnt"): string {
  const p = join(dir, `${name}-${rand(4)}`);
  mkdirSync(p);
  return p;
}

/** Mount, run fn, always unmount (also when fn throws). */
async function withMounted<T>(mounts: Mount[], fn: (root: string) => T | Promise<T>): Promise<T> {
  const target = mnt();
  mountAll(mounts, target);
  try {
    return await fn(target);
  } finally {
    unmountAll(target);
    expect(mountsUnder(target)).toEqual([]);
  }
}

async function caught(p: Promise<unknown>): Promise<SnapshotError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof SnapshotError)) throw e;
    return e;
  }
  throw new Error("expected a SnapshotError, got success");
}

const write = (p: string, data: string | Buffer) => {
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, data);
};
const read = (p: string) => readFileSync(p, "utf8");

// ---------------------------------------------------------------------------------------------
// Layer contents

const MTIME_NS = 1_600_000_000_123_456_789n;

/** Layer 1: every kind of file and metadata a layer can carry. */
function writeLayer1(root: string): void {
  write(join(root, "etc/hostname"), "layer1\n");
  write(join(root, "bin/tool"), "#!/bin/sh\necho tool\n");
  chmodSync(join(root, "bin/tool"), 0o4755);
  lsetxattr(join(root, "bin/tool"), "trusted.bunker", Buffer.from("t1"));
  write(join(root, "data/owned"), "owned by 1000\n");
  chownSync(join(root, "data/owned"), 1000, 1001);
  chmodSync(join(root, "data/owned"), 0o640);
  lsetxattr(join(root, "data/owned"), "user.bunker", Buffer.from("x1"));
  lutimesNs(join(root, "data/owned"), MTIME_NS, MTIME_NS);
  symlinkSync("owned", join(root, "data/link"));
  write(join(root, "data/hard1"), "hard\n");
  linkSync(join(root, "data/hard1"), join(root, "data/hard2"));
  mkdirSync(join(root, "dev"));
  mknod(join(root, "dev/null"), S_IFCHR | 0o666, makedev(1, 3));
  mkdirSync(join(root, "run"));
  mknod(join(root, "run/fifo"), S_IFIFO | 0o600, 0n);
  write(join(root, "opt/ro/file"), "in a read-only dir\n");
  chmodSync(join(root, "opt/ro"), 0o555);
  write(join(root, "to-delete"), "gone in layer 2\n");
}

/** Layer 2: deletions (file and directory), a modification, additions. */
function writeLayer2(root: string): void {
  unlinkSync(join(root, "to-delete"));
  rmSync(join(root, "opt/ro"), { recursive: true });
  write(join(root, "etc/hostname"), "layer2\n");
  write(join(root, "l2.txt"), "from layer 2\n");
}

/** Layer 3: a directory replaced (opaque in overlay terms), an addition. */
function writeLayer3(root: string): void {
  rmSync(join(root, "data"), { recursive: true });
  write(join(root, "data/fresh"), "new data dir\n");
  write(join(root, "l3.txt"), "from layer 3\n");
}

function expectLayer1(root: string): void {
  expect(read(join(root, "etc/hostname"))).toBe("layer1\n");
  const tool = lstatSync(join(root, "bin/tool"));
  expect(tool.mode & 0o7777).toBe(0o4755);
  expect(lgetxattr(join(root, "bin/tool"), "trusted.bunker")?.toString()).toBe("t1");
  const owned = lstatSync(join(root, "data/owned"), { bigint: true });
  expect([Number(owned.uid), Number(owned.gid), Number(owned.mode) & 0o7777]).toEqual([1000, 1001, 0o640]);
  expect(owned.mtimeNs).toBe(MTIME_NS);
  expect(lgetxattr(join(root, "data/owned"), "user.bunker")?.toString()).toBe("x1");
  expect(readlinkSync(join(root, "data/link"))).toBe("owned");
  expect(read(join(root, "data/link"))).toBe("owned by 1000\n");
  expect(lstatSync(join(root, "data/hard1")).ino).toBe(lstatSync(join(root, "data/hard2")).ino);
  const dn = lstatSync(join(root, "dev/null"));
  expect(dn.isCharacterDevice()).toBe(true);
  expect(dn.rdev).toBe(Number(makedev(1, 3)));
  expect(lstatSync(join(root, "run/fifo")).isFIFO()).toBe(true);
  expect(lstatSync(join(root, "opt/ro")).mode & 0o7777).toBe(0o555);
  expect(existsSync(join(root, "to-delete"))).toBe(true);
}

function expectLayer3(root: string): void {
  expect(read(join(root, "etc/hostname"))).toBe("layer2\n");
  expect(existsSync(join(root, "to-delete"))).toBe(false);
  expect(existsSync(join(root, "opt/ro"))).toBe(false);
  expect(existsSync(join(root, "opt"))).toBe(true);
  expect(read(join(root, "l2.txt"))).toBe("from layer 2\n");
  expect(read(join(root, "l3.txt"))).toBe("from layer 3\n");
  expect(readdirSync(join(root, "data"))).toEqual(["fresh"]);
  expect(lstatSync(join(root, "bin/tool")).mode & 0o7777).toBe(0o4755);
  expect(lstatSync(join(root, "dev/null")).isCharacterDevice()).toBe(true);
}

/** Builds l1 <- l2 <- l3 through real mounts; returns the snapshotter. */
async function buildChain(name: Name): Promise<DirSnapshotter> {
  const s = await openSn(name, join(dir, "root"));
  await withMounted(await s.prepare("l1-extract", ""), writeLayer1);
  await s.commit("l1", "l1-extract");
  await withMounted(await s.prepare("l2-extract", "l1"), (r) => {
    expectLayer1(r);
    writeLayer2(r);
  });
  await s.commit("l2", "l2-extract");
  await withMounted(await s.prepare("l3-extract", "l2"), writeLayer3);
  await s.commit("l3", "l3-extract");
  return s;
}

// ---------------------------------------------------------------------------------------------
// mount helpers

describe("mount options", () => {
  test("parseMountOptions follows containerd's table (flags set/cleared, the rest is data)", () => {
    expect(parseMountOptions(["rw", "rbind"])).toEqual({ flags: MS.BIND | MS.REC, data: "" });
    expect(parseMountOptions(["ro", "rbind"])).toEqual({ flags: MS.BIND | MS.REC | MS.RDONLY, data: "" });
    expect(parseMountOptions(["ro", "rw", "nosuid", "nodev", "suid"])).toEqual({ flags: MS.NODEV, data: "" });
    expect(parseMountOptions(["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/a:/b"])).toEqual({
      flags: 0,
      data: "index=off,workdir=/w,upperdir=/u,lowerdir=/a:/b",
    });
    // "defaults" has no flag, so (as in containerd) it ends up in the data.
    expect(parseMountOptions(["defaults", "noexec", "size=64k"])).toEqual({ flags: MS.NOEXEC, data: "defaults,size=64k" });
  });

  test("compactLowerdirOption: lowerdirs relative to the snapshots dir", () => {
    const r = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots";
    const [cd, opts] = compactLowerdirOption(["index=off", `workdir=${r}/9/work`, `lowerdir=${r}/12/fs:${r}/11/fs:${r}/10/fs`]);
    expect(cd).toBe(`${r}/`);
    expect(opts).toEqual(["index=off", `workdir=${r}/9/work`, "lowerdir=12/fs:11/fs:10/fs"]);
    expect(compactLowerdirOption([`lowerdir=${r}/1/fs`])).toEqual(["", [`lowerdir=${r}/1/fs`]]);
    expect(compactLowerdirOption(["lowerdir=/a:/b"])).toEqual(["", ["lowerdir=/a:/b"]]);
  });

  test("mountAll / unmountAll: a read-only bind really is read-only, stacked mounts all come off", async () => {
    const src = mnt("src");
    write(join(src, "f"), "x");
    const target = mnt();
    try {
      mountAll([{ type: "bind", source: src, options: ["ro", "rbind"] }], target);
      expect(read(join(target, "f"))).toBe("x");
      expect(() => writeFileSync(join(target, "g"), "y")).toThrow(/EROFS|read-only/);
      // A second mount on the same target stacks; unmountAll takes both off.
      mountAll([{ type: "bind", source: src, options: ["rw", "rbind"] }], target);
      writeFileSync(join(target, "g"), "y");
      expect(mountsUnder(target).length).toBe(2);
    } finally {
      unmountAll(target);
    }
    expect(mountsUnder(target)).toEqual([]);
    expect(read(join(src, "g"))).toBe("y");
    unmountAll(join(dir, "does-not-exist")); // no-op
    unmountAll(""); // no-op
  });

  test("withTempMount unmounts and removes its dir, also when fn throws", async () => {
    const src = mnt("src");
    write(join(src, "f"), "x");
    let seen = "";
    await expect(
      withTempMount(
        [{ type: "bind", source: src, options: ["ro", "rbind"] }],
        (root) => {
          seen = root;
          expect(read(join(root, "f"))).toBe("x");
          throw new Error("boom");
        },
        dir,
      ),
    ).rejects.toThrow("boom");
    expect(seen.startsWith(dir)).toBe(true);
    expect(existsSync(seen)).toBe(false);
    expect(mountsUnder(dir)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Both snapshotters

for (const name of IMPLS) {
  describe(`${name} snapshotter`, () => {
    const rootOf = () => join(dir, "root");
    const snap = (id: number) => join(rootOf(), "snapshots", String(id));
    /** The directory holding a snapshot's own files (overlay: fs/, native: the dir itself). */
    const own = (id: number) => (name === "overlayfs" ? join(snap(id), "fs") : snap(id));
    const index = name === "overlayfs" && supportsIndex() ? ["index=off"] : [];

    test("layout: metadata.db (SQLite, WAL) and snapshots/ in the plugin root", async () => {
      const s = await openSn(name, rootOf());
      expect(existsSync(join(rootOf(), "metadata.db"))).toBe(true);
      expect(statSync(join(rootOf(), "snapshots")).mode & 0o777).toBe(0o700);
      const db = new Database(join(rootOf(), "metadata.db"));
      expect((db.query("PRAGMA journal_mode").get() as any).journal_mode).toBe("wal");
      db.close();
      await s.prepare("a", "");
      expect(existsSync(own(1))).toBe(true);
      if (name === "overlayfs") expect(existsSync(join(snap(1), "work"))).toBe(true);
    });

    test("prepare/commit a chain of 3 layers; mounts() of active snapshots and views; contents through real mounts", async () => {
      const s = await buildChain(name);
      // ids: l1=1, l2=2, l3=3
      const l1 = await s.stat("l1");
      expect(l1).toMatchObject({ kind: Kind.Committed, name: "l1", parent: "", labels: {} });
      expect((await s.stat("l2")).parent).toBe("l1");
      expect((await s.stat("l3")).parent).toBe("l2");
      await expect(s.stat("l3-extract")).rejects.toThrow("snapshot does not exist: not found");

      // A container on top of l3.
      const ctr = await s.prepare("ctr", "l3");
      if (name === "overlayfs") {
        expect(ctr).toEqual([
          {
            type: "overlay",
            source: "overlay",
            options: [...index, `workdir=${join(snap(4), "work")}`, `upperdir=${join(snap(4), "fs")}`, `lowerdir=${own(3)}:${own(2)}:${own(1)}`],
          },
        ]);
      } else {
        expect(ctr).toEqual([{ type: "bind", source: snap(4), options: ["rbind", "rw"] }]);
      }
      expect(await s.mounts("ctr")).toEqual(ctr);
      await withMounted(ctr, (r) => {
        expectLayer3(r);
        // Writes go to the container's own snapshot, never to the layers.
        write(join(r, "written-by-ctr"), "ctr\n");
        unlinkSync(join(r, "l3.txt"));
      });
      expect(read(join(own(4), "written-by-ctr"))).toBe("ctr\n");
      expect(existsSync(join(own(3), "l3.txt"))).toBe(true);
      expect(existsSync(join(own(3), "written-by-ctr"))).toBe(false);
      if (name === "overlayfs") {
        // Deleting a lower file leaves a whiteout (char 0:0) in the upper dir.
        const wh = lstatSync(join(own(4), "l3.txt"));
        expect(wh.isCharacterDevice()).toBe(true);
        expect(wh.rdev).toBe(0);
        // Layer 2's own changes: whiteouts for the deleted file and directory.
        expect(lstatSync(join(own(2), "to-delete")).isCharacterDevice()).toBe(true);
        expect(lstatSync(join(own(2), "opt/ro")).isCharacterDevice()).toBe(true);
        // Layer 3 replaced data/: an opaque directory.
        expect(lgetxattr(join(own(3), "data"), "trusted.overlay.opaque")?.toString()).toBe("y");
        // A layer holds only its own changes.
        expect(existsSync(join(own(2), "bin"))).toBe(false);
      } else {
        // Each native snapshot is a full copy.
        expect(existsSync(join(own(4), "l3.txt"))).toBe(false);
        expectLayer1(own(1));
      }

      // Views: several parents, one parent, none.
      const v3 = await s.view("v3", "l3");
      const v1 = await s.view("v1", "l1");
      const v0 = await s.view("v0", "");
      if (name === "overlayfs") {
        expect(v3).toEqual([{ type: "overlay", source: "overlay", options: [...index, `lowerdir=${own(3)}:${own(2)}:${own(1)}`] }]);
        expect(v1).toEqual([{ type: "bind", source: own(1), options: ["ro", "rbind"] }]);
        expect(v0).toEqual([{ type: "bind", source: join(snap(7), "fs"), options: ["ro", "rbind"] }]);
        expect(existsSync(join(snap(5), "work"))).toBe(false);
      } else {
        expect(v3).toEqual([{ type: "bind", source: snap(3), options: ["rbind", "ro"] }]);
        expect(v1).toEqual([{ type: "bind", source: snap(1), options: ["rbind", "ro"] }]);
        expect(v0).toEqual([{ type: "bind", source: snap(7), options: ["rbind", "ro"] }]);
        // A view on a parent reads the parent: no directory (and no copy) of its own.
        expect(existsSync(snap(5))).toBe(false);
        expect(existsSync(snap(6))).toBe(false);
      }
      expect((await s.stat("v3")).kind).toBe(Kind.View);
      await withMounted(v3, (r) => {
        expectLayer3(r);
        expect(existsSync(join(r, "written-by-ctr"))).toBe(false);
        expect(() => writeFileSync(join(r, "nope"), "x")).toThrow(/EROFS|read-only/);
      });
      await withMounted(v1, (r) => {
        expectLayer1(r);
        expect(() => writeFileSync(join(r, "nope"), "x")).toThrow(/EROFS|read-only/);
      });
      await withMounted(v0, (r) => expect(readdirSync(r)).toEqual([]));

      // Layers are shared: a second container on l3 stacks the same lower dirs.
      const ctr2 = await s.prepare("ctr2", "l3");
      if (name === "overlayfs") expect(ctr2[0]!.options.at(-1)).toBe(`lowerdir=${own(3)}:${own(2)}:${own(1)}`);
      await withMounted(ctr2, (r) => {
        expectLayer3(r);
        expect(existsSync(join(r, "written-by-ctr"))).toBe(false);
      });
      expect(await s.verify()).toEqual([]);
    });

    if (name === "native") {
      test("prepare copies the parent exactly: owners, modes, ns times, xattrs, symlinks, hard links, devices, FIFOs", async () => {
        const s = await openSn(name, rootOf());
        await s.prepare("base", "");
        writeLayer1(snap(1));
        const badName = Buffer.concat([Buffer.from(snap(1) + "/"), Buffer.from([0x6e, 0xff, 0x78])]); // not UTF-8
        writeFileSync(badName, "odd name");
        chmodSync(snap(1), 0o751);
        lutimesNs(join(snap(1), "data"), MTIME_NS, MTIME_NS);
        await s.commit("base-c", "base");
        await s.prepare("copy", "base-c");
        expectLayer1(snap(2));
        const a = lstatSync(join(snap(1), "data/hard1")), b = lstatSync(join(snap(2), "data/hard1"));
        expect(b.ino).not.toBe(a.ino); // a copy, not the same file
        expect(lstatSync(join(snap(2), "data/hard2")).nlink).toBe(2);
        expect(lstatSync(join(snap(2), "data"), { bigint: true }).mtimeNs).toBe(MTIME_NS); // set after its contents
        expect(statSync(snap(2)).mode & 0o7777).toBe(0o751);
        expect(readdirSync(snap(2), { encoding: "buffer" }).some((n) => n.equals(Buffer.from([0x6e, 0xff, 0x78])))).toBe(true);
      });
    }

    if (name === "overlayfs") {
      test("a new snapshot's upper dir takes the owner of the parent's", async () => {
        const s = await openSn(name, rootOf());
        await s.prepare("a", "");
        chownSync(own(1), 1234, 5678);
        await s.commit("A", "a");
        await s.prepare("b", "A");
        expect([statSync(own(2)).uid, statSync(own(2)).gid]).toEqual([1234, 5678]);
      });

      test("many layers: an overlay option string longer than a page still mounts (lowerdirs compacted)", async () => {
        const root = join(dir, "r".repeat(180), "io.containerd.snapshotter.v1.overlayfs");
        const s = await OverlaySnapshotter.open(root);
        opened.push(s);
        let parent = "";
        const N = 18;
        for (let i = 0; i < N; i++) {
          const m = await s.prepare(`x${i}`, parent);
          await withTempMount(m, (r) => write(join(r, `f${i}`), `${i}`), dir);
          await s.commit(`L${i}`, `x${i}`);
          parent = `L${i}`;
        }
        const m = await s.view("top", parent);
        const lower = m[0]!.options.find((o) => o.startsWith("lowerdir="))!;
        expect(lower.split(":").length).toBe(N);
        expect(m[0]!.options.join(",").length).toBeGreaterThan(4096);
        await withMounted(m, (r) => {
          for (let i = 0; i < N; i++) expect(read(join(r, `f${i}`))).toBe(`${i}`);
        });
        expect(process.cwd()).toBe(startCwd);
      });
    }

    test("errors: containerd's classes and texts", async () => {
      const s = await openSn(name, rootOf());
      await s.prepare("a", "");
      await s.commit("l1", "a");
      await s.prepare("act", "l1");
      await s.view("v", "l1");
      const ov = name === "overlayfs";
      const cases: [() => Promise<unknown>, string, string][] = [
        [() => s.stat("nope"), "NotFound", "snapshot does not exist: not found"],
        [() => s.usage("nope"), "NotFound", "snapshot does not exist: not found"],
        [() => s.mounts("nope"), "NotFound", `${ov ? "failed to get active mount" : "failed to get snapshot mount"}: snapshot does not exist: not found`],
        [() => s.mounts("l1"), "FailedPrecondition", `${ov ? "failed to get active mount" : "failed to get snapshot mount"}: requested snapshot l1 not active or view: failed precondition`],
        [() => s.prepare("act", ""), "AlreadyExists", "failed to create snapshot: snapshot act: already exists"],
        [() => s.prepare("l1", "l1"), "AlreadyExists", "failed to create snapshot: snapshot l1: already exists"],
        [() => s.view("x", "missing"), "NotFound", 'failed to create snapshot: missing parent "missing" bucket: not found'],
        [() => s.prepare("x", "act"), "InvalidArgument", 'failed to create snapshot: parent "act" is not committed snapshot: invalid argument'],
        [() => s.commit("l1", "act"), "AlreadyExists", "failed to commit snapshot: committed snapshot l1: already exists"],
        [() => s.commit("x", "nope"), "NotFound", "snapshot does not exist: not found"],
        // A native view of a parent has no directory: containerd's usage walk fails first.
        ov
          ? [() => s.commit("x", "v"), "FailedPrecondition", 'failed to commit snapshot: snapshot "v" is not active: failed precondition']
          : [() => s.commit("x", "v"), "Unknown", `lstat ${snap(3)}: no such file or directory`],
        [() => s.commit("x", "l1"), "FailedPrecondition", 'failed to commit snapshot: snapshot "l1" is not active: failed precondition'],
        [() => s.remove("nope"), "NotFound", `${ov ? "failed to remove snapshot nope" : "failed to remove"}: snapshot nope: not found`],
        [() => s.remove("l1"), "FailedPrecondition", `${ov ? "failed to remove snapshot l1" : "failed to remove"}: cannot remove snapshot with child: failed precondition`],
        [() => s.update({ name: "nope", labels: {} }), "NotFound", "snapshot does not exist: not found"],
        [() => s.update({ name: "l1" }, ["kind"]), "InvalidArgument", 'cannot update "kind" field on snapshot "l1": invalid argument'],
        [() => s.walk(["name=="]), "InvalidArgument", "filters: parse error: [name==]: expected value or quoted: invalid argument"],
      ];
      for (const [call, code, msg] of cases) {
        const e = await caught(call());
        expect([e.code, e.message]).toEqual([code, msg]);
      }
      expect((await caught(s.remove("l1"))).grpcCode).toBe(9);
      // Failed calls change nothing and leave nothing behind.
      expect((await s.walk()).map((i) => i.name)).toEqual(["act", "l1", "v"]);
      expect(readdirSync(join(rootOf(), "snapshots")).filter((n) => n.startsWith("new-"))).toEqual([]);
      expect(await s.verify()).toEqual([]);
      // Children first, then the parent.
      await s.remove("act");
      await caught(s.remove("l1")).then((e) => expect(e.code).toBe("FailedPrecondition")); // the view is a child too
      await s.remove("v");
      await s.remove("l1");
      expect(await s.walk()).toEqual([]);
      expect(readdirSync(join(rootOf(), "snapshots"))).toEqual([]);
    });

    test("labels: set at creation, update by field path or wholesale, replaced on commit; walk filters", async () => {
      const s = await openSn(name, rootOf());
      await s.prepare("a", "", { "containerd.io/gc.root": "yes", team: "x", empty: "" });
      let info = await s.stat("a");
      expect(info.labels).toEqual({ "containerd.io/gc.root": "yes", team: "x" });
      expect(info.created.getTime()).toBe(info.updated.getTime());
      await Bun.sleep(5);
      info = await s.update({ name: "a", labels: { team: "y", other: "ignored" } }, ["labels.team"]);
      expect(info.labels).toEqual({ "containerd.io/gc.root": "yes", team: "y" });
      expect(info.updated.getTime()).toBeGreaterThan(info.created.getTime());
      expect(await s.stat("a")).toEqual(info);
      // A field path whose label is absent (or empty) removes the label.
      info = await s.update({ name: "a", labels: {} }, ["labels.containerd.io/gc.root"]);
      expect(info.labels).toEqual({ team: "y" });
      // No field paths: all labels replaced.
      info = await s.update({ name: "a", labels: { n: "1", m: "2" } });
      expect(info.labels).toEqual({ n: "1", m: "2" });
      info = await s.update({ name: "a", labels: { k: "v" } }, ["labels"]);
      expect(info.labels).toEqual({ k: "v" });
      // Commit replaces labels (no inheritance).
      await s.commit("A", "a", { layer: "1", "containerd.io/gc.root": "t" });
      expect((await s.stat("A")).labels).toEqual({ layer: "1", "containerd.io/gc.root": "t" });
      await s.prepare("b", "A");
      await s.commit("B", "b");
      await s.prepare("c", "B", { role: "ctr" });
      await s.view("d", "A", { role: "view", "a.b": "dotted value" });

      const names = async (...f: string[]) => (await s.walk(f)).map((i) => i.name);
      expect(await names()).toEqual(["A", "B", "c", "d"]);
      expect(await names("kind==committed")).toEqual(["A", "B"]);
      expect(await names("kind==active")).toEqual(["c"]);
      expect(await names("kind==view")).toEqual(["d"]);
      expect(await names("parent==A")).toEqual(["B", "d"]);
      expect(await names("parent!=A")).toEqual(["A", "c"]);
      expect(await names("name~=^[AB]$")).toEqual(["A", "B"]);
      expect(await names("labels.role")).toEqual(["c", "d"]);
      expect(await names('labels."containerd.io/gc.root"')).toEqual(["A"]);
      expect(await names("labels.role==ctr", "labels.layer")).toEqual(["A", "c"]); // OR
      expect(await names("labels.role,kind==view")).toEqual(["d"]); // AND
      expect(await names('labels."a.b"=="dotted value"')).toEqual(["d"]);
      expect(await names("labels.a.b~=/^dotted/")).toEqual(["d"]);
      const all = await s.walk();
      expect(all.find((i) => i.name === "B")).toMatchObject({ kind: Kind.Committed, parent: "A", labels: {} });
    });

    test("usage: blocks and inodes of the snapshot's own files, hard links once; stored at commit", async () => {
      const s = await openSn(name, rootOf());
      await s.prepare("a", "");
      const files = ["big", "s1", "s2", "d/s3"];
      write(join(own(1), "big"), Buffer.alloc(100_000, 7));
      write(join(own(1), "s1"), "1");
      write(join(own(1), "s2"), "22");
      write(join(own(1), "d/s3"), "333");
      linkSync(join(own(1), "s1"), join(own(1), "s1-link"));
      symlinkSync("s2", join(own(1), "sym"));
      // Independent count: root dir, d/, 4 files, the symlink; the hard link adds nothing.
      const paths = ["", "d", ...files, "sym"].map((p) => join(own(1), p));
      const expected = { size: paths.reduce((n, p) => n + lstatSync(p).blocks * 512, 0), inodes: 7 };
      const u = await s.usage("a");
      expect(u).toEqual(expected);
      expect(u.size).toBeGreaterThanOrEqual(100_000);
      await s.commit("A", "a");
      expect(await s.usage("A")).toEqual(expected);
      // A child's usage is only its own changes.
      await s.prepare("b", "A");
      const own2 = await s.usage("b");
      if (name === "overlayfs") expect(own2.inodes).toBe(1);
      else expect(own2).toEqual(expected); // a full copy
      await s.view("v", "A");
      expect(await s.usage("v")).toEqual({ size: 0, inodes: 0 });
    });

    test("restart: reopening the same root keeps snapshots, labels, mounts and files", async () => {
      let s = await buildChain(name);
      await s.prepare("ctr", "l3", { role: "ctr" });
      await s.view("v", "l2");
      await s.update({ name: "l2", labels: { keep: "me" } });
      const before = await s.walk();
      const mounts = { ctr: await s.mounts("ctr"), v: await s.mounts("v") };
      const usage = await s.usage("l1");
      s = await reopen(s, name);
      expect(await s.walk()).toEqual(before);
      expect(await s.mounts("ctr")).toEqual(mounts.ctr);
      expect(await s.mounts("v")).toEqual(mounts.v);
      expect(await s.usage("l1")).toEqual(usage);
      await withMounted(mounts.ctr, expectLayer3);
      // New ids continue after the old ones.
      await s.prepare("after", "l1");
      expect((await s.mounts("after"))[0]!.options.join(",") + (await s.mounts("after"))[0]!.source).toContain(`/snapshots/6`);
      expect(await s.verify()).toEqual([]);
    });

    test("start-up removes orphans: temp dirs, directories without a record, stale check mounts; never through a mount", async () => {
      let s = await openSn(name, rootOf());
      await s.prepare("keep", "");
      await s.commit("K", "keep");
      await s.prepare("act", "K");
      const snaps = join(rootOf(), "snapshots");
      write(join(snaps, "new-123456/fs/partial"), "half-built");
      write(join(snaps, "99/fs/x"), "crashed before commit");
      write(join(snaps, "rm-1/x"), "removed");
      // An orphan with something mounted inside: the mounted files must survive the cleanup.
      const precious = mnt("precious");
      write(join(precious, "file"), "do not delete");
      mkdirSync(join(snaps, "98/fs"), { recursive: true });
      sysMount(precious, join(snaps, "98/fs"), null, MS.BIND, null);
      // overlayfs: a start-up check (test mount in the root) killed while mounted.
      const chk = join(rootOf(), "multiple-lowerdir-checkXYZ");
      if (name === "overlayfs") {
        mkdirSync(join(chk, "merged"), { recursive: true });
        sysMount(precious, join(chk, "merged"), null, MS.BIND, null);
      }
      expect((await s.verify()).length).toBe(4);
      s = await reopen(s, name);
      expect(readdirSync(snaps).sort()).toEqual(["1", "2"]);
      expect(existsSync(chk)).toBe(false);
      expect(mountsUnder(rootOf())).toEqual([]);
      expect(read(join(precious, "file"))).toBe("do not delete");
      expect(await s.verify()).toEqual([]);
      expect((await s.walk()).map((i) => i.name)).toEqual(["K", "act"]);
      // cleanup() does the same at run time.
      write(join(snaps, "new-abc/x"), "x");
      await s.cleanup();
      expect(readdirSync(snaps).sort()).toEqual(["1", "2"]);
    });

    test("concurrent calls on one snapshotter are serialized and all succeed", async () => {
      const s = await openSn(name, rootOf());
      await s.prepare("base", "");
      for (let i = 0; i < 50; i++) write(join(own(1), `f${i}`), "x".repeat(i * 100));
      await s.commit("B", "base");
      await Promise.all(Array.from({ length: 12 }, (_, i) => s.prepare(`c${i}`, "B")));
      await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? s.commit(`C${i}`, `c${i}`) : s.remove(`c${i}`))));
      expect((await s.walk()).map((i) => i.name).sort()).toEqual(["B", "C1", "C11", "C3", "C5", "C7", "C9"]);
      expect(await s.verify()).toEqual([]);
    });

    test("crash consistency: SIGKILL at random moments while another process prepares/commits/removes", async () => {
      const root = rootOf();
      const stats = { kills: 0, midway: 0, ops: 0 };
      const ITER = 25;
      for (let it = 0; it < ITER; it++) {
        const early = it % 5 === 4; // sometimes kill during start-up (open, orphan cleanup, overlay check)
        const child = Bun.spawn([process.execPath, "-e", CHILD], {
          env: { ...process.env, SN_NAME: name, SN_ROOT: root, SN_MOD: join(import.meta.dir, "../core/snapshots/index.ts") },
          stdout: "pipe",
          stderr: "pipe",
        });
        children.push(child);
        if (!early) {
          const reader = child.stdout.getReader();
          let got = "";
          const deadline = Date.now() + 10_000;
          while (!got.includes("R") && Date.now() < deadline) {
            const { value, done } = await reader.read();
            if (done) break;
            got += new TextDecoder().decode(value);
          }
          if (!got.includes("R")) throw new Error(`child did not start: ${await new Response(child.stderr).text()}`);
          reader.releaseLock();
          await Bun.sleep(Math.random() * 250);
        } else {
          await Bun.sleep(20 + Math.random() * 120);
        }
        const alive = child.exitCode === null;
        child.kill("SIGKILL");
        await child.exited;
        if (!alive) throw new Error(`child exited on its own (${child.exitCode}): ${await new Response(child.stderr).text()}`);
        stats.kills++;
        // Right after the kill, before anyone cleans up: every record still has its directory.
        const raw = inspect(name, root);
        expect(raw.missing).toEqual([]);
        if (raw.orphans.length) stats.midway++;
        stats.ops = raw.records.length;
      }
      // Reopen: orphans go, and what is left is fully consistent.
      const s = await openSn(name, root);
      expect(await s.verify()).toEqual([]);
      const after = inspect(name, root);
      expect(after.orphans).toEqual([]);
      expect(after.missing).toEqual([]);
      expect(after.integrity).toBe("ok");
      expect(after.fkViolations).toBe(0);
      expect(after.markerProblems).toEqual([]);
      // Still usable: a container on the deepest committed layer sees every marker of its chain.
      const infos = await s.walk(["kind==committed"]);
      expect(infos.length).toBeGreaterThan(0);
      const depth = (n: string): number => {
        const i = infos.find((x) => x.name === n);
        return i && i.parent ? 1 + depth(i.parent) : 1;
      };
      const deepest = infos.reduce((a, b) => (depth(b.name) > depth(a.name) ? b : a));
      const chain: string[] = [];
      for (let n = deepest.name; n; n = infos.find((x) => x.name === n)!.parent) chain.push(infos.find((x) => x.name === n)!.labels["test/marker"]!);
      await withMounted(await s.prepare("final-check", deepest.name), (r) => {
        for (const tag of chain) expect(read(join(r, `m-${tag}`))).toBe(tag);
      });
      console.log(`${name}: ${stats.kills} kills, ${stats.midway} left orphans behind, ${after.records.length} snapshots at the end`);
    }, 120_000);
  });
}

// ---------------------------------------------------------------------------------------------
// Crash test helpers

/** The child: opens the snapshotter and loops over random operations until killed. */
const CHILD = `
const { OverlaySnapshotter, NativeSnapshotter } = await import(process.env.SN_MOD);
const fs = await import("node:fs");
const C = process.env.SN_NAME === "overlayfs" ? OverlaySnapshotter : NativeSnapshotter;
const s = await C.open(process.env.SN_ROOT);
process.stdout.write("R\\n");
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const writable = (m) => m[0].type === "bind" ? m[0].source : m[0].options.find((o) => o.startsWith("upperdir=")).slice(9);
for (let i = 0; ; i++) {
  const tag = process.pid + "-" + i;
  const all = await s.walk();
  const committed = all.filter((x) => x.kind === 3);
  if (all.length > 24) {
    for (const x of all) { try { await s.remove(pick(all).name); } catch {} }
    continue;
  }
  const parent = committed.length && Math.random() < 0.85 ? pick(committed).name : "";
  const key = "active-" + tag;
  const m = await s.prepare(key, parent, { "test/marker": tag });
  const w = writable(m);
  fs.writeFileSync(w + "/m-" + tag, tag);
  if (!parent) {
    // A base layer with some bulk: copies (native) and usage walks take a while.
    fs.mkdirSync(w + "/bulk-" + tag);
    for (let j = 0; j < 150; j++) fs.writeFileSync(w + "/bulk-" + tag + "/f" + j, "y".repeat(j * 7));
    fs.writeFileSync(w + "/big-" + tag, Buffer.alloc(1 << 20, 1));
  }
  const r = Math.random();
  if (r < 0.65) await s.commit("layer-" + tag, key, { "test/marker": tag });
  else if (r < 0.8) await s.remove(key);
  if (committed.length && Math.random() < 0.3) await s.view("view-" + tag, pick(committed).name);
  if (committed.length && Math.random() < 0.25) { try { await s.remove(pick(committed).name); } catch {} }
}
`;

interface Inspection {
  records: { id: number; key: string; kind: number; parent: number | null; marker: string | null }[];
  missing: string[];
  orphans: string[];
  integrity: string;
  fkViolations: number;
  markerProblems: string[];
}

/** Looks at the root directly (SQLite + directories), independent of the snapshotter code. */
function inspect(name: Name, root: string): Inspection {
  const db = new Database(join(root, "metadata.db"));
  try {
    const records = db
      .query("SELECT s.id, s.key, s.kind, s.parent, l.value AS marker FROM snapshots s LEFT JOIN labels l ON l.id = s.id AND l.name = 'test/marker' ORDER BY s.id")
      .all() as Inspection["records"];
    const integrity = (db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check;
    const fkViolations = db.query("PRAGMA foreign_key_check").all().length;
    const snaps = join(root, "snapshots");
    const byId = new Map(records.map((r) => [r.id, r]));
    const missing: string[] = [];
    const markerProblems: string[] = [];
    const ownDir = (id: number) => (name === "overlayfs" ? join(snaps, String(id), "fs") : join(snaps, String(id)));
    for (const r of records) {
      const needsDir = name === "overlayfs" || r.kind !== Kind.View || r.parent === null;
      if (needsDir && !existsSync(ownDir(r.id))) missing.push(`${r.key} (id ${r.id}, kind ${r.kind}): ${ownDir(r.id)}`);
      if (name === "overlayfs" && r.kind !== Kind.View && !existsSync(join(snaps, String(r.id), "work"))) missing.push(`${r.key}: work/`);
      if (r.parent !== null && byId.get(r.parent)?.kind !== Kind.Committed) missing.push(`${r.key}: parent ${r.parent} not committed`);
      if (r.kind === Kind.Committed && r.marker) {
        // Its own marker was written before commit; a native snapshot also holds its ancestors'.
        const expectTags = [r.marker];
        if (name === "native") for (let p = r.parent; p !== null; p = byId.get(p)!.parent) expectTags.push(byId.get(p)!.marker!);
        for (const tag of expectTags) {
          const f = join(ownDir(r.id), `m-${tag}`);
          if (!existsSync(f) || readFileSync(f, "utf8") !== tag) markerProblems.push(`${r.key}: ${f}`);
        }
      }
    }
    const ids = new Set(records.map((r) => String(r.id)));
    const orphans = existsSync(snaps) ? readdirSync(snaps).filter((n) => !ids.has(n)) : [];
    return { records, missing, orphans, integrity, fkViolations, markerProblems };
  } finally {
    db.close();
  }
}
