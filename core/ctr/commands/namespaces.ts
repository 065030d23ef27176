// ctr namespaces create|list|remove|label
import { readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { out } from "../../cli/io";
import { isNotFound, messageOf } from "../../containerd/errdefs";
import { type Command, joinLabels, labelArgs } from "../app";
import { GoTabWriter } from "../tabwriter";

const SVC = "containerd.services.namespaces.v1.Namespaces";

/** `ctr namespaces rm --cgroup`: remove the cgroup /<namespace> (every v1 hierarchy, or v2). */
function deleteNamespaceCgroup(ns: string): void {
  const base = "/sys/fs/cgroup";
  const dirs = [join(base, ns)];
  try {
    for (const h of readdirSync(base)) dirs.push(join(base, h, ns));
  } catch {}
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch (e: any) {
      if (e?.code !== "ENOENT" && e?.code !== "ENOTDIR") throw new Error(`failed to delete cgroup ${d}: ${e.message}`);
    }
  }
}

export const namespacesCommand: Command = {
  name: "namespaces",
  aliases: ["namespace", "ns"],
  usage: "manage namespaces",
  subcommands: [
    {
      name: "create",
      aliases: ["c"],
      usage: "create a new namespace",
      argsUsage: "<name> [<key>=<value>]",
      description: "create a new namespace. it must be unique",
      action: async (c) => {
        const [name, ...labels] = c.args;
        if (!name) throw new Error("please specify a namespace");
        await (await c.client()).call(SVC, "Create", { namespace: { name, labels: labelArgs(labels) } });
      },
    },
    {
      name: "list",
      aliases: ["ls"],
      usage: "list namespaces",
      argsUsage: "[flags]",
      description: "list namespaces",
      flags: [{ name: "quiet", aliases: ["q"], type: "bool", help: "print only the namespace name" }],
      action: async (c) => {
        const { namespaces } = await (await c.client()).call<{ namespaces: { name: string; labels: Record<string, string> }[] }>(SVC, "List", {});
        if (c.flags.quiet) return out(namespaces.map((n) => n.name + "\n").join(""));
        const w = new GoTabWriter(1, 1);
        w.row("NAME", "LABELS");
        for (const n of namespaces) w.row(n.name, joinLabels(n.labels, ""));
        out(w.flush());
      },
    },
    {
      name: "remove",
      aliases: ["rm"],
      usage: "remove one or more namespaces",
      argsUsage: "<name> [<name>, ...]",
      description: "remove one or more namespaces. for now, the namespace must be empty",
      flags: [{ name: "cgroup", aliases: ["c"], type: "bool", help: "delete the namespace's cgroup" }],
      action: async (c) => {
        const client = await c.client();
        let exitErr: string | undefined;
        for (const target of c.args) {
          try {
            await client.call(SVC, "Delete", { name: target });
            if (c.flags.cgroup) deleteNamespaceCgroup(target);
          } catch (e) {
            if (!isNotFound(e)) {
              exitErr ??= `unable to delete ${target}: ${messageOf(e)}`;
              c.log.error(`unable to delete ${target}`, { error: messageOf(e) });
              continue;
            }
          }
          out(target + "\n");
        }
        if (exitErr) throw new Error(exitErr);
      },
    },
    {
      name: "label",
      usage: "set and clear labels for a namespace",
      argsUsage: "<name> [<key>=<value>, ...]",
      description: "set and clear labels for a namespace. empty value clears the label",
      action: async (c) => {
        const [name, ...rest] = c.args;
        if (!name) throw new Error("please specify a namespace");
        const client = await c.client();
        for (const [k, v] of Object.entries(labelArgs(rest))) {
          await client.call(SVC, "Update", { namespace: { name, labels: { [k]: v } }, updateMask: { paths: [`labels.${k}`] } });
        }
      },
    },
  ],
};
