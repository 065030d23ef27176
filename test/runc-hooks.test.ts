// config.json hooks: prestart, createRuntime, createContainer, startContainer, poststart, poststop.
// Each hook gets the container state JSON on stdin; a host script saves what it sees.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cgroupDirs,
  ctx,
  errMsg,
  hostNs,
  makeBundle,
  newId,
  nsId,
  runc,
  runcOk,
  state,
  statusOf,
  tempDir,
  useHarness,
  waitFor,
  waitForStatus,
} from "./harness";

useHarness();

/**
 * A host hook script (run by the host's /bin/sh) that saves, into `out`:
 *   <name>.json  its stdin (the state), <name>.args, <name>.env, <name>.cwd,
 *   <name>.mntns / <name>.netns  its namespaces.
 */
function hookScript(out: string): string {
  const path = join(out, "hook.sh");
  writeFileSync(
    path,
    `#!/bin/sh
name="$1"
cat > "${out}/$name.json"
echo "$@" > "${out}/$name.args"
env > "${out}/$name.env"
pwd > "${out}/$name.cwd"
readlink /proc/self/ns/mnt > "${out}/$name.mntns"
readlink /proc/self/ns/net > "${out}/$name.netns"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

function read(out: string, name: string, ext: string): string | undefined {
  const f = join(out, `${name}.${ext}`);
  return existsSync(f) ? readFileSync(f, "utf8") : undefined;
}

function hookState(out: string, name: string): Record<string, unknown> | undefined {
  const t = read(out, name, "json");
  return t === undefined ? undefined : JSON.parse(t);
}

describe("hooks run with the state on stdin", () => {
  test("prestart, createRuntime, createContainer, poststart, poststop: state fields and order", async () => {
    const out = tempDir("hooks");
    const script = hookScript(out);
    const kinds = ["prestart", "createRuntime", "createContainer", "poststart", "poststop"];
    const b = makeBundle((s) => {
      s.annotations = { "org.example": "hooked" };
      s.hooks = Object.fromEntries(kinds.map((k) => [k, [{ path: script, args: ["hook.sh", k] }]]));
    });
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    const pid = state(id).pid;

    // After create: the create-time hooks have run.
    for (const k of ["prestart", "createRuntime", "createContainer"]) expect(read(out, k, "json")).toBeDefined();
    expect(read(out, "poststop", "json")).toBeUndefined();

    runcOk(["start", id]);
    expect(await waitFor(() => existsSync(join(out, "poststart.json")))).toBe(true);
    expect(read(out, "poststop", "json")).toBeUndefined();

    runcOk(["kill", id, "KILL"]);
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    // poststop runs when the container is deleted.
    expect(read(out, "poststop", "json")).toBeUndefined();
    runcOk(["delete", id]);
    expect(read(out, "poststop", "json")).toBeDefined();

    const common = { ociVersion: b.spec().ociVersion, id, bundle: b.dir, annotations: { "org.example": "hooked" } };
    // Runtime-namespace hooks see the host pid of the container's init.
    for (const k of ["prestart", "createRuntime"]) {
      expect(hookState(out, k)).toEqual({ ...common, status: "creating", pid });
    }
    // createContainer runs inside the container's namespaces: its pid is the one in the container's
    // pid namespace (1).
    expect(hookState(out, "createContainer")).toEqual({ ...common, status: "creating", pid: 1 });
    // poststart: runc 1.1 reports "created" (it runs poststart before the state is updated).
    const ps = hookState(out, "poststart")!;
    expect(ps).toMatchObject({ ...common, pid });
    expect(["created", "running"]).toContain(ps.status as string);
    // poststop: no pid any more.
    expect(hookState(out, "poststop")).toEqual({ ...common, status: "stopped" });

    // args: path is argv[0] for the kernel; the script sees args[1..].
    for (const k of kinds) expect(read(out, k, "args")).toBe(`${k}\n`);
  });

  test("the state keys are in runc's order", () => {
    const out = tempDir("hooks");
    const script = hookScript(out);
    const b = makeBundle((s) => (s.hooks = { createRuntime: [{ path: script, args: ["hook.sh", "createRuntime"] }] }));
    runcOk(["create", "--bundle", b.dir, newId()]);
    expect(Object.keys(hookState(out, "createRuntime")!)).toEqual(["ociVersion", "id", "status", "pid", "bundle"]);
  });

  test("prestart/createRuntime/poststart run in the runtime namespace, cwd = bundle", () => {
    const out = tempDir("hooks");
    const script = hookScript(out);
    const b = makeBundle((s) => {
      s.hooks = Object.fromEntries(["prestart", "createRuntime", "poststart"].map((k) => [k, [{ path: script, args: ["hook.sh", k] }]]));
    });
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    runcOk(["start", id]);
    for (const k of ["prestart", "createRuntime", "poststart"]) {
      expect(read(out, k, "mntns")?.trim()).toBe(hostNs("mnt"));
      expect(read(out, k, "netns")?.trim()).toBe(hostNs("net"));
      expect(read(out, k, "cwd")?.trim()).toBe(b.dir);
    }
  });

  test("createContainer: path resolved on the host, runs in the container's namespaces", () => {
    const out = tempDir("hooks");
    const script = hookScript(out); // a host path, not present in the rootfs
    const b = makeBundle((s) => (s.hooks = { createContainer: [{ path: script, args: ["hook.sh", "createContainer"] }] }));
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    const pid = state(id).pid;
    expect(read(out, "createContainer", "mntns")?.trim()).toBe(nsId(pid, "mnt"));
    expect(read(out, "createContainer", "netns")?.trim()).toBe(nsId(pid, "net"));
    expect(read(out, "createContainer", "mntns")?.trim()).not.toBe(hostNs("mnt"));
    // runc runs it before pivot_root, from the rootfs directory.
    expect(read(out, "createContainer", "cwd")?.trim()).toBe(b.rootfs);
  });

  test("startContainer: path resolved in the container, runs there before the program", async () => {
    const b = makeBundle((s) => {
      s.root.readonly = false;
      // Written aside and renamed, so the test never reads a half-written file.
      s.process.args = ["sh", "-c", "cat /tmp/sc.json > /tmp/seen.tmp && mv /tmp/seen.tmp /tmp/seen-by-program; sleep 300"];
      s.hooks = {
        startContainer: [
          {
            path: "/bin/sh", // the container's busybox sh
            args: ["sh", "-c", 'cat > /tmp/sc.json; pwd > /tmp/sc.cwd; echo "$HOOKVAR" > /tmp/sc.env; readlink /proc/self/ns/mnt > /tmp/sc.mntns', "startContainer"],
            env: ["HOOKVAR=from-hook-env"],
          },
        ],
      };
    });
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    expect(existsSync(join(b.rootfs, "tmp/sc.json"))).toBe(false); // not at create time
    const pid = state(id).pid;
    runcOk(["start", id]);
    expect(await waitFor(() => existsSync(join(b.rootfs, "tmp/seen-by-program")))).toBe(true);
    const st = JSON.parse(readFileSync(join(b.rootfs, "tmp/sc.json"), "utf8"));
    expect(st).toEqual({ ociVersion: b.spec().ociVersion, id, status: "created", pid: 1, bundle: b.dir });
    // It ran before the program (the program saw its output).
    expect(readFileSync(join(b.rootfs, "tmp/seen-by-program"), "utf8")).toBe(readFileSync(join(b.rootfs, "tmp/sc.json"), "utf8"));
    expect(readFileSync(join(b.rootfs, "tmp/sc.cwd"), "utf8")).toBe("/\n");
    expect(readFileSync(join(b.rootfs, "tmp/sc.env"), "utf8")).toBe("from-hook-env\n");
    expect(readFileSync(join(b.rootfs, "tmp/sc.mntns"), "utf8").trim()).toBe(nsId(pid, "mnt"));
  });

  test("startContainer with a host-only path: the program does not run", async () => {
    const out = tempDir("hooks");
    const script = hookScript(out);
    const shared = tempDir("shared");
    const b = makeBundle((s) => {
      s.process.args = ["sh", "-c", "touch /shared/program-ran; sleep 300"];
      s.mounts.push({ destination: "/shared", type: "bind", source: shared, options: ["rbind"] });
      s.hooks = { startContainer: [{ path: script, args: ["hook.sh", "startContainer"] }] };
    });
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    runc(["start", id]); // runc 1.1 reports the hook failure on the container's stderr, start itself exits 0
    expect(await waitForStatus(id, "stopped")).toBe("stopped");
    expect(existsSync(join(shared, "program-ran"))).toBe(false);
    expect(existsSync(join(out, "startContainer.json"))).toBe(false);
  });

  test("hook env is exactly the configured env; args are passed", () => {
    const out = tempDir("hooks");
    const b = makeBundle((s) => {
      s.hooks = {
        createRuntime: [{ path: "/bin/sh", args: ["sh", "-c", `env > ${out}/env; echo "$0|$1|$2" > ${out}/args`, "zero", "one", "two"], env: ["A=1", "B=two words"] }],
      };
    });
    runcOk(["create", "--bundle", b.dir, newId()], { env: { ...process.env, BUNKER_MARKER: "leak" } });
    const env = readFileSync(join(out, "env"), "utf8").split("\n").filter(Boolean);
    expect(env).toContain("A=1");
    expect(env).toContain("B=two words");
    expect(env.some((l) => l.startsWith("BUNKER_MARKER="))).toBe(false);
    expect(env.filter((l) => !/^(PWD|OLDPWD|SHLVL|_)=/.test(l)).sort()).toEqual(["A=1", "B=two words"]);
    expect(readFileSync(join(out, "args"), "utf8")).toBe("zero|one|two\n");
  });

  test("several hooks of one kind run in order", () => {
    const out = tempDir("hooks");
    const b = makeBundle((s) => {
      s.hooks = {
        prestart: [1, 2, 3].map((n) => ({ path: "/bin/sh", args: ["sh", "-c", `echo ${n} >> ${out}/order`] })),
      };
    });
    runcOk(["create", "--bundle", b.dir, newId()]);
    expect(readFileSync(join(out, "order"), "utf8")).toBe("1\n2\n3\n");
  });

  test("run (foreground) runs every hook, poststop after the program exits", () => {
    const out = tempDir("hooks");
    const script = hookScript(out);
    const kinds = ["prestart", "createRuntime", "createContainer", "poststart", "poststop"];
    const b = makeBundle((s) => {
      s.process.args = ["true"];
      s.hooks = Object.fromEntries(kinds.map((k) => [k, [{ path: script, args: ["hook.sh", k] }]]));
    });
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    for (const k of kinds) expect(hookState(out, k)).toBeDefined();
    expect(hookState(out, "poststop")!.status).toBe("stopped");
  });
});

describe("failing hooks", () => {
  test("a failing prestart hook fails create; nothing is left behind", () => {
    const b = makeBundle((s) => (s.hooks = { prestart: [{ path: "/bin/sh", args: ["sh", "-c", "echo out; echo err >&2; exit 3"] }] }));
    const id = newId();
    const r = runc(["create", "--bundle", b.dir, id]);
    expect(r.code).toBe(1);
    const msg = errMsg(r.stderr);
    // runc: runc create failed: unable to start container process: error during container init:
    //       error running hook #0: error running hook: exit status 3, stdout: out\n, stderr: err\n
    expect(msg).toContain("error running hook #0");
    expect(msg).toContain("exit status 3");
    expect(msg).toContain("stdout: out\n");
    expect(msg).toContain("stderr: err\n");
    expect(statusOf(id)).toBeUndefined();
    expect(readdirSync(ctx().root)).toEqual([]);
    expect(cgroupDirs(b.cgroupsPath!)).toEqual([]);
  });

  test("createRuntime / createContainer failures fail create too", () => {
    for (const kind of ["createRuntime", "createContainer"]) {
      const b = makeBundle((s) => (s.hooks = { [kind]: [{ path: "/bin/sh", args: ["sh", "-c", "exit 6"] }] }));
      const id = newId();
      const r = runc(["create", "--bundle", b.dir, id]);
      expect(r.code).toBe(1);
      expect(errMsg(r.stderr)).toContain("error running hook #0");
      expect(errMsg(r.stderr)).toContain("exit status 6");
      expect(statusOf(id)).toBeUndefined();
      expect(cgroupDirs(b.cgroupsPath!)).toEqual([]);
    }
  });

  test("a hook that does not exist fails create", () => {
    const b = makeBundle((s) => (s.hooks = { createRuntime: [{ path: "/nonexistent/hook" }] }));
    const id = newId();
    const r = runc(["create", "--bundle", b.dir, id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("error running hook #0: fork/exec /nonexistent/hook: no such file or directory");
    expect(statusOf(id)).toBeUndefined();
  });

  test("a hook past its timeout is killed and fails create", () => {
    const b = makeBundle((s) => (s.hooks = { prestart: [{ path: "/bin/sleep", args: ["sleep", "30"], timeout: 1 }] }));
    const id = newId();
    const t0 = Date.now();
    const r = runc(["create", "--bundle", b.dir, id]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain("error running hook #0: hook ran past specified timeout of 1.0s");
    expect(statusOf(id)).toBeUndefined();
  });

  test("a failing poststop hook does not stop delete", () => {
    const b = makeBundle((s) => (s.hooks = { poststop: [{ path: "/bin/sh", args: ["sh", "-c", "exit 5"] }] }));
    const id = newId();
    runcOk(["run", "-d", "--bundle", b.dir, id]);
    const r = runc(["delete", "--force", id]);
    expect(r.code).toBe(0);
    // runc words it "error running hook #0: error running hook: exit status 5"; bunker without the repeat.
    expect(errMsg(r.stderr)).toMatch(/^error running hook #0: (error running hook: )?exit status 5/);
    expect(statusOf(id)).toBeUndefined();
    expect(cgroupDirs(b.cgroupsPath!)).toEqual([]);
  });
});
