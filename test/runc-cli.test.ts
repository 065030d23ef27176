// runc command line basics that need no container: --version, spec, global --log/--log-format,
// usage errors.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RUNC, ctx, errMsg, runc, tempDir, useHarness } from "./harness";

useHarness();

describe("--version", () => {
  test("prints 'runc version X' and 'spec: Y' lines, exit 0", () => {
    for (const flag of ["--version", "-v"]) {
      const r = runc([flag], { root: null });
      expect(r.code).toBe(0);
      const lines = r.stdout.split("\n");
      expect(lines[0]).toMatch(/^runc version \S+$/);
      expect(lines).toContainEqual(expect.stringMatching(/^spec: \d+\.\d+\.\d+(-\S+)?$/));
      // runc prints "commit: ..." and "go: ..." lines too; the first two keys are what tools parse.
      expect(r.stdout.endsWith("\n")).toBe(true);
    }
  });
});

describe("spec", () => {
  test("writes a valid config.json in the current directory", () => {
    const dir = tempDir("spec");
    const r = runc(["spec"], { root: null, cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    const path = join(dir, "config.json");
    expect(existsSync(path)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    const spec = JSON.parse(readFileSync(path, "utf8"));
    expect(spec.ociVersion).toMatch(/^1\.\d+\.\d+/);
    expect(spec.process.terminal).toBe(true);
    expect(spec.process.args).toEqual(["sh"]);
    expect(spec.process.cwd).toBe("/");
    expect(spec.process.user).toEqual({ uid: 0, gid: 0 });
    expect(spec.process.env).toContain("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect(spec.process.env).toContain("TERM=xterm");
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.process.rlimits).toEqual([{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }]);
    const caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    expect(spec.process.capabilities.bounding).toEqual(caps);
    expect(spec.process.capabilities.effective).toEqual(caps);
    expect(spec.process.capabilities.permitted).toEqual(caps);
    expect(spec.root).toEqual({ path: "rootfs", readonly: true });
    expect(spec.hostname).toBe("runc");
    const dests = spec.mounts.map((m: { destination: string }) => m.destination);
    expect(dests).toEqual(["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]);
    const nsTypes = spec.linux.namespaces.map((n: { type: string }) => n.type).sort();
    expect(nsTypes).toEqual(["ipc", "mount", "network", "pid", "uts"]);
    expect(spec.linux.maskedPaths).toContain("/proc/kcore");
    expect(spec.linux.readonlyPaths).toContain("/proc/sys");
    expect(spec.linux.resources.devices).toEqual([{ allow: false, access: "rwm" }]);
  });

  test("--bundle writes into the given directory", () => {
    const dir = tempDir("spec");
    const other = tempDir("cwd");
    const r = runc(["spec", "--bundle", dir], { root: null, cwd: other });
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, "config.json"))).toBe(true);
    expect(existsSync(join(other, "config.json"))).toBe(false);
  });

  test("refuses to overwrite an existing config.json", () => {
    const dir = tempDir("spec");
    const path = join(dir, "config.json");
    writeFileSync(path, "keep me");
    const r = runc(["spec"], { root: null, cwd: dir });
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("File config.json exists. Remove it first");
    expect(readFileSync(path, "utf8")).toBe("keep me");
  });

  test("--bundle to a missing directory fails", () => {
    const dir = join(ctx().dir, "does-not-exist");
    const r = runc(["spec", "--bundle", dir], { root: null });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(dir);
    expect(existsSync(dir)).toBe(false);
  });
});

describe("features", () => {
  test("lists every namespace kind the runtime can make or join, user included", () => {
    const r = runc(["features"]);
    expect(r.code).toBe(0);
    const f = JSON.parse(r.stdout);
    expect([...f.linux.namespaces].sort()).toEqual(["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]);
  });
});

describe("global --log and --log-format", () => {
  test("errors go to stderr as a logrus text line by default", () => {
    const r = runc(["state", "no-such-container"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)" level=error msg="container does not exist"\n$/);
  });

  test("--log-format json without --log writes JSON lines to stderr", () => {
    const r = runc(["state", "no-such-container"], { global: ["--log-format", "json"] });
    expect(r.code).toBe(1);
    const line = JSON.parse(r.stderr.trim());
    expect(line).toMatchObject({ level: "error", msg: "container does not exist" });
    expect(typeof line.time).toBe("string");
  });

  test("--log FILE --log-format json: error written as a JSON line, plain message on stderr", () => {
    const log = join(ctx().dir, "runc-log.json");
    const r = runc(["state", "no-such-container"], { global: ["--log", log, "--log-format", "json"] });
    expect(r.code).toBe(1);
    // With a log file, runc still tells the user on stderr, without the logrus decoration.
    expect(r.stderr).toBe("container does not exist\n");
    const lines = readFileSync(log, "utf8").split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    const parsed = lines.map((l) => JSON.parse(l));
    for (const p of parsed) {
      expect(Object.keys(p)).toEqual(expect.arrayContaining(["level", "msg", "time"]));
    }
    const err = parsed.find((p) => p.level === "error");
    expect(err).toBeDefined();
    expect(err.msg).toBe("container does not exist");
    expect(err.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
  });

  test("--log FILE in text format", () => {
    const log = join(ctx().dir, "runc-log.txt");
    const r = runc(["state", "no-such-container"], { global: ["--log", log] });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("container does not exist\n");
    expect(readFileSync(log, "utf8")).toMatch(/level=error msg="container does not exist"/);
  });

  test("an unknown --log-format is rejected", () => {
    const r = runc(["state", "x"], { global: ["--log-format", "xml"] });
    expect(r.code).toBe(1);
    expect(errMsg(r.stderr)).toBe("invalid log-format: xml");
  });
});

describe("usage errors", () => {
  for (const cmd of ["create", "start", "delete", "state", "kill", "ps", "run"]) {
    test(`${cmd} without a container id exits 1 and says it needs one`, () => {
      const r = runc([cmd]);
      expect(r.code).toBe(1);
      // runc: `<argv0>: "create" requires exactly 1 argument(s)` (argv0 as invoked, e.g. /usr/sbin/runc)
      const want = cmd === "kill" || cmd === "ps" ? `"${cmd}" requires a minimum of 1 argument(s)` : `"${cmd}" requires exactly 1 argument(s)`;
      expect(errMsg(r.stderr)).toEndWith(`: ${want}`);
      // ...and the command's usage on stdout.
      expect(r.stdout).toContain("Incorrect Usage.");
    });
  }

  test("an unknown command fails", () => {
    const r = runc(["no-such-command"]);
    // urfave/cli's "No help topic" exit code.
    expect(r.code).toBe(3);
    expect(errMsg(r.stderr)).toContain("No help topic for 'no-such-command'");
  });

  test("the runtime under test exists", () => {
    expect(existsSync(RUNC)).toBe(true);
  });
});
