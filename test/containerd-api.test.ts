// containerd's gRPC API, checked from both sides:
//   * OUR containerd (dist/bin/containerd) driven by Debian's REAL ctr 1.6.20 and by OUR ctr;
//   * OUR ctr driven against Debian's REAL containerd (in a private mount namespace, test/peers.ts);
//   * crash safety: SIGKILL while namespaces are being created leaves a sound database.
//
// Every daemon gets its own /tmp/bunker-test-<rand>/ (root, state, socket), removed afterwards;
// daemons we start are killed by pid in afterAll/afterEach, also when a test fails.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec, type ExecResult, rand, sleep, TMP_PREFIX, waitFor } from "./harness";
import { describePeer, ensurePeerPackages, fmt, PeerSession } from "./peers";
import { Client } from "../core/ctr/client";
import { isNotFound } from "../core/containerd/errdefs";

const DIST = join(import.meta.dir, "..", "dist", "bin");
const OUR_CONTAINERD = join(DIST, "containerd");
const OUR_CTR = join(DIST, "ctr");
const REAL_CTR = "/usr/bin/ctr";
const REAL_CONTAINERD = "/usr/bin/containerd";

const peerSkip = ensurePeerPackages(["containerd"], [REAL_CTR, REAL_CONTAINERD]);

// ---------------------------------------------------------------------------------------------
// Our daemon

class OurContainerd {
  readonly dir = `${TMP_PREFIX}${rand()}`;
  readonly root = join(this.dir, "root");
  readonly state = join(this.dir, "state");
  readonly address = join(this.dir, "run", "containerd.sock");
  readonly logFile = join(this.dir, "containerd.log");
  readonly configFile = join(this.dir, "config.toml");
  proc?: ReturnType<typeof Bun.spawn>;

  /** `config`: run with `--config <dir>/config.toml` only (write the file before start). */
  constructor(readonly opts: { config?: boolean; address?: string } = {}) {
    mkdirSync(this.dir, { recursive: true });
    if (opts.address) (this as { address: string }).address = opts.address;
  }

  argv(): string[] {
    if (this.opts.config) return [OUR_CONTAINERD, "--config", this.configFile];
    return [OUR_CONTAINERD, "--root", this.root, "--state", this.state, "--address", this.address];
  }

  async start(): Promise<void> {
    // A restart appends to the same log: only a boot message after this point counts (an older
    // one would let a client dial the stale socket of the killed daemon, which refuses).
    const from = this.log().length;
    const fd = openSync(this.logFile, "a");
    this.proc = Bun.spawn(this.argv(), { stdin: "ignore", stdout: fd, stderr: fd });
    closeSync(fd);
    const up = await waitFor(() => this.log().slice(from).includes("successfully booted") || this.proc!.exitCode !== null, 15_000, 20);
    if (!up || this.proc.exitCode !== null) throw new Error(`our containerd did not start (exit ${this.proc.exitCode}):\n${this.log()}`);
  }

  log(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    p.kill(signal);
    const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
    await p.exited;
    clearTimeout(t);
    return p.exitCode;
  }

  async cleanup(): Promise<void> {
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }

  client(namespace = "default"): Promise<Client> {
    return Client.connect(this.address, namespace, { connectTimeoutMs: 5000 });
  }
}

function run(argv: string[], opts: { env?: Record<string, string | undefined> } = {}): ExecResult {
  return exec(argv, { timeoutMs: 30_000, env: opts.env ? { ...process.env, ...opts.env } : undefined });
}

const realCtr = (d: { address: string }, args: string[]) => run([REAL_CTR, "--address", d.address, ...args]);
const ourCtr = (d: { address: string }, args: string[]) => run([OUR_CTR, "--address", d.address, ...args]);

function ok(r: ExecResult, what = "command"): string {
  if (r.code !== 0) throw new Error(`${what}: ${fmt(r)}`);
  return r.stdout;
}

/** Output lines, sorted: for outputs where the real ctr iterates a Go map. */
const lines_ = (s: string) => s.split("\n").sort();

const DIGEST = "sha256:" + "ab".repeat(32);
const TARGET = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: DIGEST, size: "1234", annotations: {} };

// ---------------------------------------------------------------------------------------------

describe("our containerd with the real ctr and ours", () => {
  let d: OurContainerd;

  beforeAll(async () => {
    if (!existsSync(OUR_CONTAINERD)) throw new Error(`${OUR_CONTAINERD} missing: build with node_modules/.bin/bun run build.ts`);
    d = new OurContainerd();
    await d.start();
  }, 30_000);

  afterAll(async () => {
    await d?.cleanup();
  });

  test("the socket is 0660, the log is containerd's", () => {
    expect(statSync(d.address).isSocket()).toBe(true);
    expect(statSync(d.address).mode & 0o777).toBe(0o660);
    const log = d.log();
    expect(log).toMatch(/^time="[^"]+" level=info msg="starting containerd" revision=\S+ version=\S+$/m);
    expect(log).toContain(`level=info msg="loading plugin \\"io.containerd.metadata.v1.sqlite\\"..." type=io.containerd.metadata.v1`);
    expect(log).toContain(`level=info msg=serving... address=${d.address}`);
    expect(log).toMatch(/level=info msg="containerd successfully booted in \d+\.\d{6}s"/);
  });

  test.skipIf(!!peerSkip)("real ctr version: server version, revision and the persisted UUID", () => {
    const r = realCtr(d, ["version"]);
    expect(r.code, fmt(r)).toBe(0);
    const uuid = readFileSync(join(d.root, "io.containerd.grpc.v1.introspection", "uuid"), "utf8").trim();
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.stdout).toMatch(new RegExp(`\\nServer:\\n  Version:  1\\.6\\.20\\+bunker\\.\\S+\\n  Revision: bunker-\\S+\\n  UUID: ${uuid}\\n$`));
    // Ours prints the same shape, and no mismatch warning against itself.
    const o = ourCtr(d, ["version"]);
    expect(o.code, fmt(o)).toBe(0);
    expect(o.stdout).toMatch(/^Client:\n  Version:  1\.6\.20\+bunker\.\S+\n  Revision: bunker-\S+\n  Go version: bun\S+\n\nServer:\n/);
    expect(o.stdout.slice(o.stdout.indexOf("Server:"))).toBe(r.stdout.slice(r.stdout.indexOf("Server:")));
    expect(o.stderr).toBe("");
  });

  test.skipIf(!!peerSkip)("plugins ls: the plugins we load, the same table from both ctrs", () => {
    const r = realCtr(d, ["plugins", "ls"]);
    expect(r.code, fmt(r)).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^TYPE\s+ID\s+PLATFORMS\s+STATUS\s+$/);
    for (const row of ["io.containerd.metadata.v1 sqlite", "io.containerd.grpc.v1 namespaces", "io.containerd.grpc.v1 images", "io.containerd.grpc.v1 leases", "io.containerd.grpc.v1 version", "io.containerd.grpc.v1 introspection"]) {
      expect(lines.some((l) => l.replace(/\s+/g, " ").startsWith(row + " - ok"))).toBe(true);
    }
    // Stubs are served but not listed as plugins.
    expect(r.stdout).not.toContain("io.containerd.grpc.v1        content");
    expect(ourCtr(d, ["plugins", "ls"]).stdout).toBe(r.stdout);
    expect(ourCtr(d, ["plugins", "ls", "-q"]).stdout).toBe(realCtr(d, ["plugins", "ls", "-q"]).stdout);
    expect(lines_(ourCtr(d, ["plugins", "ls", "-d"]).stdout)).toEqual(lines_(realCtr(d, ["plugins", "ls", "-d"]).stdout));
    expect(ourCtr(d, ["plugins", "ls", "id==sqlite"]).stdout).toBe(realCtr(d, ["plugins", "ls", "id==sqlite"]).stdout);
    expect(realCtr(d, ["plugins", "ls", "-d", "id==sqlite"]).stdout).toContain(join(d.root, "io.containerd.metadata.v1.sqlite", "meta.db"));
  });

  test.skipIf(!!peerSkip)("namespaces: create, labels, ls, rm, and containerd's errors", () => {
    const ns = `ns-${rand(6)}`;
    ok(realCtr(d, ["namespaces", "create", ns, "a=b", "c=d"]), "create");
    const dup = realCtr(d, ["namespaces", "create", ns]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toBe(`ctr: namespace "${ns}": already exists\n`);
    const bad = realCtr(d, ["namespaces", "create", "bad name"]);
    expect(bad.stderr).toBe('ctr: identifier "bad name" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument\n');
    expect(ourCtr(d, ["namespaces", "create", "bad name"]).stderr).toBe(bad.stderr);
    ok(realCtr(d, ["namespaces", "label", ns, "x=y", "a="]), "label");
    const ls = realCtr(d, ["namespaces", "ls"]);
    expect(ls.stdout).toMatch(new RegExp(`^${ns}\\s+c=d,x=y $`, "m"));
    expect(ourCtr(d, ["namespaces", "ls"]).stdout).toBe(ls.stdout);
    expect(ourCtr(d, ["namespaces", "ls", "-q"]).stdout).toBe(realCtr(d, ["namespaces", "ls", "-q"]).stdout);
    // rm: a missing namespace is not an error for ctr; both names are printed.
    const rm = realCtr(d, ["namespaces", "rm", ns, "nonexistent"]);
    expect(rm.code, fmt(rm)).toBe(0);
    expect(rm.stdout).toBe(`${ns}\nnonexistent\n`);
    expect(realCtr(d, ["namespaces", "ls", "-q"]).stdout.split("\n")).not.toContain(ns);
    // Ours creates and removes the same way.
    ok(ourCtr(d, ["namespaces", "create", ns]), "our create");
    expect(ourCtr(d, ["namespaces", "rm", ns]).stdout).toBe(`${ns}\n`);
  });

  test.skipIf(!!peerSkip)("namespaces rm refuses a namespace that still has images (FailedPrecondition)", async () => {
    const ns = `full-${rand(6)}`;
    const c = await d.client(ns);
    try {
      await c.call("containerd.services.images.v1.Images", "Create", { image: { name: "docker.io/library/x:1", target: TARGET } });
    } finally {
      c.close();
    }
    const r = realCtr(d, ["namespaces", "rm", ns]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ctr: unable to delete ${ns}: namespace "${ns}" must be empty, but it still has images: failed precondition\n`);
    const o = ourCtr(d, ["namespaces", "rm", ns]);
    expect(o.code).toBe(1);
    expect(o.stderr).toContain(`ctr: unable to delete ${ns}: namespace "${ns}" must be empty, but it still has images: failed precondition\n`);
    ok(realCtr(d, ["-n", ns, "images", "rm", "docker.io/library/x:1"]), "images rm");
    ok(realCtr(d, ["namespaces", "rm", ns]), "namespaces rm");
  });

  test.skipIf(!!peerSkip)("images: ls (with filters), tag, label, rm; the same tables from both ctrs", async () => {
    const ns = `img-${rand(6)}`;
    const c = await d.client(ns);
    try {
      await c.call("containerd.services.images.v1.Images", "Create", { image: { name: "docker.io/library/busybox:latest", labels: { l: "1" }, target: TARGET } });
      const dup = await c.call("containerd.services.images.v1.Images", "Create", { image: { name: "docker.io/library/busybox:latest", target: TARGET } }).catch((e) => e);
      expect(dup.message).toBe('image "docker.io/library/busybox:latest": already exists');
      const bad = await c.call("containerd.services.images.v1.Images", "Create", { image: { name: "x", target: { ...TARGET, digest: "sha256:123" } } }).catch((e) => e);
      expect(bad.message).toBe('Target.Digest "sha256:123" invalid: invalid checksum digest length: invalid argument');
    } finally {
      c.close();
    }
    const R = (args: string[]) => realCtr(d, ["-n", ns, ...args]);
    const O = (args: string[]) => ourCtr(d, ["-n", ns, ...args]);
    ok(R(["images", "tag", "docker.io/library/busybox:latest", "example.com/a:1", "example.com/b:2"]), "tag");
    const again = R(["images", "tag", "docker.io/library/busybox:latest", "example.com/a:1"]);
    expect(again.stderr).toBe('ctr: image "example.com/a:1": already exists\n');
    expect(O(["images", "tag", "docker.io/library/busybox:latest", "example.com/a:1"]).stderr).toBe(again.stderr);
    expect(ok(O(["images", "tag", "--force", "docker.io/library/busybox:latest", "example.com/a:1"]))).toBe("example.com/a:1\n");
    // The real ctr prints the labels in Go's map order.
    expect(R(["images", "label", "example.com/b:2", "x=y"]).stdout.trim().split(",").sort()).toEqual(["l=1", "x=y"]);
    expect(O(["images", "label", "example.com/b:2", "l="]).stdout).toBe("x=y\n");

    expect(R(["images", "ls", "-q"]).stdout).toBe("docker.io/library/busybox:latest\nexample.com/a:1\nexample.com/b:2\n");
    expect(O(["images", "ls", "-q"]).stdout).toBe(R(["images", "ls", "-q"]).stdout);
    for (const f of ["name==example.com/a:1", "labels.x", "name~=/example/", 'name~="^docker"']) {
      expect(O(["images", "ls", "-q", f]).stdout).toBe(R(["images", "ls", "-q", f]).stdout);
    }
    expect(R(["images", "ls", "-q", "labels.x==y"]).stdout).toBe("example.com/b:2\n");
    const badFilter = R(["images", "ls", "name=="]);
    expect(badFilter.stderr).toBe("ctr: failed to list images: filters: parse error: [name==]: expected value or quoted: invalid argument: invalid argument\n");
    expect(O(["images", "ls", "name=="]).stderr).toBe(badFilter.stderr);

    // The content store is not served yet: manifests can't be read (both ctrs log it), so the size
    // is the target's alone and there are no platforms; the rest of the table is the same.
    const table = R(["images", "ls"]);
    expect(table.code, fmt(table)).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^REF\s+TYPE\s+DIGEST\s+SIZE\s+PLATFORMS\s+LABELS\s+$/);
    expect(table.stdout).toMatch(new RegExp(`^example\\.com/b:2\\s+application/vnd\\.oci\\.image\\.manifest\\.v1\\+json ${DIGEST} 1\\.2 KiB -\\s+x=y\\s+$`, "m"));
    expect(table.stderr).toContain("failed calculating size for image");
    const ours = O(["images", "ls"]);
    expect(ours.stdout).toBe(table.stdout);
    expect(ours.stderr).toContain("failed calculating size for image");

    const rm = R(["images", "rm", "example.com/a:1", "nope:1"]);
    expect(rm.code, fmt(rm)).toBe(0);
    expect(rm.stdout).toBe("example.com/a:1\n");
    expect(rm.stderr).toContain('level=warning msg="nope:1: image not found"');
    const orm = O(["images", "rm", "example.com/b:2", "nope:1"]);
    expect(orm.stdout).toBe("example.com/b:2\n");
    expect(orm.stderr).toContain('level=warning msg="nope:1: image not found"');
    expect(R(["images", "ls", "-q"]).stdout).toBe("docker.io/library/busybox:latest\n");
    // Tagging ran under a lease that is gone again.
    expect(R(["leases", "ls", "-q"]).stdout).toBe("");
  });

  test.skipIf(!!peerSkip)("leases: create (ids, labels, expiry), ls, rm", () => {
    const ns = `lease-${rand(6)}`;
    const R = (args: string[]) => realCtr(d, ["-n", ns, ...args]);
    const O = (args: string[]) => ourCtr(d, ["-n", ns, ...args]);
    const gen = ok(R(["leases", "create"]), "create").trim();
    expect(gen).toMatch(/^\d+-[A-Za-z0-9_-]{4}$/);
    expect(ok(R(["leases", "create", "--id", "l1", "--expires", "0", "a=b"]))).toBe("l1\n");
    expect(ok(O(["leases", "create", "--id", "l2", "-x", "1h", "k=v"]))).toBe("l2\n");
    const dup = R(["leases", "create", "--id", "l1"]);
    expect(dup.stderr).toBe('ctr: lease "l1": already exists\n');
    expect(O(["leases", "create", "--id", "l1"]).stderr).toBe(dup.stderr);
    const ls = R(["leases", "ls"]);
    expect(ls.stdout.split("\n")[0]).toMatch(/^ID\s+CREATED AT\s+LABELS\s+$/);
    expect(ls.stdout).toMatch(/^l1\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) a=b\s+$/m);
    expect(ls.stdout).toMatch(/^l2\s+\S+ containerd\.io\/gc\.expire=\S+,k=v\s+$/m);
    expect(O(["leases", "ls"]).stdout).toBe(ls.stdout);
    expect(R(["leases", "ls", "-q", "id==l2"]).stdout).toBe("l2\n");
    expect(O(["leases", "ls", "-q", "labels.a==b"]).stdout).toBe("l1\n");
    expect(ok(R(["leases", "rm", "l1", gen]))).toBe(`l1\n${gen}\n`);
    const missing = O(["leases", "rm", "l1"]);
    expect(missing.stderr).toBe('ctr: lease "l1": not found\n');
    expect(R(["leases", "rm", "l1"]).stderr).toBe(missing.stderr);
    expect(O(["leases", "ls", "-q"]).stdout).toBe("l2\n");
  });

  test("lease resources over the API", async () => {
    const c = await d.client(`res-${rand(6)}`);
    const L = "containerd.services.leases.v1.Leases";
    try {
      const { lease } = await c.call(L, "Create", { id: "r1" });
      expect(lease.id).toBe("r1");
      expect(Number(lease.createdAt.seconds)).toBeGreaterThan(1_600_000_000);
      await c.call(L, "AddResource", { id: "r1", resource: { id: "k1", type: "snapshots/overlayfs" } });
      await c.call(L, "AddResource", { id: "r1", resource: { id: DIGEST, type: "content" } });
      await c.call(L, "AddResource", { id: "r1", resource: { id: "ref1", type: "ingests" } });
      const bad = await c.call(L, "AddResource", { id: "r1", resource: { id: "x", type: "content" } }).catch((e) => e);
      expect(bad.message).toBe("invalid content resource id x: invalid checksum digest format: invalid argument");
      const unk = await c.call(L, "AddResource", { id: "r1", resource: { id: "x", type: "bogus" } }).catch((e) => e);
      expect(unk.message).toBe("resource type bogus not supported yet: not implemented");
      const none = await c.call(L, "AddResource", { id: "nope", resource: { id: "x", type: "ingests" } }).catch((e) => e);
      expect(isNotFound(none)).toBe(true);
      expect((await c.call(L, "ListResources", { id: "r1" })).resources).toEqual([
        { id: DIGEST, type: "content" },
        { id: "ref1", type: "ingests" },
        { id: "k1", type: "snapshots/overlayfs" },
      ]);
      await c.call(L, "DeleteResource", { id: "r1", resource: { id: "ref1", type: "ingests" } });
      expect((await c.call(L, "ListResources", { id: "r1" })).resources.map((r: any) => r.type)).toEqual(["content", "snapshots/overlayfs"]);
      await c.call(L, "Delete", { id: "r1" });
      expect(isNotFound(await c.call(L, "ListResources", { id: "r1" }).catch((e) => e))).toBe(true);
    } finally {
      c.close();
    }
  });

  test("namespace metadata: absent means default, empty is refused, invalid is refused", async () => {
    const grpc = await import("@grpc/grpc-js");
    const { serviceMethod } = await import("../core/containerd/grpc");
    const m = serviceMethod("containerd.services.leases.v1.Leases", "List");
    const raw = new grpc.Client(`unix:${d.address}`, grpc.credentials.createInsecure());
    const call = (md: any) =>
      new Promise<any>((resolve) => raw.makeUnaryRequest(m.path, (o: object) => m.request.encode(o), (b: Buffer) => m.response.decode(b), {}, md, {}, (e, r) => resolve(e ?? r)));
    try {
      const c = await d.client("default");
      await c.call("containerd.services.leases.v1.Leases", "Create", { id: "in-default" });
      c.close();
      expect((await call(new grpc.Metadata())).leases.map((l: any) => l.id)).toContain("in-default");
      const empty = new grpc.Metadata();
      empty.set("containerd-namespace", "");
      const e1 = await call(empty);
      expect([e1.code, e1.details]).toEqual([grpc.status.FAILED_PRECONDITION, "namespace is required: failed precondition"]);
      const bad = new grpc.Metadata();
      bad.set("containerd-namespace", "-x");
      const e2 = await call(bad);
      expect([e2.code, e2.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'namespace validation: identifier "-x" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument']);
    } finally {
      raw.close();
    }
  });

  test.skipIf(!!peerSkip)("services not written yet answer UNIMPLEMENTED with a clear message", () => {
    const r = realCtr(d, ["tasks", "ls"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("/containerd.services.tasks.v1.Tasks/List is not implemented by bunker's containerd yet");
  });

  test.skipIf(!!peerSkip)("events: the real ctr's subscription gets namespace and image events", async () => {
    const dir = join(d.dir, `ev-${rand(4)}`);
    mkdirSync(dir);
    const outFile = join(dir, "events.out");
    const fd = openSync(outFile, "w");
    const sub = Bun.spawn([REAL_CTR, "--address", d.address, "events"], { stdout: fd, stderr: fd });
    closeSync(fd);
    try {
      await sleep(300);
      const ns = `ev-${rand(6)}`;
      ok(realCtr(d, ["namespaces", "create", ns]), "create");
      const seen = await waitFor(() => readFileSync(outFile, "utf8").includes(`/namespaces/create {"name":"${ns}"}`), 5000);
      expect(seen, readFileSync(outFile, "utf8")).toBe(true);
      ok(realCtr(d, ["namespaces", "rm", ns]), "rm");
      expect(await waitFor(() => readFileSync(outFile, "utf8").includes(`/namespaces/delete {"name":"${ns}"}`), 5000)).toBe(true);
    } finally {
      sub.kill("SIGKILL");
      await sub.exited;
    }
  });

  test("our ctr: unknown commands and flags, help, CONTAINERD_NAMESPACE", () => {
    const u = ourCtr(d, ["nosuch"]);
    expect([u.code, u.stderr]).toEqual([3, "No help topic for 'nosuch'\n"]);
    const f = ourCtr(d, ["namespaces", "ls", "-x"]);
    expect(f.code).toBe(1);
    expect(f.stdout).toStartWith("Incorrect Usage: flag provided but not defined: -x\n\nNAME:\n   ctr namespaces list - list namespaces\n");
    expect(f.stderr).toBe("ctr: flag provided but not defined: -x\n");
    const h = ourCtr(d, ["namespaces"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("COMMANDS:\n   create, c   create a new namespace\n");
    const ns = `env-${rand(6)}`;
    ok(run([OUR_CTR, "--address", d.address, "leases", "create", "--id", "e1"], { env: { CONTAINERD_NAMESPACE: ns } }), "create");
    expect(ourCtr(d, ["-n", ns, "leases", "ls", "-q"]).stdout).toBe("e1\n");
  });

  test("our ctr: a socket nobody serves fails after --connect-timeout with ctr's message", () => {
    const missing = join(d.dir, "missing.sock");
    const t0 = Date.now();
    const r = run([OUR_CTR, "--address", missing, "--connect-timeout", "300ms", "namespaces", "ls"]);
    expect(r.code).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    // The real ctr 1.6's words for a socket that never appears within a short timeout (past a
    // second it adds `: connection error: desc = "transport: error while dialing: dial unix://<address>: timeout"`).
    expect(r.stderr).toBe(`ctr: failed to dial "${missing}": context deadline exceeded\n`);
  });
});

// ---------------------------------------------------------------------------------------------

describe("our containerd: command line, config, socket, shutdown", () => {
  const daemons: OurContainerd[] = [];
  const daemon = (opts: ConstructorParameters<typeof OurContainerd>[0] = {}) => {
    const d = new OurContainerd(opts);
    daemons.push(d);
    return d;
  };
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.cleanup();
  });

  test("config default prints our real defaults as TOML", () => {
    const r = run([OUR_CONTAINERD, "config", "default"]);
    expect(r.code, fmt(r)).toBe(0);
    const t = (Bun as any).TOML.parse(r.stdout);
    expect(t.version).toBe(2);
    expect(t.root).toBe("/var/lib/containerd");
    expect(t.state).toBe("/run/containerd");
    expect(t.grpc.address).toBe("/run/containerd/containerd.sock");
    expect(t.grpc.uid).toBe(0);
    expect(t.grpc.max_recv_message_size).toBe(16777216);
    expect(r.stdout).toContain('\n[grpc]\n  address = "/run/containerd/containerd.sock"\n');
    const v = run([OUR_CONTAINERD, "--version"]);
    expect(v.stdout).toMatch(/^containerd \S+ 1\.6\.20\+bunker\.\S+ bunker-\S+\n$/);
  });

  test("--config: root, state, address, log level; a real containerd config's extra keys are tolerated", async () => {
    const d = daemon({ config: true });
    writeFileSync(
      d.configFile,
      `version = 2
root = "${d.root}"
state = "${d.state}"
oom_score = 0
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "${d.address}"
  max_recv_message_size = 16777216

[ttrpc]
  address = ""

[debug]
  level = "debug"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
`,
    );
    await d.start();
    expect(statSync(d.address).isSocket()).toBe(true);
    expect(statSync(d.state).isDirectory()).toBe(true);
    expect(existsSync(join(d.root, "io.containerd.metadata.v1.sqlite", "meta.db"))).toBe(true);
    const dump = run([OUR_CONTAINERD, "--config", d.configFile, "config", "dump"]);
    expect(dump.stdout).toContain(`root = "${d.root}"`);
    expect(dump.stdout).toContain('level = "debug"');
    // At debug level, failed calls are logged.
    ourCtr(d, ["namespaces", "rm", "never-existed"]);
    expect(await waitFor(() => d.log().includes('level=debug msg="rpc failed"'), 3000)).toBe(true);
    expect(await d.stop("SIGTERM")).toBe(0);
  });

  test("a malformed config is refused", () => {
    const d = daemon();
    const cfg = join(d.dir, "bad.toml");
    writeFileSync(cfg, "root = [unterminated\n");
    const r = run([OUR_CONTAINERD, "--config", cfg, "--root", d.root, "--state", d.state, "--address", d.address]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`containerd: failed to load TOML: ${cfg}`);
  });

  test("a stale socket is replaced; a live one is refused; SIGTERM stops cleanly and removes it", async () => {
    const d = daemon();
    mkdirSync(join(d.dir, "run"), { recursive: true });
    // A stale socket: bound by a process that is gone, nobody listening.
    ok(run(["python3", "-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(d.address)})`]), "bind");
    expect(statSync(d.address).isSocket()).toBe(true);
    await d.start();
    expect(statSync(d.address).isSocket()).toBe(true);
    expect(ok(ourCtr(d, ["namespaces", "ls", "-q"]))).toBe("");

    const second = daemon({ address: d.address });
    const r = run(second.argv());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`another containerd is serving on ${d.address}`);
    expect(ok(ourCtr(d, ["namespaces", "ls", "-q"]))).toBe("");

    expect(await d.stop("SIGTERM")).toBe(0);
    expect(existsSync(d.address)).toBe(false);
    expect(d.log()).toContain('msg="received signal, stopping containerd" signal=terminated');
  });

  test("SIGKILL during namespace creation: the database stays sound and keeps every acknowledged namespace", async () => {
    const d = daemon();
    const acknowledged: string[] = [];
    for (let round = 0; round < 4; round++) {
      await d.start();
      const clients = await Promise.all(Array.from({ length: 4 }, () => d.client()));
      let stop = false;
      const workers = clients.map(async (c, w) => {
        for (let i = 0; !stop; i++) {
          const name = `r${round}-w${w}-${i}`;
          try {
            await c.call("containerd.services.namespaces.v1.Namespaces", "Create", { namespace: { name, labels: { round: String(round), big: "x".repeat(2000) } } });
            acknowledged.push(name);
          } catch {
            return;
          }
        }
      });
      await sleep(150 + Math.floor(Math.random() * 250));
      d.proc!.kill("SIGKILL");
      await d.proc!.exited;
      stop = true;
      await Promise.all(workers);
      for (const c of clients) c.close();

      // The database as the kill left it (WAL included): sound, with every acknowledged namespace.
      const db = new Database(join(d.root, "io.containerd.metadata.v1.sqlite", "meta.db"));
      try {
        expect(db.query("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
        expect(db.query("PRAGMA foreign_key_check").all()).toEqual([]);
        const names = new Set(db.query<{ name: string }, []>("SELECT name FROM namespaces").all().map((r) => r.name));
        for (const n of acknowledged) expect(names.has(n)).toBe(true);
        for (const r of db.query<{ labels: string }, []>("SELECT labels FROM namespaces").all()) JSON.parse(r.labels);
      } finally {
        db.close();
      }
    }
    expect(acknowledged.length).toBeGreaterThan(20);
    await d.start();
    const listed = ok(ourCtr(d, ["namespaces", "ls", "-q"])).split("\n");
    for (const n of acknowledged) expect(listed).toContain(n);
    expect(await d.stop("SIGTERM")).toBe(0);
  }, 90_000);
});

// ---------------------------------------------------------------------------------------------

describePeer("our ctr against the real containerd", peerSkip, () => {
  let s: PeerSession | undefined;

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

  const ours = (args: string[]) => run(s!.inNs([OUR_CTR, "--address", s!.containerd!.address, ...args]));
  const real = (args: string[]) => s!.ctr(args, { ns: false });

  test("version: the real server's version and UUID", () => {
    const o = ours(["version"]);
    expect(o.code, fmt(o)).toBe(0);
    const r = real(["version"]);
    expect(o.stdout.slice(o.stdout.indexOf("Server:"))).toBe(r.stdout.slice(r.stdout.indexOf("Server:")));
    expect(o.stdout).toMatch(/Server:\n  Version:  1\.6\.\d+\S*\n  Revision: \S+\n  UUID: [0-9a-f-]{36}\n$/);
    expect(o.stderr).toBe("WARNING: version mismatch\nWARNING: revision mismatch\n");
  });

  test("plugins ls (table, -q, -d, filter) is byte for byte the real ctr's", () => {
    for (const args of [["plugins", "ls"], ["plugins", "ls", "-q"], ["plugins", "ls", "-d"], ["plugins", "ls", "type==io.containerd.snapshotter.v1"]]) {
      const o = ours(args);
      expect(o.code, fmt(o)).toBe(0);
      // -d prints each plugin's exports in Go's (random) map order: compare the lines as a multiset.
      if (args.includes("-d")) expect(lines_(o.stdout)).toEqual(lines_(real(args).stdout));
      else expect(o.stdout).toBe(real(args).stdout);
    }
  });

  test("namespaces create / label / ls / rm, errors included", () => {
    const ns = `${s!.namespace}-x`;
    ok(ours(["namespaces", "create", ns, "a=b"]), "create");
    expect(ours(["namespaces", "create", ns]).stderr).toBe(`ctr: namespace "${ns}": already exists\n`);
    ok(ours(["namespaces", "label", ns, "c=d"]), "label");
    expect(ours(["namespaces", "ls"]).stdout).toBe(real(["namespaces", "ls"]).stdout);
    expect(ours(["namespaces", "ls"]).stdout).toMatch(new RegExp(`^${ns}\\s+a=b,c=d $`, "m"));
    expect(ours(["namespaces", "ls", "-q"]).stdout).toBe(real(["namespaces", "ls", "-q"]).stdout);
    expect(ok(ours(["namespaces", "rm", ns, "nonexistent"]))).toBe(`${ns}\nnonexistent\n`);
    expect(real(["namespaces", "ls", "-q"]).stdout.split("\n")).not.toContain(ns);
  });

  test("leases and images against the real daemon", () => {
    const ns = `${s!.namespace}-l`;
    ok(ours(["-n", ns, "leases", "create", "--id", "pl1", "a=b"]), "lease create");
    expect(ours(["-n", ns, "leases", "ls"]).stdout).toBe(real(["-n", ns, "leases", "ls"]).stdout);
    ok(ours(["-n", ns, "leases", "rm", "pl1"]), "lease rm");
    expect(ours(["-n", ns, "images", "ls"]).stdout).toBe("REF TYPE DIGEST SIZE PLATFORMS LABELS \n");
    const t = ours(["-n", ns, "images", "tag", "nope:1", "x:1"]);
    expect(t.stderr).toBe(real(["-n", ns, "images", "tag", "nope:1", "x:1"]).stderr);
    ok(ours(["namespaces", "rm", ns]), "ns rm");
  });
});

// ---------------------------------------------------------------------------------------------

const dockerSkip = peerSkip ?? ensurePeerPackages(["docker.io"], ["/usr/sbin/dockerd", "/usr/bin/docker"]);

describePeer("the real dockerd 20.10 on our containerd", dockerSkip, () => {
  let s: PeerSession | undefined;
  let ours: ReturnType<typeof Bun.spawn> | undefined;
  let log = "";

  beforeAll(async () => {
    s = new PeerSession();
    s.startHolder();
    // Our containerd in the session's mount namespace, in place of the real one.
    const root = join(s.dir, "containerd-root");
    const state = join(s.dir, "containerd-state");
    const address = join(s.dir, "containerd.sock");
    log = join(s.dir, "our-containerd.log");
    const fd = openSync(log, "a");
    ours = Bun.spawn(s.inNs([OUR_CONTAINERD, "--root", root, "--state", state, "--address", address, "--log-level", "debug"]), { stdin: "ignore", stdout: fd, stderr: fd });
    closeSync(fd);
    if (!(await waitFor(() => readFileSync(log, "utf8").includes("successfully booted"), 15_000))) throw new Error(`our containerd did not start:\n${readFileSync(log, "utf8")}`);
    s.containerd = { pid: ours.pid, address, log, root, state };
    await s.startDockerd();
  }, 90_000);

  afterAll(async () => {
    ours?.kill("SIGKILL");
    await ours?.exited;
    if (!s) return;
    const problems = s.cleanup();
    s = undefined;
    if (problems.length) throw new Error(`peer cleanup left resources behind:\n  ${problems.join("\n  ")}`);
  }, 60_000);

  test("docker version and info report our containerd; dockerd's calls all succeed", () => {
    const v = s!.docker(["version", "--format", "{{range .Server.Components}}{{.Name}}={{.Version}} {{end}}"]);
    expect(v.code, fmt(v)).toBe(0);
    expect(v.stdout).toMatch(/containerd=1\.6\.20\+bunker\.\S+ /);
    const i = s!.docker(["info", "--format", "{{.ContainerdCommit.ID}}"]);
    expect(i.stdout.trim()).toMatch(/^bunker-/);
    expect(s!.docker(["ps", "-q"]).stdout).toBe("");
    // dockerd asked for its namespaces and subscribed to events; nothing it called failed.
    expect(readFileSync(log, "utf8")).not.toContain("rpc failed");
  });
});
