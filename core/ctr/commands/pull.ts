// ctr images pull|push and ctr content fetch (containerd 1.6's cmd/ctr/commands/images/pull.go,
// push.go and content/fetch.go): client-side transfers between a registry and containerd.
import { out } from "../../cli/io";
import { hostPlatform, parsePlatform, formatPlatform, type Platform } from "../../image/platform";
import { REGISTRY_FLAGS, registryOptions } from "../registry-flags";
import { type Command, type Ctx, labelArgs } from "../app";
import { Client } from "../client";
import { withLease } from "./leases";
import { formatDuration } from "../units";
import { type FetchOptions, fetchImage, pushImage, unpackImage } from "../transfer";
import type { Descriptor } from "../../image/manifest";

const IMAGES = "containerd.services.images.v1.Images";

function platformsOf(c: Ctx): Platform[] {
  const ps = (c.flags.platform as string[] | undefined) ?? [];
  return ps.map((p) => parsePlatform(p));
}

/** A second connection carrying the lease on every call (client.WithLease's context). */
async function leased(c: Ctx, lease: string): Promise<Client> {
  return Client.connect(String(c.global.address), c.namespace, { lease });
}

const FETCH_FLAGS: Command["flags"] = [
  ...REGISTRY_FLAGS,
  { name: "label", type: "strings", help: "labels to attach to the image" },
  { name: "platform", type: "strings", help: "Pull content from a specific platform" },
  { name: "all-platforms", type: "bool", help: "pull content and metadata from all platforms" },
  { name: "all-metadata", type: "bool", help: "Pull metadata for all platforms" },
  { name: "metadata-only", type: "bool", help: "Pull all metadata including manifests and configs" },
];

async function doFetch(c: Ctx, client: Client, ref: string, hooks: Pick<FetchOptions, "onResolved" | "onStored"> = {}) {
  const all = !!c.flags["all-platforms"];
  let platforms: Platform[] | undefined;
  if (!all) {
    platforms = platformsOf(c);
    if (!platforms.length) platforms = [hostPlatform()];
  }
  const maxConcurrentDownloads = Number(c.flags["max-concurrent-downloads"] ?? 0) || undefined;
  return fetchImage(client, ref, ref, { registry: registryOptions(c), platforms, labels: labelArgs((c.flags.label as string[]) ?? []), progress: out, maxConcurrentDownloads, ...hooks });
}

/**
 * The blobs of a fetch in progress, for an unpack that runs alongside it: ready(desc) resolves
 * once the fetch stored desc, or once the fetch ended (the blob is then read as it is, there or
 * not), and rejects once the fetch failed.
 */
class BlobArrivals {
  private readonly waiting = new Map<string, PromiseWithResolvers<void>>();
  private readonly end = Promise.withResolvers<void>();

  constructor() {
    this.end.promise.catch(() => {});
  }

  private entry(digest: string): PromiseWithResolvers<void> {
    let w = this.waiting.get(digest);
    if (!w) this.waiting.set(digest, (w = Promise.withResolvers<void>()));
    return w;
  }

  stored = (desc: Descriptor): void => this.entry(desc.digest).resolve();
  ready = (desc: Descriptor): Promise<void> => Promise.race([this.entry(desc.digest).promise, this.end.promise]);
  done(error?: unknown): void {
    if (error === undefined) this.end.resolve();
    else this.end.reject(error);
  }
}

export const pullCommand: Command = {
  name: "pull",
  usage: "pull an image from a remote",
  argsUsage: "[flags] <ref>",
  description: `Fetch and prepare an image for use in containerd.

After pulling an image, it should be ready to use the same reference in a run
command. As part of this process, we do the following:

1. Fetch all resources into containerd.
2. Prepare the snapshot filesystem with the pulled resources.
3. Register metadata for the image.
`,
  flags: [
    { name: "snapshotter", type: "string", default: "overlayfs", env: "CONTAINERD_SNAPSHOTTER", defaultText: '"overlayfs"', help: "snapshotter name. Empty value stands for the default value." },
    ...FETCH_FLAGS,
    { name: "print-chainid", type: "bool", help: "Print the resulting image's chain ID" },
    { name: "max-concurrent-downloads", type: "int", help: "Set the max concurrent downloads for each pull (default: 0)" },
  ],
  action: async (c) => {
    const ref = c.args[0];
    if (!ref) throw new Error("please provide an image reference to pull");
    const client = await c.client();
    const snapshotter = String(c.flags.snapshotter || "overlayfs");
    await withLease(client, async (lease) => {
      const lc = await leased(c, lease);
      try {
        // One platform (the usual case): its layers are unpacked while later ones are still
        // downloading, each as soon as it is stored, as containerd's client.Pull unpacks (ctr 1.6
        // fetches everything first). The output stays ctr's: "unpacking" comes after the
        // progress display, "done" times what was left of the unpack after the fetch.
        const all = !!c.flags["all-platforms"];
        let ps: Platform[] = platformsOf(c);
        if (!ps.length) ps = [hostPlatform()];
        const eager = !all && ps.length === 1 ? ps[0] : undefined;
        const arrivals = eager && new BlobArrivals();
        let early: Promise<string> | undefined;
        const hooks: Pick<FetchOptions, "onResolved" | "onStored"> = arrivals
          ? {
              onResolved: (target) => {
                early = unpackImage(lc, { ...target, size: Number(target.size) }, eager!, snapshotter, arrivals.ready);
                early.catch(() => {}); // its error is the pull's once the fetch is through
              },
              onStored: arrivals.stored,
            }
          : {};
        let img;
        try {
          img = await doFetch(c, lc, ref, hooks);
          arrivals?.done();
        } catch (e) {
          arrivals?.done(e);
          await early?.catch(() => {}); // an Apply in flight finishes before the lease goes
          throw e;
        }
        if (all) ps = await imagePlatformsOf(lc, img.target);
        if (!ps.length) ps = [hostPlatform()];
        const start = Date.now();
        for (const p of ps) {
          out(`unpacking ${formatPlatform(p)} ${img.target.digest}...\n`);
          const chainID = early && p === eager ? await early : await unpackImage(lc, { ...img.target, size: Number(img.target.size) }, p, snapshotter);
          if (c.flags["print-chainid"]) out(`image chain ID: ${chainID}\n`);
        }
        out(`done: ${formatDuration(Date.now() - start)}\t\n`);
      } finally {
        lc.close();
      }
    });
  },
};

async function imagePlatformsOf(client: Client, target: { mediaType: string; digest: string }): Promise<Platform[]> {
  const { imagePlatforms } = await import("../imageinfo");
  const ps = await imagePlatforms(client, { mediaType: target.mediaType, digest: target.digest, size: 0 } as any);
  const seen = new Set<string>();
  const outPs: Platform[] = [];
  for (const p of ps as Platform[]) {
    const k = formatPlatform(p);
    if (!seen.has(k)) seen.add(k), outPs.push(p);
  }
  return outPs;
}

export const pushCommand: Command = {
  name: "push",
  usage: "push an image to a remote",
  argsUsage: "[flags] <remote> [<local>]",
  description: `Pushes an image reference from containerd.

	All resources associated with the manifest reference will be pushed.
	The ref is used to resolve to a locally existing image manifest.
	The image manifest must exist before push. Creating a new image
	manifest can be done through calculating the diff for layers,
	creating the associated configuration, and creating the manifest
	which references those resources.
`,
  flags: [
    ...REGISTRY_FLAGS,
    { name: "manifest", type: "string", help: "digest of manifest" },
    { name: "manifest-type", type: "string", default: "application/vnd.docker.distribution.manifest.v2+json", help: "media type of manifest digest" },
    { name: "platform", type: "strings", help: "push content from a specific platform" },
    { name: "max-concurrent-uploaded-layers", type: "int", help: "set the max concurrent uploaded layers for each push (default: 3)" },
  ],
  action: async (c) => {
    const ref = c.args[0];
    if (!ref) throw new Error("please provide a remote image reference to push");
    const local = c.args[1] || ref;
    const ps = platformsOf(c);
    if (ps.length > 1) throw new Error("only one platform may be specified");
    const client = await c.client();
    await pushImage(client, ref, local, { registry: registryOptions(c), platform: ps[0], progress: out });
  },
};

export const contentFetchCommand: Command = {
  name: "fetch",
  usage: "fetch all content for an image into containerd",
  argsUsage: "[flags] <remote> <object>",
  description: `Fetch an image into containerd.`,
  flags: FETCH_FLAGS,
  action: async (c) => {
    const ref = c.args[0];
    if (!ref) throw new Error("please provide an image reference to fetch");
    const client = await c.client();
    await withLease(client, async (lease) => {
      const lc = await leased(c, lease);
      try {
        await doFetch(c, lc, ref);
      } finally {
        lc.close();
      }
    });
  },
};

export { IMAGES };
