// containerd.services.images.v1.Images over the metadata store, with containerd's events.
import { type Exchange, publishFor } from "../events";
import { Code, status } from "../errdefs";
import { parseFilters } from "../filters";
import { defineService, unary } from "../grpc";
import { type Descriptor, type FieldMask, type Timestamp, toTimestamp } from "../types";
import type { GCScheduler } from "../gc-scheduler";
import { type ImageRecord, type MetadataDB, createImage, deleteImage, getImage, listImages, updateImage } from "../../metadata";

export interface Image {
  name: string;
  labels: Record<string, string>;
  target: Descriptor | null;
  createdAt: Timestamp | null;
  updatedAt: Timestamp | null;
}

export function imageToProto(i: ImageRecord): Image {
  return {
    name: i.name,
    labels: i.labels,
    target: { mediaType: i.target.mediaType, digest: i.target.digest, size: String(i.target.size), annotations: i.target.annotations },
    createdAt: toTimestamp(i.createdAt),
    updatedAt: toTimestamp(i.updatedAt),
  };
}

export function imageFromProto(i: Image): Pick<ImageRecord, "name" | "labels" | "target"> {
  const t = i.target;
  return {
    name: i.name,
    labels: i.labels ?? {},
    target: { mediaType: t?.mediaType ?? "", digest: t?.digest ?? "", size: Number(t?.size ?? 0), annotations: t?.annotations ?? {} },
  };
}

export const imagesService = (db: MetadataDB, events: Exchange, gc?: GCScheduler) =>
  defineService("containerd.services.images.v1.Images", {
    Get: unary<{ name: string }, { image: Image }>((req, ctx) => ({ image: imageToProto(getImage(db, ctx.namespace(), req.name)) })),

    List: unary<{ filters: string[] }, { images: Image[] }>((req, ctx) => {
      const ns = ctx.namespace();
      return { images: listImages(db, ns, parseFilters(req.filters, { doubled: true })).map(imageToProto) };
    }),

    Create: unary<{ image: Image | null }, { image: Image }>((req, ctx) => {
      if (!req.image?.name) throw status(Code.INVALID_ARGUMENT, "Image.Name required");
      const created = imageToProto(createImage(db, ctx.namespace(), imageFromProto(req.image)));
      publishFor(events, ctx, "/images/create", "containerd.services.images.v1.ImageCreate", { name: created.name, labels: created.labels });
      return { image: created };
    }),

    Update: unary<{ image: Image | null; updateMask: FieldMask | null }, { image: Image }>((req, ctx) => {
      if (!req.image?.name) throw status(Code.INVALID_ARGUMENT, "Image.Name required");
      const updated = imageToProto(updateImage(db, ctx.namespace(), imageFromProto(req.image), req.updateMask?.paths ?? []));
      publishFor(events, ctx, "/images/update", "containerd.services.images.v1.ImageUpdate", { name: updated.name, labels: updated.labels });
      return { image: updated };
    }),

    // `sync` runs the garbage collection (core/containerd/gc.ts) before returning; otherwise the
    // scheduler collects soon after.
    Delete: unary<{ name: string; sync: boolean }, object>(async (req, ctx) => {
      deleteImage(db, ctx.namespace(), req.name);
      publishFor(events, ctx, "/images/delete", "containerd.services.images.v1.ImageDelete", { name: req.name });
      if (req.sync && gc) await gc.scheduleAndWait();
      else gc?.deleted();
      return {};
    }),
  });
