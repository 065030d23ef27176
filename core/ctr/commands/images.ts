// ctr images list|remove|tag|label (pull, import, export, mount... come with the content store).
import { out } from "../../cli/io";
import { isAlreadyExists, isNotFound, messageOf } from "../../containerd/errdefs";
import type { Descriptor } from "../../containerd/types";
import { type Command, joinLabels, labelArgs } from "../app";
import { formatPlatform, imagePlatforms, imageSize, targetOf } from "../imageinfo";
import { withLease } from "./leases";
import { imageArchiveCommands } from "./images-archive";
import { pullCommand, pushCommand } from "./pull";
import { GoTabWriter } from "../tabwriter";
import { progressBytes } from "../units";

const SVC = "containerd.services.images.v1.Images";

export interface Image {
  name: string;
  labels: Record<string, string>;
  target: Descriptor | null;
}

export const imagesCommand: Command = {
  name: "images",
  aliases: ["image", "i"],
  usage: "manage images",
  subcommands: [
    ...imageArchiveCommands,
    pullCommand,
    pushCommand,
    {
      name: "list",
      aliases: ["ls"],
      usage: "list images known to containerd",
      argsUsage: "[flags] [<filter>, ...]",
      description: "list images registered with containerd",
      flags: [{ name: "quiet", aliases: ["q"], type: "bool", help: "print only the image refs" }],
      action: async (c) => {
        const client = await c.client();
        let images: Image[];
        try {
          ({ images } = await client.call<{ images: Image[] }>(SVC, "List", { filters: c.args }));
        } catch (e) {
          throw new Error(`failed to list images: ${messageOf(e)}`);
        }
        if (c.flags.quiet) return out(images.map((i) => i.name + "\n").join(""));
        const w = new GoTabWriter(1, 1);
        w.row("REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS");
        for (const img of images) {
          const target = targetOf(img.target);
          const { size, error } = await imageSize(client, target);
          if (error) c.log.error(`failed calculating size for image ${img.name}`, { error: messageOf(error) });
          let platforms = "-";
          try {
            const ps = [...new Set((await imagePlatforms(client, target)).map(formatPlatform))].sort();
            if (ps.length) platforms = ps.join(",");
          } catch (e) {
            c.log.error(`failed resolving platform for image ${img.name}`, { error: messageOf(e) });
          }
          w.row(img.name, target.mediaType, target.digest, progressBytes(size), platforms, joinLabels(img.labels));
        }
        out(w.flush());
      },
    },
    {
      name: "delete",
      aliases: ["del", "remove", "rm"],
      usage: "remove one or more images by reference",
      argsUsage: "[flags] <ref> [<ref>, ...]",
      description: "remove one or more images by reference",
      flags: [{ name: "sync", type: "bool", help: "Synchronously remove image and all associated resources" }],
      action: async (c) => {
        const client = await c.client();
        let exitErr: string | undefined;
        for (const [i, target] of c.args.entries()) {
          try {
            await client.call(SVC, "Delete", { name: target, sync: !!c.flags.sync && i === c.args.length - 1 });
            out(target + "\n");
          } catch (e) {
            if (isNotFound(e)) {
              c.log.warn(`${target}: image not found`);
              continue;
            }
            exitErr ??= `unable to delete ${target}: ${messageOf(e)}`;
            c.log.error(`unable to delete ${target}`, { error: messageOf(e) });
          }
        }
        if (exitErr) throw new Error(exitErr);
      },
    },
    {
      name: "tag",
      usage: "tag an image",
      argsUsage: "[flags] <source_ref> <target_ref> [<target_ref>, ...]",
      description: "Tag an image for use in containerd.",
      flags: [{ name: "force", type: "bool", help: "force target_ref to be created, regardless if it already exists" }],
      action: async (c) => {
        const [ref, ...targets] = c.args;
        if (!ref) throw new Error("please provide an image reference to tag from");
        if (!targets.length) throw new Error("please provide an image reference to tag to");
        const client = await c.client();
        await withLease(client, async () => {
          const { image } = await client.call<{ image: Image }>(SVC, "Get", { name: ref });
          for (const t of targets) {
            const copy = { name: t, labels: image.labels, target: image.target };
            try {
              await client.call(SVC, "Create", { image: copy });
            } catch (e) {
              if (!(isAlreadyExists(e) && c.flags.force)) throw e;
              await client.call(SVC, "Delete", { name: t });
              await client.call(SVC, "Create", { image: copy });
            }
            out(t + "\n");
          }
        });
      },
    },
    {
      name: "label",
      usage: "set and clear labels for an image",
      argsUsage: "[flags] <name> [<key>=<value>, ...]",
      description: "set and clear labels for an image",
      flags: [{ name: "replace-all", aliases: ["r"], type: "bool", help: "replace all labels" }],
      action: async (c) => {
        const [name, ...rest] = c.args;
        const labels = labelArgs(rest);
        const client = await c.client();
        if (!name) throw new Error("please specify an image");
        const paths = Object.keys(labels).map((k) => (c.flags["replace-all"] ? "labels" : `labels.${k}`));
        const { image } = await client.call<{ image: Image }>(SVC, "Update", { image: { name, labels }, updateMask: { paths } });
        out(joinLabels(image.labels, "") + "\n");
      },
    },
  ],
};

// ctr 1.6's order of the images subcommands (as its help lists them).
const IMAGES_ORDER = ["check", "export", "import", "list", "mount", "unmount", "pull", "push", "delete", "tag", "label", "convert"];
const imagesRank = (c: Command) => (IMAGES_ORDER.indexOf(c.name) + 1 || 99);
imagesCommand.subcommands!.sort((a, b) => imagesRank(a) - imagesRank(b));
