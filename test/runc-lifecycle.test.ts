// Container lifecycle through runc's commands: create/start, run (foreground and -d), state, list,
// kill, delete, ps, dead containers, console sockets, --no-pivot.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  ctx,
  cgroupDirs,
  errMsg,
  hasTool,
  hostNs,
  makeBundle,
  newId,
  nsId,
  runc,
  runcOk,
  runDetached,
  runShell,
  sleep,
  spawnBackground,
  state,
  statusOf,
  tempDir,
  useHarness,
  waitFor,
  waitForStatus,
  type Spec,
} from "./harness";

useHarness();

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is not alive for our purposes.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** A host directory bind-mounted read-write at /shared in the container. */
function withShared(dir: string) {
  return (s: Spec) => {
    s.mounts.push({ destination: "/shared", type: "bind", source: dir, options: ["rbind", "rw"] });
  };
}

function cgroupProcs(cgPath: string): number[] {
  // The pids controller is a v1 hierarchy on this host; fall back to whatever hierarchy has it.
  for (const d of cgroupDirs(cgPath)) {
    const f = join(d, "cgroup.procs");
    if (existsSync(f)) {
      return readFileSync(f, "utf8")
        .split("\n")
        .filter(Boolean)
        .map(Number);
    }
  }
  return [];
}

describe("create + start", () => {
  test("after create the init process exists but the user program has not run; start runs it", async () => {
    const shared = tempDir("shared");
    const b = makeBundle((s) => {
      s.process.args = ["sh", "-c", "echo started > /shared/started.tmp && mv /shared/started.tmp /shared/started; exec sleep 300"];
      withShared(shared)(s);
    });
    const id = newId();
    const r = runc(["create", "--bundle", b.dir, id]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");

    const st = state(id);
    expect(st.status).toBe("created");
    expect(st.pid).toBeGreaterThan(0);
    expect(alive(st.pid)).toBe(true);
    // It is already in its namespaces and cgroup.
    expect(nsId(st.pid, "pid")).not.toBe(hostNs("pid"));
    expect(nsId(st.pid, "mnt")).not.toBe(hostNs("mnt"));
    expect(cgroupProcs(b.cgroupsPath!)).toContain(st.pid);
    // ...but the user's program has not run.
    await sleep(300);
    expect(existsSync(join(shared, "started"))).toBe(false);
    expect(statusOf(id)).toBe("created");

    const s2 = runc(["start", id]);
    expect(s2.code).toBe(0);
    expect(s2.stdout).toBe("");
    // Wait for the whole line, not the file: the shell creates it before writing.
    const started = join(shared, "started");
    expect(await waitFor(() => existsSync(started) && readFileSync(started, "utf8").endsWith("\n"))).toBe(true);
    expect(readFileSync(started, "utf8")).toBe("started\n");
    const st2 = state(id);
    expect(st2.status).toBe("running");
    expect(st2.pid).toBe(st.pid); // the init process becomes the user program
    expect(await waitFor(() => readFileSync(`/proc/${st.pid}/cmdline`, "utf8") === "sleep\u0000300\u0000")).toBe(true);
  });

  test("create --pid-file writes the init pid", () => {
    const b = makeBundle();
    const id = newId();
    const pidFile = join(ctx().dir, "create.pid");
    runcOk(["create", "--bundle", b.dir, "--pid-file", pidFile, id]);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(pid).toBe(state(id).pid);
  });

  test("start twice: the second start fails", () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    runcOk(["start", id]);
    const r = runc(["start", id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("cannot start an already running container");
  });

  test("start of a stopped container fails", async () => {
    const b = makeBundle((s) => (s.process.args = ["true"]));
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    runcOk(["start", id]);
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    const r = runc(["start", id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("cannot start a container that has stopped");
  });

  test("create with an id that already exists fails", () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    const r = runc(["create", "--bundle", b.dir, id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("runc create failed: container with given ID already exists");
    expect(statusOf(id)).toBe("created");
  });

  test("an invalid container id is rejected", () => {
    const b = makeBundle();
    for (const bad of ["bad/id", "..", "a b"]) {
      const r = runc(["create", "--bundle", b.dir, bad]);
      expect(r.code).toBe(1);
      expect(errMsg(r.stderr)).toBe("runc create failed: invalid container ID format");
    }
    expect(readdirSync(ctx().root).length).toBe(0);
  });

  test("start of a missing container fails", () => {
    const r = runc(["start", "nope"]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("container does not exist");
  });

  test("--bundle defaults to the current directory", () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["create", id], { cwd: b.dir });
    expect(state(id).bundle).toBe(b.dir);
  });
});

describe("run (foreground)", () => {
  test("exit status is the container's", () => {
    for (const code of [0, 3, 42]) {
      const r = runShell(`exit ${code}`);
      expect(r.code).toBe(code);
    }
  });

  test("a container killed by a signal gives 128+signal", () => {
    // Not as pid 1 of a pid namespace: the kernel protects a namespace's init from its own signals.
    const r = runShell("kill -9 $$", (s) => (s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== "pid")));
    expect(r.code).toBe(137);
  });

  test("stdout, stderr and stdin are the container's", () => {
    const r = runShell("echo to-stdout; echo to-stderr >&2; read line; echo got:$line", undefined, { stdin: "hello\n" });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("to-stdout\ngot:hello\n");
    expect(r.stderr).toBe("to-stderr\n");
  });

  test("the container is gone after it exits (state, cgroup)", () => {
    const r = runShell("true");
    expect(r.code).toBe(0);
    const st = runc(["state", r.id]);
    expect(st.code).toBe(1);
    expect(errMsg(st.stderr)).toBe("container does not exist");
    expect(cgroupDirs(r.bundle.cgroupsPath!)).toEqual([]);
    expect(readdirSync(ctx().root)).toEqual([]);
  });

  test("a missing program fails run with exit 1 and names it", () => {
    const b = makeBundle((s) => (s.process.args = ["/no/such/program"]));
    const id = newId();
    const r = runc(["run", "--bundle", b.dir, id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("/no/such/program");
    expect(errMsg(r.stderr)).toContain("no such file or directory");
  });
});

describe("run -d", () => {
  test("detaches, leaves the container running, writes --pid-file", () => {
    const b = makeBundle();
    const id = newId();
    const pidFile = join(ctx().dir, "run.pid");
    const r = runc(["run", "-d", "--pid-file", pidFile, "--bundle", b.dir, id]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    const text = readFileSync(pidFile, "utf8");
    expect(text).toMatch(/^\d+$/); // runc writes the bare number, no newline
    const pid = Number(text);
    const st = state(id);
    expect(st.status).toBe("running");
    expect(st.pid).toBe(pid);
    expect(alive(pid)).toBe(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\u0000300\u0000");
  });

  test("--detach long form", () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["run", "--detach", "--bundle", b.dir, id]);
    expect(statusOf(id)).toBe("running");
  });

  test("a relative --pid-file is relative to runc's cwd", () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["run", "-d", "--pid-file", "rel.pid", id], { cwd: b.dir });
    expect(Number(readFileSync(join(b.dir, "rel.pid"), "utf8"))).toBe(state(id).pid);
  });
});

describe("state", () => {
  test("JSON fields and format", () => {
    const before = Date.now();
    const { id, bundle } = runDetached((s) => (s.annotations = { "org.example.key": "value" }));
    const r = runc(["state", id]);
    expect(r.code).toBe(0);
    const st = JSON.parse(r.stdout);
    // runc prints it indented by two spaces, fields in this order, no trailing newline.
    expect(Object.keys(st)).toEqual(["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "annotations", "owner"]);
    expect(r.stdout).toBe(JSON.stringify(st, null, 2));
    expect(st.ociVersion).toBe(bundle.spec().ociVersion);
    expect(st.id).toBe(id);
    expect(st.pid).toBeGreaterThan(0);
    expect(st.status).toBe("running");
    expect(st.bundle).toBe(bundle.dir);
    expect(st.rootfs).toBe(bundle.rootfs);
    expect(st.created).toMatch(RFC3339);
    const created = Date.parse(st.created);
    expect(created).toBeGreaterThanOrEqual(before - 2000);
    expect(created).toBeLessThanOrEqual(Date.now() + 2000);
    expect(st.annotations).toEqual({ "org.example.key": "value" });
    expect(st.owner).toBe(""); // runc 1.1 leaves owner empty in `state` (list fills it in)
  });

  test("without annotations the key is absent", () => {
    const { id } = runDetached();
    const st = state(id);
    expect(Object.keys(st)).toEqual(["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]);
  });

  test("a stopped container has pid 0", async () => {
    const b = makeBundle((s) => (s.process.args = ["true"]));
    const id = newId();
    runcOk(["run", "-d", "--bundle", b.dir, id]);
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    const st = state(id);
    expect(st.pid).toBe(0);
    expect(st.status).toBe("stopped");
  });

  test("a missing container: exit 1, 'container does not exist'", () => {
    const r = runc(["state", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(errMsg(r.stderr)).toBe("container does not exist");
  });
});

describe("list", () => {
  const HEADER = "ID          PID         STATUS      BUNDLE      CREATED     OWNER";

  test("an empty root prints only the header", () => {
    const r = runc(["list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(HEADER + "\n");
  });

  test("a root that does not exist yet lists nothing", () => {
    const r = runc(["list"], { root: join(ctx().dir, "no-such-root") });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(HEADER + "\n");
  });

  test("table is aligned like Go's tabwriter (minwidth 12, padding 3), sorted by id", () => {
    const b1 = makeBundle();
    const b2 = makeBundle();
    const idLong = `a-long-container-id-${ctx().tag}`;
    const idShort = "b";
    runcOk(["run", "-d", "--bundle", b1.dir, idLong]);
    runcOk(["create", "--bundle", b2.dir, idShort]);
    const s1 = state(idLong);
    const s2 = state(idShort);
    const rows = [
      ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
      [idLong, String(s1.pid), "running", b1.dir, s1.created, "root"],
      [idShort, String(s2.pid), "created", b2.dir, s2.created, "root"],
    ];
    const widths = [0, 1, 2, 3, 4].map((i) => Math.max(12, ...rows.map((r) => r[i]!.length + 3)));
    const expected = rows.map((r) => r.map((c, i) => (i < 5 ? c.padEnd(widths[i]!) : c)).join("")).join("\n") + "\n";
    const r = runc(["list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(expected);
    // --format table is the same thing
    expect(runcOk(["list", "--format", "table"])).toBe(expected);
  });

  test("--format json: array of states with owner", () => {
    const { id, bundle, pid } = runDetached();
    const r = runc(["list", "--format", "json"]);
    expect(r.code).toBe(0);
    const arr = JSON.parse(r.stdout);
    expect(Array.isArray(arr)).toBe(true);
    expect(arr.length).toBe(1);
    expect(arr[0]).toMatchObject({ id, pid, status: "running", bundle: bundle.dir, rootfs: bundle.rootfs, owner: "root" });
    expect(arr[0].created).toMatch(RFC3339);
    expect(Object.keys(arr[0])).toEqual(["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]);
    expect(r.stdout).toBe(JSON.stringify(arr) + "\n");
    expect(runcOk(["list", "-f", "json"])).toBe(r.stdout);
  });

  test("--format json with no containers prints null", () => {
    expect(runcOk(["list", "--format", "json"])).toBe("null\n");
  });

  test("-q / --quiet prints ids only", () => {
    const a = runDetached();
    const b = runDetached();
    const ids = [a.id, b.id].sort();
    expect(runcOk(["list", "-q"])).toBe(ids.join("\n") + "\n");
    expect(runcOk(["list", "--quiet"])).toBe(ids.join("\n") + "\n");
  });
});

describe("kill", () => {
  /** A container whose init traps TERM and USR1 and records the signal in /tmp/sig
   *  (written aside and renamed, so the file never exists empty: the test polls for it). */
  async function trapper() {
    const { id, pid, bundle } = runDetached((s) => {
      s.root.readonly = false;
      s.process.args = [
        "sh",
        "-c",
        "trap 'echo TERM > /tmp/sig.w; mv /tmp/sig.w /tmp/sig; exit 0' TERM; trap 'echo USR1 > /tmp/sig.w; mv /tmp/sig.w /tmp/sig; exit 0' USR1; touch /tmp/ready; sleep 300 & wait",
      ];
    });
    expect(await waitFor(() => existsSync(join(bundle.rootfs, "tmp/ready")))).toBe(true);
    return { id, pid, sigFile: join(bundle.rootfs, "tmp/sig") };
  }

  for (const sig of ["TERM", "SIGTERM", "15"]) {
    test(`kill ${sig} delivers SIGTERM`, async () => {
      const t = await trapper();
      const r = runc(["kill", t.id, sig]);
      expect(r.code).toBe(0);
      expect(await waitFor(() => existsSync(t.sigFile))).toBe(true);
      expect(readFileSync(t.sigFile, "utf8")).toBe("TERM\n");
      expect(await waitForStatus(t.id, "stopped")).toBe("stopped");
    });
  }

  test("the default signal is SIGTERM", async () => {
    const t = await trapper();
    runcOk(["kill", t.id]);
    expect(await waitFor(() => existsSync(t.sigFile))).toBe(true);
    expect(readFileSync(t.sigFile, "utf8")).toBe("TERM\n");
  });

  test("kill USR1 / SIGUSR1", async () => {
    const t = await trapper();
    runcOk(["kill", t.id, "SIGUSR1"]);
    expect(await waitFor(() => existsSync(t.sigFile))).toBe(true);
    expect(readFileSync(t.sigFile, "utf8")).toBe("USR1\n");
  });

  for (const sig of ["KILL", "SIGKILL", "9"]) {
    test(`kill ${sig} kills the init process`, async () => {
      const { id, pid } = runDetached();
      runcOk(["kill", id, sig]);
      expect(await waitFor(() => !alive(pid))).toBe(true);
      expect(await waitForStatus(id, "stopped")).toBe("stopped");
    });
  }

  test("kill --all signals every process in the container", async () => {
    const { id, pid, bundle } = runDetached((s) => (s.process.args = ["sh", "-c", "sleep 301 & sleep 302 & wait"]));
    const procs = await waitFor(() => {
      const p = cgroupProcs(bundle.cgroupsPath!);
      return p.length === 3 ? p : undefined;
    });
    expect(procs?.length).toBe(3);
    expect(procs).toContain(pid);
    runcOk(["kill", "--all", id, "KILL"]);
    expect(await waitFor(() => procs!.every((p) => !alive(p)))).toBe(true);
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
  });

  test("kill -a TERM reaches the children even though init ignores it", async () => {
    // sh as pid 1 of its namespace has no TERM handler, so TERM to it alone does nothing;
    // with --all the sleeps die, `wait` returns and the shell exits.
    const { id, pid, bundle } = runDetached((s) => (s.process.args = ["sh", "-c", "sleep 301 & sleep 302 & wait"]));
    expect(await waitFor(() => cgroupProcs(bundle.cgroupsPath!).length === 3)).toBe(true);
    runcOk(["kill", id, "TERM"]);
    await sleep(300);
    expect(alive(pid)).toBe(true);
    expect(statusOf(id)).toBe("running");
    runcOk(["kill", "-a", id, "TERM"]);
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
  });

  test("a created (not started) container can be killed", async () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    const pid = state(id).pid;
    runcOk(["kill", id, "KILL"]);
    expect(await waitFor(() => !alive(pid))).toBe(true);
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
  });

  test("an unknown signal is rejected", () => {
    const { id, pid } = runDetached();
    const r = runc(["kill", id, "FOO"]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe('unknown signal "FOO"');
    expect(alive(pid)).toBe(true);
  });

  test("a stopped container: 'container not running'", async () => {
    const { id } = runDetached((s) => (s.process.args = ["true"]));
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    const r = runc(["kill", id, "KILL"]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("container not running");
  });

  test("a missing container: 'container does not exist'", () => {
    const r = runc(["kill", "nope", "KILL"]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("container does not exist");
  });
});

describe("delete", () => {
  test("refuses a running container without --force", () => {
    const { id, pid } = runDetached();
    const r = runc(["delete", id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe(`cannot delete container ${id} that is not stopped: running`);
    expect(alive(pid)).toBe(true);
    expect(statusOf(id)).toBe("running");
  });

  test("--force kills and removes a running container", async () => {
    const { id, pid, bundle } = runDetached();
    const r = runc(["delete", "--force", id]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(await waitFor(() => !alive(pid))).toBe(true);
    expect(statusOf(id)).toBeUndefined();
    expect(readdirSync(ctx().root)).not.toContain(id);
    expect(cgroupDirs(bundle.cgroupsPath!)).toEqual([]);
    expect(runcOk(["list", "-q"])).toBe("");
  });

  test("-f works too", async () => {
    const { id, pid } = runDetached();
    runcOk(["delete", "-f", id]);
    expect(await waitFor(() => !alive(pid))).toBe(true);
    expect(statusOf(id)).toBeUndefined();
  });

  test("a stopped container is cleaned up (state dir, cgroups)", async () => {
    const { id, bundle } = runDetached((s) => (s.process.args = ["true"]));
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    expect(readdirSync(ctx().root)).toContain(id);
    const r = runc(["delete", id]);
    expect(r.code).toBe(0);
    expect(statusOf(id)).toBeUndefined();
    expect(readdirSync(ctx().root)).not.toContain(id);
    expect(cgroupDirs(bundle.cgroupsPath!)).toEqual([]);
  });

  test("a created container is deleted without --force", async () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    const pid = state(id).pid;
    const r = runc(["delete", id]);
    expect(r.code).toBe(0);
    expect(await waitFor(() => !alive(pid))).toBe(true);
    expect(statusOf(id)).toBeUndefined();
    expect(cgroupDirs(b.cgroupsPath!)).toEqual([]);
  });

  test("a paused container is refused without --force, deleted with it", async () => {
    const { id, pid } = runDetached();
    runcOk(["pause", id]);
    expect(statusOf(id)).toBe("paused");
    const r = runc(["delete", id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe(`cannot delete container ${id} that is not stopped: paused`);
    runcOk(["delete", "--force", id]);
    expect(await waitFor(() => !alive(pid))).toBe(true);
    expect(statusOf(id)).toBeUndefined();
  });

  test("a missing container: exit 1 'container does not exist'; with --force: exit 0", () => {
    const r = runc(["delete", "nope"]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("container does not exist");
    const f = runc(["delete", "--force", "nope"]);
    expect(f.code).toBe(0);
    expect(f.stderr).toBe("");
  });
});

describe("ps", () => {
  test("table has a PID column listing the container's processes", async () => {
    const { id, pid, bundle } = runDetached((s) => (s.process.args = ["sh", "-c", "sleep 301 & wait"]));
    const procs = await waitFor(() => {
      const p = cgroupProcs(bundle.cgroupsPath!);
      return p.length === 2 ? p : undefined;
    });
    expect(procs).toBeDefined();
    const r = runc(["ps", id]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n").filter(Boolean);
    const header = lines[0]!.trim().split(/\s+/);
    expect(header).toContain("PID");
    const col = header.indexOf("PID");
    const pids = lines.slice(1).map((l) => Number(l.trim().split(/\s+/)[col]));
    expect(pids.sort()).toEqual(procs!.sort());
    expect(pids).toContain(pid);
    // The default ps options are -ef.
    expect(header).toEqual(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
  });

  test("--format json lists the pids", async () => {
    const { id, pid, bundle } = runDetached((s) => (s.process.args = ["sh", "-c", "sleep 301 & wait"]));
    expect(await waitFor(() => cgroupProcs(bundle.cgroupsPath!).length === 2)).toBe(true);
    const r = runc(["ps", "--format", "json", id]);
    expect(r.code).toBe(0);
    const pids: number[] = JSON.parse(r.stdout);
    expect(pids.length).toBe(2);
    expect(pids).toContain(pid);
    expect(pids.sort()).toEqual(cgroupProcs(bundle.cgroupsPath!).sort());
    expect(r.stdout).toBe(JSON.stringify(JSON.parse(r.stdout)) + "\n");
    expect(runcOk(["ps", "-f", "json", id])).toBe(r.stdout);
  });

  test("extra arguments are passed to ps", () => {
    const { id, pid } = runDetached();
    const r = runc(["ps", id, "-o", "pid,comm"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n").filter(Boolean);
    expect(lines[0]!.trim().split(/\s+/)).toEqual(["PID", "COMMAND"]);
    expect(lines.slice(1).map((l) => l.trim().split(/\s+/))).toEqual([[String(pid), "sleep"]]);
  });

  test("a stopped container has no processes", async () => {
    const { id } = runDetached((s) => (s.process.args = ["true"]));
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    expect(runcOk(["ps", "--format", "json", id])).toBe("null\n");
  });

  test("a missing container: 'container does not exist'", () => {
    const r = runc(["ps", "nope"]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("container does not exist");
  });
});

describe("a container that died behind runc's back", () => {
  test("is reported stopped and delete cleans it up", async () => {
    const { id, pid, bundle } = runDetached();
    process.kill(pid, "SIGKILL");
    expect(await waitFor(() => !alive(pid))).toBe(true);
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    expect(state(id).pid).toBe(0);
    const l = JSON.parse(runcOk(["list", "--format", "json"]));
    expect(l[0]).toMatchObject({ id, status: "stopped", pid: 0 });
    const r = runc(["delete", id]);
    expect(r.code).toBe(0);
    expect(statusOf(id)).toBeUndefined();
    expect(cgroupDirs(bundle.cgroupsPath!)).toEqual([]);
    expect(readdirSync(ctx().root)).not.toContain(id);
  });
});

describe("console socket", () => {
  const py = hasTool("python3");

  test("create --console-socket with terminal: false is an error", () => {
    const b = makeBundle();
    const id = newId();
    const sock = join(ctx().dir, "console.sock");
    const r = runc(["create", "--console-socket", sock, "--bundle", b.dir, id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("runc create failed: cannot use console socket if runc will not detach or allocate tty");
    expect(statusOf(id)).toBeUndefined();
    expect(cgroupDirs(b.cgroupsPath!)).toEqual([]);
  });

  test("create with terminal: true and no console socket is an error", () => {
    const b = makeBundle((s) => (s.process.terminal = true));
    const id = newId();
    const r = runc(["create", "--bundle", b.dir, id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("runc create failed: cannot allocate tty if runc will detach without setting console socket");
    expect(statusOf(id)).toBeUndefined();
  });

  test.skipIf(!py)("terminal: true sends the pty master over the socket (needs python3)", async () => {
    const dir = ctx().dir;
    const sock = join(dir, "console.sock");
    const receiver = join(import.meta.dir, "fixtures/console-recv.py");
    const recv = spawnBackground(["python3", receiver, sock]);
    expect(await waitFor(() => existsSync(sock + ".ready"))).toBe(true);
    const b = makeBundle((s) => {
      s.process.terminal = true;
      s.process.args = ["sh", "-c", "tty; echo hello-from-pty; sleep 1"];
    });
    const id = newId();
    const r = runc(["create", "--console-socket", sock, "--bundle", b.dir, id]);
    expect(r.code).toBe(0);
    runcOk(["start", id]);
    const out = await recv.finish(15_000);
    expect(out.code).toBe(0);
    const lines = Object.fromEntries(
      out.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)]),
    );
    expect(lines.NFDS).toBe("1");
    // runc sends the name "/dev/ptmx" with the master (opened in the container's devpts).
    expect(lines.NAME).toBe("/dev/ptmx");
    expect(lines.LINK).toMatch(/ptmx$/);
    const data = JSON.parse(lines.DATA!.replace(/^'|'$/g, '"'));
    expect(data).toContain("hello-from-pty");
    expect(data).toMatch(/^\/dev\/pts\/\d+\r\n/); // the slave is the container's stdio; output has CRLF
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
  });
});

describe("--no-pivot", () => {
  test("create --no-pivot + start runs in the rootfs", async () => {
    const shared = tempDir("shared");
    const b = makeBundle((s) => {
      s.process.args = ["sh", "-c", "ls / > /shared/ls; test -e /bin/busybox && echo ok > /shared/ok"];
      withShared(shared)(s);
    });
    const id = newId();
    const r = runc(["create", "--no-pivot", "--bundle", b.dir, id]);
    expect(r.code).toBe(0);
    expect(statusOf(id)).toBe("created");
    runcOk(["start", id]);
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    expect(readFileSync(join(shared, "ok"), "utf8")).toBe("ok\n");
    const ls = readFileSync(join(shared, "ls"), "utf8").split("\n").filter(Boolean);
    expect(ls).toContain("bin");
    expect(ls).toContain("shared");
    expect(ls).not.toContain("work"); // the host's / is not visible
  });

  test("run --no-pivot: exit status and root", () => {
    const b = makeBundle((s) => (s.process.args = ["sh", "-c", "test -e /bin/busybox && ! test -e /work && exit 7"]));
    const r = runc(["run", "--no-pivot", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(7);
  });
});
