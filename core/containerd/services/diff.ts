// containerd.services.diff.v1.Diff: the walking differ's Apply. The layer blob comes from the
// content store (it must be visible in the caller's namespace); it is applied like containerd 1.6
// on Linux does: straight into the upper dir of an overlay mount (whiteouts become overlayfs
// whiteouts, parents taken from the lower dirs), straight into the source of a single bind mount,
// and through a temporary mount otherwise. Answers the applied descriptor: the uncompressed tar's
// digest (the diffID), its size, media type application/vnd.oci.image.layer.v1.tar.
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import type { ContentStore } from "../../content/store";
import { compressionOfMediaType } from "../../image/compression";
import { diffDirs, writeTar } from "../../image/tar-export";
import { commitToNamespace, nsRef } from "./content";
import { applyLayer, type ApplyMode } from "../../image/unpack";
import { withTempMount } from "../../snapshots";
import { codeOf, invalidArgument, notImplemented, status, Code } from "../errdefs";
import { defineService, unary } from "../grpc";
import type { Descriptor, Mount } from "../types";
import { type MetadataDB, getContent } from "../../metadata";

export const LAYER_TAR = "application/vnd.oci.image.layer.v1.tar";

function optionValue(options: string[], key: string): string | undefined {
  const o = options.find((x) => x.startsWith(`${key}=`));
  return o?.slice(key.length + 1);
}

/** Where to apply without mounting, and how: the overlay upper dir or the bind source. */
function directTarget(mounts: Mount[]): { dir: string; mode: ApplyMode; parents: string[] } | undefined {
  if (mounts.length !== 1) return undefined;
  const m = mounts[0]!;
  if (m.type === "bind" && !m.options.includes("ro")) return { dir: m.source, mode: "plain", parents: [] };
  if (m.type === "overlay") {
    const upper = optionValue(m.options, "upperdir");
    if (!upper) return undefined;
    const lower = optionValue(m.options, "lowerdir");
    return { dir: upper, mode: "overlay", parents: lower ? lower.split(":") : [] };
  }
  return undefined;
}

/** The directories of a read-only side: [] for nothing or an empty directory, the bind source, or the overlay's lower dirs. */
function readOnlyDirs(mounts: Mount[]): string[] | undefined {
  if (mounts.length === 0) return [];
  if (mounts.length !== 1) return undefined;
  const m = mounts[0]!;
  if (m.type === "bind") {
    try {
      if (readdirSync(m.source).length === 0) return [];
    } catch {
      return undefined;
    }
    return [m.source];
  }
  if (m.type === "overlay" && !optionValue(m.options, "upperdir")) return optionValue(m.options, "lowerdir")?.split(":");
  return undefined;
}

export const diffService = (store: ContentStore, db: MetadataDB) =>
  defineService("containerd.services.diff.v1.Diff", {
    Apply: unary<{ diff: Descriptor | null; mounts: Mount[] }, { applied: Descriptor }>(async (req, ctx) => {
      const d = req.diff;
      if (!d?.digest) throw invalidArgument("diff descriptor required");
      const mediaType = d.mediaType || LAYER_TAR;
      if (!/^application\/vnd\.(oci\.image\.layer\.v1\.tar|docker\.image\.rootfs\.diff\.tar)/.test(mediaType)) {
        throw status(Code.UNIMPLEMENTED, `unsupported diff media type: ${mediaType}: not implemented`);
      }
      getContent(db, ctx.namespace(), d.digest);
      // The chunks as the store reads them (no copy). The blob was verified against its digest
      // when it was committed: like containerd's differ, only the tar (the diffID) is hashed.
      const src = async function* () {
        for await (const c of store.chunks(d.digest)) yield c.data;
      };
      const opts = { skipDigest: true, signal: ctx.signal };
      const direct = directTarget(req.mounts ?? []);
      const res = direct
        ? await applyLayer(src(), direct.dir, { ...opts, mode: direct.mode, parents: direct.parents })
        : await withTempMount(
            (req.mounts ?? []).map((m) => ({ type: m.type, source: m.source, options: m.options })),
            (root) => applyLayer(src(), root, { ...opts, mode: "plain" }),
          );
      for (const w of res.warnings) ctx.log.warn("apply layer", { digest: d.digest, warning: w });
      return { applied: { mediaType: LAYER_TAR, digest: res.diffID, size: String(res.uncompressedSize), annotations: {} } };
    }),

    // The walking differ's Diff for the cases overlay and native snapshots give: the right side an
    // overlay with an upper dir (its changes are the diff), or the right side a single bind mount
    // over an empty left side (everything is the diff). The layer goes into the content store.
    Diff: unary<{ left: Mount[]; right: Mount[]; mediaType: string; ref: string; labels: Record<string, string> }, { diff: Descriptor }>(async (req, ctx) => {
      const ns = ctx.namespace();
      const mediaType = req.mediaType || "application/vnd.oci.image.layer.v1.tar+gzip";
      let compression;
      try {
        compression = compressionOfMediaType(mediaType);
      } catch {
        throw status(Code.UNIMPLEMENTED, `unsupported diff media type: ${mediaType}: not implemented`);
      }
      const left = req.left ?? [];
      const right = req.right ?? [];
      let produce: (sink: (c: Uint8Array) => unknown) => Promise<{ diffID: string; digest: string; size: number }>;
      const r = right.length === 1 ? right[0]! : undefined;
      const upper = r?.type === "overlay" ? optionValue(r.options, "upperdir") : undefined;
      const leftDirs = readOnlyDirs(left);
      const rightDirs = readOnlyDirs(right);
      if (r && upper) {
        const lower = optionValue(r.options, "lowerdir");
        produce = (sink) => diffDirs(lower ? lower.split(":") : [], upper, sink, { compression, signal: ctx.signal });
      } else if (r?.type === "bind" && leftDirs?.length === 0) {
        produce = (sink) => writeTar(r.source, sink, { compression, signal: ctx.signal });
      } else if (r?.type === "overlay" && leftDirs && rightDirs && rightDirs.length === leftDirs.length + 1 && rightDirs.slice(1).every((x, i) => x === leftDirs[i])) {
        // A view of a committed overlayfs snapshot over the view of its parent: the top lower dir
        // is the snapshot's own upper dir.
        produce = (sink) => diffDirs(leftDirs, rightDirs[0]!, sink, { compression, signal: ctx.signal });
      } else {
        throw notImplemented("diff of these mounts is not supported by bunker's containerd yet");
      }
      const ref = nsRef(ns, req.ref || `diff-${randomBytes(8).toString("hex")}`);
      const w = store.writer(ref);
      let res;
      try {
        res = await produce((c) => void w.write(c));
        try {
          w.commit(res.size, res.digest);
        } catch (e) {
          if (codeOf(e) !== Code.ALREADY_EXISTS) throw e;
        }
      } catch (e) {
        w.close();
        try {
          store.abort(ref);
        } catch {}
        throw e;
      } finally {
        w.close();
      }
      const labels = { ...(req.labels ?? {}) };
      if (compression !== "none") labels["containerd.io/uncompressed"] = res.diffID;
      commitToNamespace(db, ns, ctx.lease(), res.digest, res.size, labels);
      return { diff: { mediaType, digest: res.digest, size: String(res.size), annotations: {} } };
    }),
  });
