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

interface Field {
  header: string;
  right: boolean;
  get: (p: ProcInfo) => string;
}

interface ProcInfo {
  pid: number;
  stat: string[];
  comm: string;
  args: string;
  uid: number;
  user: string;
}

const FIELDS: Record<string, Field> = {
  pid: { header: "PID", right: true, get: (p) => String(p.pid) },
  ppid: { header: "PPID", right: true, get: (p) => p.stat[1]! },
  pgid: { header: "PGID", right: true, get: (p) => p.stat[2]! },
  sid: { header: "SID", right: true, get: (p) => p.stat[3]! },
  uid: { header: "UID", right: true, get: (p) => String(p.uid) },
  user: { header: "USER", right: false, get: (p) => p.user },
  comm: { header: "COMMAND", right: false, get: (p) => p.comm },
  args: { header: "COMMAND", right: false, get: (p) => p.args || `[${p.comm}]` },
  command: { header: "COMMAND", right: false, get: (p) => p.args || `[${p.comm}]` },
  cmd: { header: "CMD", right: false, get: (p) => p.args || `[${p.comm}]` },
  stat: { header: "STAT", right: false, get: (p) => p.stat[0]! },
  tty: { header: "TT", right: false, get: (p) => ttyName(Number(p.stat[4]), p.pid) },
  time: { header: "TIME", right: true, get: (p) => clock((Number(p.stat[11]) + Number(p.stat[12])) / HZ) },
  nlwp: { header: "NLWP", right: true, get: (p) => p.stat[17]! },
  vsz: { header: "VSZ", right: true, get: (p) => String(Math.floor(Number(p.stat[20]) / 1024)) },
  rss: { header: "RSS", right: true, get: (p) => String(Number(p.stat[21]) * 4) },
};

/** `ps -o a,b,c` for the given pids; unknown fields are an error naming them. */
export function psCustom(pids: number[], fields: string[]): string {
  const cols = fields.flatMap((f) => f.split(/[,\s]+/)).filter(Boolean).map((f) => {
    const name = f.split("=")[0]!;
    const col = FIELDS[name];
    if (!col) throw new Error(`ps: unknown output field "${name}"`);
    const header = f.includes("=") ? f.slice(f.indexOf("=") + 1) : col.header;
    return { ...col, header };
  });
  const users = new Map<number, string>();
  const rows: string[][] = [cols.map((c) => c.header)];
  for (const pid of pids) {
    try {
      const raw = readFileSync(`/proc/${pid}/stat`, "utf8");
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
      const p: ProcInfo = {
        pid, uid, user: userName(uid, users),
        comm: raw.slice(raw.indexOf("(") + 1, raw.lastIndexOf(")")),
        stat: raw.slice(raw.lastIndexOf(")") + 2).split(" "),
        args: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" "),
      };
      rows.push(cols.map((c) => c.get(p)));
    } catch {}
  }
  const w = cols.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((v, i) => (i === r.length - 1 && !cols[i]!.right ? v : cols[i]!.right ? v.padStart(w[i]!) : v.padEnd(w[i]!))).join(" ")).join("\n") + "\n";
}

/** ps arguments as runc users pass them: -ef (the default table) or -o/-O field lists. */
export function psWithArgs(pids: number[], args: string[]): string {
  if (!args.length || (args.length === 1 && args[0] === "-ef")) return psTable(pids);
  const fields: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-o" || a === "--format" || a === "-O") fields.push(args[++i] ?? "");
    else if (a.startsWith("-o")) fields.push(a.slice(2));
    else if (a === "-e" || a === "-A" || a === "-f") continue;
    else throw new Error(`ps: unsupported option "${a}" (supported: -ef, -o FIELDS)`);
  }
  return psCustom(pids, fields);
}
