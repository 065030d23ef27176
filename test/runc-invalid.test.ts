// Invalid bundles are rejected before anything is created: non-zero exit, an error naming the
// problem, no state directory, no cgroup, no process.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupDirs, ctx, errMsg, IS_REAL_RUNC, makeBundle, newId, runc, useHarness, type Bundle, type Spec } from "./harness";

/**
 * Real runc's message, or ours: bunker words config errors its own way, always naming the field
 * (`config.json: process.args: ...`), where runc's Go errors often don't.
 */
function expectMsg(msg: string, runcText: string | RegExp, ours: string | RegExp) {
  const want = IS_REAL_RUNC ? runcText : ours;
  if (typeof want === "string") expect(msg).toBe(want);
  else expect(msg).toMatch(want);
}

useHarness();

function nothingCreated(b: Bundle, id: string) {
  const root = ctx().root;
  expect(existsSync(root) ? readdirSync(root) : []).toEqual([]);
  expect(runc(["state", id]).code).toBe(1);
  expect(cgroupDirs(b.cgroupsPath!)).toEqual([]);
}

/** Create (and run) with a broken bundle; returns runc's error message. */
function reject(b: Bundle, cmd: "create" | "run" = "create"): string {
  const id = newId();
  const r = runc([cmd, "--bundle", b.dir, id]);
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  nothingCreated(b, id);
  return errMsg(r.stderr);
}

function rejectSpec(mutate: (s: Spec) => void, cmd: "create" | "run" = "create"): string {
  return reject(makeBundle(mutate), cmd);
}

describe("config.json that cannot be used", () => {
  test("bad JSON", () => {
    const b = makeBundle();
    writeFileSync(b.configPath, "{bad");
    expectMsg(reject(b), "runc create failed: invalid character 'b' looking for beginning of object key string", /^runc create failed: config\.json: invalid JSON: /);
    expectMsg(reject(b, "run"), "runc run failed: invalid character 'b' looking for beginning of object key string", /^runc run failed: config\.json: invalid JSON: /);
  });

  test("missing config.json", () => {
    const b = makeBundle();
    rmSync(b.configPath);
    expectMsg(reject(b), "runc create failed: JSON specification file config.json not found", /^runc create failed: config\.json: open .*config\.json: no such file or directory$/);
  });

  test("a field of the wrong type names the field", () => {
    expectMsg(
      rejectSpec((s) => (s.process.user.uid = "abc")),
      "runc create failed: json: cannot unmarshal string into Go struct field User.process.user.uid of type uint32",
      "runc create failed: config.json: process.user.uid: must be a non-negative 32-bit integer",
    );
  });

  test("missing process", () => {
    expectMsg(rejectSpec((s) => delete s.process), "runc create failed: process property must not be empty", "runc create failed: config.json: process: is required");
  });

  test("missing or empty args", () => {
    expectMsg(rejectSpec((s) => delete s.process.args), "runc create failed: args must not be empty", /^runc create failed: config\.json: process\.args: /);
    expectMsg(rejectSpec((s) => (s.process.args = [])), "runc create failed: args must not be empty", /^runc create failed: config\.json: process\.args: /);
    expectMsg(rejectSpec((s) => delete s.process.args, "run"), "runc run failed: args must not be empty", /^runc run failed: config\.json: process\.args: /);
  });

  test("relative cwd", () => {
    expectMsg(rejectSpec((s) => (s.process.cwd = "relative")), "runc create failed: Cwd must be an absolute path", "runc create failed: config.json: process.cwd: must be an absolute path");
  });

  test("unknown namespace type", () => {
    expectMsg(rejectSpec((s) => s.linux.namespaces.push({ type: "bogus" })), 'runc create failed: namespace {"bogus" ""} does not exist', /^runc create failed: config\.json: linux\.namespaces\[\d+\]\.type: unknown namespace type "bogus"$/);
  });

  test("duplicated namespace", () => {
    expectMsg(rejectSpec((s) => s.linux.namespaces.push({ type: "network" })), 'runc create failed: malformed spec file: duplicated ns {"network" ""}', /^runc create failed: config\.json: linux\.namespaces\[\d+\]\.type: duplicate namespace "network"$/);
  });

  test("unknown rlimit", () => {
    expectMsg(rejectSpec((s) => s.process.rlimits.push({ type: "RLIMIT_BOGUS", soft: 1, hard: 1 })), "runc create failed: wrong rlimit value: RLIMIT_BOGUS", /^runc create failed: config\.json: process\.rlimits\[1\]\.type: unknown rlimit type "RLIMIT_BOGUS"$/);
  });

  test("rootfs that does not exist", () => {
    const msg = rejectSpec((s) => (s.root.path = "no-such-rootfs"));
    expectMsg(msg, /^runc create failed: invalid rootfs: stat .*\/no-such-rootfs: no such file or directory$/, /^runc create failed: invalid rootfs: stat .*\/no-such-rootfs: no such file or directory$/);
  });

  test("hostname without a uts namespace", () => {
    const msg = rejectSpec((s) => {
      s.hostname = "x";
      s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== "uts");
    });
    expectMsg(msg, "runc create failed: unable to set hostname without a private UTS namespace", "runc create failed: config.json: hostname: unable to set hostname without a private UTS namespace");
  });

  test("sysctl that is not namespaced", () => {
    expectMsg(rejectSpec((s) => (s.linux.sysctl = { "vm.swappiness": "10" })), 'runc create failed: sysctl "vm.swappiness" is not in a separate kernel namespace', 'runc create failed: config.json: linux.sysctl["vm.swappiness"]: sysctl "vm.swappiness" is not in a separate kernel namespace');
  });

  test("net sysctl without a network namespace", () => {
    const msg = rejectSpec((s) => {
      s.linux.sysctl = { "net.ipv4.ip_forward": "1" };
      s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== "network");
    });
    expectMsg(msg, 'runc create failed: sysctl "net.ipv4.ip_forward" not allowed in host network namespace', 'runc create failed: config.json: linux.sysctl["net.ipv4.ip_forward"]: sysctl "net.ipv4.ip_forward" not allowed in host network namespace');
  });

  test("ipc sysctl without an ipc namespace", () => {
    const msg = rejectSpec((s) => {
      s.linux.sysctl = { "kernel.shmmax": "1" };
      s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== "ipc");
    });
    expectMsg(msg, 'runc create failed: sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace', 'runc create failed: config.json: linux.sysctl["kernel.shmmax"]: sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace');
  });

  test("unsupported rootfsPropagation", () => {
    expectMsg(rejectSpec((s) => (s.linux.rootfsPropagation = "bogus")), "runc create failed: rootfsPropagation=bogus is not supported", 'runc create failed: config.json: linux.rootfsPropagation: unknown rootfs propagation "bogus"');
  });

  test("user namespace without mappings", () => {
    expectMsg(rejectSpec((s) => s.linux.namespaces.push({ type: "user" })), "runc create failed: User namespaces enabled, but no uid mappings found.", "runc create failed: config.json: linux.uidMappings: user namespaces enabled, but no uid mappings found");
  });

  test("terminal: true without a console socket (create)", () => {
    expect(rejectSpec((s) => (s.process.terminal = true))).toBe(
      "runc create failed: cannot allocate tty if runc will detach without setting console socket",
    );
  });
});

describe("bundles that fail while the container is being set up are cleaned up", () => {
  test("a bind mount whose source does not exist", () => {
    const msg = rejectSpec((s) => s.mounts.push({ destination: "/x", type: "bind", source: "/nonexistent-src", options: ["bind"] }));
    // runc create failed: unable to start container process: error during container init:
    //   error mounting "/nonexistent-src" to rootfs at "/x": stat /nonexistent-src: no such file or directory
    expect(msg).toContain('error mounting "/nonexistent-src" to rootfs at "/x"');
    expect(msg).toContain("no such file or directory");
  });

  test("an unknown filesystem type", () => {
    const msg = rejectSpec((s) => s.mounts.push({ destination: "/x", type: "nosuchfs", source: "none" }));
    expect(msg).toContain('error mounting "none" to rootfs at "/x"');
    expect(msg).toContain("no such device");
  });

  test("a program that does not exist (create fails, nothing left)", () => {
    const msg = rejectSpec((s) => (s.process.args = ["/no/such/program"]));
    expect(msg).toContain("/no/such/program");
    expect(msg).toContain("no such file or directory");
  });

  test("a program not in PATH", () => {
    const msg = rejectSpec((s) => (s.process.args = ["no-such-program"]));
    expect(msg).toBe('runc create failed: unable to start container process: exec: "no-such-program": executable file not found in $PATH');
  });

  test("a program that is not executable", () => {
    const b = makeBundle((s) => (s.process.args = ["/etc/passwd"]));
    const msg = reject(b);
    expect(msg).toContain("/etc/passwd");
    expect(msg).toContain("permission denied");
  });

  test("the bundle directory itself does not exist", () => {
    const id = newId();
    const dir = join(ctx().dir, "no-such-bundle");
    const r = runc(["create", "--bundle", dir, id]);
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toContain(dir);
    expect(existsSync(ctx().root) ? readdirSync(ctx().root) : []).toEqual([]);
  });
});

describe("things runc accepts with a warning", () => {
  test("an unknown capability is ignored", () => {
    const b = makeBundle((s) => {
      s.process.args = ["true"];
      s.process.capabilities.bounding.push("CAP_BOGUS");
    });
    const r = runc(["run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    expect(errMsg(r.stderr)).toBe("ignoring unknown or unavailable capabilities: [CAP_BOGUS]");
    expect(r.stderr).toContain("level=warning");
  });
});
