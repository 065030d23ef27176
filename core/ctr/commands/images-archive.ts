// ctr images import|export|check|mount|unmount, done on the client as the real ctr does: the
// archive is read/written here and moved through the content service, images are created in the
// images service, and unpacking drives the snapshots and diff services (core/ctr/remote.ts).
import { closeSync, createReadStream, openSync, writeSync } from "node:fs";
import { Readable } from "node:stream";
import { out } from "../../cli/io";
import { isAlreadyExists, isNotFound, messageOf } from "../../containerd/errdefs";
import { importArchive, type ArchiveImage } from "../../image/archive";
import { encodeJSON, MediaType, type Descriptor, type ImageIndex } from "../../image/manifest";
import { allPlatforms, defaultMatcher, hostPlatform, hostPlatformString, onlyMatcher, orderedMatcher, parsePlatform, type PlatformMatcher } from "../../image/platform";
import { errnoMessage, SyscallError } from "../../../ffi/errno";
import { mountAll, unmountAll } from "../../snapshots/mount";
import type { Command, CtrFlag } from "../app";
import type { Client } from "../client";
import { targetOf } from "../imageinfo";
import { ContentSink, ContentSource, contentInfo, imageLayers, IMAGES, isUnpacked, labelTree, SNAPSHOTS, unpackImage, writeBlob, chainIDs } from "../remote";
import { REGISTRY_FLAGS } from "../registry-flags";
import { ctrExport, ociReferenceName } from "../export";
import { GoTabWriter } from "../tabwriter";
import { progressBytes } from "../units";
import { EXPIRE_LABEL, expiryLabel, withLease } from "./leases";
import type { Image } from "./images";

const LEASES = "containerd.services.leases.v1.Leases";

export const SNAPSHOTTER_FLAG: CtrFlag = { name: "snapshotter", type: "string", default: "overlayfs", env: "CONTAINERD_SNAPSHOTTER", help: "snapshotter name. Empty value stands for the default value." };

function snapshotterOf(v: unknown): string {
  return String(v || "overlayfs");
}

function asList(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(String);
  if (v === undefined || v === "" || v === false) return [];
  return [String(v)];
}


const toDesc = (d: any): Descriptor => ({ mediaType: d.mediaType, digest: d.digest, size: Number(d.size ?? 0), ...(d.annotations && Object.keys(d.annotations).length ? { annotations: d.annotations } : {}) });

async function putImage(client: Client, name: string, target: Descriptor): Promise<void> {
  const image = { name, labels: {}, target: { mediaType: target.mediaType, digest: target.digest, size: String(target.size), annotations: target.annotations ?? {} } };
  try {
    await client.call(IMAGES, "Create", { image });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    await client.call(IMAGES, "Update", { image, updateMask: { paths: ["target"] } });
  }
}

/**
 * The index ctr keeps for --index-name: the archive's entries with containerd's annotations
 * (image name, and the OCI ref name reference.Parse gives it) in Go's field order. An OCI
 * layout's index keeps its mediaType; the one containerd builds for a docker archive has none.
 */
function ctrIndex(index: ImageIndex, format: "oci" | "docker"): object {
  return {
    schemaVersion: 2,
    ...(format === "oci" ? { mediaType: MediaType.OCIIndex } : {}),
    manifests: index.manifests.map((m) => {
      const annotations: Record<string, string> = { ...(m.annotations ?? {}) };
      const name = annotations["io.containerd.image.name"];
      if (name && annotations["org.opencontainers.image.ref.name"] === undefined) annotations["org.opencontainers.image.ref.name"] = ociReferenceName(name);
      const sorted = Object.fromEntries(Object.keys(annotations).sort().map((k) => [k, annotations[k]]));
      const p = m.platform;
      return {
        mediaType: m.mediaType,
        digest: m.digest,
        size: m.size,
        ...(m.urls?.length ? { urls: m.urls } : {}),
        ...(Object.keys(sorted).length ? { annotations: sorted } : {}),
        ...(p
          ? {
              platform: {
                architecture: p.architecture,
                os: p.os,
                ...(p["os.version"] ? { "os.version": p["os.version"] } : {}),
                ...(p["os.features"]?.length ? { "os.features": p["os.features"] } : {}),
                ...(p.variant ? { variant: p.variant } : {}),
              },
            }
          : {}),
      };
    }),
  };
}

function writeAll(fd: number, b: Uint8Array): void {
  for (let off = 0; off < b.byteLength; ) off += writeSync(fd, b, off);
}

/** Go's os.Open error text ("open /x: no such file or directory"). */
function openInput(path: string): ReadableStream<Uint8Array> {
  try {
    closeSync(openSync(path, "r"));
  } catch (e: any) {
    const why: Record<string, string> = { ENOENT: "no such file or directory", EACCES: "permission denied", EISDIR: "is a directory" };
    throw new Error(`open ${path}: ${why[e?.code] ?? e?.message ?? e}`);
  }
  return Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>;
}

/** containerd's archive.isImagePrefix. */
function isImagePrefix(s: string, prefix: string): boolean {
  return s.startsWith(prefix) && (s.length === prefix.length || "/:@".includes(s[prefix.length]!));
}

function dateStamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

const importCommand: Command = {
  name: "import",
  usage: "import images",
  argsUsage: "[flags] <in>",
  description: `Import images from a tar stream.
Implemented formats:
- oci.v1
- docker.v1.1
- docker.v1.2


For OCI v1, you may need to specify --base-name because an OCI archive may
contain only partial image references (tags without the base image name).
If no base image name is provided, a name will be generated as "import-%{yyyy-MM-dd}".

e.g.
  $ ctr images import --base-name foo/bar foobar.tar

If foobar.tar contains an OCI ref named "latest" and anonymous ref "sha256:deadbeef", the command will create
"foo/bar:latest" and "foo/bar@sha256:deadbeef" images in the containerd store.
`,
  flags: [
    { name: "base-name", type: "string", default: "", help: "base image name for added images, when provided only images with this name prefix are imported" },
    { name: "digests", type: "bool", help: "whether to create digest images (default: false)" },
    { name: "skip-digest-for-named", type: "bool", help: "skip applying --digests option to images named in the importing tar (use it in conjunction with --digests)" },
    { name: "index-name", type: "string", default: "", help: "image name to keep index as, by default index is discarded" },
    { name: "all-platforms", type: "bool", help: "imports content for all platforms, false by default" },
    { name: "platform", type: "string", default: "", help: "imports content for specific platform" },
    { name: "no-unpack", type: "bool", help: "skip unpacking the images, false by default" },
    { name: "compress-blobs", type: "bool", help: "compress uncompressed blobs when creating manifest (Docker format only)" },
    SNAPSHOTTER_FLAG,
  ],
  action: async (c) => {
    const input = c.args[0] ?? "";
    const platform = String(c.flags.platform || "");
    const all = !!c.flags["all-platforms"];
    const matcher = platform ? onlyMatcher(parsePlatform(platform)) : all ? allPlatforms : defaultMatcher();
    const snapshotter = snapshotterOf(c.flags.snapshotter);
    const baseName = String(c.flags["base-name"] || "");
    const client = await c.client();
    await withLease(client, async (lease) => {
      client.setLease(lease);
      try {
        const src = input === "-" ? (Readable.toWeb(process.stdin) as unknown as ReadableStream<Uint8Array>) : openInput(input);
        // ctr's names: io.containerd.image.name as written, else the OCI ref name through
        // archive.AddRefPrefix(prefix) (a bare tag becomes <prefix>:<tag>; a full reference is
        // kept only under --base-name). The prefix also names --digests images.
        const prefix = baseName || `import-${dateStamp()}`;
        const nameOf = (ann: Record<string, string>) => {
          const full = ann["io.containerd.image.name"];
          if (full) return full;
          const ref = ann["org.opencontainers.image.ref.name"];
          if (!ref) return "";
          if (/[/:@]/.test(ref)) return !baseName || isImagePrefix(ref, baseName) ? ref : "";
          return `${prefix}:${ref}`;
        };
        const res = await importArchive(src, new ContentSink(client), { nameOf });
        // images.WalkNotEmpty: every entry of the archive's index filtered out by the platform.
        if (!all && res.index.manifests.length && !res.index.manifests.some((m) => !m.platform || matcher.match(m.platform))) throw new Error("image might be filtered out");
        const imgs: ArchiveImage[] = [];
        for (const im of res.images) {
          // The archive's own names (io.containerd.image.name) stay whatever --base-name says.
          if (im.name) imgs.push({ name: im.name, target: toDesc(im.target) });
          if (c.flags.digests && !(im.name && c.flags["skip-digest-for-named"])) imgs.push({ name: `${prefix}@${im.target.digest}`, target: toDesc(im.target) });
        }
        for (const im of imgs) await labelTree(client, im.target);
        const indexName = String(c.flags["index-name"] || "");
        if (indexName) {
          // containerd keeps an OCI layout's index.json as it is, and marshals the one it builds for a docker archive.
          const bytes = res.layoutIndex ?? encodeJSON(ctrIndex(res.index, res.format));
          const digest = "sha256:" + new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
          const desc: Descriptor = { mediaType: MediaType.OCIIndex, digest, size: bytes.byteLength };
          await writeBlob(client, `index-${digest}`, desc, bytes);
          await labelTree(client, desc);
          imgs.unshift({ name: indexName, target: desc });
        }
        for (const im of imgs) await putImage(client, im.name, im.target);
        if (c.flags["no-unpack"]) return;
        for (const im of imgs) {
          out(`unpacking ${im.name} (${im.target.digest})...`);
          await unpackImage(client, im.target, matcher, snapshotter);
          out("done\n");
        }
      } finally {
        client.setLease(undefined);
      }
    });
  },
};

const exportCommand: Command = {
  name: "export",
  usage: "export images",
  argsUsage: "[flags] <out> <image> ...",
  description: `Export images to an OCI tar archive.

Tar output is formatted as an OCI archive, a Docker manifest is provided for the platform.
Use '--skip-manifest-json' to avoid including the Docker manifest.json file.
Use '--platform' to define the output platform.
When '--all-platforms' is given all images in a manifest list must be available.
`,
  flags: [
    { name: "skip-manifest-json", type: "bool", help: "do not add Docker compatible manifest.json to archive" },
    { name: "skip-non-distributable", type: "bool", help: "do not add non-distributable blobs such as Windows layers to archive" },
    { name: "platform", type: "strings", help: "Pull content from a specific platform" },
    { name: "all-platforms", type: "bool", help: "exports content from all platforms" },
  ],
  action: async (c) => {
    const [outPath, ...refs] = c.args;
    if (!outPath || !refs.length) throw new Error("please provide both an output filename and an image reference to export");
    const platforms = asList(c.flags.platform);
    // platforms.Ordered(--platform...), else DefaultStrict (the host's platform only).
    const parsed = platforms.map((p) => {
      try {
        return parsePlatform(p);
      } catch (e) {
        throw new Error(`invalid platform ${JSON.stringify(p)}: ${messageOf(e)}`);
      }
    });
    const matcher = parsed.length ? orderedMatcher(...parsed) : orderedMatcher(hostPlatform());
    const client = await c.client();
    // As ctr: the output is created first, the images are looked up by the exporter.
    let fd: number | undefined;
    if (outPath !== "-") {
      try {
        fd = openSync(outPath, "w", 0o666);
      } catch (e: any) {
        throw new Error(`open ${outPath}: ${errnoMessage(e?.code ?? "") || e?.message}`);
      }
    }
    const emit = (chunk: Uint8Array) =>
      fd === undefined ? new Promise<void>((res, rej) => process.stdout.write(chunk, (e) => (e ? rej(e) : res()))) : Promise.resolve(void writeAll(fd, chunk));
    try {
      const images: { name: string; target: Descriptor }[] = [];
      for (const ref of refs) {
        const { image } = await client.call<{ image: Image }>(IMAGES, "Get", { name: ref });
        images.push({ name: ref, target: toDesc(image.target) });
      }
      await ctrExport(images, new ContentSource(client), emit, { platform: matcher, allPlatforms: !!c.flags["all-platforms"], skipDockerManifest: !!c.flags["skip-manifest-json"], skipNonDistributable: !!c.flags["skip-non-distributable"] });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  },
};

/** images.Check: walk the image for the platform; what is required, present, missing. */
async function checkImage(client: Client, target: Descriptor, matcher: PlatformMatcher) {
  const present: Descriptor[] = [];
  const missing: Descriptor[] = [];
  if (!(await contentInfo(client, target.digest))) return { available: false, required: [target], present, missing: [target] };
  let required: Descriptor[];
  try {
    const l = await imageLayers(client, target, matcher);
    // images.Check counts the manifest's config and layers
    required = [l.config, ...l.layers];
  } catch (e) {
    if (isNotFound(e)) return { available: false, required: [target], present, missing: [target] };
    throw e;
  }
  for (const d of required) ((await contentInfo(client, d.digest)) ? present : missing).push(d);
  return { available: true, required, present, missing };
}

const checkCommand: Command = {
  name: "check",
  usage: "check existing images to ensure all content is available locally",
  argsUsage: "[flags] [<filter>, ...]",
  description: "check existing images to ensure all content is available locally",
  flags: [{ name: "quiet", aliases: ["q"], type: "bool", help: "print only the ready image refs (fully downloaded and unpacked)" }, SNAPSHOTTER_FLAG],
  action: async (c) => {
    const client = await c.client();
    let images: Image[];
    try {
      ({ images } = await client.call<{ images: Image[] }>(IMAGES, "List", { filters: c.args }));
    } catch (e) {
      throw new Error(`failed listing images: ${messageOf(e)}`);
    }
    if (!images.length) return c.log.debug("no images found");
    const snapshotter = snapshotterOf(c.flags.snapshotter);
    const matcher = defaultMatcher();
    const w = new GoTabWriter(1, 1);
    if (!c.flags.quiet) w.row("REF", "TYPE", "DIGEST", "STATUS", "SIZE", "UNPACKED");
    let exitErr: string | undefined;
    for (const img of images) {
      const target = toDesc(targetOf(img.target));
      let status = "complete";
      let size: string;
      let complete = true;
      try {
        const r = await checkImage(client, target, matcher);
        const requiredSize = r.required.reduce((a, d) => a + d.size, 0);
        const presentSize = r.present.reduce((a, d) => a + d.size, 0);
        if (r.missing.length) {
          status = "incomplete";
          complete = false;
        }
        if (r.available) {
          status += ` (${r.present.length}/${r.required.length})`;
          size = `${progressBytes(presentSize)}/${progressBytes(requiredSize)}`;
        } else {
          status = `unavailable (${r.present.length}/?)`;
          size = `${progressBytes(presentSize)}/?`;
          complete = false;
        }
      } catch (e) {
        exitErr ??= `unable to check ${img.name}: ${messageOf(e)}`;
        c.log.error(`unable to check ${img.name}`, { error: messageOf(e) });
        status = "error";
        size = "-";
        complete = false;
      }
      let unpacked = false;
      try {
        unpacked = await isUnpacked(client, target, matcher, snapshotter);
      } catch (e) {
        exitErr ??= `unable to check unpack for ${img.name}: ${messageOf(e)}`;
        c.log.error(`unable to check unpack for ${img.name}`, { error: messageOf(e) });
      }
      if (c.flags.quiet) {
        if (complete) out(img.name + "\n");
        continue;
      }
      w.write(`${img.name}\t${target.mediaType}\t${target.digest}\t${status}\t${size}\t${unpacked}\n`);
    }
    if (!c.flags.quiet) out(w.flush());
    if (exitErr) throw new Error(exitErr);
  },
};

const mountCommand: Command = {
  name: "mount",
  usage: "mount an image to a target path",
  argsUsage: "[flags] <ref> <target>",
  description: `Mount an image rootfs to a specified path.

When you are done, use the unmount command.
`,
  flags: [
    ...REGISTRY_FLAGS,
    SNAPSHOTTER_FLAG,
    { name: "label", type: "strings", help: "labels to attach to the image" },
    { name: "rw", type: "bool", help: "Enable write support on the mount" },
    { name: "platform", type: "string", default: "", defaultText: JSON.stringify(hostPlatformString()), help: "Mount the image for the specified platform" },
  ],
  action: async (c) => {
    const [ref, target] = c.args;
    if (!ref) throw new Error("please provide an image reference to mount");
    if (!target) throw new Error("please provide a target path to mount to");
    const client = await c.client();
    const snapshotter = snapshotterOf(c.flags.snapshotter);
    const platform = String(c.flags.platform || "");
    const matcher = platform ? onlyMatcher(parsePlatform(platform)) : defaultMatcher();
    // The lease named after the target keeps the view; one left by an earlier mount is reused
    // (and then not deleted on failure), as ctr does.
    let created = true;
    try {
      await client.call(LEASES, "Create", { id: target, labels: { [EXPIRE_LABEL]: expiryLabel(24 * 3600_000), [`containerd.io/gc.ref.snapshot.${snapshotter}`]: target } });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      created = false;
    }
    client.setLease(target);
    let ok = false;
    try {
      const { image } = await client.call<{ image: Image }>(IMAGES, "Get", { name: ref });
      const desc = toDesc(image.target);
      try {
        await unpackImage(client, desc, matcher, snapshotter);
      } catch (e) {
        throw new Error(`error unpacking image: ${messageOf(e)}`);
      }
      const { diffIDs } = await imageLayers(client, desc, matcher);
      const ids = chainIDs(diffIDs);
      const chainID = ids[ids.length - 1] ?? "";
      out(chainID + "\n");
      let mounts: any[];
      try {
        ({ mounts } = await client.call(SNAPSHOTS, c.flags.rw ? "Prepare" : "View", { snapshotter, key: target, parent: chainID }));
      } catch (e) {
        if (!isAlreadyExists(e)) throw e;
        ({ mounts } = await client.call(SNAPSHOTS, "Mounts", { snapshotter, key: target }));
      }
      try {
        mountAll(mounts.map((m) => ({ type: m.type, source: m.source, options: m.options ?? [] })), target);
      } catch (e) {
        await client.call(SNAPSHOTS, "Remove", { snapshotter, key: target }).catch(() => {});
        // mount(2)'s error as Go prints an errno ("no such file or directory").
        if (e instanceof SyscallError) throw new Error(errnoMessage(e.code));
        throw e;
      }
      out(target + "\n");
      ok = true;
    } finally {
      client.setLease(undefined);
      if (!ok && created) await client.call(LEASES, "Delete", { id: target }).catch(() => {});
    }
  },
};

const unmountCommand: Command = {
  name: "unmount",
  usage: "unmount the image from the target",
  argsUsage: "[flags] <target>",
  description: "Unmount the image rootfs from the specified target.",
  flags: [...REGISTRY_FLAGS, SNAPSHOTTER_FLAG, { name: "label", type: "strings", help: "labels to attach to the image" }, { name: "rm", type: "bool", help: "remove the snapshot after a successful unmount" }],
  action: async (c) => {
    const target = c.args[0];
    if (!target) throw new Error("please provide a target path to unmount from");
    const client = await c.client();
    unmountAll(target, 0);
    if (c.flags.rm) {
      const snapshotter = snapshotterOf(c.flags.snapshotter);
      try {
        await client.call(LEASES, "Delete", { id: target });
      } catch (e) {
        if (!isNotFound(e)) throw new Error(`error deleting lease: ${messageOf(e)}`);
      }
      try {
        await client.call(SNAPSHOTS, "Remove", { snapshotter, key: target });
      } catch (e) {
        if (!isNotFound(e)) throw new Error(`error removing snapshot: ${messageOf(e)}`);
      }
    }
    out(target + "\n");
  },
};

export const imageArchiveCommands: Command[] = [checkCommand, exportCommand, importCommand, mountCommand, unmountCommand];
