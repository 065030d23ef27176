// The plugins our containerd loads, in order. Add a plugin here to serve a new service (see
// plugin.ts for the pattern); containerd services nobody serves get UNIMPLEMENTED stubs.
import { MetadataDB } from "../metadata";
import { Exchange } from "./events";
import type { GrpcPlugin, LoadedPlugin, PluginRegistration } from "./plugin";
import { PluginType } from "./plugin";
import { eventsService } from "./services/events";
import { healthService } from "./services/health";
import { imagesService } from "./services/images";
import { introspectionService, serverUUID } from "./services/introspection";
import { leasesService } from "./services/leases";
import { namespacesService } from "./services/namespaces";
import { versionService } from "./services/version";
import { contentService } from "./services/content";
import { diffService } from "./services/diff";
import { snapshotsService } from "./services/snapshots";
import { ContentStore } from "../content/store";
import { openSnapshotter, type Snapshotter } from "../snapshots";
import { SkipPlugin } from "./plugin";
import { GarbageCollector } from "./gc";
import { GCScheduler, schedulerConfig } from "./gc-scheduler";

/** The GC scheduler when its plugin loaded (it may be disabled). */
const gcOf = (ic: { get<T>(type: string, id?: string): T }): GCScheduler | undefined => {
  try {
    return ic.get<GCScheduler>(PluginType.GC, "scheduler");
  } catch {
    return undefined;
  }
};

/** Every containerd gRPC service; those no plugin serves are stubbed. */
export const CONTAINERD_SERVICES = [
  "containerd.services.version.v1.Version",
  "containerd.services.introspection.v1.Introspection",
  "containerd.services.namespaces.v1.Namespaces",
  "containerd.services.images.v1.Images",
  "containerd.services.leases.v1.Leases",
  "containerd.services.content.v1.Content",
  "containerd.services.snapshots.v1.Snapshots",
  "containerd.services.diff.v1.Diff",
  "containerd.services.events.v1.Events",
  "containerd.services.containers.v1.Containers",
  "containerd.services.tasks.v1.Tasks",
  "grpc.health.v1.Health",
];

/** `loaded` gives the introspection service the daemon's plugins (as loaded so far). */
export function builtinPlugins(loaded: () => LoadedPlugin[]): PluginRegistration[] {
  return [
    {
      type: PluginType.Metadata,
      id: "sqlite",
      init: (ic) => {
        const db = MetadataDB.open(ic.config.root);
        ic.exports.path = db.path;
        ic.exports.policy = "shared";
        ic.onClose(() => db.close());
        return db;
      },
    },
    {
      type: PluginType.Event,
      id: "exchange",
      init: (ic) => {
        const ex = new Exchange();
        ic.onStop(() => ex.close());
        return ex;
      },
    },
    {
      type: PluginType.Content,
      id: "content",
      init: (ic) => {
        ic.exports.root = ic.root;
        return new ContentStore(ic.root);
      },
    },
    ...(["overlayfs", "native"] as const).map(
      (name): PluginRegistration => ({
        type: PluginType.Snapshot,
        id: name,
        init: async (ic) => {
          ic.exports.root = ic.root;
          let sn: Snapshotter;
          try {
            sn = await openSnapshotter(name, ic.config.root);
          } catch (e) {
            throw new SkipPlugin(`${name} snapshotter: ${(e as Error).message}`);
          }
          ic.onClose(() => sn.close());
          return sn;
        },
      }),
    ),
    {
      type: PluginType.Differ,
      id: "walking",
      requires: [PluginType.Content, PluginType.Metadata],
      init: () => ({}),
    },
    {
      // containerd's garbage collection (gc.ts) and its scheduler (gc-scheduler.ts).
      type: PluginType.GC,
      id: "scheduler",
      requires: [PluginType.Metadata, PluginType.Content, PluginType.Snapshot],
      init: (ic) => {
        const gc = new GarbageCollector(ic.get(PluginType.Metadata), ic.get(PluginType.Content), ic.getAll<Snapshotter>(PluginType.Snapshot), ic.log);
        const s = new GCScheduler(gc, schedulerConfig(ic.pluginConfig));
        s.start();
        ic.onStop(() => s.stop());
        return s;
      },
    },
    {
      type: PluginType.GRPC,
      id: "content",
      requires: [PluginType.Content, PluginType.Metadata],
      init: (ic): GrpcPlugin => ({ services: [contentService(ic.get(PluginType.Content), ic.get(PluginType.Metadata))] }),
    },
    {
      type: PluginType.GRPC,
      id: "snapshots",
      requires: [PluginType.Snapshot, PluginType.Metadata],
      init: (ic): GrpcPlugin => ({ services: [snapshotsService(ic.getAll<Snapshotter>(PluginType.Snapshot), ic.get(PluginType.Metadata))] }),
    },
    {
      type: PluginType.GRPC,
      id: "diff",
      requires: [PluginType.Differ, PluginType.Content, PluginType.Metadata],
      init: (ic): GrpcPlugin => ({ services: [diffService(ic.get(PluginType.Content), ic.get(PluginType.Metadata))] }),
    },
    {
      type: PluginType.GRPC,
      id: "introspection",
      init: (ic): GrpcPlugin => ({ services: [introspectionService(loaded, serverUUID(ic.root))] }),
    },
    {
      type: PluginType.GRPC,
      id: "events",
      requires: [PluginType.Event],
      init: (ic): GrpcPlugin => ({ services: [eventsService(ic.get(PluginType.Event))] }),
    },
    {
      type: PluginType.GRPC,
      id: "healthcheck",
      init: (): GrpcPlugin => ({ services: [healthService()] }),
    },
    {
      type: PluginType.GRPC,
      id: "images",
      requires: [PluginType.Metadata, PluginType.Event],
      init: (ic): GrpcPlugin => ({ services: [imagesService(ic.get(PluginType.Metadata), ic.get(PluginType.Event), gcOf(ic))] }),
    },
    {
      type: PluginType.GRPC,
      id: "leases",
      requires: [PluginType.Metadata],
      init: (ic): GrpcPlugin => ({ services: [leasesService(ic.get(PluginType.Metadata), gcOf(ic))] }),
    },
    {
      type: PluginType.GRPC,
      id: "namespaces",
      requires: [PluginType.Metadata, PluginType.Event],
      init: (ic): GrpcPlugin => ({ services: [namespacesService(ic.get(PluginType.Metadata), ic.get(PluginType.Event))] }),
    },
    {
      type: PluginType.GRPC,
      id: "version",
      init: (): GrpcPlugin => ({ services: [versionService()] }),
    },
  ];
}
