// ctr snapshots commit|diff|info|list|mounts|prepare|delete|label|tree|unpack|usage|view;
// --snapshotter (or $CONTAINERD_SNAPSHOTTER) is a flag of the group, as in ctr:
// `ctr snapshots --snapshotter native ls` (unpack has its own).
import { out } from "../../cli/io";
import { messageOf } from "../../containerd/errdefs";
import { formatRFC3339, fromTimestamp, type Timestamp } from "../../containerd/types";
import type { Descriptor } from "../../image/manifest";
import { defaultMatcher } from "../../image/platform";
import { type Command, labelArgs } from "../app";
import type { Client } from "../client";
import { CONTENT, DIFF, IMAGES, SNAPSHOTS, unpackImage } from "../remote";
import { GoTabWriter } from "../tabwriter";
import { progressBytes } from "../units";
import { goDigest } from "./content";
import { SNAPSHOTTER_FLAG } from "./images-archive";
import { withLease } from "./leases";

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

/** rootfs's uniquePart: "<nanoseconds>-<4 url-safe base64 chars>". */
function uniquePart(): string {
  const ns = (Date.now() % 1000) * 1e6 + Math.floor(Math.random() * 1e6);
  return `${ns}-${Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString("base64url")}`;
}

/** The mounts of a snapshot to diff: its own when active, else a view removed afterwards. */
async function withMounts<T>(client: Client, snapshotter: string, key: string, viewKey: string, fn: (m: Mount[]) => Promise<T>): Promise<T> {
  const { info } = await client.call<{ info: Info }>(SNAPSHOTS, "Stat", { snapshotter, key });
  if (kindOf(info.kind) === "Active") {
    const { mounts } = await client.call<{ mounts: Mount[] }>(SNAPSHOTS, "Mounts", { snapshotter, key });
    return fn(mounts);
  }
  const { mounts } = await client.call<{ mounts: Mount[] }>(SNAPSHOTS, "View", { snapshotter, key: viewKey, parent: key });
  try {
    return await fn(mounts);
  } finally {
    await client.call(SNAPSHOTS, "Remove", { snapshotter, key: viewKey }).catch(() => {});
  }
}

const diffCommand: Command = {
  name: "diff",
  usage: "get the diff of two snapshots. the default second snapshot is the first snapshot's parent.",
  argsUsage: "[flags] <idA> [<idB>]",
  flags: [
    { name: "media-type", type: "string", default: "application/vnd.oci.image.layer.v1.tar+gzip", defaultText: '"application/vnd.oci.image.layer.v1.tar+gzip"', help: "media type to use for creating diff" },
    { name: "ref", type: "string", default: "", help: "content upload reference to use" },
    { name: "keep", type: "bool", help: "keep diff content. up to creator to delete it." },
    { name: "label", type: "strings", help: "labels to attach to the image" },
  ],
  action: async (c) => {
    const [idA = "", idB = ""] = c.args;
    if (!idA) throw new Error("snapshot id must be provided");
    const client = await c.client();
    const snapshotter = sn(c.flags.snapshotter);
    const labels = labelArgs((c.flags.label as string[] | undefined) ?? []);
    if (c.flags.keep) Object.assign(labels, gcRoot());
    await withLease(client, async (lease) => {
      client.setLease(lease);
      try {
        const compare = async (left: Mount[], right: Mount[]) =>
          (await client.call<{ diff: Descriptor }>(DIFF, "Diff", { left, right, mediaType: String(c.flags["media-type"] ?? ""), ref: String(c.flags.ref ?? ""), labels })).diff;
        let desc: Descriptor;
        if (!idB) {
          // rootfs.CreateDiff: the parent's view against the snapshot.
          const { info } = await client.call<{ info: Info }>(SNAPSHOTS, "Stat", { snapshotter, key: idA });
          const lowerKey = `${info.parent}-parent-view-${uniquePart()}`;
          const { mounts: lower } = await client.call<{ mounts: Mount[] }>(SNAPSHOTS, "View", { snapshotter, key: lowerKey, parent: info.parent });
          try {
            desc = await withMounts(client, snapshotter, idA, `${idA}-view-${uniquePart()}`, (upper) => compare(lower, upper));
          } finally {
            await client.call(SNAPSHOTS, "Remove", { snapshotter, key: lowerKey }).catch(() => {});
          }
        } else {
          desc = await withMounts(client, snapshotter, idA, `${idA}-view-key`, (a) => withMounts(client, snapshotter, idB, `${idB}-view-key`, (b) => compare(a, b)));
        }
        await client.call(CONTENT, "Info", { digest: desc.digest });
        for await (const r of client.stream<{ data: Uint8Array }>(CONTENT, "Read", { digest: desc.digest })) {
          const data = Buffer.from(r.data);
          await new Promise<void>((res, rej) => process.stdout.write(data, (e) => (e ? rej(e) : res())));
        }
      } finally {
        client.setLease(undefined);
      }
    });
  },
};

const labelCommand: Command = {
  name: "label",
  usage: "add labels to content",
  argsUsage: "<name> [<label>=<value> ...]",
  description: "labels snapshots in the snapshotter",
  action: async (c) => {
    const [key = "", ...rest] = c.args;
    const labels = labelArgs(rest);
    const client = await c.client();
    const snapshotter = sn(c.flags.snapshotter);
    const set: Record<string, string> = {};
    const paths: string[] = [];
    for (const [k, v] of Object.entries(labels)) {
      paths.push(`labels.${k}`);
      if (v !== "") set[k] = v;
    }
    const { info } = paths.length
      ? await client.call<{ info: Info }>(SNAPSHOTS, "Update", { snapshotter, info: { name: key, labels: set }, updateMask: { paths } })
      : await client.call<{ info: Info }>(SNAPSHOTS, "Stat", { snapshotter, key });
    out(Object.entries(info.labels ?? {}).map(([k, v]) => `${k}=${v}`).sort().join(",") + "\n");
  },
};

const unpackCommand: Command = {
  name: "unpack",
  usage: "unpack applies layers from a manifest to a snapshot",
  argsUsage: "[flags] <digest>",
  flags: [{ ...SNAPSHOTTER_FLAG, default: "" }],
  action: async (c) => {
    const dgst = goDigest(c.args[0] ?? "");
    const client = await c.client();
    c.log.debug(`unpacking layers from manifest ${dgst}`);
    const { images } = await client.call<{ images: { name: string; target: Descriptor }[] }>(IMAGES, "List", {});
    for (const image of images) {
      if (image.target?.digest !== dgst) continue;
      out(`unpacking ${dgst} (${image.target.mediaType})...`);
      try {
        const t = image.target;
        await unpackImage(client, { mediaType: t.mediaType, digest: t.digest, size: Number(t.size) }, defaultMatcher(), sn(c.flags.snapshotter));
      } catch (e) {
        out("\n");
        throw e;
      }
      out("done\n");
      return;
    }
    throw new Error("manifest not found");
  },
};

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
      if (c.args.length < 1 || c.args.length > 2) return c.showHelp();
      const [key, parent = ""] = c.args;
      const client = await c.client();
      const { mounts } = await client.call<{ mounts: Mount[] }>(SNAPSHOTS, name === "prepare" ? "Prepare" : "View", { snapshotter: sn(c.flags.snapshotter), key, parent, ...(name === "prepare" ? { labels: gcRoot() } : {}) });
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
        if (c.args.length !== 2) return c.showHelp();
        const [key, active] = c.args;
        await (await c.client()).call(SNAPSHOTS, "Commit", { snapshotter: sn(c.flags.snapshotter), name: key, key: active, labels: gcRoot() });
      },
    },
    {
      name: "info",
      usage: "get info about a snapshot",
      argsUsage: "<key>",
      action: async (c) => {
        if (c.args.length !== 1) return c.showHelp();
        const key = c.args[0]!;
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
        // ctr 1.6 walks every snapshot: arguments are ignored.
        for (const i of await listSnapshots(client, sn(c.flags.snapshotter))) w.row(i.name, i.parent, kindOf(i.kind));
        out(w.flush());
      },
    },
    {
      name: "mounts",
      aliases: ["m", "mount"],
      usage: "mount gets mount commands for the snapshots",
      argsUsage: "<target> <key>",
      action: async (c) => {
        if (c.args.length !== 2) return c.showHelp();
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
        // ctr's snapshotTree: nodes in walk order; an unseen parent gets a placeholder node
        // (no parent of its own, so printed as a root) right away, filled in when it turns up.
        const nodes: { name: string; parent: string; children: string[] }[] = [];
        const index = new Map<string, (typeof nodes)[number]>();
        const add = (name: string, parent: string): (typeof nodes)[number] => {
          let n = index.get(name);
          if (!n) {
            n = { name, parent, children: [] };
            nodes.push(n);
            index.set(name, n);
          } else n.parent = parent;
          if (parent) (index.get(parent) ?? add(parent, "")).children.push(name);
          return n;
        };
        for (const i of infos) add(i.name, i.parent);
        const print = (name: string, level: number) => {
          let prefix = "  ".repeat(level);
          if (level > 0) prefix += "\\_";
          out(`${prefix} ${name}\n`);
          for (const ch of index.get(name)?.children ?? []) print(ch, level + 1);
        };
        for (const n of nodes) if (!n.parent) print(n.name, 0);
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

// ctr 1.6's order of the snapshots subcommands.
const SNAPSHOTS_ORDER = ["commit", "diff", "info", "list", "mounts", "prepare", "delete", "label", "tree", "unpack", "usage", "view"];
snapshotsCommand.subcommands!.push(diffCommand, labelCommand, unpackCommand);
snapshotsCommand.subcommands!.sort((a, b) => SNAPSHOTS_ORDER.indexOf(a.name) - SNAPSHOTS_ORDER.indexOf(b.name));
