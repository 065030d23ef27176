// ctr plugins ls [-q] [-d] [filters...]
import { out } from "../../cli/io";
import { CODE_NAMES } from "../../containerd/errdefs";
import type { Command } from "../app";
import { GoTabWriter } from "../tabwriter";

interface Plugin {
  type: string;
  id: string;
  requires: string[];
  platforms: { os: string; architecture: string; variant: string }[];
  exports: Record<string, string>;
  capabilities: string[];
  initErr: { code: number; message: string } | null;
}

function prettyPlatforms(ps: Plugin["platforms"]): string {
  const set = new Set(ps.map((p) => [p.os || "unknown", p.architecture, p.variant].filter(Boolean).join("/")));
  return [...set].sort().join(",");
}

export const pluginsCommand: Command = {
  name: "plugins",
  aliases: ["plugin"],
  usage: "provides information about containerd plugins",
  subcommands: [
    {
      name: "list",
      aliases: ["ls"],
      usage: "lists containerd plugins",
      flags: [
        { name: "quiet", aliases: ["q"], type: "bool", help: "print only the plugin ids" },
        { name: "detailed", aliases: ["d"], type: "bool", help: "print detailed information about each plugin" },
      ],
      action: async (c) => {
        const { plugins } = await (await c.client()).call<{ plugins: Plugin[] }>("containerd.services.introspection.v1.Introspection", "Plugins", { filters: c.args });
        if (c.flags.quiet) return out(plugins.map((p) => p.id + "\n").join(""));
        const w = new GoTabWriter(4, 4);
        if (c.flags.detailed) {
          plugins.forEach((p, i) => {
            if (i > 0) w.write("\t\t\t\n");
            w.write(`Type:\t ${p.type}\nID:\t ${p.id}\n`);
            if (p.requires.length) w.write("Requires:\t\n" + p.requires.map((r) => `\t ${r}\n`).join(""));
            if (p.platforms.length) w.write(`Platforms:\t ${prettyPlatforms(p.platforms)}\n`);
            const ex = Object.entries(p.exports);
            if (ex.length) w.write("Exports:\t\n" + ex.map(([k, v]) => `\t ${k} \t ${v}\n`).join(""));
            if (p.capabilities.length) w.write(`Capabilities:\t ${p.capabilities.join(",")}\n`);
            if (p.initErr) w.write(`Error:\t\n\t Code:\t ${CODE_NAMES[p.initErr.code] ?? p.initErr.code}\n\t Message:\t ${p.initErr.message}\n`);
          });
          return out(w.flush());
        }
        w.row("TYPE", "ID", "PLATFORMS", "STATUS");
        for (const p of plugins) {
          const status = p.initErr ? (p.initErr.message.includes("skip plugin") ? "skip" : "error") : "ok";
          w.row(p.type, p.id, p.platforms.length ? prettyPlatforms(p.platforms) : "-", status);
        }
        out(w.flush());
      },
    },
  ],
};
