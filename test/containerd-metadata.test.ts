// Unit tests of containerd's foundations: the metadata store (bun:sqlite), containerd's filter
// syntax, Go's tabwriter and formats, the config reader, the proto codecs. No daemon involved;
// each test gets a fresh database in /tmp/bunker-test-<rand>/, removed afterwards.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { rand, TMP_PREFIX } from "./harness";
import * as md from "../core/metadata";
import { Code, ErrDef } from "../core/containerd/errdefs";
import { parseFilter, parseFilters } from "../core/containerd/filters";
import { digestProblem, validateIdentifier } from "../core/containerd/identifiers";
import { formatRFC3339, parseRFC3339 } from "../core/containerd/types";
import { codecFor, packAny, serviceMethods, unpackAny } from "../core/containerd/grpc";
import { defaultConfig, loadConfig, pluginDisabled } from "../core/containerd/config";
import { formatTabs } from "../core/ctr/tabwriter";
import { formatDuration, parseDuration, progressBytes } from "../core/ctr/units";
import { fromGRPC } from "../core/ctr/client";
import { Exchange } from "../core/containerd/events";

let dir = "";
let db: md.MetadataDB;

beforeEach(() => {
  dir = `${TMP_PREFIX}${rand()}`;
  mkdirSync(dir, { recursive: true });
  db = md.MetadataDB.open(dir);
});

afterEach(() => {
  try {
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const err = (fn: () => unknown): ErrDef => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ErrDef) return e;
    throw e;
  }
  throw new Error("expected an error");
};

const D = "sha256:" + "0123456789abcdef".repeat(4);
const target = { mediaType: "application/vnd.oci.image.index.v1+json", digest: D, size: 10, annotations: {} };

describe("metadata store", () => {
  test("schema: WAL, migrations recorded, reopen keeps data", () => {
    expect(db.db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    expect(db.version()).toBe(md.MIGRATIONS.at(-1)!.version);
    md.createNamespace(db, "a");
    db.close();
    db = md.MetadataDB.open(dir);
    expect(md.listNamespaces(db)).toEqual(["a"]);
    expect(db.integrityCheck()).toBe("ok");
  });

  test("namespaces: create, labels, implicit creation, delete rules", () => {
    md.createNamespace(db, "b", { x: "1" });
    expect(err(() => md.createNamespace(db, "b")).message).toBe('namespace "b": already exists');
    expect(err(() => md.createNamespace(db, "-bad")).code).toBe(Code.INVALID_ARGUMENT);
    md.setNamespaceLabel(db, "b", "y", "2");
    md.setNamespaceLabel(db, "b", "x", "");
    expect(md.namespaceLabels(db, "b")).toEqual({ y: "2" });
    md.setNamespaceLabel(db, "c", "k", "v"); // creates c
    expect(md.listNamespaces(db)).toEqual(["b", "c"]);
    expect(md.namespaceLabels(db, "nope")).toEqual({});
    md.createLease(db, "d", "l1"); // creates d; leases go with the namespace
    md.deleteNamespace(db, "d");
    expect(md.listLeases(db, "d")).toEqual([]);
    expect(err(() => md.deleteNamespace(db, "d")).message).toBe('namespace "d": not found');
    md.createImage(db, "b", { name: "img", labels: {}, target });
    md.addContent(db, "b", { digest: D, size: 10 });
    md.createSnapshot(db, "b", { snapshotter: "overlayfs", key: "k", backingKey: "b/1/k", kind: "active" });
    expect(err(() => md.deleteNamespace(db, "b")).message).toBe('namespace "b" must be empty, but it still has images, blobs, snapshots on "overlayfs" snapshotter: failed precondition');
  });

  test("images: validation, update by field paths, filters, delete", () => {
    expect(err(() => md.createImage(db, "n", { name: "", labels: {}, target })).message).toBe("image name must not be empty: invalid argument");
    expect(err(() => md.createImage(db, "n", { name: "x", labels: {}, target: { ...target, size: 0 } })).message).toBe("Target.Size must be greater than zero: invalid argument");
    expect(err(() => md.createImage(db, "n", { name: "x", labels: {}, target: { ...target, mediaType: "" } })).message).toBe("Target.MediaType must be set: invalid argument");
    expect(err(() => md.createImage(db, "n", { name: "x", labels: {}, target: { ...target, digest: "md5:00" } })).message).toBe('Target.Digest "md5:00" invalid: unsupported digest algorithm: invalid argument');
    const a = md.createImage(db, "n", { name: "a", labels: { k: "v", gone: "" }, target });
    expect(a.labels).toEqual({ k: "v" });
    expect(err(() => md.createImage(db, "n", { name: "a", labels: {}, target })).message).toBe('image "a": already exists');
    md.createImage(db, "n", { name: "b", labels: {}, target: { ...target, annotations: { an: "1" } } });
    const u = md.updateImage(db, "n", { name: "a", labels: { k2: "v2" }, target: { ...target, size: 99 } }, ["labels.k2"]);
    expect(u.labels).toEqual({ k: "v", k2: "v2" });
    expect(u.target.size).toBe(10);
    expect(u.createdAt).toEqual(a.createdAt);
    const t = md.updateImage(db, "n", { name: "a", labels: {}, target: { ...target, size: 99 } }, ["target"]);
    expect(t.target.size).toBe(99);
    expect(t.labels).toEqual({ k: "v", k2: "v2" });
    expect(md.updateImage(db, "n", { name: "a", labels: { k: "" }, target }, ["labels.k"]).labels).toEqual({ k2: "v2" });
    expect(err(() => md.updateImage(db, "n", { name: "a", labels: {}, target }, ["size"])).message).toBe('cannot update "size" field on image "a": invalid argument');
    expect(err(() => md.updateImage(db, "n", { name: "zz", labels: {}, target }, [])).message).toBe('image "zz": not found');
    const names = (f: string[]) => md.listImages(db, "n", parseFilters(f)).map((i) => i.name);
    expect(names([])).toEqual(["a", "b"]);
    expect(names(["labels.k2==v2"])).toEqual(["a"]);
    expect(names(["annotations.an"])).toEqual(["b"]);
    expect(names(["name==a", "name==b"])).toEqual(["a", "b"]);
    expect(names([`target.digest==${D}`, "name!=b"])).toEqual(["a", "b"]);
    expect(names([`target.digest==${D},name!=b`])).toEqual(["a"]);
    md.deleteImage(db, "n", "a");
    expect(err(() => md.deleteImage(db, "n", "a")).code).toBe(Code.NOT_FOUND);
    expect(md.listImages(db, "other")).toEqual([]);
  });

  test("leases: ids, resources, request leases, expiry", () => {
    expect(md.randomLeaseID()).toMatch(/^\d+-[A-Za-z0-9_-]{4}$/);
    md.createLease(db, "n", "l", { "containerd.io/gc.expire": "2000-01-01T00:00:00Z" });
    md.createLease(db, "n", "m", { "containerd.io/gc.expire": "2999-01-01T00:00:00Z" });
    expect(md.expiredLeases(db)).toEqual([["n", "l"]]);
    md.addLeaseResource(db, "n", "l", { type: "snapshots/native", id: "s" });
    db.write(() => md.addToRequestLease(db, "n", "l", { type: "content", id: D }));
    expect(err(() => db.write(() => md.addToRequestLease(db, "n", "gone", { type: "content", id: D }))).message).toBe("lease does not exist: not found");
    expect(md.leased(db, "n", { type: "content", id: D })).toBe(true);
    expect(md.listLeaseResources(db, "n", "l")).toEqual([
      { id: D, type: "content" },
      { id: "s", type: "snapshots/native" },
    ]);
    expect(err(() => md.addLeaseResource(db, "n", "l", { type: "snapshots", id: "s" })).message).toBe("invalid snapshot resource type snapshots: invalid argument");
    md.deleteLease(db, "n", "l");
    expect(md.leased(db, "n", { type: "content", id: D })).toBe(false);
  });

  test("content and ingests", () => {
    md.addContent(db, "n", { digest: D, size: 3, labels: { "containerd.io/gc.ref.content.0": D } });
    expect(err(() => md.addContent(db, "n", { digest: D, size: 3 })).code).toBe(Code.ALREADY_EXISTS);
    expect(md.contentReferenced(db, D)).toBe(true);
    const u = md.updateContent(db, "n", D, { a: "b" }, ["labels.a"]);
    expect(u.labels).toEqual({ "containerd.io/gc.ref.content.0": D, a: "b" });
    expect(md.updateContent(db, "n", D, { c: "d" }).labels).toEqual({ c: "d" });
    expect(md.listContent(db, "n", parseFilters(["labels.c==d"])).length).toBe(1);
    md.putIngest(db, "n", { ref: "r", expected: D, total: 3 });
    const i2 = md.putIngest(db, "n", { ref: "r", total: 4 });
    expect([i2.expected, i2.total]).toEqual([D, 4]);
    expect(md.listIngests(db, "n").map((i) => i.ref)).toEqual(["r"]);
    expect(md.deleteIngest(db, "n", "r")).toBe(true);
    md.deleteContent(db, "n", D);
    expect(err(() => md.getContent(db, "n", D)).message).toBe(`content digest ${D}: not found`);
    expect(md.contentReferenced(db, D)).toBe(false);
  });

  test("snapshots: parents, commit, children, remove", () => {
    md.createSnapshot(db, "n", { snapshotter: "overlayfs", key: "a", backingKey: "n/1/a", kind: "active" });
    expect(err(() => md.createSnapshot(db, "n", { snapshotter: "overlayfs", key: "b", backingKey: "n/2/b", parent: "a", kind: "active" })).message).toBe('parent "a" is not committed snapshot: invalid argument');
    md.commitSnapshot(db, "n", "overlayfs", "a", "layer1", { labels: { l: "1" } });
    expect(md.findSnapshot(db, "n", "overlayfs", "a")).toBeUndefined();
    md.createSnapshot(db, "n", { snapshotter: "overlayfs", key: "b", backingKey: "n/2/b", parent: "layer1", kind: "active" });
    expect(md.snapshotChildren(db, "n", "overlayfs", "layer1")).toEqual(["b"]);
    expect(err(() => md.removeSnapshot(db, "n", "overlayfs", "layer1")).message).toBe("cannot remove snapshot with child: failed precondition");
    expect(md.listSnapshots(db, "n", "overlayfs", parseFilters(["kind==committed"])).map((s) => s.key)).toEqual(["layer1"]);
    expect(md.updateSnapshotLabels(db, "n", "overlayfs", "b", { x: "y" }, ["labels.x"]).labels).toEqual({ x: "y" });
    expect(md.backingKeys(db, "overlayfs")).toEqual(new Set(["n/1/a", "n/2/b"]));
    md.removeSnapshot(db, "n", "overlayfs", "b");
    md.removeSnapshot(db, "n", "overlayfs", "layer1");
    expect(md.listSnapshots(db, "n", "overlayfs")).toEqual([]);
  });

  test("containers", () => {
    const spec = { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", value: Buffer.from("{}") };
    const base = { id: "c1", labels: { a: "b" }, image: "img", runtime: { name: "io.containerd.runc.v2", options: null }, spec, snapshotter: "overlayfs", snapshotKey: "c1", extensions: {}, sandbox: "" };
    md.createContainer(db, "n", base);
    expect(err(() => md.createContainer(db, "n", base)).message).toBe('container "c1": already exists');
    expect(err(() => md.createContainer(db, "n", { ...base, id: "c2", spec: null })).message).toBe("must specify a spec: invalid argument");
    const u = md.updateContainer(db, "n", { ...base, labels: { z: "1" }, extensions: { e: spec } }, ["labels.z", "extensions.e"]);
    expect(u.labels).toEqual({ a: "b", z: "1" });
    const got = md.getContainer(db, "n", "c1");
    expect(Buffer.from(got.extensions.e!.value).toString()).toBe("{}");
    expect(Buffer.from(got.spec!.value).toString()).toBe("{}");
    expect(md.listContainers(db, "n", parseFilters(["labels.z==1"])).length).toBe(1);
    expect(err(() => md.deleteNamespace(db, "n")).message).toContain("containers");
    md.deleteContainer(db, "n", "c1");
  });
});

describe("containerd formats", () => {
  test("identifiers and digests", () => {
    expect(() => validateIdentifier("a.b-c_d")).not.toThrow();
    expect(err(() => validateIdentifier("")).message).toBe("identifier must not be empty: invalid argument");
    expect(err(() => validateIdentifier("x".repeat(77))).message).toContain("greater than maximum length (76 characters)");
    expect(digestProblem(D)).toBeUndefined();
    expect(digestProblem("sha256:ABC")).toBe("invalid checksum digest length");
    expect(digestProblem("sha256:" + "A".repeat(64))).toBe("invalid checksum digest format");
    expect(digestProblem("nope")).toBe("invalid checksum digest format");
  });

  test("filters: containerd's syntax and errors", () => {
    const obj: Record<string, string> = { topic: "/tasks/exit", namespace: "moby" };
    const a = (p: string[]): [string, boolean] => [obj[p[0]!] ?? "", p[0]! in obj];
    expect(parseFilter("namespace==moby,topic~=/tasks/")(a)).toBe(true); // /tasks/ is a quoted regexp: "tasks"
    expect(parseFilter("namespace==moby,topic~=/images/")(a)).toBe(false);
    expect(parseFilter('topic~="^/tasks/"')(a)).toBe(true);
    expect(parseFilter("topic~=|^/tasks/|")(a)).toBe(true);
    expect(parseFilter("namespace")(a)).toBe(true);
    expect(parseFilter("missing!=x")(a)).toBe(true);
    expect(() => parseFilter("a=b")).toThrow('filters: parse error: [a >|=|< b]: unsupported operator "="');
    expect(err(() => parseFilters(["x=="])).message).toBe("filters: parse error: [x==]: expected value or quoted: invalid argument");
  });

  test("times: RFC 3339 as Go prints it", () => {
    expect(formatRFC3339({ seconds: 0, nanos: 0 })).toBe("1970-01-01T00:00:00Z");
    expect(formatRFC3339({ seconds: 1, nanos: 500_000_000 })).toBe("1970-01-01T00:00:01.5Z");
    expect(formatRFC3339({ seconds: 1, nanos: 123 }, { fraction: false })).toBe("1970-01-01T00:00:01Z");
    expect(parseRFC3339("2026-11-23T12:11:19.493720559Z")).toEqual({ seconds: 1795435879, nanos: 493720559 });
    expect(parseRFC3339("1970-01-01T01:00:00+01:00")).toEqual({ seconds: 0, nanos: 0 });
  });

  test("Go tabwriter, sizes, durations", () => {
    expect(formatTabs("NAME\tLABELS\t\nfoo\ta=b\t\n", 1, 1)).toBe("NAME LABELS \nfoo  a=b    \n");
    expect(formatTabs("a\tb\nlonger\tc\n\nx\ty\n", 1, 1)).toBe("a      b\nlonger c\n\nx y\n");
    expect([progressBytes(0), progressBytes(1234), progressBytes(2 * 1024 * 1024)]).toEqual(["0.0 B", "1.2 KiB", "2.0 MiB"]);
    expect([parseDuration("24h"), parseDuration("1m30s"), parseDuration("250ms"), parseDuration("0")]).toEqual([86_400_000, 90_000, 250, 0]);
    expect(() => parseDuration("10")).toThrow("missing unit");
    expect([formatDuration(86_400_000), formatDuration(1500), formatDuration(100), formatDuration(0)]).toEqual(["24h0m0s", "1.5s", "100ms", "0s"]);
  });

  test("errors from gRPC are rebased like containerd's errdefs.FromGRPC", () => {
    expect(fromGRPC({ code: Code.NOT_FOUND, details: 'image "x": not found' }).message).toBe('image "x": not found');
    expect(fromGRPC({ code: Code.NOT_FOUND, details: "gone" }).message).toBe("gone: not found");
    expect(fromGRPC({ code: Code.UNIMPLEMENTED, details: "nope" }).message).toBe("nope: not implemented");
    expect(fromGRPC({ code: Code.INTERNAL, details: "boom" })).toMatchObject({ code: Code.UNKNOWN, message: "boom: unknown" });
  });
});

describe("protos and codecs", () => {
  test("every containerd service resolves, with containerd's method paths", () => {
    const expected: Record<string, string[]> = {
      "containerd.services.content.v1.Content": ["Info", "Update", "List", "Delete", "Read", "Status", "ListStatuses", "Write", "Abort"],
      "containerd.services.snapshots.v1.Snapshots": ["Prepare", "View", "Mounts", "Commit", "Remove", "Stat", "Update", "List", "Usage", "Cleanup"],
      "containerd.services.tasks.v1.Tasks": ["Create", "Start", "Delete", "DeleteProcess", "Get", "List", "Kill", "Exec", "ResizePty", "CloseIO", "Pause", "Resume", "ListPids", "Checkpoint", "Update", "Metrics", "Wait"],
      "containerd.services.containers.v1.Containers": ["Get", "List", "ListStream", "Create", "Update", "Delete"],
      "containerd.services.diff.v1.Diff": ["Apply", "Diff"],
      "containerd.services.events.v1.Events": ["Publish", "Forward", "Subscribe"],
    };
    for (const [svc, methods] of Object.entries(expected)) {
      expect(serviceMethods(svc).map((m) => m.name)).toEqual(methods);
    }
    const write = serviceMethods("containerd.services.content.v1.Content").find((m) => m.name === "Write")!;
    expect([write.path, write.requestStream, write.responseStream]).toEqual(["/containerd.services.content.v1.Content/Write", true, true]);
  });

  test("int64 as strings, enums by name, bytes, maps, Any", () => {
    const c = codecFor("containerd.services.content.v1.WriteContentRequest");
    const back = c.decode(c.encode({ action: "COMMIT", ref: "r", total: 2n ** 53n + 1n, data: new Uint8Array([1, 2]), labels: { a: "b" } }));
    expect(back).toMatchObject({ action: "COMMIT", ref: "r", total: "9007199254740993", offset: "0", labels: { a: "b" } });
    expect([...back.data]).toEqual([1, 2]);
    // Field numbers on the wire: ServerResponse{uuid=1, pid=2, pidns=3}.
    const s = codecFor("containerd.services.introspection.v1.ServerResponse").encode({ uuid: "u", pid: 5, pidns: "4026531836" });
    expect([...s.subarray(0, 5)]).toEqual([0x0a, 1, 0x75, 0x10, 5]);
    const any = packAny("containerd.events.NamespaceCreate", { name: "x", labels: {} });
    expect(any.typeUrl).toBe("containerd.events.NamespaceCreate");
    expect(unpackAny(any)).toEqual({ name: "x", labels: {} });
  });

  test("the event exchange filters by namespace and topic", async () => {
    const ex = new Exchange();
    const ac = new AbortController();
    const got: string[] = [];
    const done = (async () => {
      for await (const e of ex.subscribe(parseFilters(['namespace==moby,topic~="^/tasks/"']), ac.signal)) {
        got.push(e.topic);
        if (got.length === 2) ac.abort();
      }
    })();
    await Bun.sleep(1);
    ex.publish("moby", "/tasks/exit", "containerd.events.TaskExit", { containerId: "c" });
    ex.publish("other", "/tasks/exit", "containerd.events.TaskExit", { containerId: "c" });
    ex.publish("moby", "/images/create", "containerd.services.images.v1.ImageCreate", { name: "i" });
    ex.publish("moby", "/tasks/start", "containerd.events.TaskStart", { containerId: "c" });
    await done;
    expect(got).toEqual(["/tasks/exit", "/tasks/start"]);
    expect(ex.subscribers).toBe(0);
    expect(() => ex.publish("moby", "tasks", "containerd.events.TaskStart", {})).toThrow("must start with '/'");
  });
});

describe("config", () => {
  test("defaults, file, version 1 plugin names, imports", () => {
    const cfgPath = join(dir, "config.toml");
    const imp = join(dir, "extra.toml");
    writeFileSync(imp, `[grpc]\n  gid = 7\n`);
    writeFileSync(cfgPath, `version = 1\nroot = "/r"\nimports = ["extra.toml"]\ndisabled_plugins = ["cri"]\n[grpc]\n  address = "/s.sock"\n[plugins.cri]\n  x = 1\n`);
    const cfg = loadConfig(cfgPath, defaultConfig());
    expect([cfg.version, cfg.root, cfg.state, cfg.grpc.address, cfg.grpc.gid]).toEqual([1, "/r", "/run/containerd", "/s.sock", 7]);
    expect(pluginDisabled(cfg, "io.containerd.grpc.v1", "cri")).toBe(true);
    expect(loadConfig(join(dir, "missing.toml"), defaultConfig()).root).toBe("/var/lib/containerd");
    writeFileSync(cfgPath, `version = 3\n`);
    expect(() => loadConfig(cfgPath, defaultConfig())).toThrow("expected containerd config version equal to or less than 2, got 3");
  });
});
