// Where the cgroup hierarchies are: v1 controllers, the v2 unified tree, or both (hybrid).
import { readFileSync } from "node:fs";

export interface Hierarchy {
  /** Mount point of the hierarchy on the host. */
  mount: string;
  /** Controllers (v1: "cpu,cpuacct", "name=systemd"; v2: the unified tree holds them all). */
  controllers: string[];
  version: 1 | 2;
  /** The cgroup path inside this hierarchy that the mount's root corresponds to. */
  root: string;
}

let cached: Hierarchy[] | undefined;

export function hierarchies(): Hierarchy[] {
  if (cached) return cached;
  const out: Hierarchy[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(" ");
    const [fstype, , superOpts] = line.slice(sep + 3).split(" ");
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    const mount = unescapeMount(pre[4]!);
    const root = unescapeMount(pre[3]!);
    if (fstype === "cgroup2") out.push({ mount, controllers: [], version: 2, root });
    else {
      const controllers = (superOpts ?? "").split(",").filter((o) => !["rw", "ro", "relatime", "nosuid", "nodev", "noexec", "clone_children"].includes(o) && !o.startsWith("release_agent"));
      if (out.some((h) => h.version === 1 && h.controllers.join() === controllers.join())) continue;
      out.push({ mount, controllers, version: 1, root });
    }
  }
  cached = out;
  return out;
}

export function isPureV2(): boolean {
  const hs = hierarchies();
  return hs.length > 0 && hs.every((h) => h.version === 2);
}

/** Our own cgroup path in each hierarchy, keyed by the /proc/self/cgroup controller list ("" for v2). */
export function ownCgroups(pid: number | "self" = "self"): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n")) {
    const [, ctrls, path] = line.match(/^\d+:([^:]*):(.*)$/) ?? [];
    if (path !== undefined) m.set(ctrls ?? "", path);
  }
  return m;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}
