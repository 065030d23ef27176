// ctr content ls|get|rm|active (ctr 1.6's tables: `content ls` pads with tabs, as its tabwriter does).
import { out } from "../../cli/io";
import { isNotFound, messageOf } from "../../containerd/errdefs";
import { fromTimestamp, type Timestamp } from "../../containerd/types";
import type { Command } from "../app";
import { CONTENT } from "../remote";

interface Info {
  digest: string;
  size: string | number;
  createdAt: Timestamp | null;
  labels: Record<string, string>;
}

/** docker/go-units HumanSize: "%.4g" in powers of 1000 (B, kB, MB, ...). */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(4))}${units[i]}`;
}

/** docker/go-units HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3600_000 + 0.5);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3600_000 / 24 / 365)} years`;
}

function sinceMs(t: Timestamp | null | undefined): number {
  const d = fromTimestamp(t);
  return Date.now() - (d.seconds * 1000 + Math.floor(d.nanos / 1e6));
}

/**
 * Go's tabwriter with padchar '\t' (minwidth 1, tabwidth 8, padding 1): a column is as wide as
 * its widest cell plus one, rounded up to a tab stop, and cells are padded with tabs.
 */
export function formatTabsWithTabs(text: string, tabwidth = 8): string {
  const lines = text.replace(/\n$/, "").split("\n").map((l) => l.split("\t"));
  const outLines: string[] = [];
  // Blocks of consecutive lines sharing column j (only cells terminated by a tab count).
  const widths = (line: number, col: number): number => {
    let a = line;
    let b = line;
    while (a > 0 && lines[a - 1]!.length - 1 > col) a--;
    while (b < lines.length - 1 && lines[b + 1]!.length - 1 > col) b++;
    let w = 1;
    for (let i = a; i <= b; i++) w = Math.max(w, [...lines[i]![col]!].length + 1);
    return Math.ceil(w / tabwidth) * tabwidth;
  };
  lines.forEach((cells, i) => {
    let s = "";
    cells.forEach((cell, j) => {
      s += cell;
      if (j < cells.length - 1) {
        const cw = widths(i, j);
        const n = cw - [...cell].length;
        s += "\t".repeat(Math.ceil(n / tabwidth));
      }
    });
    outLines.push(s);
  });
  return outLines.join("\n") + (text.endsWith("\n") ? "\n" : "");
}

export const contentCommand: Command = {
  name: "content",
  usage: "manage content",
  subcommands: [
    {
      name: "list",
      aliases: ["ls"],
      usage: "list all blobs in the store",
      argsUsage: "[flags]",
      description: "list blobs in the content store",
      flags: [{ name: "quiet", aliases: ["q"], type: "bool", help: "print only the blob digest" }],
      action: async (c) => {
        const client = await c.client();
        const infos: Info[] = [];
        try {
          for await (const r of client.stream<{ info: Info[] }>(CONTENT, "List", { filters: c.args })) infos.push(...(r.info ?? []));
        } catch (e) {
          throw new Error(`failed to list content: ${messageOf(e)}`);
        }
        if (c.flags.quiet) return out(infos.map((i) => i.digest + "\n").join(""));
        let text = "DIGEST\tSIZE\tAGE\tLABELS\n";
        for (const i of infos) {
          const labels = Object.entries(i.labels ?? {}).map(([k, v]) => `${k}=${v}`).sort().join(",") || "-";
          text += `${i.digest}\t${humanSize(Number(i.size))}\t${humanDuration(sinceMs(i.createdAt))}\t${labels}\n`;
        }
        out(formatTabsWithTabs(text));
      },
    },
    {
      name: "get",
      usage: "get the data for an object",
      argsUsage: "[<digest>, ...]",
      description: "display the image object",
      action: async (c) => {
        const dgst = c.args[0];
        if (!dgst) throw new Error("empty digest");
        const client = await c.client();
        await client.call(CONTENT, "Info", { digest: dgst });
        for await (const r of client.stream<{ data: Uint8Array }>(CONTENT, "Read", { digest: dgst })) {
          const data = Buffer.from(r.data);
          await new Promise<void>((res, rej) => process.stdout.write(data, (e) => (e ? rej(e) : res())));
        }
      },
    },
    {
      name: "delete",
      aliases: ["del", "remove", "rm"],
      usage: "permanently delete one or more blobs",
      argsUsage: "[<digest>, ...]",
      description: `Delete one or more blobs permanently. Successfully deleted
  blobs are printed to stdout.`,
      action: async (c) => {
        const client = await c.client();
        let exitErr: unknown;
        for (const dgst of c.args) {
          try {
            await client.call(CONTENT, "Delete", { digest: dgst });
            out(dgst + "\n");
          } catch (e) {
            if (!isNotFound(e)) {
              exitErr ??= e;
              c.log.error(`unable to delete ${dgst}`, { error: messageOf(e) });
            } else c.log.warn(`content ${dgst} not found`);
          }
        }
        if (exitErr) throw exitErr;
      },
    },
    {
      name: "active",
      usage: "display active transfers",
      argsUsage: "[flags] [<regexp>]",
      description: "display the ongoing transfers",
      flags: [
        { name: "timeout", aliases: ["t"], type: "string", default: "0s", defaultText: "0s", env: "CONTAINERD_FETCH_TIMEOUT", help: "total timeout for fetch" },
        { name: "root", type: "string", default: "/tmp/content", defaultText: '"/tmp/content"', help: "path to content store root" },
      ],
      action: async (c) => {
        const client = await c.client();
        const filters = c.args[0] ? [`ref~=${c.args[0]}`] : [];
        const { statuses } = await client.call<{ statuses: { ref: string; offset: string; startedAt: Timestamp | null }[] }>(CONTENT, "ListStatuses", { filters });
        let text = "REF\tSIZE\tAGE\t\n";
        for (const s of statuses ?? []) text += `${s.ref}\t${humanSize(Number(s.offset))}\t${humanDuration(sinceMs(s.startedAt))}\t\n`;
        out(formatTabsWithTabs(text));
      },
    },
  ],
};

// ctr 1.6's order of the content subcommands (fetch is added from pull.ts): call after adding.
const CONTENT_ORDER = ["active", "delete", "edit", "fetch", "fetch-object", "get", "ingest", "list", "push-object", "label", "prune"];
export function sortContentSubcommands(): void {
  const rank = (c: Command) => CONTENT_ORDER.indexOf(c.name) + 1 || 99;
  contentCommand.subcommands!.sort((a, b) => rank(a) - rank(b));
}
