// `ctr images export`'s archive, as containerd 1.6's archive.Export writes it (the client does the
// work, reading blobs through the content service):
//
//   * index.json lists the images' targets as they are (an index stays an index), each annotated
//     with io.containerd.image.name = the name as given and org.opencontainers.image.ref.name =
//     its object (reference.Parse: "latest" for docker.io/library/busybox:latest, "" for "myidx").
//   * blobs: everything a manifest target refers to; for an index target the index itself plus
//     its children for the platform (all children with --all-platforms).
//   * manifest.json (Docker compatible): one entry per manifest, the index targets resolved to
//     their best platform manifest; RepoTags in familiar form. --skip-manifest-json (1.6's
//     WithSkipDockerManifest) leaves the tags out (null) and the indexes out, yet still writes it.
//   * entries sorted by name, blobs and oci-layout 0444, the JSON files 0644, no timestamps.
//
// Also containerd's reference.Parse (the names' OCI ref name; fetch-object's checks).
import { isIndexMediaType, isManifestMediaType, isNonDistributable, type Descriptor } from "../image/manifest";
import { parseDigest, parseNormalizedNamed } from "../image/reference";
import type { Platform, PlatformMatcher } from "../image/platform";
import { encodeHeader, END_OF_ARCHIVE, paddingFor } from "../image/tar";
import { goJSONString } from "./commands/events";
import type { ContentSource } from "./remote";

export interface CtrExportOptions {
  platform: PlatformMatcher;
  allPlatforms: boolean;
  skipDockerManifest: boolean;
  skipNonDistributable: boolean;
}

interface TarRecord {
  name: string;
  dir?: boolean;
  mode: number;
  size: number;
  /** The content (JSON files), or a blob to stream from the content store. */
  bytes?: Uint8Array;
  blob?: Descriptor;
}

/** Go's json.Marshal of a value (objects in the key order given; HTML-escaped strings). */
function goJSON(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") return goJSONString(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.map(goJSON).join(",")}]`;
  return `{${Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .map(([k, x]) => `${goJSONString(k)}:${goJSON(x)}`)
    .join(",")}}`;
}

const sortedMap = (m: Record<string, string>) => Object.fromEntries(Object.keys(m).sort().map((k) => [k, m[k]!]));

function platformJSON(p: Platform): object {
  return {
    architecture: p.architecture,
    os: p.os,
    "os.version": p["os.version"] || undefined,
    "os.features": p["os.features"]?.length ? p["os.features"] : undefined,
    variant: p.variant || undefined,
  };
}

/** ocispec.Descriptor as Go marshals it. */
function descriptorJSON(d: Descriptor): object {
  return {
    mediaType: d.mediaType || undefined,
    digest: d.digest,
    size: d.size,
    urls: d.urls?.length ? d.urls : undefined,
    annotations: d.annotations && Object.keys(d.annotations).length ? sortedMap(d.annotations) : undefined,
    platform: d.platform ? platformJSON(d.platform) : undefined,
  };
}

/**
 * containerd's reference.Parse: the locator (host and path) and the object (tag, or "@digest"),
 * or its error ("invalid reference", "hostname required").
 */
export function parseContainerdRef(s: string): { locator: string; object: string } {
  if (s.includes("://")) throw new Error("invalid reference");
  // Go's url.Parse on the host: a port must be digits ("busybox:latest" has no host part).
  const authority = s.split(/[/?#]/)[0]!.replace(/^.*@/, "");
  const colon = authority.startsWith("[") ? authority.indexOf(":", authority.indexOf("]")) : authority.lastIndexOf(":");
  if (colon >= 0 && !/^:\d*$/.test(authority.slice(colon))) throw new Error(`parse ${JSON.stringify("dummy://" + s)}: invalid port ${JSON.stringify(authority.slice(colon))} after host`);
  let u: URL;
  try {
    u = new URL("dummy://" + s);
  } catch {
    throw new Error("invalid reference");
  }
  if (!u.host) throw new Error("hostname required");
  let path = decodeURIComponent(u.pathname) + (u.search ?? "") + (u.hash ?? "");
  let object = "";
  const i = path.search(/[:@]/);
  if (i >= 0) {
    object = path.slice(i);
    if (object.startsWith(":")) object = object.slice(1);
    path = path.slice(0, i);
  }
  return { locator: (u.host + path).replace(/\/+$/, ""), object };
}

/** ociReferenceName: reference.Parse(name).Object, "" when it does not parse. */
export function ociReferenceName(name: string): string {
  try {
    return parseContainerdRef(name).object;
  } catch {
    return "";
  }
}

/** archive.familiarizeReference: docker's familiar form with a default tag. */
function familiarize(name: string): string {
  try {
    return parseNormalizedNamed(name).withDefaultTag().familiarString;
  } catch (e: any) {
    throw new Error(`failed to parse ${JSON.stringify(name)}: ${e?.message ?? e}`);
  }
}

const blobPath = (digest: string) => {
  const { algorithm, encoded } = parseDigest(digest);
  return `blobs/${algorithm}/${encoded}`;
};

export async function ctrExport(images: { name: string; target: Descriptor }[], source: ContentSource, emit: (c: Uint8Array) => Promise<void>, opts: CtrExportOptions): Promise<void> {
  const readBytes = async (digest: string) => new Uint8Array(await new Response(source.read(digest)).arrayBuffer());
  const algorithms = new Set<string>();
  const blobRecord = (d: Descriptor): TarRecord => ({ name: blobPath(d.digest), mode: 0o444, size: d.size, blob: d });

  // WithImage: the target with the name annotations.
  const manifests: Descriptor[] = images.map(({ name, target }) => ({
    ...target,
    annotations: { ...(target.annotations ?? {}), "io.containerd.image.name": name, "org.opencontainers.image.ref.name": ociReferenceName(name) },
  }));

  /** getRecords: the descriptor and everything under it (images.Children), depth first. */
  const getRecords = async (d: Descriptor, out: TarRecord[]): Promise<void> => {
    if (opts.skipNonDistributable && isNonDistributable(d.mediaType)) return;
    out.push(blobRecord(d));
    algorithms.add(parseDigest(d.digest).algorithm);
    let children: Descriptor[] = [];
    if (isManifestMediaType(d.mediaType)) {
      const m = JSON.parse(new TextDecoder().decode(await readBytes(d.digest)));
      children = [m.config, ...(m.layers ?? [])].map(toDescriptor);
    } else if (isIndexMediaType(d.mediaType)) {
      const idx = JSON.parse(new TextDecoder().decode(await readBytes(d.digest)));
      children = (idx.manifests ?? []).map(toDescriptor);
    }
    for (const c of children) await getRecords(c, out);
  };

  const records: TarRecord[] = [];
  const ociLayout = new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}');
  records.push({ name: "oci-layout", mode: 0o444, size: ociLayout.byteLength, bytes: ociLayout });
  const index = new TextEncoder().encode(goJSON({ schemaVersion: 2, manifests: manifests.map(descriptorJSON) }));
  records.push({ name: "index.json", mode: 0o644, size: index.byteLength, bytes: index });

  const dManifests = new Map<string, { manifest: Descriptor; names: string[] }>();
  const resolvedIndex = new Map<string, string>();
  for (const desc of manifests) {
    if (isManifestMediaType(desc.mediaType)) {
      let mt = dManifests.get(desc.digest);
      if (!mt) {
        await getRecords(desc, records);
        mt = { manifest: desc, names: [] };
        dManifests.set(desc.digest, mt);
      }
      const name = desc.annotations?.["io.containerd.image.name"];
      if (name && !opts.skipDockerManifest) mt.names.push(name);
    } else if (isIndexMediaType(desc.mediaType)) {
      let d = resolvedIndex.get(desc.digest);
      if (d === undefined) {
        d = "";
        // (The index's own record does not count its algorithm for the blobs/ directories.)
        records.push(blobRecord(desc));
        const idx = JSON.parse(new TextDecoder().decode(await readBytes(desc.digest)));
        const matched: Descriptor[] = [];
        for (const m of (idx.manifests ?? []).map(toDescriptor) as Descriptor[]) {
          if (!m.platform || opts.platform.match(m.platform)) matched.push(m);
          else if (!opts.allPlatforms) continue;
          await getRecords(m, records);
        }
        if (!opts.skipDockerManifest) {
          if (matched.length >= 1) {
            if (matched.length > 1) {
              matched.sort((a, b) => {
                if (!a.platform) return b.platform ? 1 : 0;
                if (!b.platform) return -1;
                return opts.platform.less(a.platform, b.platform) ? -1 : opts.platform.less(b.platform, a.platform) ? 1 : 0;
              });
            }
            d = matched[0]!.digest;
            dManifests.set(d, { manifest: matched[0]!, names: [] });
          } else throw new Error("no manifest found for platform: not found");
        }
        resolvedIndex.set(desc.digest, d);
      }
      const name = desc.annotations?.["io.containerd.image.name"];
      if (d && name) dManifests.get(d)!.names.push(name);
    } else {
      throw new Error("only manifests may be exported: invalid argument");
    }
  }

  if (dManifests.size > 0) {
    const entries: object[] = [];
    for (const { manifest, names } of dManifests.values()) {
      const m = JSON.parse(new TextDecoder().decode(await readBytes(manifest.digest)));
      const config = String(m.config?.digest ?? "");
      try {
        parseDigest(config);
      } catch (e: any) {
        throw new Error(`unable to create manifests file: invalid manifest ${JSON.stringify(manifest.digest)}: ${e?.message ?? e}`);
      }
      entries.push({
        Config: blobPath(config),
        RepoTags: names.length ? names.map(familiarize) : null,
        Layers: (m.layers ?? []).length ? m.layers.map((l: any) => blobPath(l.digest)) : null,
      });
    }
    const bytes = new TextEncoder().encode(goJSON(entries));
    records.push({ name: "manifest.json", mode: 0o644, size: bytes.byteLength, bytes });
  }
  if (algorithms.size) {
    records.push({ name: "blobs/", dir: true, mode: 0o755, size: 0 });
    for (const a of algorithms) records.push({ name: `blobs/${a}/`, dir: true, mode: 0o755, size: 0 });
  }

  // writeTar: sorted by name, each name once.
  records.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let last = "";
  for (const r of records) {
    if (r.name === last) continue;
    last = r.name;
    if (r.dir) {
      await emit(encodeHeader({ name: r.name, type: "dir", mode: r.mode }));
      continue;
    }
    await emit(encodeHeader({ name: r.name, type: "file", mode: r.mode, size: r.size }));
    if (r.bytes) {
      await emit(r.bytes);
    } else {
      const d = r.blob!;
      const { algorithm } = parseDigest(d.digest);
      const h = new Bun.CryptoHasher(algorithm as "sha256");
      let n = 0;
      try {
        for await (const c of source.read(d.digest) as unknown as AsyncIterable<Uint8Array>) {
          h.update(c);
          n += c.byteLength;
          await emit(c);
        }
      } catch (e: any) {
        throw new Error(`failed to get reader: ${e?.message ?? e}`);
      }
      if (`${algorithm}:${h.digest("hex")}` !== d.digest) throw new Error(`unexpected digest ${algorithm}:${h.digest("hex")} copied`);
      if (n !== r.size) throw new Error(`unexpected copy size for ${r.name}`);
    }
    await emit(paddingFor(r.size));
  }
  await emit(END_OF_ARCHIVE);
}

function toDescriptor(d: any): Descriptor {
  const out: Descriptor = { mediaType: d?.mediaType ?? "", digest: d?.digest ?? "", size: Number(d?.size ?? 0) };
  if (d?.urls?.length) out.urls = d.urls;
  if (d?.annotations && Object.keys(d.annotations).length) out.annotations = d.annotations;
  if (d?.platform) out.platform = d.platform;
  return out;
}
