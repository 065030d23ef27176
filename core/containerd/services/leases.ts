// containerd.services.leases.v1.Leases over the metadata store.
import { parseFilters } from "../filters";
import type { GCScheduler } from "../gc-scheduler";
import { defineService, unary } from "../grpc";
import { type Timestamp, toTimestamp } from "../types";
import {
  type LeaseRecord,
  type LeaseResource,
  type MetadataDB,
  addLeaseResource,
  createLease,
  deleteLease,
  deleteLeaseResource,
  listLeaseResources,
  listLeases,
  randomLeaseID,
} from "../../metadata";

export interface Lease {
  id: string;
  createdAt: Timestamp | null;
  labels: Record<string, string>;
}

const leaseToProto = (l: LeaseRecord): Lease => ({ id: l.id, createdAt: toTimestamp(l.createdAt), labels: l.labels });

const resource = (r: LeaseResource | null): LeaseResource => ({ id: r?.id ?? "", type: r?.type ?? "" });

export const leasesService = (db: MetadataDB, gc?: GCScheduler) =>
  defineService("containerd.services.leases.v1.Leases", {
    Create: unary<{ id: string; labels: Record<string, string> }, { lease: Lease }>((req, ctx) => ({
      lease: leaseToProto(createLease(db, ctx.namespace(), req.id || randomLeaseID(), req.labels)),
    })),

    // `sync` runs the garbage collection (core/containerd/gc.ts) before returning.
    Delete: unary<{ id: string; sync: boolean }, object>(async (req, ctx) => {
      deleteLease(db, ctx.namespace(), req.id);
      if (req.sync && gc) await gc.scheduleAndWait();
      else gc?.deleted();
      return {};
    }),

    List: unary<{ filters: string[] }, { leases: Lease[] }>((req, ctx) => ({
      leases: listLeases(db, ctx.namespace(), parseFilters(req.filters, { doubled: true })).map(leaseToProto),
    })),

    AddResource: unary<{ id: string; resource: LeaseResource | null }, object>((req, ctx) => (addLeaseResource(db, ctx.namespace(), req.id, resource(req.resource)), {})),

    DeleteResource: unary<{ id: string; resource: LeaseResource | null }, object>((req, ctx) => (deleteLeaseResource(db, ctx.namespace(), req.id, resource(req.resource)), {})),

    ListResources: unary<{ id: string }, { resources: LeaseResource[] }>((req, ctx) => ({ resources: listLeaseResources(db, ctx.namespace(), req.id) })),
  });
