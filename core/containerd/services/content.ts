// containerd.services.content.v1.Content: containerd's metadata content store over the local
// store (core/content/store.ts). A blob is visible in a namespace once it was committed there
// (or, being already in the store, its writer was opened there with its digest: containerd's
// "shared" policy); its labels live in the namespace's metadata. Ingest refs are namespaced in the
// store as "<namespace>/1/<ref>", as containerd's metadata store names them. A Write session locks its ref (a second session of the same ref
// gets Unavailable `ref ... locked for ...` after a short wait; containerd's clients retry), an
// ingest left by a session that went away is resumed by the next session of its ref at its end,
// and a session finding the blob already committed in the namespace gets AlreadyExists.
import { ContentStore, type IngestStatus, parseDigest, type Writer } from "../../content/store";
import { alreadyExists, Code, ErrDef, failedPrecondition, invalidArgument, isAlreadyExists, notFound, status } from "../errdefs";
import { parseFilters } from "../filters";
import { type Exchange, publishFor } from "../events";
import { bidiStream, defineService, serverStream, unary } from "../grpc";
import { recycle } from "../grpc-recv";
import { type FieldMask, now, type Time, type Timestamp, toTimestamp } from "../types";
import { type ContentRecord, type MetadataDB, addContent, addToRequestLease, deleteContent, ensureNamespace, findContent, getContent, ingestClientRef, ingestStoreRef, listContent, namespaceExists, updateContent } from "../../metadata";

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

/** The store's ref of a client's ingest in a namespace (exported for the diff service). */
export const nsRef = ingestStoreRef;

function statusToProto(ns: string, s: IngestStatus): Status {
  return { startedAt: toTimestamp(s.startedAt), updatedAt: toTimestamp(s.updatedAt), ref: ingestClientRef(ns, s.ref), offset: s.offset, total: s.total, expected: s.expected };
}

/** Make a blob already in the store visible in `ns` (with labels), under the request's lease. */
export function commitToNamespace(db: MetadataDB, ns: string, lease: string | undefined, digest: string, size: number, labels: Record<string, string>): void {
  db.write(() => {
    if (!findContent(db, ns, digest)) addContent(db, ns, { digest, size, labels });
    else if (Object.keys(labels).length) updateContent(db, ns, digest, labels, Object.keys(labels).map((k) => `labels.${k}`));
    addToRequestLease(db, ns, lease, { type: "content", id: digest });
  });
}

/** The next request, or done when the client cancelled (so that the writer's lock is released). */
function nextOrCancel<T>(it: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T>> {
  if (signal.aborted) return Promise.resolve({ done: true, value: undefined });
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve({ done: true, value: undefined });
    signal.addEventListener("abort", onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener("abort", onAbort);
        resolve(r);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/** containerd's metadata namespacedWriter: an ingest in the store, or a blob shared from it. */
interface NamespacedWriter {
  status(): { offset: number; total: number; startedAt: Time; updatedAt: Time };
  digest(): string;
  write(data: Uint8Array): number;
  truncate(): void;
  /** Verify and make the blob visible in the namespace with `labels`. */
  commit(size: number, expected: string, labels: Record<string, string>): void;
  close(): void;
}

/**
 * The metadata store's Writer: AlreadyExists `content <dgst>: already exists` when the namespace
 * has the blob (which then joins the request's lease); a writer over the blob when the shared
 * store has it with the expected size (committing it only makes it visible here); else the
 * store's ingest of `<ns>/<ref>`, opened without the expected digest, locked for the session.
 */
async function openWriter(store: ContentStore, db: MetadataDB, ns: string, lease: string | undefined, ref: string, total: number, expected: string): Promise<NamespacedWriter> {
  let shared: { digest: string; size: number } | undefined;
  if (expected) {
    parseDigest(expected);
    if (findContent(db, ns, expected)) {
      db.write(() => addToRequestLease(db, ns, lease, { type: "content", id: expected }));
      throw alreadyExists(`content ${expected}`);
    }
    if (store.exists(expected)) {
      const size = store.info(expected).size;
      if (!total || total === size) shared = { digest: expected, size };
    }
  }
  // containerd makes the ingest's bucket, and with it the namespace, before any write.
  db.write(() => ensureNamespace(db, ns));
  const sref = nsRef(ns, ref);
  let w: Writer | undefined = shared ? undefined : await store.writerRetrying(sref, { total });
  const started = now();
  const commitRecord = (digest: string, size: number, labels: Record<string, string>) =>
    db.write(() => {
      if (findContent(db, ns, digest)) throw alreadyExists(`content ${digest}`);
      commitToNamespace(db, ns, lease, digest, size, labels);
    });
  // A write or truncate of a shared blob first copies what is kept of it into a real ingest.
  const materialize = (keep: number): Writer => {
    const nw = store.writer(sref, { total: shared!.size });
    try {
      nw.truncate(0);
      if (keep > 0) for (const c of store.chunksSync(shared!.digest)) nw.write(c);
    } catch (e) {
      nw.close();
      throw e;
    }
    shared = undefined;
    return nw;
  };
  return {
    status: () => (w ? { offset: w.offset, total: w.total, startedAt: w.startedAt, updatedAt: w.updatedAt } : { offset: shared!.size, total: shared!.size, startedAt: started, updatedAt: started }),
    digest: () => (w ? w.digest() : shared!.digest),
    write: (data) => {
      w ??= materialize(shared!.size);
      return w.write(data);
    },
    truncate: () => {
      if (w) w.truncate(0);
      else w = materialize(0);
    },
    commit: (size, exp, labels) => {
      if (!w) {
        if (size !== 0 && size !== shared!.size) throw failedPrecondition(`${JSON.stringify(ref)} failed size validation: ${shared!.size} != ${size}`);
        if (exp && exp !== shared!.digest) throw failedPrecondition(`${JSON.stringify(ref)} unexpected digest`);
        commitRecord(shared!.digest, shared!.size, labels);
        return;
      }
      if (size !== 0 && size !== w.offset) throw failedPrecondition(`${JSON.stringify(ref)} failed size validation: ${w.offset} != ${size}`);
      const n = w.offset;
      let dgst: string;
      try {
        dgst = w.commit(n, exp);
      } catch (e) {
        // The store had the blob already (another namespace committed it): the ingest is gone.
        if (!isAlreadyExists(e)) throw e;
        dgst = w.digest();
      }
      commitRecord(dgst, n, labels);
    },
    close: () => w?.close(),
  };
}

export const contentService = (store: ContentStore, db: MetadataDB, events?: Exchange) =>
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
      const all = listContent(db, ctx.namespace(), parseFilters(req.filters));
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
      if (events) publishFor(events, ctx, "/content/delete", "containerd.events.ContentDelete", { digest: req.digest });
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
        if (e instanceof ErrDef && e.code === Code.NOT_FOUND) throw notFound(`could not get status for ref ${JSON.stringify(req.ref)}: reference ${req.ref}`);
        throw e;
      }
      return { status: statusToProto(ns, st) };
    }),

    ListStatuses: unary<{ filters: string[] }, { statuses: Status[] }>((req, ctx) => {
      const ns = ctx.namespace();
      const filter = parseFilters(req.filters);
      // containerd lists the ingests of the namespace's bucket: none once the namespace was
      // deleted (what is left on disk is an orphan for the collector).
      if (!namespaceExists(db, ns)) return { statuses: [] };
      const statuses = store
        .listStatuses()
        .filter((s) => s.ref.startsWith(`${ns}/`))
        .map((s) => statusToProto(ns, s))
        // containerd's status adaptor knows only the ref.
        .filter((s) => filter((path) => (path[0] === "ref" ? [s.ref, true] : ["", false])));
      return { statuses };
    }),

    Abort: unary<{ ref: string }, object>((req, ctx) => {
      try {
        store.abort(nsRef(ctx.namespace(), req.ref));
      } catch (e) {
        if (e instanceof ErrDef && e.code === Code.NOT_FOUND) throw notFound(`reference ${req.ref}`);
        throw e;
      }
      return {};
    }),

    Write: bidiStream<WriteRequest, object>(async (reqs, ctx, send) => {
      const ns = ctx.namespace();
      const lease = ctx.lease();
      const it = reqs[Symbol.asyncIterator]();
      let next = await nextOrCancel(it, ctx.signal);
      if (next.done) return;
      let req = next.value;
      if (!req.ref) throw invalidArgument("first message must have a reference");
      let total = Number(req.total || 0);
      let expected = req.expected || "";
      // This locks the ref for the session (a second writer of it waits a moment, then gets
      // Unavailable; containerd's clients retry until the first is done).
      const wr = await openWriter(store, db, ns, lease, req.ref, total, expected);
      // As containerd's service reuses one response message: fields set once stay set.
      const msg: Record<string, unknown> = {};
      try {
        for (;;) {
          msg.action = req.action;
          const ws = wr.status();
          msg.offset = String(ws.offset);
          if (req.expected) {
            expected = req.expected;
            if (findContent(db, ns, req.expected)) {
              // Committed meanwhile (by another writer of another ref): this ingest is moot.
              wr.close();
              try {
                store.abort(nsRef(ns, req.ref));
              } catch {}
              throw status(Code.ALREADY_EXISTS, `blob with expected digest ${req.expected} exists`);
            }
          }
          if (Number(req.total || 0) > 0) total = Number(req.total);
          switch (req.action) {
            case "STAT":
              msg.digest = wr.digest();
              msg.startedAt = toTimestamp(ws.startedAt);
              msg.updatedAt = toTimestamp(ws.updatedAt);
              msg.total = String(total);
              break;
            case "WRITE":
            case "COMMIT": {
              const off = Number(req.offset || 0);
              if (off > 0 && off !== ws.offset) throw new ErrDef(Code.OUT_OF_RANGE, `write @${off} must occur at current offset ${ws.offset}`);
              let offset = ws.offset;
              if (off === 0 && ws.offset > 0) {
                wr.truncate();
                offset = 0;
              }
              if (req.data?.length) {
                offset += wr.write(req.data);
                recycle(req.data); // written and hashed: its receive buffer can take the next message
              }
              msg.offset = String(offset);
              if (req.action === "COMMIT") wr.commit(total, expected, req.labels ?? {});
              msg.digest = wr.digest();
              break;
            }
            default:
              throw invalidArgument(`unknown write action ${String(req.action)}`);
          }
          await send({ ...msg });
          next = await nextOrCancel(it, ctx.signal);
          if (next.done) return;
          req = next.value;
        }
      } finally {
        wr.close();
      }
    }),
  });
