// What `ctr images ls` computes on the client from the content store, as containerd's client does:
// the image's size for the default platform (the target, the one best-matching manifest of an
// index, its config and layers) and the platforms it provides (from index entries and configs).
import type { Descriptor, Platform } from "../containerd/types";
import { normalizeArch } from "../image/platform";
import type { Client } from "./client";

const CONTENT = "containerd.services.content.v1.Content";

export const MediaType = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
} as const;

export interface OCIDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
}

const isIndex = (mt: string) => mt === MediaType.ociIndex || mt === MediaType.dockerManifestList;
const isManifest = (mt: string) => mt === MediaType.ociManifest || mt === MediaType.dockerManifest;
const isConfig = (mt: string) => mt === MediaType.ociConfig || mt === MediaType.dockerConfig;

/** Read a whole blob (Info, then Read), as the client's content.ReadBlob. */
export async function readBlob(client: Client, digest: string): Promise<Buffer> {
  await client.call(CONTENT, "Info", { digest });
  const parts: Buffer[] = [];
  for await (const r of client.stream<{ data: Uint8Array }>(CONTENT, "Read", { digest })) parts.push(Buffer.from(r.data));
  return Buffer.concat(parts);
}

async function readJSON(client: Client, d: OCIDescriptor): Promise<any> {
  return JSON.parse((await readBlob(client, d.digest)).toString("utf8"));
}

async function children(client: Client, d: OCIDescriptor): Promise<OCIDescriptor[]> {
  if (isManifest(d.mediaType)) {
    const m = await readJSON(client, d);
    return [m.config, ...(m.layers ?? [])].filter(Boolean);
  }
  if (isIndex(d.mediaType)) return (await readJSON(client, d)).manifests ?? [];
  return [];
}

/** platforms.Normalize (shared with the image code), keeping an empty os as "unknown" for ctr. */
export function normalizePlatform(p: { os?: string; architecture?: string; variant?: string }): Platform {
  const [architecture, variant] = normalizeArch(p.architecture ?? "", p.variant ?? "");
  return { os: (p.os ?? "").toLowerCase(), architecture, variant };
}

export function formatPlatform(p: Platform): string {
  if (!p.os) return "unknown";
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** The platform containerd's platforms.Default() matches (linux/<arch>[/variant]). */
export function defaultPlatform(): Platform {
  const arch = ({ x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" } as Record<string, string>)[process.arch] ?? process.arch;
  return normalizePlatform({ os: "linux", architecture: arch });
}

function matches(p: OCIDescriptor["platform"], want: Platform): boolean {
  if (!p) return true;
  const n = normalizePlatform(p);
  return n.os === want.os && n.architecture === want.architecture && (want.variant === "" || n.variant === want.variant || n.variant === "");
}

/**
 * image.Size for the default platform: every descriptor walked, an index limited to its best
 * manifest. Like containerd's, the walk stops at the first error with what it counted so far.
 */
export async function imageSize(client: Client, target: OCIDescriptor, platform = defaultPlatform()): Promise<{ size: number; error?: unknown }> {
  let size = 0;
  const walk = async (d: OCIDescriptor): Promise<void> => {
    if (d.size < 0) throw new Error(`invalid size ${d.size} in ${d.digest} (${d.mediaType})`);
    size += d.size;
    let kids = await children(client, d);
    if (isIndex(d.mediaType)) {
      kids = kids.filter((k) => matches(k.platform, platform));
      const manifests = kids.filter((k) => isIndex(k.mediaType) || isManifest(k.mediaType));
      kids = manifests.slice(0, 1);
    }
    for (const k of kids) await walk(k);
  };
  try {
    await walk(target);
    return { size };
  } catch (error) {
    return { size, error };
  }
}

/** images.Platforms: the platforms of an index's entries, or of the configs found walking. */
export async function imagePlatforms(client: Client, target: OCIDescriptor): Promise<Platform[]> {
  const out: Platform[] = [];
  const walk = async (d: OCIDescriptor): Promise<void> => {
    if (d.platform) {
      if (d.platform.os !== "unknown" && d.platform.architecture !== "unknown") out.push(normalizePlatform(d.platform));
      return;
    }
    if (isConfig(d.mediaType)) {
      out.push(normalizePlatform(await readJSON(client, d)));
      return;
    }
    for (const k of await children(client, d)) await walk(k);
  };
  await walk(target);
  return out;
}

export function targetOf(d: Descriptor | null): OCIDescriptor {
  return { mediaType: d?.mediaType ?? "", digest: d?.digest ?? "", size: Number(d?.size ?? 0) };
}
