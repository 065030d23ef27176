// containerd.services.content.v1.Content: containerd's metadata content store over the local
// store (core/content/store.ts). A blob is visible in a namespace once it was committed there
// (or, being already in the store, its writer was opened there with its digest: containerd's
// "shared" policy); its labels live in the namespace's metadata. Ingest refs are namespaced in the
// store as "<namespace>/<ref>".
import { ContentStore, type IngestStatus, type Writer } from "../../content/store";
import { Code, ErrDef, invalidArgument, isAlreadyExists, notFound, status } from "../errdefs";
import { parseFilters } from "../filters";
import { bidiStream, defineService, serverStream, unary } from "../grpc";
import { type FieldMask, type Timestamp, toTimestamp } from "../types";
import { type ContentRecord, type MetadataDB, addContent, addToRequestLease, deleteContent, findContent, getContent, listContent, updateContent } from "../../metadata";

interface Info {
  digest: string;
  size: string | number;
  createdAt: Timestamp | null;
  updatedAt: Timestamp | null;
  labels: Record<string, string>;
}

interface Status {
  startedAt: Timestamp;
  updatedAt: Timestamp;
  ref: string;
  offset: number;
  total: number;
  expected: string;
}

interface WriteRequest {
  action: "STAT" | "WRITE" | "COMMIT";
  ref: string;
  total: string;
  expected: string;
  offset: string;
  data: Uint8Array;
  labels: Record<string, string>;
}

const infoToProto = (c: ContentRecord): Info => ({ digest: c.digest, size: String(c.size), createdAt: toTimestamp(c.createdAt), updatedAt: toTimestamp(c.updatedAt), labels: c.labels });

const nsRef = (ns: string, ref: string) => `${ns}/${ref}`;

function statusToProto(ns: string, s: IngestStatus): Status {
  return { startedAt: toTimestamp(s.startedAt), updatedAt: toTimestamp(s.updatedAt), ref: s.ref.slice(ns.length + 1), offset: s.offset, total: s.total, expected: s.expected };
}

/** Make a blob already in the store visible in `ns` (with labels), under the request's lease. */
export function commitToNamespace(db: MetadataDB, ns: string, lease: string | undefined, digest: string, size: number, labels: Record<string, string>): void {
  db.write(() => {
    if (!findContent(db, ns, digest)) addContent(db, ns, { digest, size, labels });
    else if (Object.keys(labels).length) updateContent(db, ns, digest, labels, Object.keys(labels).map((k) => `labels.${k}`));
    addToRequestLease(db, ns, lease, { type: "content", id: digest });
  });
}

export const contentService = (store: ContentStore, db: MetadataDB) =>
  defineService("containerd.services.content.v1.Content", {
    Info: unary<{ digest: string }, { info: Info }>((req, ctx) => {
      const c = getContent(db, ctx.namespace(), req.digest);
      return { info: infoToProto(c) };
    }),

    Update: unary<{ info: Info | null; updateMask: FieldMask | null }, { info: Info }>((req, ctx) => {
      if (!req.info?.digest) throw invalidArgument("digest required");
      const c = updateContent(db, ctx.namespace(), req.info.digest, req.info.labels ?? {}, req.updateMask?.paths ?? []);
      return { info: infoToProto(c) };
    }),

    List: serverStream<{ filters: string[] }, { info: Info[] }>(async (req, ctx, send) => {
      const all = listContent(db, ctx.namespace(), parseFilters(req.filters, { doubled: true }));
      for (let i = 0; i < all.length; i += 100) await send({ info: all.slice(i, i + 100).map(infoToProto) });
    }),

    Delete: unary<{ digest: string }, object>((req, ctx) => {
      const ns = ctx.namespace();
      deleteContent(db, ns, req.digest);
      // The blob goes once no namespace references it (what containerd's GC would do).
      if (!db.db.query("SELECT 1 FROM content WHERE digest = ? LIMIT 1").get(req.digest)) {
        try {
          store.delete(req.digest);
        } catch {}
      }
      return {};
    }),

    Read: serverStream<{ digest: string; offset: string; size: string }, { offset: number; data: Uint8Array }>(async (req, ctx, send) => {
      getContent(db, ctx.namespace(), req.digest);
      const offset = Number(req.offset || 0);
      const size = Number(req.size || 0);
      if (offset < 0) throw invalidArgument(`offset must be positive`);
      for await (const c of store.chunks(req.digest, offset, size)) await send({ offset: c.offset, data: c.data });
    }),

    Status: unary<{ ref: string }, { status: Status }>((req, ctx) => {
      const ns = ctx.namespace();
      let st: IngestStatus;
      try {
        st = store.status(nsRef(ns, req.ref));
      } catch (e) {
        if (e instanceof ErrDef && e.code === Code.NOT_FOUND) throw notFound(`ref ${req.ref}`);
        throw e;
      }
      return { status: statusToProto(ns, st) };
    }),

    ListStatuses: unary<{ filters: string[] }, { statuses: Status[] }>((req, ctx) => {
      const ns = ctx.namespace();
      const filter = parseFilters(req.filters, { doubled: true });
      const statuses = store
        .listStatuses()
        .filter((s) => s.ref.startsWith(`${ns}/`))
        .map((s) => statusToProto(ns, s))
        .filter((s) => !filter || filter((path) => (path[0] === "ref" ? [s.ref, true] : path[0] === "expected" ? [s.expected, !!s.expected] : ["", false])));
      return { statuses };
    }),

    Abort: unary<{ ref: string }, object>((req, ctx) => {
      store.abort(nsRef(ctx.namespace(), req.ref));
      return {};
    }),

    Write: bidiStream<WriteRequest, object>(async (reqs, ctx, send) => {
      const ns = ctx.namespace();
      const lease = ctx.lease();
      const it = reqs[Symbol.asyncIterator]();
      let next = await it.next();
      if (next.done) return;
      let req = next.value;
      if (!req.ref) throw invalidArgument("first message must have a reference");
      const total0 = Number(req.total || 0);
      let expected = req.expected || "";
      if (expected) {
        if (findContent(db, ns, expected)) throw status(Code.ALREADY_EXISTS, `content ${expected}: already exists`);
        if (store.exists(expected)) {
          // Shared policy: the blob is in the store already; it becomes visible here.
          const size = store.info(expected).size;
          if (!total0 || total0 === size) {
            commitToNamespace(db, ns, lease, expected, size, {});
            throw status(Code.ALREADY_EXISTS, `content ${expected}: already exists`);
          }
        }
      }
      let wr: Writer;
      try {
        wr = store.writer(nsRef(ns, req.ref), { total: total0, expected });
      } catch (e) {
        if (isAlreadyExists(e) && expected) throw status(Code.ALREADY_EXISTS, `content ${expected}: already exists`);
        throw e;
      }
      try {
        for (;;) {
          const msg: Record<string, unknown> = { action: req.action, startedAt: toTimestamp(wr.startedAt), updatedAt: toTimestamp(wr.updatedAt), offset: String(wr.offset) };
          const total = Number(req.total || 0);
          if (total > 0) wr.setTotal(total);
          if (req.expected) {
            if (expected && req.expected !== expected) throw invalidArgument(`inconsistent expected digest ${req.expected} != ${expected}`);
            expected = req.expected;
          }
          switch (req.action) {
            case "STAT":
              msg.total = String(wr.total);
              msg.digest = wr.digest();
              break;
            case "WRITE":
            case "COMMIT": {
              const off = Number(req.offset || 0);
              if (off > 0 && off !== wr.offset) throw new ErrDef(Code.OUT_OF_RANGE, `write @${off} must occur at current offset ${wr.offset}`);
              if (off === 0 && wr.offset > 0) wr.truncate(0);
              if (req.data?.length) wr.write(req.data);
              msg.offset = String(wr.offset);
              msg.updatedAt = toTimestamp(wr.updatedAt);
              if (req.action === "COMMIT") {
                let dgst: string;
                try {
                  dgst = wr.commit(wr.total, expected);
                } catch (e) {
                  if (!isAlreadyExists(e)) throw e;
                  dgst = wr.digest();
                }
                commitToNamespace(db, ns, lease, dgst, wr.offset, req.labels ?? {});
                msg.digest = dgst;
                msg.total = String(wr.offset);
              }
              break;
            }
            default:
              throw invalidArgument(`unknown write action ${String(req.action)}`);
          }
          await send(msg);
          next = await it.next();
          if (next.done) return;
          req = next.value;
        }
      } finally {
        wr.close();
      }
    }),
  });
