// A `ps -ef` table for given pids, read from /proc (runc shells out to ps; we don't run host tools).
import { readFileSync, readlinkSync } from "node:fs";

const HZ = 100;

function userName(uid: number, cache: Map<number, string>): string {
  if (!cache.size) {
    try {
      for (const l of readFileSync("/etc/passwd", "utf8").split("\n")) {
        const f = l.split(":");
        if (f.length > 2) cache.set(Number(f[2]), f[0]!);
      }
    } catch {}
    cache.set(-1, "");
  }
  return cache.get(uid) ?? String(uid);
}

function ttyName(nr: number, pid: number): string {
  if (!nr) return "?";
  try {
    const t = readlinkSync(`/proc/${pid}/fd/0`);
    if (t.startsWith("/dev/")) return t.slice(5);
  } catch {}
  const major = (nr >> 8) & 0xfff, minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
  return major === 136 ? `pts/${minor}` : `${major}:${minor}`;
}

function clock(secs: number): string {
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = Math.floor(secs % 60);
  return [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
}

export function psTable(pids: number[]): string {
  const uptime = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  const boot = Date.now() / 1000 - uptime;
  const users = new Map<number, string>();
  const rows: string[][] = [["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]];
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
      const cpu = (Number(f[11]) + Number(f[12])) / HZ;
      const started = boot + Number(f[19]) / HZ;
      const elapsed = Math.max(Date.now() / 1000 - started, 1);
      const d = new Date(started * 1000);
      const stime = Date.now() / 1000 - started < 86400 ? `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}` : d.toDateString().slice(4, 10);
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
      rows.push([userName(uid, users), String(pid), f[1]!, String(Math.floor((cpu * 100) / elapsed)), stime, ttyName(Number(f[4]), pid), clock(cpu), args || `[${comm}]`]);
    } catch {
      // Exited while we looked.
    }
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  // procps alignment: UID left, numbers right, CMD unpadded.
  return rows
    .map((r) => [r[0]!.padEnd(Math.max(w[0]!, 8)), r[1]!.padStart(Math.max(w[1]!, 5)), r[2]!.padStart(Math.max(w[2]!, 5)), r[3]!.padStart(2), r[4]!.padEnd(5), r[5]!.padEnd(8), r[6]!.padStart(8), r[7]].join(" "))
    .join("\n") + "\n";
}
