// OUR ctr against Debian's REAL ctr 1.6, command line for command line: stdout, stderr and exit
// code must be the same.
//
//   * Without a daemon: help of the app, of every group and subcommand we implement, unknown
//     commands and flags, missing arguments (an unreachable --address with a 1 ms connect timeout
//     stands for "no daemon": the dial error is compared too).
//   * Against the REAL containerd (test/peers.ts: its own temp root, in a private mount namespace):
//     namespaces, leases, content, snapshots, images (import naming, check, tag, label, rm, export
//     byte for byte, mount/unmount), events, and the global flags and environment variables.
//     Commands that change state run twice, the real ctr in namespace <x>r and ours in <x>o (the
//     names are normalised away before comparing).
//
// What differs on purpose is normalised on the real side: the version strings, the top-level
// commands bunker's ctr does not have (containers, tasks, run, pprof, install, oci, shim), and
// `images convert`. Times, ages and Go map orders (label lists) are normalised on both sides.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec, type ExecResult, rand, TMP_PREFIX } from "./harness";
import { OUR_CTR, REAL_CTR } from "./our-containerd";
import { describePeer, ensurePeerPackages, PeerSession } from "./peers";
import { busyboxImage, BUSYBOX_REF } from "./fixtures/busybox-image";
import { HAVE_REGISTRY, startDockerRegistry } from "./docker-registry";

const realSkip = ensurePeerPackages(["containerd"], [REAL_CTR]);

/** The environment without CONTAINERD_* (so the defaults are the flags' own). */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CONTAINERD_") && k !== "EDITOR") env[k] = v;
  return { ...env, ...extra };
}

const UNIMPLEMENTED = /^ {3}(containers, c, container|pprof|run|tasks, t, task|install|oci|shim|convert) .*\n/gm;

/** What differs by design: the real ctr's version strings and the commands bunker leaves out. */
function normReal(s: string): string {
  return s
    .replace(/1\.6\.20~ds1-1\+deb12u3/g, "REVISION")
    .replace(/github\.com\/containerd\/containerd 1\.6\.20~ds1/g, "PACKAGE VERSION")
    .replace(/1\.6\.20~ds1/g, "VERSION")
    .replace(/Go version: go[\d.]+/g, "Go version: GO")
    .replace(UNIMPLEMENTED, "");
}

function normOurs(s: string): string {
  return s
    .replace(/bunker-\d+\.\d+\.\d+/g, "REVISION")
    .replace(/github\.com\/bunker\/bunker 1\.6\.20\+bunker\.\S+/g, "PACKAGE VERSION")
    .replace(/1\.6\.20\+bunker\.\d+\.\d+\.\d+/g, "VERSION")
    .replace(/Go version: bun[\d.]+/g, "Go version: GO");
}

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

const outcome = (r: ExecResult, norm: (s: string) => string): Outcome => ({ code: r.code, stdout: norm(r.stdout), stderr: norm(r.stderr) });

/** One line per difference, for a readable failure. */
function differences(what: string, real: Outcome, ours: Outcome): string[] {
  const out: string[] = [];
  if (real.code !== ours.code) out.push(`${what}: exit ${real.code} (real) vs ${ours.code} (ours)`);
  if (real.stdout !== ours.stdout) out.push(`${what}: stdout\n--- real\n${real.stdout}\n--- ours\n${ours.stdout}`);
  if (real.stderr !== ours.stderr) out.push(`${what}: stderr\n--- real\n${real.stderr}\n--- ours\n${ours.stderr}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Without a daemon

const NO_DAEMON = [`--address`, `${TMP_PREFIX}no-such-${rand()}.sock`, `--connect-timeout`, `1ms`];

const GROUPS: Record<string, string[]> = {
  plugins: ["list"],
  content: ["active", "delete", "edit", "fetch-object", "get", "ingest", "list", "push-object", "label"],
  "content prune": ["references"],
  images: ["check", "export", "import", "list", "mount", "unmount", "delete", "tag", "label"],
  leases: ["list", "create", "delete"],
  namespaces: ["create", "list", "remove", "label"],
  snapshots: ["commit", "diff", "info", "list", "mounts", "prepare", "delete", "label", "tree", "unpack", "usage", "view"],
};

function helpCases(): string[][] {
  const cases: string[][] = [
    [],
    ["--help"],
    ["-h"],
    ["help"],
    ["h"],
    ["help", "images"],
    ["help", "images", "ls"],
    ["help", "help"],
    ["help", "foo"],
    ["foo"],
    ["-x"],
    ["--foo=1"],
    ["-v"],
    ["--version"],
    ["-debug=x"],
    ["--timeout", "1", "version"],
    ["--timeout=x", "version"],
    ["-n", "a", "--namespace", "b", "version"],
    ["--address"],
    ["version", "--help"],
    ["version", "-x"],
    ["events", "--help"],
    ["event", "-x"],
    ["help", "events"],
  ];
  for (const [group, subs] of Object.entries(GROUPS)) {
    const g = group.split(" ");
    cases.push([...g, "--help"], [...g, "help"], [...g, "foo"], [...g, "-x"]);
    // Every subcommand's help; the usage error (the same code path for all) on the first one.
    for (const s of subs) cases.push([...g, s, "--help"]);
    cases.push([...g, subs[0]!, "-x"]);
  }
  cases.push(["images", "h", "ls"], ["content", "help", "foo"], ["help", "snapshots"], ["help", "content", "prune"]);
  cases.push(["snapshots", "--snapshotter"], ["snapshots", "--x", "ls"], ["snapshots", "--snapshotter", "a", "--snapshotter", "b", "ls"]);
  cases.push(["images", "ls", "--quiet=x"], ["images", "ls", "-qx"], ["images", "ls", "---q"], ["images", "ls", "-q", "-x"], ["images", "ls", "a", "--help"], ["images", "ls", "--quiet", "-q"]);
  cases.push(["leases", "create", "-x", "1x"], ["leases", "create", "--id"], ["content", "ingest", "--expected-size", "x"]);
  return cases;
}

const ARG_CASES: string[][] = [
  ["images", "tag"], ["images", "tag", "a"], ["images", "tag", "a", "b"], ["images", "rm"], ["images", "label"], ["images", "export"], ["images", "export", "x"],
  ["images", "import"], ["images", "mount"], ["images", "mount", "x"], ["images", "unmount"], ["images", "unmount", "x"], ["images", "check"],
  ["content", "get"], ["content", "get", "xx"], ["content", "get", "foo:bar"], ["content", "rm"], ["content", "rm", "xx"], ["content", "label"], ["content", "ingest"],
  ["content", "ingest", "--expected-digest", "xx", "x"], ["content", "edit"], ["content", "edit", "--validate", "json", "sha256:" + "0".repeat(64)],
  ["content", "fetch-object"], ["content", "fetch-object", "busybox:latest"], ["content", "fetch-object", "docker.io/library/busybox"], ["content", "push-object", "a", "xx"],
  ["snapshots", "info"], ["snapshots", "info", "a", "b"], ["snapshots", "prepare"], ["snapshots", "prepare", "a", "b", "c"], ["snapshots", "view"], ["snapshots", "commit", "a"],
  ["snapshots", "mounts", "a"], ["snapshots", "diff"], ["snapshots", "unpack"], ["snapshots", "unpack", "xx"], ["snapshots", "ls"],
  ["leases", "rm"], ["leases", "ls"], ["namespaces", "create"], ["namespaces", "label"], ["namespaces", "ls"], ["plugins", "ls"], ["version"], ["events"], ["--address=", "images", "ls"],
];

/** Run a ctr (no stdin), asynchronously: the cases run a few at a time. */
async function run(bin: string, args: string[], env: Record<string, string | undefined>): Promise<ExecResult> {
  const p = Bun.spawn([bin, ...args], { env: env as Record<string, string>, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, signal: p.signalCode == null ? null : String(p.signalCode), stdout, stderr, timedOut: false };
}

interface Case {
  args: string[];
  env?: Record<string, string>;
}

/** Both ctrs on every case (a few cases at a time); the differences. */
async function compareAll(cases: Case[], parallel = 3): Promise<string[]> {
  const results: string[][] = new Array(cases.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < cases.length; i = next++) {
      const { args, env } = cases[i]!;
      const e = cleanEnv(env);
      const [real, ours] = await Promise.all([run(REAL_CTR, args, e), run(OUR_CTR, args, e)]);
      results[i] = differences(args.join(" ") || "(no arguments)", outcome(real, normReal), outcome(ours, normOurs));
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return results.flat();
}

describe.skipIf(!!realSkip)("ctr without a daemon: the real ctr's help, usage errors and argument checks", () => {
  test("help of the app, the groups and the subcommands; unknown commands and flags", async () => {
    // Never the default socket: every case names an address nothing listens on.
    expect(await compareAll(helpCases().map((args) => ({ args: [...NO_DAEMON, ...args] })))).toEqual([]);
  }, 40_000);

  test("missing or bad arguments, and the dial error when nothing listens", async () => {
    const cases: Case[] = ARG_CASES.map((c) => ({ args: [...NO_DAEMON, ...c] }));
    // A bad environment variable of a flag is a usage error naming the flag's every form.
    cases.push({ args: [...NO_DAEMON, "content", "active"], env: { CONTAINERD_FETCH_TIMEOUT: "x" } });
    expect(await compareAll(cases)).toEqual([]);
  }, 40_000);
});

// ---------------------------------------------------------------------------------------------
// Against the real containerd

/** containerd's content ls ages, RFC 3339 times, snapshot directories: what two runs never share. */
function normVolatile(s: string): string {
  return s
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)/g, "TIME")
    .replace(/(Less than a second|\d+ seconds?|About a minute|\d+ minutes)/g, "AGE")
    .replace(/\/snapshots\/\d+\//g, "/snapshots/N/");
}

/** A line of k=v pairs in Go's map order: sorted, to compare. */
const sortPairs = (s: string) =>
  s
    .split("\n")
    .map((l) => (/^[^\s=]+=[^\s]*(,[^\s=]+=[^\s]*)*$/.test(l) ? l.split(",").sort().join(",") : l))
    .join("\n");

describePeer("ctr against the real containerd: ours and the real one, command for command", realSkip, () => {
  let s: PeerSession | undefined;
  const img = busyboxImage();
  let bare = "";
  let full = "";
  let docker = "";

  beforeAll(async () => {
    s = new PeerSession();
    await s.startContainerd();
    // OCI archives without io.containerd.image.name: a bare tag, and a full reference.
    const work = join(s.dir, "oci");
    mkdirSync(work);
    exec(["tar", "xf", img.archive, "-C", work]);
    rmSync(join(work, "manifest.json"), { force: true });
    rmSync(join(work, "repositories"), { force: true });
    const index = JSON.parse(readFileSync(join(work, "index.json"), "utf8"));
    for (const [name, ref] of [["bare.tar", "latest"], ["full.tar", "example.com/foo/bar:v1"]] as const) {
      index.manifests[0].annotations = { "org.opencontainers.image.ref.name": ref };
      writeFileSync(join(work, "index.json"), JSON.stringify(index));
      exec(["tar", "cf", join(s.dir, name), "-C", work, "oci-layout", "index.json", "blobs"]);
    }
    bare = join(s.dir, "bare.tar");
    full = join(s.dir, "full.tar");
    // A docker save archive (manifest.json only).
    const dk = join(s.dir, "dk");
    mkdirSync(dk);
    exec(["tar", "xf", img.archive, "-C", dk]);
    docker = join(s.dir, "docker.tar");
    exec(["tar", "cf", docker, "-C", dk, "manifest.json", "blobs"]);
  }, 60_000);

  afterAll(() => {
    if (!s) return;
    const problems = s.cleanup();
    s = undefined;
    if (problems.length) throw new Error(`peer cleanup left resources behind:\n  ${problems.join("\n  ")}`);
  }, 60_000);

  const ctr = (bin: string, args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) =>
    exec(s!.inNs([bin, "--address", s!.containerd!.address, ...args]), { env: cleanEnv(opts.env), stdin: opts.stdin, timeoutMs: 60_000 });

  /**
   * Both ctrs with the same arguments, "{NS}" being <base>-r for the real one and <base>-o for ours
   * (namespaces, and any other name that must not collide), normalised to "NS". sortLines: rows
   * (after the header) in an order the daemon does not fix (content active: ingest directories).
   */
  function pair(base: string, args: string[], opts: { stdin?: string; env?: Record<string, string>; sortLabels?: boolean; sortLines?: boolean } = {}): string[] {
    const sub = (side: string) => args.map((a) => a.replaceAll("{NS}", `${base}-${side}`));
    const norm = (n: (s: string) => string) => (x: string) => {
      // Both sides' names: a namespace list shows the other side's too.
      let y = normVolatile(n(x)).replaceAll(`${base}-r`, "NS").replaceAll(`${base}-o`, "NS");
      if (opts.sortLines) y = y.split("\n").slice(0, 1).concat(y.split("\n").slice(1).filter(Boolean).sort()).join("\n");
      if (opts.sortLabels) y = sortPairs(y);
      return y;
    };
    const real = outcome(ctr(REAL_CTR, sub("r"), opts), norm(normReal));
    const ours = outcome(ctr(OUR_CTR, sub("o"), opts), norm(normOurs));
    return differences(args.join(" "), real, ours);
  }
  const inNs = (base: string, ...rest: string[][]) => rest.flatMap((a) => pair(base, ["-n", "{NS}", ...a]));

  test("namespaces create / ls / label / rm", () => {
    const d = [
      ...pair("nsa", ["namespaces", "create", "{NS}", "a=b", "c"]),
      ...pair("nsa", ["namespaces", "create", "{NS}"]),
      ...pair("nsa", ["namespaces", "create", "bad/{NS}"]),
      ...pair("nsa", ["namespaces", "label", "{NS}"]),
      ...pair("nsa", ["namespaces", "label", "{NS}", "x=y", "a="]),
      ...pair("nsa", ["namespaces", "label", "nope-{NS}", "x=y"]),
      ...pair("nsa", ["namespaces", "ls"]),
      ...pair("nsa", ["namespaces", "ls", "-q"]),
      ...pair("nsa", ["namespaces", "rm", "{NS}", "nope-{NS}"]),
      ...pair("nsa", ["namespaces", "rm", "{NS}"]),
    ];
    expect(d).toEqual([]);
  }, 30_000);

  test("leases create / ls / rm", () => {
    const d = inNs(
      "ls",
      ["leases", "create", "--id", "L1", "-x", "0"],
      ["leases", "create", "--id", "L1"],
      ["leases", "create", "--id", "L2", "-x", "1h", "a=b", "c"],
      ["leases", "create", "x=1", "--id", "L3"],
      ["leases", "ls", "-q"],
      ["leases", "ls", "id==L1"],
      ["leases", "ls", "nope=="],
      ["leases", "rm", "L1", "nope"],
      ["leases", "rm", "--sync", "L2", "L3"],
      ["leases", "rm"],
      ["leases", "ls"],
    );
    expect(d).toEqual([]);
  }, 30_000);

  test("content ingest / ls / get / label / rm / active / edit / prune references", () => {
    const hello = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const d = [
      ...pair("ct", ["-n", "{NS}", "content", "ingest", "r1", "--expected-digest", "sha256:" + "0".repeat(64)], { stdin: "hello" }),
      ...pair("ct", ["-n", "{NS}", "content", "ingest", "r2", "--expected-size", "10"], { stdin: "hello" }),
      ...pair("ct", ["-n", "{NS}", "content", "ingest", "r3", "--expected-size", "3"], { stdin: "hello" }),
      ...pair("ct", ["-n", "{NS}", "content", "ingest", "r1"], { stdin: "hello" }),
      ...pair("ct", ["-n", "{NS}", "content", "ingest", "r4", "--expected-size", "5", "--expected-digest", hello], { stdin: "hello" }),
      ...pair("ct", ["-n", "{NS}", "content", "ingest", "r5"], { stdin: "hello" }),
      ...inNs(
        "ct",
        ["content", "active", "r2"],
        ["content", "active", "r2=="],
        ["content", "ls"],
        ["content", "ls", "-q"],
        ["content", "ls", "nope=="],
        ["content", "get", hello],
        ["content", "get", "sha256:" + "0".repeat(64)],
        ["content", "label", hello],
      ),
      ...pair("ct", ["-n", "{NS}", "content", "active"], { sortLines: true }),
      ...pair("ct", ["-n", "{NS}", "content", "label", hello, "a=b", "c"], { sortLabels: true }),
      ...pair("ct", ["-n", "{NS}", "content", "label", hello, "a="], { sortLabels: true }),
      ...pair("ct", ["-n", "{NS}", "content", "edit", hello], { env: { EDITOR: "sed -i s/hello/world/" } }),
      ...pair("ct", ["-n", "{NS}", "content", "edit", "--editor", "exit 7;", hello]),
      ...pair("ct", ["-n", "{NS}", "content", "edit", "--editor", "f(){ printf world > $1; }; f", hello]),
      ...pair("ct", ["-n", "{NS}", "content", "edit", hello]),
      ...inNs("ct", ["content", "prune", "references", "--dry"], ["content", "prune", "references"], ["content", "rm", "xx", hello, "sha256:" + "0".repeat(64)], ["content", "ls", "-q"]),
    ];
    expect(d).toEqual([]);
  }, 30_000);

  test("snapshots prepare / commit / view / mounts / info / label / tree / usage / diff / rm", () => {
    const d = [
      ...inNs(
        "sn",
        ["snapshots", "prepare", "z-base-a"],
        ["snapshots", "prepare", "--mounts", "-t", "/mnt/x", "act"],
        ["snapshots", "commit", "z-base", "z-base-a"],
        ["snapshots", "prepare", "a-child", "z-base"],
        ["snapshots", "view", "--target", "/t", "b-view", "z-base"],
        ["snapshots", "mounts", "/mnt/y", "a-child"],
        ["snapshots", "tree"],
        ["snapshots", "ls"],
        ["snapshots", "ls", "ignored=="],
        ["snapshots", "info", "z-base"],
        ["snapshots", "info", "nope"],
        ["snapshots", "usage"],
        ["snapshots", "usage", "-b", "a-child"],
        ["snapshots", "label", "nope", "a=b"],
        ["snapshots", "diff", "nope"],
        ["snapshots", "unpack", "sha256:" + "0".repeat(64)],
        ["snapshots", "--snapshotter", "native", "ls"],
        ["snapshots", "rm", "b-view", "nope"],
        ["snapshots", "rm", "nope"],
        ["snapshots", "ls"],
      ),
      ...pair("sn", ["-n", "{NS}", "snapshots", "label", "z-base", "foo=bar"], { sortLabels: true }),
      ...pair("sn", ["-n", "{NS}", "snapshots", "label", "z-base", "x=1", "foo="], { sortLabels: true }),
    ];
    expect(d).toEqual([]);
  }, 30_000);

  test("images import (names, --base-name, --digests, --index-name, platforms) / ls / check", () => {
    const d = inNs(
      "im",
      ["images", "check"],
      ["images", "import", img.archive],
      ["images", "import", "--no-unpack", bare],
      ["images", "import", "--no-unpack", "--base-name", "foo/x", bare],
      ["images", "import", "--no-unpack", full],
      ["images", "import", "--no-unpack", "--base-name", "foo/z", full],
      ["images", "import", "--no-unpack", "--digests", "--base-name", "foo/y", full],
      ["images", "import", "--no-unpack", "--index-name", "myidx", img.archive],
      ["images", "import", "--no-unpack", "--index-name", "ix-full", full],
      ["images", "import", "--index-name", "ix-docker", "--digests", docker],
      ["content", "ls", "-q"],
      ["images", "import", "--platform", "linux/arm64", img.archive],
      ["images", "import", "--platform", "bogus//x", img.archive],
      ["images", "import", "/nonexistent.tar"],
      ["images", "ls"],
      ["images", "ls", "-q", "name~=foo"],
      ["images", "ls", "nope=="],
      ["images", "check"],
      ["images", "check", "-q"],
      ["images", "check", "nope=="],
      ["snapshots", "unpack", img.manifestDigest],
    );
    expect(d).toEqual([]);
  }, 30_000);

  test("images tag / label / rm, and check of an image whose blobs are gone", () => {
    const d = [
      ...inNs(
        "tg",
        ["images", "import", "--no-unpack", img.archive],
        ["images", "tag", BUSYBOX_REF, "a:1", "a:2"],
        ["images", "tag", BUSYBOX_REF, "a:1"],
        ["images", "tag", "--force", BUSYBOX_REF, "a:1", "a:3"],
        ["images", "tag", "nope", "y"],
        ["images", "label", "a:1"],
        ["images", "label", "nope", "a=b"],
        ["images", "rm", "a:2", "nope", "a:3"],
        ["images", "ls"],
        ["content", "rm", img.layerDigest],
        ["images", "check"],
        ["content", "rm", img.manifestDigest],
        ["images", "check"],
        ["images", "check", "-q"],
      ),
      ...pair("tg", ["-n", "{NS}", "images", "label", "a:1", "x=1", "y"], { sortLabels: true }),
    ];
    expect(d).toEqual([]);
  }, 30_000);

  test("images export: the same archive, byte for byte, with every flag", () => {
    const ns = "exp" + rand(4);
    const real = (...a: string[]) => ctr(REAL_CTR, ["-n", ns, ...a]);
    expect(real("images", "import", "--index-name", "myidx", img.archive).code).toBe(0);
    expect(real("images", "tag", "myidx", "ex.com/idx:v2").code).toBe(0);
    const diffs: string[] = [];
    const sets = [[BUSYBOX_REF], ["myidx", BUSYBOX_REF], ["myidx", "ex.com/idx:v2"], ["nope"]];
    const flags = [[], ["--skip-manifest-json"], ["--all-platforms"], ["--platform", "linux/arm64"], ["--skip-manifest-json", "--platform", "linux/arm64"], ["--platform", "bogus//x"]];
    for (const imgs of sets) {
      for (const f of imgs[0] === "nope" ? flags.slice(0, 1) : flags) {
        const r = join(s!.dir, "export-real.tar");
        const o = join(s!.dir, "export-ours.tar");
        rmSync(r, { force: true });
        rmSync(o, { force: true });
        const a = outcome(real("images", "export", ...f, r, ...imgs), normReal);
        const b = outcome(ctr(OUR_CTR, ["-n", ns, "images", "export", ...f, o, ...imgs]), normOurs);
        const what = `images export ${[...f, ...imgs].join(" ")}`;
        diffs.push(...differences(what, a, b));
        const bytes = (p: string) => (existsSync(p) ? new Bun.CryptoHasher("sha256").update(readFileSync(p)).digest("hex") : "none");
        if (bytes(r) !== bytes(o)) diffs.push(`${what}: the archives differ`);
      }
    }
    diffs.push(...differences("images export (no such directory)", outcome(real("images", "export", "/nonexistent/x.tar", "myidx"), normReal), outcome(ctr(OUR_CTR, ["-n", ns, "images", "export", "/nonexistent/x.tar", "myidx"]), normOurs)));
    expect(diffs).toEqual([]);
  }, 60_000);

  test("images mount / unmount, in the session's mount namespace", () => {
    const target = (side: string) => join(s!.dir, `mnt-${side}`);
    mkdirSync(target("r"));
    mkdirSync(target("o"));
    const norm = (x: string) => x.replace(/mnt-[ro]/g, "mnt-X");
    const both = (args: (t: string) => string[]) => {
      const a = outcome(ctr(REAL_CTR, ["-n", "mntr", ...args(target("r"))]), (x) => norm(normVolatile(normReal(x))));
      const b = outcome(ctr(OUR_CTR, ["-n", "mnto", ...args(target("o"))]), (x) => norm(normVolatile(normOurs(x))));
      return differences(args("<target>").join(" "), a, b);
    };
    const d: string[] = [];
    try {
      d.push(
        ...both(() => ["images", "import", img.archive]),
        ...both((t) => ["images", "mount", BUSYBOX_REF, t]),
        ...both((t) => ["images", "mount", BUSYBOX_REF, t]),
        ...both(() => ["snapshots", "ls"]),
        ...both(() => ["leases", "ls", "-q"]),
        ...both((t) => ["images", "unmount", t]),
        ...both((t) => ["images", "unmount", "--rm", t]),
        ...both((t) => ["images", "mount", "--rw", BUSYBOX_REF, t]),
        ...both(() => ["snapshots", "ls"]),
        ...both((t) => ["images", "unmount", "--rm", t]),
        ...both((t) => ["images", "mount", "nope", t]),
        ...both((t) => ["images", "mount", BUSYBOX_REF, t + "-missing"]),
        ...both(() => ["leases", "ls", "-q"]),
        ...both(() => ["snapshots", "ls"]),
      );
    } finally {
      for (const side of ["r", "o"]) exec(s!.inNs(["umount", "-R", target(side)]));
    }
    expect(d).toEqual([]);
  }, 30_000);

  test.skipIf(!HAVE_REGISTRY)("content fetch-object / push-object against a registry", async () => {
    const reg = await startDockerRegistry(s!.dir, "registry");
    try {
      const ns = "reg" + rand(4);
      const r = (...a: string[]) => ctr(REAL_CTR, ["-n", ns, ...a]);
      expect(r("images", "import", "--no-unpack", img.archive).code).toBe(0);
      expect(r("images", "push", "--plain-http", `${reg.host}/bb:1`, BUSYBOX_REF).code).toBe(0);
      const both = (...a: string[]) => differences(a.join(" "), outcome(r(...a), (x) => normVolatile(normReal(x))), outcome(ctr(OUR_CTR, ["-n", ns, ...a]), (x) => normVolatile(normOurs(x))));
      const d = [
        ...both("content", "fetch-object", "--plain-http", `${reg.host}/bb:1`),
        ...both("content", "fetch-object", "--plain-http", `${reg.host}/bb@${img.manifestDigest}`),
        ...both("content", "fetch-object", "--plain-http", `${reg.host}/bb:2`),
        ...both("content", "push-object", "--plain-http", `${reg.host}/cc:1`, img.configDigest, "application/vnd.oci.image.config.v1+json"),
        ...both("content", "push-object", "--plain-http", `${reg.host}/cc:1`, img.manifestDigest, "application/vnd.oci.image.manifest.v1+json"),
      ];
      expect(d).toEqual([]);
    } finally {
      reg.proc.kill("SIGKILL");
      await reg.proc.exited;
    }
  }, 30_000);

  test("events: the same lines from both, as things happen", async () => {
    const sub = (bin: string) => Bun.spawn(s!.inNs([bin, "--address", s!.containerd!.address, "events"]), { stdout: "pipe", stderr: "pipe", env: cleanEnv() as Record<string, string> });
    const real = sub(REAL_CTR);
    const ours = sub(OUR_CTR);
    try {
      await Bun.sleep(700); // both subscribed
      const r = (...a: string[]) => ctr(REAL_CTR, a);
      r("namespaces", "create", "evns", "a=<b>", "c=d");
      r("namespaces", "label", "evns", "a=");
      r("-n", "evns", "images", "import", img.archive);
      r("-n", "evns", "images", "tag", BUSYBOX_REF, "x:1");
      r("-n", "evns", "images", "label", "x:1", "foo=bar");
      r("-n", "evns", "images", "rm", "x:1", BUSYBOX_REF);
      r("-n", "evns", "snapshots", "prepare", "s1");
      r("-n", "evns", "snapshots", "commit", "s2", "s1");
      r("-n", "evns", "snapshots", "rm", "s2");
      await Bun.sleep(500);
    } finally {
      real.kill();
      ours.kill();
    }
    const [a, b] = [await new Response(real.stdout).text(), await new Response(ours.stdout).text()];
    expect(a.split("\n").length).toBeGreaterThan(8);
    expect(b).toBe(a);
  }, 30_000);

  test("global flags and environment variables", () => {
    const addr = s!.containerd!.address;
    const both = (args: string[], env: Record<string, string> = {}, withAddress = true) => {
      const run = (bin: string) => exec(s!.inNs([bin, ...(withAddress ? ["--address", addr] : []), ...args]), { env: cleanEnv(env), timeoutMs: 60_000 });
      return differences(`${JSON.stringify(env)} ${args.join(" ")}`, outcome(run(REAL_CTR), (x) => normVolatile(normReal(x))), outcome(run(OUR_CTR), (x) => normVolatile(normOurs(x))));
    };
    const d = [
      ...both(["namespaces", "ls", "-q"], { CONTAINERD_ADDRESS: addr }, false),
      ...both(["images", "ls", "-q"], { CONTAINERD_ADDRESS: addr, CONTAINERD_NAMESPACE: "im-r" }, false),
      ...both(["-a", addr, "-n", "imr", "images", "ls", "-q"], {}, false),
      ...both(["images", "ls"], { CONTAINERD_NAMESPACE: "" }),
      ...both(["-n", "im-r", "images", "ls", "-q"], { CONTAINERD_NAMESPACE: "tg-r" }),
      ...both(["-n", "sn-r", "snapshots", "ls"], { CONTAINERD_SNAPSHOTTER: "native" }),
      ...both(["--namespace=bad/ns", "images", "ls"]),
      // A call past --timeout: containerd's stores convert the error, Version leaves it a gRPC status.
      ...both(["--timeout", "1ns", "images", "ls"]),
      ...both(["--timeout", "1ns", "version"]),
      ...both(["--timeout", "10s", "--connect-timeout", "5s", "--debug", "-n", "imr", "images", "ls", "-q"]),
      ...both(["--address", join(s!.dir, "no-such.sock"), "--connect-timeout", "50ms", "version"], {}, false),
      ...both(["--address", join(s!.dir, "no-such.sock"), "--connect-timeout", "1500ms", "images", "ls"], {}, false),
    ];
    // A file that is no socket: refused at once.
    writeFileSync(join(s!.dir, "not-a-socket"), "");
    d.push(...both(["--address", join(s!.dir, "not-a-socket"), "version"], {}, false));
    expect(d).toEqual([]);
  }, 30_000);
});
