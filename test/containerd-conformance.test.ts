// Side by side: Debian's REAL ctr 1.6.20 against the REAL containerd 1.6.20 and against OURS, the
// same commands in the same order, and the outputs (stdout, stderr, exit status) compared after
// normalising what must differ (sockets, roots, times). Both daemons start fresh in one private
// mount namespace (test/peers.ts), so sequences and snapshot ids advance alike.
//
// Where the real ctr prints a Go map (labels of `content ls`, `snapshots label`, plugin exports,
// `content active`), the comparison ignores the order.
//
// Known, intentional differences (not compared): the plugins we don't have yet (containers, tasks,
// runtimes, cgroups monitor, restart), and our metadata plugin's id "sqlite" where containerd's is
// "bolt" (its meta.db is a SQLite database); the version strings.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { exec, type ExecResult, sleep, waitFor } from "./harness";
import { describePeer, ensurePeerPackages, fmt, PeerSession } from "./peers";
import { busyboxImage, BUSYBOX_REF } from "./fixtures/busybox-image";

const OUR_CONTAINERD = join(import.meta.dir, "..", "dist", "bin", "containerd");
const REAL_CTR = "/usr/bin/ctr";

const skip = ensurePeerPackages(["containerd"], [REAL_CTR, "/usr/bin/containerd"]);

interface Daemon {
  name: "real" | "ours";
  address: string;
  root: string;
}

let s: PeerSession | undefined;
let ours: ReturnType<typeof Bun.spawn> | undefined;
let real: Daemon;
let our: Daemon;
let ourLog = "";

/** The real ctr against one daemon, in the session's mount namespace. */
function ctr(d: Daemon, args: string[], stdin?: string): ExecResult {
  return exec(s!.inNs([REAL_CTR, "--address", d.address, ...args]), { timeoutMs: 30_000, stdin });
}

/** What may differ between the daemons' outputs: sockets, roots, times. */
function normalize(d: Daemon, text: string): string {
  return text
    .replaceAll(d.address, "<sock>")
    .replaceAll(d.root, "<root>")
    .replace(/time="[^"]+"/g, 'time="<t>"')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, "<ts>")
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \+0000 UTC/g, "<ts>")
    .replace(/(Less than a second|\d+ seconds?|About a minute|\d+ minutes)/g, "<age>")
    .replace(/extract-\d+-[A-Za-z0-9_-]{4}/g, "extract-<n>");
}

interface Both {
  real: string;
  ours: string;
}

/** The same command against both daemons: normalised "exit N / stdout / stderr" of each. */
function both(args: string[], opts: { stdin?: string; unordered?: boolean } = {}): Both {
  const show = (d: Daemon) => {
    const r = ctr(d, args, opts.stdin);
    let out = normalize(d, r.stdout);
    // Go map order: the lines, and the comma-separated items of a line, in any order.
    if (opts.unordered) out = out.split("\n").map((l) => l.split(",").sort().join(",")).sort().join("\n");
    return `exit ${r.code}\n--- stdout:\n${out}--- stderr:\n${normalize(d, r.stderr)}`;
  };
  return { real: show(real), ours: show(our) };
}

/** Expect our daemon to answer `args` exactly as the real one; returns the real output. */
function same(args: string[], opts: { stdin?: string; unordered?: boolean } = {}): string {
  const b = both(args, opts);
  expect(b.ours, `ctr ${args.join(" ")}`).toBe(b.real);
  return b.real;
}

beforeAll(async () => {
  if (skip) return;
  if (!existsSync(OUR_CONTAINERD)) throw new Error(`${OUR_CONTAINERD} missing: build with node_modules/.bin/bun run build.ts`);
  s = new PeerSession();
  await s.startContainerd();
  real = { name: "real", address: s.containerd!.address, root: s.containerd!.root };
  our = { name: "ours", address: join(s.dir, "ours.sock"), root: join(s.dir, "ours-root") };
  ourLog = join(s.dir, "ours.log");
  const fd = openSync(ourLog, "a");
  ours = Bun.spawn(s.inNs([OUR_CONTAINERD, "--root", our.root, "--state", join(s.dir, "ours-state"), "--address", our.address]), { stdin: "ignore", stdout: fd, stderr: fd });
  closeSync(fd);
  if (!(await waitFor(() => readFileSync(ourLog, "utf8").includes("successfully booted") || ours!.exitCode !== null, 15_000))) {
    throw new Error(`our containerd did not start:\n${readFileSync(ourLog, "utf8")}`);
  }
}, 60_000);

afterAll(async () => {
  if (ours && ours.exitCode === null) {
    ours.kill("SIGKILL");
    await ours.exited;
  }
  if (!s) return;
  const problems = s.cleanup();
  s = undefined;
  if (problems.length) throw new Error(`cleanup left resources behind:\n  ${problems.join("\n  ")}`);
}, 60_000);

/**
 * Run a collection now in both daemons (a lease removed with --sync): pending deletions are then
 * collected, and none schedules another while the test runs. Views have no gc.root label, so a
 * collection in the middle of a test could take them from one daemon and not from the other.
 */
function settleGC(): void {
  for (const d of [real, our]) {
    ctr(d, ["-n", "cf-gc", "leases", "create", "--id", "settle"]);
    const r = ctr(d, ["-n", "cf-gc", "leases", "rm", "--sync", "settle"]);
    if (r.code !== 0) throw new Error(`${d.name}: leases rm --sync: ${fmt(r)}`);
  }
}

const BIG = "a".repeat(5000);
const T = 60_000;

describePeer("the real ctr against the real containerd and ours", skip, () => {
  test("namespaces: label errors (Unknown from an update), empty keys and values, removal", () => {
    same(["namespaces", "create", "cf-ns", "=v"]);
    same(["namespaces", "create", "cf-ns", "k=", "a=b"]);
    same(["namespaces", "create", "cf-ns"]);
    same(["namespaces", "create", "cf-bad", `k=${BIG}`]);
    expect(same(["namespaces", "label", "cf-ns", `k=${BIG}`])).toContain("invalid argument: unknown\n");
    same(["namespaces", "label", "cf-ns", "=w"]);
    same(["namespaces", "label", "cf-ns", "=", "x=y"]);
    expect(same(["namespaces", "ls"])).toContain("cf-ns a=b,x=y \n");
    same(["namespaces", "rm", "cf-ns", "cf-none"]);
    same(["namespaces", "ls", "-q"]);
  }, T);

  test("a caller's invalid or empty namespace: the errors and their codes, per service", () => {
    for (const ns of ["bad name", "", "-x"]) {
      for (const args of [["snapshots", "ls"], ["snapshots", "tree"], ["snapshots", "prepare", "k"], ["content", "ls"], ["content", "active"], ["images", "ls"], ["leases", "ls"], ["leases", "create"]]) {
        same(["-n", ns, ...args]);
      }
      // The namespace is made (or labelled), then publishing its event in the caller's fails.
      same(["-n", ns, "namespaces", "create", "cf-by-bad"]);
      same(["-n", ns, "namespaces", "label", "cf-by-bad", "a=b"]);
      same(["namespaces", "ls"]);
      same(["-n", ns, "namespaces", "rm", "cf-by-bad"]);
    }
  }, T);

  test("filters: malformed ones fail with containerd's messages, per service", () => {
    const filters = [
      "bad==",
      "labels.containerd.io/uncompressed",
      'labels."a',
      "labels.|foo|==x",
      "labels.foo==|x|",
      "labels.foo~=|x|",
      "name~=/docker",
      "name==/x/",
      'name=="\\q"',
      'name=="\\x4"',
      "name==x y",
      "name==x,",
      "name===x",
      "name~",
      ".name",
      "name..x",
      ",name",
      "@",
      "name@x",
      "labels.é",
      "name~=(",
      "size==400",
    ];
    for (const f of filters) {
      same(["-n", "cf-filters", "content", "ls", "-q", f]);
      same(["-n", "cf-filters", "images", "ls", "-q", f]);
      same(["-n", "cf-filters", "leases", "ls", "-q", f]);
      same(["-n", "cf-filters", "content", "active", f]);
    }
    for (const f of ["platforms==linux/amd64", "platforms", "exports.root", "capabilities", "type==io.containerd.snapshotter.v1,id==native", "id=="]) same(["plugins", "ls", "-q", f]);
  }, T);

  test("content: ingest, active, commit errors, labels, and a deleted namespace's ingests", () => {
    settleGC(); // the committed blob has no lease and no root: keep collections out of the test
    const n = ["-n", "cf-content"];
    const data = "conformance blob\n".repeat(64);
    const dgst = `sha256:${new Bun.CryptoHasher("sha256").update(data).digest("hex")}`;
    same([...n, "content", "ingest", "r1"], { stdin: data });
    same([...n, "content", "ingest", "--expected-digest", `sha256:${"0".repeat(64)}`, "r2"], { stdin: data });
    same([...n, "content", "ingest", "--expected-size", "10", "r3"], { stdin: data });
    same([...n, "content", "ingest", "--expected-size", "5000", "r4"], { stdin: data });
    same([...n, "content", "active"], { unordered: true });
    same([...n, "content", "active", "ref==r4"]);
    same([...n, "content", "active", "expected"]);
    same([...n, "content", "ls"]);
    same([...n, "content", "ls", "-q", `size==${data.length}`]);
    same([...n, "content", "ls", "-q", "size"]);
    same([...n, "content", "label", dgst, `k=${BIG}`]);
    same([...n, "content", "label", dgst, "=x"]);
    same([...n, "content", "label", dgst, "="]);
    same([...n, "content", "rm", dgst, dgst]);
    // A namespace with only ingests can be removed; its ingests are no longer listed.
    same(["-n", "cf-ingest", "content", "ingest", "--expected-size", "5000", "only"], { stdin: data });
    same(["namespaces", "ls", "-q"]);
    same(["namespaces", "rm", "cf-ingest"]);
    same(["-n", "cf-ingest", "content", "active"]);
  }, T);

  test("leases: labels without a size limit, an empty key refused", () => {
    const n = ["-n", "cf-leases"];
    same([...n, "leases", "create", "--id", "big", `k=${BIG}`]);
    same([...n, "leases", "create", "--id", "empty", "=x"]);
    same([...n, "leases", "create", "--id", "blank", "="]);
    same([...n, "leases", "ls", "-q"]);
    same([...n, "leases", "rm", "big", "empty", "blank"]);
  }, T);

  test("leases: an expired lease is listed until a deletion triggers a collection", async () => {
    const n = ["-n", "cf-expiry"];
    // A collection also starts after enough mutations; earlier tests leave each daemon's count
    // somewhere else, so start both from a fresh collection.
    settleGC();
    same([...n, "leases", "create", "--id", "short", "--expires", "1s"]);
    same([...n, "leases", "create", "--id", "other"]);
    await sleep(1500);
    expect(same([...n, "leases", "ls", "-q"])).toContain("other\nshort\n");
    same([...n, "leases", "rm", "other"]);
    for (const d of [real, our]) expect(await waitFor(() => ctr(d, [...n, "leases", "ls", "-q"]).stdout === "", 10_000, 100), d.name).toBe(true);
  }, T);

  for (const sn of ["overlayfs", "native"]) {
    test(`snapshots (${sn}): backing keys in the errors, the order of the checks, mounts`, () => {
      const n = ["-n", `cf-${sn}`, "snapshots", "--snapshotter", sn];
      settleGC();
      const root = "containerd.io/gc.root=x";
      const steps: string[][] = [
        ["prepare", "a"],
        ["mounts", "/mnt", "a"],
        ["prepare", "a"],
        ["prepare", "b", "nope"],
        ["prepare", ""],
        ["commit", "c", "a"],
        ["commit", "c", "a"],
        ["commit", "d", "c"], // not active: the backing key in the message
        ["commit", "d", "nope"],
        ["commit", "", "c"],
        ["prepare", "e", "c"],
        ["view", "v", "c"],
        ["label", "v", root],
        ["view", "v2", "e"], // parent not committed: a failed view still uses up its number
        ["commit", "f", "v"], // native: a view of a parent has no directory to walk
        ["mounts", "/mnt", "e"],
        ["mounts", "/mnt", "c"],
        ["mounts", "/mnt", "v"],
        ["view", "v0"],
        ["label", "v0", root],
        ["mounts", "/mnt", "v0"],
        ["prepare", "g"],
        ["commit", "h", "g"],
        ["mounts", "/mnt", "h"],
        ["ls"],
        ["tree"],
        ["info", "e"],
        ["usage", "c"],
        ["label", "c", "=x"],
        ["label", "c", `k=${BIG}`],
        ["rm", "c"],
        ["rm", "e", "v", "c", "v0", "h", "nope"],
        ["ls"],
      ];
      for (const st of steps) same([...n, ...st]);
      same(["namespaces", "rm", `cf-${sn}`]);
    }, T);
  }

  test("snapshots: a commit keeps the commit's labels only", () => {
    const n = ["-n", "cf-labels", "snapshots"];
    same([...n, "prepare", "a"]);
    same([...n, "label", "a", "x=y", "z=1"], { unordered: true });
    same([...n, "info", "a"]);
    same([...n, "commit", "c", "a"]);
    same([...n, "info", "c"]);
    same([...n, "rm", "c"]);
  }, T);

  test("images: an empty label key, image labels of an imported image", () => {
    const img = busyboxImage();
    const n = ["-n", "cf-images"];
    same([...n, "images", "import", img.archive]);
    same([...n, "images", "label", BUSYBOX_REF, "=v"]);
    same([...n, "images", "label", BUSYBOX_REF, "="]);
    same([...n, "images", "label", BUSYBOX_REF, `k=${BIG}`]);
    same([...n, "images", "ls"]);
    same([...n, "snapshots", "ls"]);
    same([...n, "images", "rm", "--sync", BUSYBOX_REF]);
    same([...n, "snapshots", "ls"]);
  }, T);

  test("events: what ctr events prints while namespaces, images, snapshots and content change", async () => {
    const img = busyboxImage();
    const subscribe = (d: Daemon) => {
      const out = join(s!.dir, `events-${d.name}.out`);
      const fd = openSync(out, "w");
      const p = Bun.spawn(s!.inNs([REAL_CTR, "--address", d.address, "events"]), { stdin: "ignore", stdout: fd, stderr: fd });
      closeSync(fd);
      return { p, out };
    };
    const subs = [subscribe(real), subscribe(our)];
    try {
      await sleep(500);
      settleGC();
      const n = ["-n", "cf-events"];
      const data = "event blob\n";
      const dgst = `sha256:${new Bun.CryptoHasher("sha256").update(data).digest("hex")}`;
      const steps: [string[], string?][] = [
        [["namespaces", "create", "cf-events", "a=b"]],
        [["namespaces", "label", "cf-events", "c=d"]],
        // Before any deletion schedules a collection, a root label keeps the blob from it.
        [[...n, "content", "ingest", "blob"], data],
        [[...n, "content", "label", dgst, "containerd.io/gc.root=x"]],
        [[...n, "images", "import", img.archive]],
        [[...n, "images", "tag", BUSYBOX_REF, "x:1"]],
        [[...n, "images", "label", "x:1", "foo=bar"]],
        // No deletion before the view (no gc.root label) is removed: a collection could take it.
        [[...n, "snapshots", "prepare", "s1"]],
        [[...n, "snapshots", "commit", "s2", "s1"]],
        [[...n, "snapshots", "view", "v1", "s2"]],
        [[...n, "snapshots", "label", "s2", "k=v"]],
        [[...n, "snapshots", "rm", "v1", "s2"]],
        [[...n, "images", "rm", "x:1"]],
        [[...n, "content", "rm", dgst]],
        [[...n, "leases", "create", "--id", "l1"]],
        [[...n, "leases", "rm", "l1"]],
        [[...n, "images", "rm", "--sync", BUSYBOX_REF]],
        [["namespaces", "rm", "cf-events"]],
      ];
      for (const [args, stdin] of steps) {
        for (const d of [real, our]) {
          const r = ctr(d, args, stdin);
          if (r.code !== 0) throw new Error(`${d.name}: ctr ${args.join(" ")}: ${fmt(r)}`);
        }
      }
      const last = '/namespaces/delete {"name":"cf-events"}';
      for (const sub of subs) expect(await waitFor(() => readFileSync(sub.out, "utf8").includes(last), 5000)).toBe(true);
    } finally {
      for (const sub of subs) {
        sub.p.kill("SIGKILL");
        await sub.p.exited;
      }
    }
    const [r, o] = subs.map((sub, i) => normalize([real, our][i]!, readFileSync(sub.out, "utf8")));
    expect(o).toBe(r!);
    expect(r).toContain('cf-events /snapshot/commit {"key":"s1","name":"s2"}');
  }, T);

  test("plugins: containerd's order, platforms, requirements and exports for the plugins we have", () => {
    const NOT_YET = /^io\.containerd\.(service\.v1\s+(containers|tasks)-service|runtime\.v[12]\s|monitor\.v1\s|internal\.v1\s+restart|grpc\.v1\s+(containers|tasks)\s)/;
    const rows = (out: string) =>
      out
        .split("\n")
        .filter((l) => l && !NOT_YET.test(l))
        .map((l) => l.replace(/\s+/g, " ").replace("io.containerd.metadata.v1 bolt ", "io.containerd.metadata.v1 sqlite "));
    const r = ctr(real, ["plugins", "ls"]);
    const o = ctr(our, ["plugins", "ls"]);
    expect(o.code, fmt(o)).toBe(0);
    expect(rows(o.stdout)).toEqual(rows(r.stdout));
    same(["plugins", "ls", "-d", "type==io.containerd.snapshotter.v1"]);
    same(["plugins", "ls", "-d", "type==io.containerd.content.v1"]);
    same(["plugins", "ls", "-d", "type==io.containerd.differ.v1"]);
    same(["plugins", "ls", "-d", "type==io.containerd.gc.v1"], { unordered: true });
    same(["plugins", "ls", "-d", "id==images"]);
  }, T);
});
