// containerd.services.namespaces.v1.Namespaces (not namespaced itself), with containerd's events.
import { type Exchange, publishFor } from "../events";
import { status, Code, messageOf, untranslated } from "../errdefs";
import type { CallContext } from "../grpc";
import { defineService, unary } from "../grpc";
import type { FieldMask } from "../types";
import {
  type MetadataDB,
  createNamespace,
  deleteNamespace,
  listNamespaces,
  namespaceLabels,
  replaceNamespaceLabels,
  setNamespaceLabel,
} from "../../metadata";

export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

/**
 * containerd publishes Create's and Update's events in the caller's namespace, after the change:
 * a caller without a valid namespace gets the exchange's error (code Unknown), the change made.
 */
function publishInCaller(events: Exchange, ctx: CallContext, topic: string, type: string, event: object): void {
  try {
    ctx.namespace();
  } catch (e) {
    throw status(Code.UNKNOWN, `failed publishing event: ${messageOf(e)}`);
  }
  publishFor(events, ctx, topic, type, event);
}

export const namespacesService = (db: MetadataDB, events: Exchange) =>
  defineService("containerd.services.namespaces.v1.Namespaces", {
    // Like containerd, Get answers for any name (with no labels when the namespace does not exist).
    Get: unary<{ name: string }, { namespace: Namespace }>((req) => ({ namespace: { name: req.name, labels: namespaceLabels(db, req.name) } })),

    List: unary<{ filter: string }, { namespaces: Namespace[] }>(() =>
      db.read(() => ({ namespaces: listNamespaces(db).map((name) => ({ name, labels: namespaceLabels(db, name) })) })),
    ),

    Create: unary<{ namespace: Namespace | null }, { namespace: Namespace }>((req, ctx) => {
      const ns = req.namespace ?? { name: "", labels: {} };
      createNamespace(db, ns.name, ns.labels);
      publishInCaller(events, ctx, "/namespaces/create", "containerd.events.NamespaceCreate", { name: ns.name, labels: ns.labels });
      return { namespace: ns };
    }),

    Update: unary<{ namespace: Namespace | null; updateMask: FieldMask | null }, { namespace: Namespace }>((req, ctx) => {
      const ns = req.namespace ?? { name: "", labels: {} };
      const paths = req.updateMask?.paths ?? [];
      db.write(() => {
        if (paths.length) {
          for (const p of paths) {
            if (!p.startsWith("labels.")) throw status(Code.INVALID_ARGUMENT, `cannot update ${JSON.stringify(p)} field`);
            const key = p.slice("labels.".length);
            // containerd returns the store's SetLabel errors untranslated (code Unknown).
            untranslated(() => setNamespaceLabel(db, ns.name, key, ns.labels[key] ?? ""));
          }
        } else untranslated(() => replaceNamespaceLabels(db, ns.name, ns.labels));
      });
      publishInCaller(events, ctx, "/namespaces/update", "containerd.events.NamespaceUpdate", { name: ns.name, labels: ns.labels });
      return { namespace: ns };
    }),

    Delete: unary<{ name: string }, object>((req, ctx) => {
      deleteNamespace(db, req.name);
      // containerd publishes the deletion in the deleted namespace (create and update in the caller's).
      publishFor(events, { ...ctx, namespace: () => req.name }, "/namespaces/delete", "containerd.events.NamespaceDelete", { name: req.name });
      return {};
    }),
  });
