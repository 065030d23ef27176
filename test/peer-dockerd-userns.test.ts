// The REAL dockerd with --userns-remap, running containers on the runtime under test: docker gives
// every container a user namespace (uidMappings/gidMappings from /etc/subuid and /etc/subgid) and
// chowns the image's layers to the remapped root. The remap user and its ranges exist only in the
// session's private mount namespace (files bind-mounted over /etc/passwd, group, subuid, subgid);
// the host's files are untouched.
//
//   bun test test/peer-dockerd-userns.test.ts                              on ours
//   PEER_RUNTIME=/usr/sbin/runc bun test test/peer-dockerd-userns.test.ts  on the real runc
import { afterAll, beforeAll, expect } from "bun:test";
import { readFileSync, readlinkSync } from "node:fs";
import { busyboxImage } from "./fixtures/busybox-image";
import { waitFor } from "./harness";
import { describePeer, ensurePeerPackages, fmt, ok, PeerSession, peerTest } from "./peers";

const skip = ensurePeerPackages(["containerd", "docker.io"], ["/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/dockerd", "/usr/bin/docker"]);

const REMAP_USER = "bunkerremap";
const BASE = 300000;
const RUN = ["--runtime", "bunker", "--network", "none"];
let s: PeerSession | undefined;
const S = () => s;

describePeer("real dockerd with --userns-remap, on the runtime under test", skip, () => {
  beforeAll(async () => {
    s = new PeerSession();
    const passwd = readFileSync("/etc/passwd", "utf8");
    const group = readFileSync("/etc/group", "utf8");
    s.etcOverrides = {
      "/etc/passwd": `${passwd.trimEnd()}\n${REMAP_USER}:x:${BASE - 1}:${BASE - 1}::/nonexistent:/usr/sbin/nologin\n`,
      "/etc/group": `${group.trimEnd()}\n${REMAP_USER}:x:${BASE - 1}:\n`,
      "/etc/subuid": `${REMAP_USER}:${BASE}:65536\n`,
      "/etc/subgid": `${REMAP_USER}:${BASE}:65536\n`,
    };
    s.dockerdArgs = ["--userns-remap", REMAP_USER];
    try {
      await s.startDockerd();
      ok(s.docker(["load", "-i", busyboxImage().archive], { timeoutMs: 60_000 }), "docker load");
    } catch (e) {
      const problems = s.cleanup();
      s = undefined;
      if (problems.length) console.error(`cleanup after a failed start left:\n  ${problems.join("\n  ")}`);
      throw e;
    }
  }, 120_000);

  afterAll(() => {
    if (!s) return;
    const problems = s.cleanup();
    s = undefined;
    if (problems.length) throw new Error(`peer cleanup left resources behind:\n  ${problems.join("\n  ")}`);
  }, 60_000);

  peerTest(S, "inside, root with the remapped ranges; the image's files belong to that root", () => {
    const r = s!.docker(["run", "--rm", ...RUN, "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map; stat -c %u /bin/busybox; echo ok > /root-write && cat /root-write"]);
    expect(r.code, fmt(r)).toBe(0);
    const lines = r.stdout.split("\n").map((l) => l.trim().split(/\s+/).join(" "));
    expect(lines.slice(0, 5)).toEqual(["0", `0 ${BASE} 65536`, `0 ${BASE} 65536`, "0", "ok"]);
  });

  peerTest(S, "from the host, the container's processes run as the remapped uid; exec joins them", async () => {
    const id = ok(s!.docker(["run", "-d", ...RUN, "busybox", "sleep", "300"]), "docker run -d").trim();
    try {
      const pid = Number(ok(s!.docker(["inspect", "--format", "{{.State.Pid}}", id]), "inspect").trim());
      const uid = readFileSync(`/proc/${pid}/status`, "utf8").match(/^Uid:\s+(\d+)/m)?.[1];
      expect(uid).toBe(String(BASE));
      expect(readFileSync(`/proc/${pid}/uid_map`, "utf8").trim().split(/\s+/)).toEqual(["0", String(BASE), "65536"]);
      const e = s!.docker(["exec", id, "sh", "-c", "id -u; readlink /proc/self/ns/user"]);
      expect(e.code, fmt(e)).toBe(0);
      const [u, ns] = e.stdout.trim().split("\n");
      expect(u).toBe("0");
      expect(ns).toBe(readlinkSync(`/proc/${pid}/ns/user`));
      const st = s!.docker(["stop", "-t", "1", id], { timeoutMs: 30_000 });
      expect(st.code, fmt(st)).toBe(0);
      expect(await waitFor(() => s!.docker(["inspect", "--format", "{{.State.Status}}", id]).stdout.trim() === "exited", 10_000, 100)).toBe(true);
    } finally {
      s!.docker(["rm", "-f", id], { timeoutMs: 30_000 });
    }
  });
});
