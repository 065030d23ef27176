// config.json linux.seccomp through `runc run` / `runc exec`: the container's processes get the
// filter. Checked with busybox tools whose syscalls the profile refuses while the container's
// capabilities would allow them (CAP_SYS_ADMIN in every set), so only seccomp can say no; a
// control run without the profile shows the same commands succeed.
//
// Passes against the real runc (RUNC_BIN=/usr/sbin/runc). A runtime that ignores linux.seccomp is
// detected once up front (a profile denying mkdir, and mkdir still works): then every test here is
// skipped, with a message saying so.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  busyboxRootfs,
  CGROUP_PREFIX,
  destroyCgroup,
  errMsg,
  exec,
  parseStatus,
  rand,
  RUNC,
  runc,
  runcOk,
  runDetached,
  runShell,
  TMP_PREFIX,
  useHarness,
  type Spec,
} from "./harness";

useHarness();

const DOCKER = JSON.parse(readFileSync(join(import.meta.dir, "fixtures/docker-default-seccomp.json"), "utf8"));
const DOCKER_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
  "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];
const DENY_MKDIR = {
  defaultAction: "SCMP_ACT_ALLOW",
  syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 }],
};

/**
 * Does the runtime under test apply linux.seccomp? One container, outside any test (so outside the
 * harness's per-test context): its own temp dir, root and cgroup, all removed again.
 */
function probeSeccomp(): { supported: boolean; detail: string } {
  if (!existsSync(RUNC)) return { supported: false, detail: `${RUNC} not found` };
  const tag = rand();
  const dir = `${TMP_PREFIX}${tag}`;
  const cgroup = `${CGROUP_PREFIX}${tag}-probe`;
  const root = join(dir, "root");
  const id = `seccomp-probe-${tag}`;
  mkdirSync(dir, { recursive: true });
  try {
    const cp = exec(["cp", "-a", busyboxRootfs(), join(dir, "rootfs")]);
    if (cp.code !== 0) return { supported: false, detail: `copying the rootfs failed: ${cp.stderr}` };
    const sp = exec([RUNC, "spec"], { cwd: dir });
    if (sp.code !== 0) return { supported: false, detail: `runc spec failed: ${sp.stderr}` };
    const spec = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    spec.process.terminal = false;
    spec.process.args = ["sh", "-c", "mkdir /tmp/probe 2>&1 && echo MADE || echo REFUSED"];
    spec.root.readonly = false;
    spec.linux.cgroupsPath = cgroup;
    spec.linux.seccomp = DENY_MKDIR;
    writeFileSync(join(dir, "config.json"), JSON.stringify(spec));
    const r = exec([RUNC, "--root", root, "run", "--bundle", dir, id]);
    if (r.stdout.includes("REFUSED") && r.stdout.includes("Operation not permitted")) return { supported: true, detail: "" };
    if (r.stdout.includes("MADE")) return { supported: false, detail: "a profile denying mkdir did not stop mkdir: the runtime ignores linux.seccomp" };
    return { supported: false, detail: `the probe container failed (exit ${r.code}): ${r.stdout}${errMsg(r.stderr)}` };
  } finally {
    exec([RUNC, "--root", root, "delete", "--force", id]);
    destroyCgroup(cgroup);
    rmSync(dir, { recursive: true, force: true });
  }
}

const probe = probeSeccomp();
if (!probe.supported) console.warn(`runc-seccomp: skipping every test: ${probe.detail}`);
const it = test.skipIf(!probe.supported);

/** Docker's default config for root: its capabilities plus CAP_SYS_ADMIN in every set, no_new_privs off. */
function dockerLike(s: Spec, opts: { seccomp?: unknown; sysAdmin?: boolean } = {}): void {
  const caps = opts.sysAdmin === false ? DOCKER_CAPS : [...DOCKER_CAPS, "CAP_SYS_ADMIN"];
  s.process.capabilities = { bounding: caps, effective: caps, permitted: caps, inheritable: caps };
  s.process.noNewPrivileges = false;
  s.root.readonly = false;
  if (opts.seccomp === undefined) delete s.linux.seccomp;
  else s.linux.seccomp = opts.seccomp;
}

const SCRIPT = [
  "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
  "unshare -m true && echo UNSHARE_M=ok || echo UNSHARE_M=refused",
  "mount -t tmpfs none /mnt && echo MOUNT=ok || echo MOUNT=refused",
  "mkdir /tmp/d && echo MKDIR=ok",
  "ls / >/dev/null && echo LS=ok",
].join("\n");

describe("linux.seccomp", () => {
  it("a profile that denies mkdir: EPERM for mkdir, everything else as usual", () => {
    const r = runShell("mkdir /tmp/x; echo rc=$?; echo hi > /tmp/f && cat /tmp/f", (s) => {
      s.root.readonly = false;
      s.linux.seccomp = DENY_MKDIR;
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("rc=1\nhi\n");
    expect(r.stderr).toContain("Operation not permitted");
  });

  it("Docker's default profile: unshare and mount are refused even with CAP_SYS_ADMIN", () => {
    const control = runShell(SCRIPT, (s) => dockerLike(s));
    expect(control.code).toBe(0);
    expect(control.stdout).toContain("Seccomp:\t0");
    expect(control.stdout).toContain("UNSHARE_M=ok");
    expect(control.stdout).toContain("MOUNT=ok");

    const r = runShell(SCRIPT, (s) => dockerLike(s, { seccomp: DOCKER }));
    expect(r.code).toBe(0);
    const st = parseStatus(r.stdout);
    expect(st.Seccomp).toBe("2");
    expect(st.NoNewPrivs).toBe("0");
    expect(r.stdout).toContain("UNSHARE_M=refused");
    expect(r.stdout).toContain("MOUNT=refused");
    expect(r.stdout).toContain("MKDIR=ok");
    expect(r.stdout).toContain("LS=ok");
    expect(r.stderr).toContain("Operation not permitted");
  });

  it("defaultErrnoRet is the errno of everything the profile does not allow", () => {
    const r = runShell("unshare -m true; echo rc=$?", (s) => dockerLike(s, { seccomp: { ...DOCKER, defaultErrnoRet: 95 } }));
    expect(r.stdout).toBe("rc=1\n");
    expect(r.stderr.toLowerCase()).toContain("not supported"); // EOPNOTSUPP
  });

  it("no_new_privs off and a non-root user without CAP_SYS_ADMIN: installed while still privileged", () => {
    // Without no_new_privs the kernel only takes a filter from a CAP_SYS_ADMIN holder, so the
    // runtime must install it before it drops capabilities and switches user.
    const r = runShell("id -u; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; unshare -m true || echo UNSHARE=refused", (s) => {
      dockerLike(s, { seccomp: DOCKER, sysAdmin: false });
      s.process.user = { uid: 1000, gid: 1000 };
    });
    expect(r.code).toBe(0);
    const st = parseStatus(r.stdout);
    expect(r.stdout.split("\n")[0]).toBe("1000");
    expect(st.Seccomp).toBe("2");
    expect(st.NoNewPrivs).toBe("0");
    expect(st.CapEff).toBe("0000000000000000");
    expect(r.stdout).toContain("UNSHARE=refused");
  });

  it("with noNewPrivileges the filter is installed too", () => {
    const r = runShell("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; unshare -m true || echo UNSHARE=refused", (s) => {
      dockerLike(s, { seccomp: DOCKER });
      s.process.noNewPrivileges = true;
    });
    expect(r.code).toBe(0);
    const st = parseStatus(r.stdout);
    expect(st.Seccomp).toBe("2");
    expect(st.NoNewPrivs).toBe("1");
    expect(r.stdout).toContain("UNSHARE=refused");
  });

  it("SCMP_ACT_KILL and SCMP_ACT_KILL_PROCESS kill the caller with SIGSYS", () => {
    for (const action of ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"]) {
      const r = runShell("mkdir /tmp/x; echo rc=$?", (s) => (s.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir", "mkdirat"], action }] }));
      expect(`${action}: ${r.stdout}`).toBe(`${action}: rc=159\n`); // 128 + SIGSYS
    }
  });

  it("flags: TSYNC, LOG and SPEC_ALLOW work (runc 1.1 refuses every flag)", () => {
    const flags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"];
    const r = runShell("mkdir /tmp/x; echo rc=$?", (s) => (s.linux.seccomp = { ...DENY_MKDIR, flags }));
    if (r.code !== 0) {
      expect(errMsg(r.stderr)).toContain("seccomp flags are not yet supported by runc");
      return;
    }
    expect(r.stdout).toBe("rc=1\n");
  });

  it("refused profiles: an unknown flag, SCMP_ACT_NOTIFY", () => {
    const bad = runShell("true", (s) => (s.linux.seccomp = { ...DENY_MKDIR, flags: ["SECCOMP_FILTER_FLAG_BOGUS"] }));
    expect(bad.code).not.toBe(0);
    expect(errMsg(bad.stderr)).toMatch(/SECCOMP_FILTER_FLAG_BOGUS|seccomp flags are not yet supported/);
    const notify = runShell("true", (s) => (s.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_NOTIFY" }] }));
    expect(notify.code).not.toBe(0);
  });

  it("runc exec: the exec'd process gets the container's filter", () => {
    const { id } = runDetached((s) => dockerLike(s, { seccomp: DOCKER }));
    const out = runcOk(["exec", id, "sh", "-c", "grep '^Seccomp:' /proc/self/status; unshare -m true 2>&1 || echo UNSHARE=refused"]);
    expect(out).toContain("Seccomp:\t2");
    expect(out).toContain("Operation not permitted");
    expect(out).toContain("UNSHARE=refused");
    const r = runc(["exec", id, "sh", "-c", "mount -t tmpfs none /mnt && echo MOUNT=ok || echo MOUNT=refused"]);
    expect(r.stdout).toContain("MOUNT=refused");
  });
});

test("probe", () => {
  // Keeps the reason visible in the test list when everything above was skipped.
  if (!probe.supported) console.warn(`runc-seccomp: ${probe.detail}`);
  expect(typeof probe.supported).toBe("boolean");
});
