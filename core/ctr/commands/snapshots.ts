// ctr snapshots ls|info|rm|usage|tree; --snapshotter (or $CONTAINERD_SNAPSHOTTER) is a flag of
// the group, as in ctr: `ctr snapshots --snapshotter native ls`.
import { out } from "../../cli/io";
import { messageOf } from "../../containerd/errdefs";
import { formatRFC3339, fromTimestamp, type Timestamp } from "../../containerd/types";
import type { Command } from "../app";
import type { Client } from "../client";
import { SNAPSHOTS } from "../remote";
import { GoTabWriter } from "../tabwriter";
import { progressBytes } from "../units";
import { SNAPSHOTTER_FLAG } from "./images-archive";

interface Info {
  name: string;
  parent: string;
  kind: string;
  createdAt: Timestamp | null;
  updatedAt: Timestamp | null;
  labels: Record<string, string>;
}

const KIND: Record<string, string> = { UNKNOWN: "Unknown", VIEW: "View", ACTIVE: "Active", COMMITTED: "Committed" };
const kindOf = (k: string | number) => KIND[String(k)] ?? (typeof k === "number" ? ["Unknown", "View", "Active", "Committed"][k] : String(k)) ?? "Unknown";
const sn = (v: unknown) => String(v || "overlayfs");

async function listSnapshots(client: Client, snapshotter: string, filters: string[] = []): Promise<Info[]> {
  const infos: Info[] = [];
  for await (const r of client.stream<{ info: Info[] }>(SNAPSHOTS, "List", { snapshotter, filters })) infos.push(...(r.info ?? []));
  return infos;
}

/** Go's json.MarshalIndent of snapshots.Info. */
function infoJSON(i: Info): string {
  const doc: Record<string, unknown> = { Kind: kindOf(i.kind), Name: i.name };
  if (i.parent) doc.Parent = i.parent;
  const labels = i.labels ?? {};
  if (Object.keys(labels).length) doc.Labels = Object.fromEntries(Object.keys(labels).sort().map((k) => [k, labels[k]]));
  doc.Created = formatRFC3339(fromTimestamp(i.createdAt), { local: true });
  doc.Updated = formatRFC3339(fromTimestamp(i.updatedAt), { local: true });
  return JSON.stringify(doc, null, 4).replace(/[<>&]/g, (ch) => "\\u00" + ch.charCodeAt(0).toString(16));
}

interface Mount {
  type: string;
  source: string;
  options: string[];
}

/** ctr's printMounts: one mount(8) command line per mount. */
function printMounts(target: string, mounts: Mount[]): void {
  for (const m of mounts) out(`mount -t ${m.type} ${m.source} ${target} -o ${(m.options ?? []).join(",")}\n`);
}

/** commands.PrintAsJSON of []mount.Mount (Go field names, 4-space indent). */
function mountsJSON(mounts: Mount[]): string {
  return JSON.stringify(mounts.map((m) => ({ Type: m.type, Source: m.source, Options: m.options ?? [] })), null, 4);
}

const gcRoot = () => ({ "containerd.io/gc.root": new Date().toISOString().replace(/\.\d+Z$/, "Z") });

function createCommand(name: "prepare" | "view", usage: string): Command {
  return {
    name,
    usage,
    argsUsage: "[flags] <key> [<parent>]",
    flags: [
      { name: "target", aliases: ["t"], type: "string", default: "", help: "mount target path, will print mount, if provided" },
      { name: "mounts", type: "bool", help: "Print out snapshot mounts as JSON" },
    ],
    action: async (c) => {
      if (c.args.length < 1 || c.args.length > 2) throw new Error(`ctr snapshots ${name} takes <key> [<parent>]`);
      const [key, parent = ""] = c.args;
      const client = await c.client();
      const { mounts } = await client.call<{ mounts: Mount[] }>(SNAPSHOTS, name === "prepare" ? "Prepare" : "View", { snapshotter: sn(c.flags.snapshotter), key, parent, labels: gcRoot() });
      if (c.flags.target) printMounts(String(c.flags.target), mounts);
      if (c.flags.mounts) out(mountsJSON(mounts) + "\n");
    },
  };
}

export const snapshotsCommand: Command = {
  name: "snapshots",
  aliases: ["snapshot"],
  usage: "manage snapshots",
  flags: [SNAPSHOTTER_FLAG],
  subcommands: [
    {
      name: "commit",
      usage: "commit an active snapshot into the provided name",
      argsUsage: "<key> <active>",
      action: async (c) => {
        if (c.args.length !== 2) throw new Error("ctr snapshots commit takes <key> <active>");
        const [key, active] = c.args;
        await (await c.client()).call(SNAPSHOTS, "Commit", { snapshotter: sn(c.flags.snapshotter), name: key, key: active, labels: gcRoot() });
      },
    },
    {
      name: "info",
      usage: "get info about a snapshot",
      argsUsage: "<key>",
      action: async (c) => {
        const key = c.args[0];
        if (!key) throw new Error("must provide snapshot key");
        const client = await c.client();
        const { info } = await client.call<{ info: Info }>(SNAPSHOTS, "Stat", { snapshotter: sn(c.flags.snapshotter), key });
        out(infoJSON(info) + "\n");
      },
    },
    {
      name: "list",
      aliases: ["ls"],
      usage: "list snapshots",
      action: async (c) => {
        const client = await c.client();
        const w = new GoTabWriter(1, 1);
        w.row("KEY", "PARENT", "KIND");
        for (const i of await listSnapshots(client, sn(c.flags.snapshotter), c.args)) w.row(i.name, i.parent, kindOf(i.kind));
        out(w.flush());
      },
    },
    {
      name: "mounts",
      aliases: ["m", "mount"],
      usage: "mount gets mount commands for the snapshots",
      argsUsage: "<target> <key>",
      action: async (c) => {
        if (c.args.length !== 2) throw new Error("ctr snapshots mounts takes <target> <key>");
        const [target, key] = c.args;
        const { mounts } = await (await c.client()).call<{ mounts: Mount[] }>(SNAPSHOTS, "Mounts", { snapshotter: sn(c.flags.snapshotter), key });
        printMounts(target!, mounts);
      },
    },
    createCommand("prepare", "prepare a snapshot from a committed snapshot"),
    {
      name: "delete",
      aliases: ["del", "remove", "rm"],
      usage: "remove snapshots",
      argsUsage: "<key> [<key>, ...]",
      action: async (c) => {
        const client = await c.client();
        for (const key of c.args) {
          try {
            await client.call(SNAPSHOTS, "Remove", { snapshotter: sn(c.flags.snapshotter), key });
          } catch (e) {
            throw new Error(`failed to remove ${JSON.stringify(key)}: ${messageOf(e)}`);
          }
        }
      },
    },
    {
      name: "tree",
      usage: "display tree view of snapshot branches",
      action: async (c) => {
        const client = await c.client();
        const infos = await listSnapshots(client, sn(c.flags.snapshotter));
        // ctr's snapshotTree: nodes in walk order; a node whose parent is unseen so far is a root
        // until that parent turns up.
        const nodes = new Map<string, { name: string; children: string[] }>();
        const roots: string[] = [];
        const getOrCreate = (name: string) => {
          let n = nodes.get(name);
          if (!n) nodes.set(name, (n = { name, children: [] }));
          return n;
        };
        for (const i of infos) {
          getOrCreate(i.name);
          if (i.parent) getOrCreate(i.parent).children.push(i.name);
        }
        for (const i of infos) if (!i.parent || !infos.some((x) => x.name === i.parent)) roots.push(i.name);
        const print = (name: string, level: number) => {
          let prefix = "  ".repeat(level);
          if (level > 0) prefix += "\\_";
          out(`${prefix} ${name}\n`);
          for (const ch of nodes.get(name)?.children ?? []) print(ch, level + 1);
        };
        for (const r of roots) print(r, 0);
      },
    },
    {
      name: "usage",
      usage: "usage snapshots",
      argsUsage: "[flags] [<key>, ...]",
      flags: [{ name: "b", type: "bool", help: "display size in bytes" }],
      action: async (c) => {
        const client = await c.client();
        const snapshotter = sn(c.flags.snapshotter);
        const size = (n: number) => (c.flags.b ? String(n) : progressBytes(n));
        const w = new GoTabWriter(1, 1);
        w.row("KEY", "SIZE", "INODES");
        const keys = c.args.length ? c.args : (await listSnapshots(client, snapshotter)).map((i) => i.name);
        for (const key of keys) {
          const u = await client.call<{ size: string; inodes: string }>(SNAPSHOTS, "Usage", { snapshotter, key });
          w.row(key, size(Number(u.size)), String(Number(u.inodes)));
        }
        out(w.flush());
      },
    },
    createCommand("view", "create a read-only snapshot from a committed snapshot"),
  ],
};
