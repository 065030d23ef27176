// The REAL dockerd (Debian's docker.io 20.10, on the real containerd 1.6 and its shim) running
// containers on the runtime under test, registered as `--add-runtime bunker=<runtime>` and chosen
// per container with `docker run --runtime bunker`.
//
//   bun test test/peer-dockerd.test.ts                              on ours (dist/bin/runc)
//   PEER_RUNTIME=/usr/sbin/runc bun test test/peer-dockerd.test.ts  on the real runc
//
// One containerd + dockerd for the whole file (see test/peers.ts: private mount namespace, cgroups
// under /bunker-test-<tag>-*, --bridge=none, no iptables). Containers use --network none. A
// failing test prints the runtime invocations made during it and the daemons' error lines.
import { afterAll, beforeAll, expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { busyboxImage, BUSYBOX_SHORT } from "./fixtures/busybox-image";
import { capMask, hexMask, parseStatus, sleepSync, waitFor } from "./harness";
import { cgroupFile, describePeer, drivePty, ensurePeerPackages, fmt, ok, OURS_UNDER_TEST, PEER_RUNTIME, PeerSession, peerTest, readTrim } from "./peers";

const skip = ensurePeerPackages(["containerd", "docker.io"], ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/dockerd", "/usr/bin/docker"]);

let s: PeerSession | undefined;
const S = () => s;

const IMAGE = "busybox";
/** `docker run` options every container uses. */
const RUN = ["--runtime", "bunker", "--network", "none"];

function docker(args: string[], opts: { timeoutMs?: number; stdin?: string } = {}) {
  return s!.docker(args, opts);
}

function inspect(id: string, format: string): string {
  return ok(docker(["inspect", "--format", format, id]), `docker inspect ${format}`).trim();
}

/** `docker run -d` (the runtime under test), returning the full container id. */
function runDetached(opts: string[], cmd: string[]): string {
  const r = docker(["run", "-d", ...RUN, ...opts, IMAGE, ...cmd]);
  const id = ok(r, `docker run -d ${[...opts, ...cmd].join(" ")}`).trim().split("\n").pop()!;
  if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`docker run -d printed no id: ${fmt(r)}`);
  return id;
}

function removeContainer(id: string): void {
  docker(["rm", "-f", id], { timeoutMs: 30_000 });
}

/** The container's cgroup (cgroupfs driver): <cgroup-parent>/<id>. */
function cg(id: string): string {
  return `${s!.dockerCgroupParent}/${id}`;
}

function ptyLines(out: string): string[] {
  return out.split("\n").map((l) => l.replace(/\r+$/, ""));
}

describePeer("real dockerd (on real containerd) with the runtime under test", skip, () => {
  beforeAll(async () => {
    if (!existsSync(PEER_RUNTIME)) throw new Error(`runtime under test not found: ${PEER_RUNTIME} (build with: node_modules/.bin/bun run build.ts, or set PEER_RUNTIME)`);
    console.log(`peer runtime: ${PEER_RUNTIME}`);
    const img = busyboxImage();
    s = new PeerSession();
    try {
      await s.startDockerd();
      ok(s.docker(["load", "-i", img.archive], { timeoutMs: 60_000 }), "docker load");
      const ls = ok(s.docker(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]), "docker image ls");
      if (!ls.split("\n").includes(BUSYBOX_SHORT)) throw new Error(`loaded image not listed: ${ls}`);
    } catch (e) {
      const problems = s.cleanup();
      s = undefined;
      if (problems.length) console.error(`cleanup after a failed start left:\n  ${problems.join("\n  ")}`);
      throw e;
    }
  }, 120_000);

  afterAll(() => {
    if (!s) return;
    const kept = s.keepLogs();
    if (kept) console.log(`peer logs kept in ${kept}`);
    const problems = s.cleanup();
    s = undefined;
    if (problems.length) throw new Error(`peer cleanup left resources behind:\n  ${problems.join("\n  ")}`);
  }, 60_000);

  peerTest(S, "the runtime is registered: docker info lists bunker", () => {
    const r = ok(docker(["info", "--format", "{{json .Runtimes}}"]), "docker info");
    const runtimes = JSON.parse(r);
    expect(runtimes.bunker?.path).toBe(s!.runtime);
  });

  peerTest(S, "run --rm busybox echo hi", () => {
    const r = docker(["run", "--rm", ...RUN, IMAGE, "echo", "hi"]);
    expect(r.code, fmt(r)).toBe(0);
    expect(r.stdout).toBe("hi\n");
  });

  peerTest(S, "exit codes pass through: sh -c 'exit 3' → 3; a missing program → 127", () => {
    const r = docker(["run", "--rm", ...RUN, IMAGE, "sh", "-c", "echo to-stderr >&2; exit 3"]);
    expect(r.code, fmt(r)).toBe(3);
    expect(r.stderr).toContain("to-stderr");
    const m = docker(["run", "--rm", ...RUN, IMAGE, "/no/such/program"]);
    expect(m.code, fmt(m)).toBe(127);
  });

  peerTest(S, "run -i: stdin reaches the container; the image's Cmd (sh) runs by default", () => {
    const r = docker(["run", "--rm", "-i", ...RUN, IMAGE], { stdin: "echo from-stdin-$((40+2)); echo PATH=$PATH; exit 4\n" });
    expect(r.code, fmt(r)).toBe(4);
    expect(r.stdout).toContain("from-stdin-42");
    expect(r.stdout).toContain("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  });

  peerTest(S, "run -d, exec, top, pause/unpause, stop (SIGTERM, trapped), in the container's own cgroup", async () => {
    const id = runDetached([], ["sh", "-c", "trap 'echo got-TERM; exit 0' TERM; echo started > /tmp/started; while :; do sleep 0.1; done"]);
    try {
      expect(inspect(id, "{{.State.Status}}")).toBe("running");
      const pid = Number(inspect(id, "{{.State.Pid}}"));
      expect(pid).toBeGreaterThan(0);
      expect(readFileSync(`/proc/${pid}/cgroup`, "utf8")).toContain(`:pids:${cg(id)}\n`);

      await waitFor(() => docker(["exec", id, "test", "-e", "/tmp/started"]).code === 0, 5000, 100);
      const e = docker(["exec", id, "sh", "-c", "cat /tmp/started; echo $((1+2)); exit 5"]);
      expect(e.code, fmt(e)).toBe(5);
      expect(e.stdout).toContain("started\n3\n");
      const ei = docker(["exec", "-i", id, "sh", "-c", "read v; echo exec-stdin:$v"], { stdin: "xyz\n" });
      expect(ei.code, fmt(ei)).toBe(0);
      expect(ei.stdout).toContain("exec-stdin:xyz");
      const eu = docker(["exec", "--user", "1000:1000", "--workdir", "/tmp", id, "sh", "-c", "id -u; id -g; pwd"]);
      expect(eu.code, fmt(eu)).toBe(0);
      expect(eu.stdout).toBe("1000\n1000\n/tmp\n");

      // docker top: containerd's shim asks the runtime (`runc ps --format json`).
      const top = docker(["top", id, "-o", "pid,args"]);
      expect(top.code, fmt(top)).toBe(0);
      expect(top.stdout.split("\n").some((l) => l.trim().startsWith(`${pid} `))).toBe(true);

      ok(docker(["pause", id]), "docker pause");
      expect(inspect(id, "{{.State.Status}}")).toBe("paused");
      const freezer = cgroupFile("freezer", cg(id), "freezer.state");
      if (existsSync(freezer)) expect(readTrim(freezer)).toBe("FROZEN");
      ok(docker(["unpause", id]), "docker unpause");
      expect(inspect(id, "{{.State.Status}}")).toBe("running");
      if (existsSync(freezer)) expect(readTrim(freezer)).toBe("THAWED");
      ok(docker(["exec", id, "true"]), "docker exec after unpause");

      const t0 = Date.now();
      ok(docker(["stop", "-t", "10", id]), "docker stop");
      expect(Date.now() - t0).toBeLessThan(8000); // the trap ended it, not the 10 s timeout's SIGKILL
      expect(inspect(id, "{{.State.Status}}")).toBe("exited");
      expect(inspect(id, "{{.State.ExitCode}}")).toBe("0");
      expect(ok(docker(["logs", id]), "docker logs")).toContain("got-TERM");
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "docker kill: SIGKILL → exit 137; docker kill -s USR1 reaches the init", async () => {
    const id = runDetached([], ["sh", "-c", "trap 'echo got-USR1' USR1; echo ready; while :; do sleep 0.1; done"]);
    try {
      expect(await waitFor(() => docker(["logs", id]).stdout.includes("ready"), 5000, 100)).toBe(true);
      ok(docker(["kill", "-s", "USR1", id]), "docker kill -s USR1");
      expect(await waitFor(() => docker(["logs", id]).stdout.includes("got-USR1"), 5000, 100)).toBe(true);
      expect(inspect(id, "{{.State.Status}}")).toBe("running");
      ok(docker(["kill", id]), "docker kill");
      expect(await waitFor(() => inspect(id, "{{.State.Status}}") === "exited", 10_000, 100)).toBe(true);
      expect(inspect(id, "{{.State.ExitCode}}")).toBe("137");
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "docker restart and docker start of an exited container", async () => {
    const id = runDetached([], ["sh", "-c", "echo run >> /tmp/count; sleep 1000"]);
    try {
      ok(docker(["restart", "-t", "1", id]), "docker restart");
      expect(inspect(id, "{{.State.Status}}")).toBe("running");
      ok(docker(["kill", id]), "docker kill");
      await waitFor(() => inspect(id, "{{.State.Status}}") === "exited", 10_000, 100);
      ok(docker(["start", id]), "docker start");
      expect(inspect(id, "{{.State.Status}}")).toBe("running");
      const c = docker(["exec", id, "cat", "/tmp/count"]);
      expect(c.stdout, fmt(c)).toBe("run\nrun\nrun\n"); // same writable layer all three times
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "run -it: an interactive shell on a terminal", () => {
    const r = drivePty(s!.dockerArgv(["run", "-it", "--rm", ...RUN, IMAGE, "sh"]), "tty; stty size; echo TERM=$TERM; echo $((6*7)); exit 5\n", { delay: 1.5 });
    expect(r.code, r.output).toBe(5);
    const lines = ptyLines(r.output);
    expect(lines).toContain("/dev/pts/0");
    expect(lines).toContain("24 80");
    expect(lines).toContain("TERM=xterm");
    expect(lines).toContain("42");
  });

  peerTest(S, "exec -it: a terminal for an exec'd shell", () => {
    const id = runDetached([], ["sleep", "1000"]);
    try {
      const r = drivePty(s!.dockerArgv(["exec", "-it", id, "sh"]), "tty; echo in-exec-$((2+3)); exit 9\n", { delay: 1.5 });
      expect(r.code, r.output).toBe(9);
      const lines = ptyLines(r.output);
      expect(lines.some((l) => /^\/dev\/pts\/\d+$/.test(l))).toBe(true);
      expect(lines).toContain("in-exec-5");
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "--memory 64m, --cpus 0.5, --pids-limit 20 reach the container's cgroup", () => {
    const id = runDetached(["--memory", "64m", "--cpus", "0.5", "--pids-limit", "20"], ["sleep", "1000"]);
    try {
      // The pids limit holds: of 30 background sleeps, only the first ones start.
      const r = docker(["exec", id, "sh", "-c", "for i in $(seq 30); do sleep 100 2>/dev/null & done; sleep 0.5; ps -o pid | tail -n +2 | wc -l"]);
      // All checks at once, so one run shows every one that fails.
      expect({
        "memory.limit_in_bytes": readTrim(cgroupFile("memory", cg(id), "memory.limit_in_bytes")),
        "cpu.cfs_quota_us": readTrim(cgroupFile("cpu", cg(id), "cpu.cfs_quota_us")),
        "cpu.cfs_period_us": readTrim(cgroupFile("cpu", cg(id), "cpu.cfs_period_us")),
        "pids.max": readTrim(cgroupFile("pids", cg(id), "pids.max")),
        "processes after 30 forks (limit 20)": Number(r.stdout.trim()) <= 20 ? "at most 20" : r.stdout.trim(),
        // docker stats reads the cgroup of the container's init (containerd's shim finds it by pid).
        "docker stats memory limit": docker(["stats", "--no-stream", "--format", "{{.MemUsage}}", id]).stdout.trim().replace(/^.*\/\s*/, ""),
      }).toEqual({
        "memory.limit_in_bytes": String(64 * 1024 * 1024),
        "cpu.cfs_quota_us": "50000",
        "cpu.cfs_period_us": "100000",
        "pids.max": "20",
        "processes after 30 forks (limit 20)": "at most 20",
        "docker stats memory limit": "64MiB",
      });
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "docker update changes a running container's limits", () => {
    const id = runDetached(["--memory", "64m"], ["sleep", "1000"]);
    try {
      ok(docker(["update", "--memory", "96m", "--memory-swap", "-1", "--cpus", "0.25", "--pids-limit", "30", id]), "docker update");
      expect({
        "memory.limit_in_bytes": readTrim(cgroupFile("memory", cg(id), "memory.limit_in_bytes")),
        "cpu.cfs_quota_us": readTrim(cgroupFile("cpu", cg(id), "cpu.cfs_quota_us")),
        "pids.max": readTrim(cgroupFile("pids", cg(id), "pids.max")),
      }).toEqual({
        "memory.limit_in_bytes": String(96 * 1024 * 1024),
        "cpu.cfs_quota_us": "25000",
        "pids.max": "30",
      });
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "--cap-drop ALL --cap-add NET_BIND_SERVICE: exactly that capability", () => {
    const r = docker(["run", "--rm", ...RUN, "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", IMAGE, "cat", "/proc/self/status"]);
    expect(r.code, fmt(r)).toBe(0);
    const st = parseStatus(r.stdout);
    const want = capMask(["CAP_NET_BIND_SERVICE"]);
    expect(hexMask(st.CapEff).toString(16)).toBe(want.toString(16));
    expect(hexMask(st.CapPrm).toString(16)).toBe(want.toString(16));
    expect(hexMask(st.CapBnd).toString(16)).toBe(want.toString(16));
    // And the default set: docker's 14 capabilities, no CAP_SYS_ADMIN.
    const d = docker(["run", "--rm", ...RUN, IMAGE, "cat", "/proc/self/status"]);
    expect(d.code, fmt(d)).toBe(0);
    const def = hexMask(parseStatus(d.stdout).CapEff);
    const dockerDefault = capMask([
      "CAP_CHOWN",
      "CAP_DAC_OVERRIDE",
      "CAP_FSETID",
      "CAP_FOWNER",
      "CAP_MKNOD",
      "CAP_NET_RAW",
      "CAP_SETGID",
      "CAP_SETUID",
      "CAP_SETFCAP",
      "CAP_SETPCAP",
      "CAP_NET_BIND_SERVICE",
      "CAP_SYS_CHROOT",
      "CAP_KILL",
      "CAP_AUDIT_WRITE",
    ]);
    expect(def.toString(16)).toBe(dockerDefault.toString(16));
  });

  peerTest(S, "--read-only: writes to the rootfs fail, --tmpfs stays writable", () => {
    const r = docker(["run", "--rm", ...RUN, "--read-only", "--tmpfs", "/scratch", IMAGE, "sh", "-c", "touch /x 2>&1; echo rc=$?; touch /scratch/y && echo tmpfs-ok"]);
    expect(r.code, fmt(r)).toBe(0);
    expect(r.stdout).toContain("Read-only file system");
    expect(r.stdout).toMatch(/^rc=1$/m);
    expect(r.stdout).toContain("tmpfs-ok");
  });

  peerTest(S, "the default seccomp profile is applied, and seccomp=unconfined removes it", () => {
    // CLONE_NEWUSER needs no capability, so only seccomp can refuse it: docker's default profile
    // allows unshare(2) only to containers with CAP_SYS_ADMIN, which the defaults exclude.
    const probe = "grep Seccomp: /proc/self/status; unshare -U true 2>&1; echo rc=$?";
    const d = docker(["run", "--rm", ...RUN, IMAGE, "sh", "-c", probe]);
    const u = docker(["run", "--rm", ...RUN, "--security-opt", "seccomp=unconfined", IMAGE, "sh", "-c", probe]);
    // With CAP_SYS_ADMIN the profile lets unshare through (mount namespaces work too).
    const a = docker(["run", "--rm", ...RUN, "--cap-add", "SYS_ADMIN", IMAGE, "sh", "-c", "unshare -m true 2>&1; echo rc=$?"]);
    const seccomp = (r: typeof d) => /^Seccomp:\s+(\d)$/m.exec(r.stdout)?.[1] ?? fmt(r);
    const unshare = (r: typeof d) => (/^rc=0$/m.test(r.stdout) ? "allowed" : /Operation not permitted/.test(r.stdout) ? "EPERM" : fmt(r));
    expect({
      "default: Seccomp:": seccomp(d),
      "default: unshare -U": unshare(d),
      "seccomp=unconfined: Seccomp:": seccomp(u),
      "seccomp=unconfined: unshare -U": unshare(u),
      "default + SYS_ADMIN: unshare -m": unshare(a),
    }).toEqual({
      "default: Seccomp:": "2",
      "default: unshare -U": "EPERM",
      "seccomp=unconfined: Seccomp:": "0",
      "seccomp=unconfined: unshare -U": "allowed",
      "default + SYS_ADMIN: unshare -m": "allowed",
    });
  });

  peerTest(S, "more of docker's options: no-new-privileges, ulimit, oom-score-adj, shm-size, sysctl, cpuset, device, init", () => {
    const id = runDetached(
      [
        "--security-opt",
        "no-new-privileges",
        "--ulimit",
        "nofile=1024:2048",
        "--oom-score-adj",
        "123",
        "--shm-size",
        "8m",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--cpuset-cpus",
        "0",
        "--device",
        "/dev/null:/dev/mynull",
        "--init",
      ],
      ["sleep", "1000"],
    );
    try {
      const r = docker([
        "exec",
        id,
        "sh",
        "-c",
        "grep NoNewPrivs: /proc/self/status; ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; df -k /dev/shm | tail -n 1; cat /proc/sys/net/ipv4/ip_forward; echo hi > /dev/mynull && echo dev-ok; ps -o pid,args | grep '^ *1 '",
      ]);
      expect(r.code, fmt(r)).toBe(0);
      const out = r.stdout.split("\n");
      expect({
        NoNewPrivs: /^NoNewPrivs:\s+(\d)$/m.exec(r.stdout)?.[1],
        "ulimit -n (soft, hard)": `${out[1]} ${out[2]}`,
        oom_score_adj: out[3],
        "/dev/shm size (KiB)": out[4]?.trim().split(/\s+/)[1],
        "net.ipv4.ip_forward": out[5],
        "--device /dev/null:/dev/mynull": out[6],
        "PID 1 (--init)": /docker-init|tini/.test(out[7] ?? "") ? "docker-init" : out[7],
        "cpuset.cpus": readTrim(cgroupFile("cpuset", cg(id), "cpuset.cpus")),
      }).toEqual({
        NoNewPrivs: "1",
        "ulimit -n (soft, hard)": "1024 2048",
        oom_score_adj: "123",
        "/dev/shm size (KiB)": "8192",
        "net.ipv4.ip_forward": "1",
        "--device /dev/null:/dev/mynull": "dev-ok",
        "PID 1 (--init)": "docker-init",
        "cpuset.cpus": "0",
      });
    } finally {
      removeContainer(id);
    }
  });

  peerTest(S, "volumes: a bind mount (-v host:ctr, and :ro) and a named volume", () => {
    const host = join(s!.dir, `bind-${Date.now()}`);
    mkdirSync(host);
    writeFileSync(join(host, "from-host"), "hello from the host\n");
    const r = docker([
      "run",
      "--rm",
      ...RUN,
      "-v",
      `${host}:/data`,
      "-v",
      `${host}:/data-ro:ro`,
      "-v",
      "peervol:/vol",
      IMAGE,
      "sh",
      "-c",
      "cat /data/from-host; echo from-ctr > /data/from-ctr; touch /data-ro/x 2>&1; echo ro-rc=$?; echo kept > /vol/f",
    ]);
    expect(r.code, fmt(r)).toBe(0);
    expect(r.stdout).toContain("hello from the host");
    expect(readFileSync(join(host, "from-ctr"), "utf8")).toBe("from-ctr\n");
    expect(r.stdout).toMatch(/Read-only file system/);
    expect(r.stdout).toMatch(/^ro-rc=1$/m);
    const v = docker(["run", "--rm", ...RUN, "-v", "peervol:/vol", IMAGE, "cat", "/vol/f"]);
    expect(v.stdout, fmt(v)).toBe("kept\n");
    docker(["volume", "rm", "peervol"]);
  });

  peerTest(S, "the devices cgroup: a block device the container makes with mknod cannot be opened", () => {
    // Docker allows mknod (CAP_MKNOD) but its device rules (deny all, allow null/zero/tty/...) refuse
    // opening what is not listed; without them, root in the container could read the host's disk.
    const disk = hostBlockDevice();
    if (!disk) return; // no block device on this host
    const r = docker(["run", "--rm", ...RUN, IMAGE, "sh", "-c", `mknod /tmp/disk b ${disk.replace(":", " ")} && echo mknod-ok; head -c 512 /tmp/disk > /dev/null 2>/tmp/err; echo rc=$?; cat /tmp/err`]);
    expect(r.code, fmt(r)).toBe(0);
    expect(r.stdout).toContain("mknod-ok");
    expect(r.stdout).toMatch(/^rc=1$/m);
    expect(r.stdout).toContain("Operation not permitted");
  });

  peerTest(S, "--user, --workdir, --env, --hostname and docker's /etc files reach the process", () => {
    const r = docker([
      "run",
      "--rm",
      ...RUN,
      "--user",
      "1000:1000",
      "--workdir",
      "/tmp",
      "--env",
      "FOO=bar baz",
      "--hostname",
      "peer-host",
      IMAGE,
      "sh",
      "-c",
      'id -u; id -g; pwd; echo "FOO=$FOO"; hostname; cat /etc/hostname; grep -q localhost /etc/hosts && echo hosts-ok',
    ]);
    expect(r.code, fmt(r)).toBe(0);
    expect(r.stdout).toBe("1000\n1000\n/tmp\nFOO=bar baz\npeer-host\npeer-host\nhosts-ok\n");
  });
  peerTest(S, "--init on a busybox image: PID 1 is docker-init, orphans are reaped, docker stop's SIGTERM reaches the program", () => {
    const script = "trap 'exit 43' TERM; i=0; while [ $i -lt 200 ]; do (true &); i=$((i+1)); done; echo started; while true; do sleep 0.1; done";
    const id = runDetached(["--init"], ["sh", "-c", script]);
    try {
      const deadline = Date.now() + 10_000;
      while (!docker(["logs", id]).stdout.includes("started") && Date.now() < deadline) sleepSync(100);
      expect(docker(["logs", id]).stdout).toContain("started");
      const r = docker(["exec", id, "sh", "-c", "cat /proc/1/comm; tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o stat | grep -c '^Z' || true"]);
      expect(r.code, fmt(r)).toBe(0);
      const [comm, cmdline, zombies] = r.stdout.split("\n");
      expect({ comm, cmdline: cmdline?.trim().split(" ").slice(0, 2).join(" "), zombies }).toEqual({ comm: OURS_UNDER_TEST ? "docker-init" : comm, cmdline: "/sbin/docker-init --", zombies: "0" });
      const stop = docker(["stop", "-t", "10", id], { timeoutMs: 30_000 });
      expect(stop.code, fmt(stop)).toBe(0);
      expect(inspect(id, "{{.State.ExitCode}}")).toBe("43");
    } finally {
      removeContainer(id);
    }
  });
});

/** major:minor of a host disk (not loop, ram or zram), or undefined. */
function hostBlockDevice(): string | undefined {
  try {
    for (const b of readdirSync("/sys/block")) {
      if (/^(loop|ram|zram)/.test(b)) continue;
      const dev = readFileSync(`/sys/block/${b}/dev`, "utf8").trim();
      if (/^\d+:\d+$/.test(dev)) return dev;
    }
  } catch {}
  return undefined;
}
