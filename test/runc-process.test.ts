// config.json "process": args, env, cwd, user, umask, rlimits, noNewPrivileges, capabilities,
// oomScoreAdj; checked from inside (busybox) and outside (/proc/<pid>/...).
import { describe, expect, test } from "bun:test";
import { readFileSync, readlinkSync } from "node:fs";
import {
  capMask,
  errMsg,
  hexMask,
  hostHasCap,
  makeBundle,
  newId,
  parseStatus,
  procLimits,
  procStatus,
  runcOk,
  runDetached,
  runShell,
  state,
  useHarness,
  waitFor,
} from "./harness";

useHarness();

describe("process.args / env / cwd", () => {
  test("args are passed exactly (argv[0], spaces, empty strings)", () => {
    const b = makeBundle((s) => (s.process.args = ["sh", "-c", 'printf "[%s]" "$0" "$@"', "zero", "a b", "", "*"]));
    const out = runcOk(["run", "--bundle", b.dir, newId()]);
    expect(out).toBe("[zero][a b][][*]");
  });

  test("argv[0] is what the program sees as its name", () => {
    const r = runShell("", (s) => (s.process.args = ["/bin/busybox", "echo", "hi"]));
    expect(r.stdout).toBe("hi\n");
    // Execution goes by PATH lookup for a bare name.
    const r2 = runShell("", (s) => (s.process.args = ["echo", "via-path"]));
    expect(r2.stdout).toBe("via-path\n");
  });

  test("env is exactly the configured environment (plus HOME when missing)", () => {
    const r = runShell("env", (s) => {
      s.process.env = ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "MULTI=a=b=c"];
    });
    expect(r.code).toBe(0);
    const env = r.stdout.split("\n").filter(Boolean);
    expect(env).toContain("PATH=/bin:/usr/bin");
    expect(env).toContain("FOO=bar baz");
    expect(env).toContain("EMPTY=");
    expect(env).toContain("MULTI=a=b=c");
    // runc sets HOME from the container's /etc/passwd when env has none.
    expect(env).toContain("HOME=/root");
    // Nothing leaks in from runc's own environment (the shell adds PWD and SHLVL itself).
    const keys = env.map((l) => l.slice(0, l.indexOf("="))).sort();
    expect(keys.filter((k) => !["PWD", "SHLVL", "OLDPWD"].includes(k))).toEqual(["EMPTY", "FOO", "HOME", "MULTI", "PATH"]);
  });

  test("HOME from env wins; HOME for a non-root user comes from /etc/passwd", () => {
    const r = runShell("echo $HOME", (s) => s.process.env.push("HOME=/custom"));
    expect(r.stdout).toBe("/custom\n");
    const r2 = runShell("echo $HOME", (s) => (s.process.user = { uid: 1000, gid: 1000 }));
    expect(r2.stdout).toBe("/home/tester\n");
  });

  test("the environment of the running process, seen from outside", async () => {
    const { pid } = runDetached((s) => (s.process.env = ["PATH=/bin", "MARKER=from-config"]));
    // `start` returns once the init read the go-ahead; the execve may still be a moment away.
    const environ = () => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
    await waitFor(() => environ().includes("MARKER=from-config"));
    const env = environ();
    expect(env).toContain("MARKER=from-config");
    expect(env).toContain("PATH=/bin");
  });

  test("cwd is the working directory, and is created when missing", () => {
    const r = runShell("pwd", (s) => {
      s.process.cwd = "/tmp";
    });
    expect(r.stdout).toBe("/tmp\n");
    const r2 = runShell("pwd; ls -ld .", (s) => {
      s.root.readonly = false;
      s.process.cwd = "/does/not/exist";
    });
    expect(r2.code).toBe(0);
    expect(r2.stdout.split("\n")[0]).toBe("/does/not/exist");
    const { pid, bundle } = runDetached((s) => (s.process.cwd = "/usr/bin"));
    // Seen from outside, the cwd is shown relative to the container's (pivoted) root or as a host path.
    expect([`${bundle.rootfs}/usr/bin`, "/usr/bin"]).toContain(readlinkSync(`/proc/${pid}/cwd`));
  });
});

describe("process.user", () => {
  test("uid/gid/additionalGids inside (id) and outside (/proc/<pid>/status)", () => {
    const user = { uid: 1000, gid: 1000, additionalGids: [1001, 1002] };
    const r = runShell("id -u; id -g; id -G", (s) => (s.process.user = user));
    expect(r.code).toBe(0);
    const [u, g, groups] = r.stdout.split("\n");
    expect(u).toBe("1000");
    expect(g).toBe("1000");
    expect(groups!.split(" ").map(Number).sort()).toEqual([1000, 1001, 1002]);

    const { pid } = runDetached((s) => (s.process.user = user));
    const st = procStatus(pid);
    expect(st.Uid!.split(/\s+/)).toEqual(["1000", "1000", "1000", "1000"]);
    expect(st.Gid!.split(/\s+/)).toEqual(["1000", "1000", "1000", "1000"]);
    // The supplementary groups are exactly additionalGids (the primary gid is not added).
    expect(st.Groups!.split(/\s+/).filter(Boolean).map(Number)).toEqual([1001, 1002]);
  });

  test("root with no additionalGids has no supplementary groups", () => {
    const { pid } = runDetached();
    const st = procStatus(pid);
    expect(st.Uid!.split(/\s+/)).toEqual(["0", "0", "0", "0"]);
    expect(st.Gid!.split(/\s+/)).toEqual(["0", "0", "0", "0"]);
    expect(st.Groups).toBe("");
  });

  test("a uid with no /etc/passwd entry works (nobody's numbers, unknown ones)", () => {
    const r = runShell("id -u; id -g", (s) => (s.process.user = { uid: 4242, gid: 4343 }));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("4242\n4343\n");
    const r2 = runShell("id -u; id -g", (s) => (s.process.user = { uid: 65534, gid: 65534 }));
    expect(r2.stdout).toBe("65534\n65534\n");
  });

  test("umask", () => {
    const r = runShell("umask", (s) => (s.process.user.umask = 0o077));
    expect(r.stdout).toBe("0077\n");
    const r2 = runShell("umask; touch /tmp/f; stat -c %a /tmp/f", (s) => {
      s.root.readonly = false;
      s.process.user.umask = 0o027;
    });
    expect(r2.stdout).toBe("0027\n640\n");
  });
});

describe("process.rlimits", () => {
  test("RLIMIT_NOFILE soft/hard in /proc/<pid>/limits and ulimit", () => {
    const rl = [
      { type: "RLIMIT_NOFILE", soft: 1234, hard: 5678 },
      { type: "RLIMIT_NPROC", soft: 300, hard: 400 },
      { type: "RLIMIT_CORE", soft: 0, hard: 0 },
    ];
    const { pid } = runDetached((s) => (s.process.rlimits = rl));
    const lim = procLimits(pid);
    expect(lim["Max open files"]).toEqual({ soft: "1234", hard: "5678" });
    expect(lim["Max processes"]).toEqual({ soft: "300", hard: "400" });
    expect(lim["Max core file size"]).toEqual({ soft: "0", hard: "0" });
    const r = runShell("ulimit -n; ulimit -Hn", (s) => (s.process.rlimits = rl));
    expect(r.stdout).toBe("1234\n5678\n");
  });

  test("the default spec sets NOFILE to 1024/1024", () => {
    const { pid } = runDetached();
    expect(procLimits(pid)["Max open files"]).toEqual({ soft: "1024", hard: "1024" });
  });
});

describe("process.noNewPrivileges", () => {
  test("true -> NoNewPrivs: 1, false -> 0", () => {
    const a = runDetached((s) => (s.process.noNewPrivileges = true));
    expect(procStatus(a.pid).NoNewPrivs).toBe("1");
    const b = runDetached((s) => (s.process.noNewPrivileges = false));
    expect(procStatus(b.pid).NoNewPrivs).toBe("0");
    const r = runShell("grep NoNewPrivs /proc/self/status", (s) => (s.process.noNewPrivileges = true));
    expect(r.stdout).toBe("NoNewPrivs:\t1\n");
  });
});

describe("process.capabilities", () => {
  const caps = {
    bounding: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_AUDIT_WRITE"],
    permitted: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
    effective: ["CAP_CHOWN", "CAP_KILL"],
    inheritable: ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
    ambient: ["CAP_NET_BIND_SERVICE"],
  };

  test("all five sets are applied before exec (seen on the created container)", () => {
    const b = makeBundle((s) => {
      s.process.user = { uid: 1000, gid: 1000 };
      s.process.capabilities = caps;
    });
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    const st = procStatus(state(id).pid);
    expect(hexMask(st.CapBnd)).toBe(capMask(caps.bounding));
    expect(hexMask(st.CapPrm)).toBe(capMask(caps.permitted));
    expect(hexMask(st.CapEff)).toBe(capMask(caps.effective));
    expect(hexMask(st.CapInh)).toBe(capMask(caps.inheritable));
    expect(hexMask(st.CapAmb)).toBe(capMask(caps.ambient));
  });

  test("after exec as a non-root user: bounding/inheritable/ambient kept, permitted = effective = ambient", () => {
    const { pid } = runDetached((s) => {
      s.process.user = { uid: 1000, gid: 1000 };
      s.process.capabilities = caps;
    });
    const st = procStatus(pid);
    expect(hexMask(st.CapBnd)).toBe(capMask(caps.bounding));
    expect(hexMask(st.CapInh)).toBe(capMask(caps.inheritable));
    expect(hexMask(st.CapAmb)).toBe(capMask(caps.ambient));
    expect(hexMask(st.CapPrm)).toBe(capMask(caps.ambient));
    expect(hexMask(st.CapEff)).toBe(capMask(caps.ambient));
  });

  test("after exec as root with noNewPrivileges: permitted kept, effective = permitted", () => {
    const r = runShell("grep ^Cap /proc/self/status", (s) => {
      s.process.noNewPrivileges = true;
      s.process.capabilities = caps;
    });
    expect(r.code).toBe(0);
    const st = parseStatus(r.stdout);
    expect(hexMask(st.CapBnd)).toBe(capMask(caps.bounding));
    expect(hexMask(st.CapInh)).toBe(capMask(caps.inheritable));
    expect(hexMask(st.CapAmb)).toBe(capMask(caps.ambient));
    expect(hexMask(st.CapPrm)).toBe(capMask(caps.permitted));
    expect(hexMask(st.CapEff)).toBe(capMask(caps.permitted));
  });

  test("the default spec's capabilities (AUDIT_WRITE, KILL, NET_BIND_SERVICE)", () => {
    const { pid } = runDetached();
    const st = procStatus(pid);
    const want = capMask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    expect(hexMask(st.CapBnd)).toBe(want);
    expect(hexMask(st.CapPrm)).toBe(want);
    expect(hexMask(st.CapEff)).toBe(want);
    expect(hexMask(st.CapInh)).toBe(0n);
    // The default spec lists ambient caps but no inheritable ones; the kernel only allows ambient
    // caps that are also inheritable, so none end up raised (and runc does not fail).
    expect(hexMask(st.CapAmb)).toBe(0n);
  });

  test("no capabilities object: every set is empty", () => {
    const { pid } = runDetached((s) => delete s.process.capabilities);
    const st = procStatus(pid);
    for (const k of ["CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"]) expect(hexMask(st[k])).toBe(0n);
  });

  test("a dropped capability is really gone (CAP_CHOWN)", () => {
    const withChown = runShell("touch /tmp/f && chown 1000 /tmp/f && echo ok", (s) => {
      s.root.readonly = false;
      s.process.capabilities.bounding.push("CAP_CHOWN");
      s.process.capabilities.effective.push("CAP_CHOWN");
      s.process.capabilities.permitted.push("CAP_CHOWN");
    });
    expect(withChown.stdout).toBe("ok\n");
    const without = runShell("touch /tmp/f && chown 1000 /tmp/f && echo ok", (s) => (s.root.readonly = false));
    expect(without.code).not.toBe(0);
    expect(without.stderr).toContain("Operation not permitted");
  });

  test("an unknown capability name is ignored with a warning", () => {
    const r = runShell("true", (s) => s.process.capabilities.bounding.push("CAP_NO_SUCH_THING"));
    expect(r.code).toBe(0);
    // runc: level=warning msg="ignoring unknown or unavailable capabilities: [CAP_NO_SUCH_THING]"
    expect(errMsg(r.stderr)).toBe("ignoring unknown or unavailable capabilities: [CAP_NO_SUCH_THING]");
  });
});

describe("process.oomScoreAdj", () => {
  test("is written to /proc/<pid>/oom_score_adj", () => {
    const { pid } = runDetached((s) => (s.process.oomScoreAdj = 123));
    expect(readFileSync(`/proc/${pid}/oom_score_adj`, "utf8").trim()).toBe("123");
    const r = runShell("cat /proc/self/oom_score_adj", (s) => (s.process.oomScoreAdj = 500));
    expect(r.stdout).toBe("500\n");
  });

  // Lowering oom_score_adj needs CAP_SYS_RESOURCE, which some sandboxes take away even from root.
  test.skipIf(!hostHasCap("CAP_SYS_RESOURCE"))("a negative value (needs CAP_SYS_RESOURCE on the host)", () => {
    const r = runShell("cat /proc/self/oom_score_adj", (s) => (s.process.oomScoreAdj = -17));
    expect(r.stdout).toBe("-17\n");
  });

  test("unset: inherited from runc's caller", () => {
    const own = readFileSync("/proc/self/oom_score_adj", "utf8").trim();
    const { pid } = runDetached();
    expect(readFileSync(`/proc/${pid}/oom_score_adj`, "utf8").trim()).toBe(own);
  });
});
