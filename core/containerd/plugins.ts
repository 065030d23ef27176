// The plugins our containerd loads, in order. Add a plugin here to serve a new service (see
// plugin.ts for the pattern); containerd services nobody serves get UNIMPLEMENTED stubs.
import { MetadataDB } from "../metadata";
import { Exchange } from "./events";
import type { GrpcPlugin, LoadedPlugin, PluginRegistration } from "./plugin";
import { hostPlatform, PluginType } from "./plugin";
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

/** Go's time.Duration String() of whole milliseconds: "0s", "100ms", "1.5s", "1m30s". */
function goDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sec = ((ms % 60_000) / 1000).toString();
  return `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${sec}s`;
}

/**
 * containerd's io.containerd.service.v1 plugins for the services we have: listed as containerd
 * lists them (the gRPC plugins require them); the gRPC plugins do the work.
 */
const SERVICE_PLUGINS: [id: string, requires: string[]][] = [
  ["introspection-service", []],
  ["content-service", [PluginType.Event, PluginType.Metadata]],
  ["diff-service", [PluginType.Differ]],
  ["images-service", [PluginType.Metadata, PluginType.GC]],
  ["leases-service", [PluginType.Metadata]],
  ["namespaces-service", [PluginType.Event, PluginType.Metadata]],
  ["snapshots-service", [PluginType.Event, PluginType.Metadata]],
];

/**
 * `loaded` gives the introspection service the daemon's plugins (as loaded so far).
 *
 * The order, the requirements, platforms and exports are containerd 1.6's (what `ctr plugins ls
 * [-d]` shows), for the plugins we have; the metadata plugin is "sqlite" (not bolt: its meta.db is
 * a SQLite database).
 */
export function builtinPlugins(loaded: () => LoadedPlugin[]): PluginRegistration[] {
  const viaService = [PluginType.Service];
  return [
    {
      type: PluginType.Content,
      id: "content",
      init: (ic) => {
        ic.exports.root = ic.root;
        return new ContentStore(ic.root);
      },
    },
    ...(["native", "overlayfs"] as const).map(
      (name): PluginRegistration => ({
        type: PluginType.Snapshot,
        id: name,
        init: async (ic) => {
          ic.platforms.push(hostPlatform());
          // containerd's native snapshotter exports nothing; overlayfs its root.
          if (name === "overlayfs") ic.exports.root = ic.root;
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
      type: PluginType.Metadata,
      id: "sqlite",
      requires: [PluginType.Content, PluginType.Snapshot],
      init: (ic) => {
        const db = MetadataDB.open(ic.config.root);
        ic.exports.path = db.path;
        ic.exports.policy = "shared";
        ic.onClose(() => db.close());
        return db;
      },
    },
    {
      type: PluginType.Differ,
      id: "walking",
      requires: [PluginType.Metadata],
      init: (ic) => {
        ic.platforms.push(hostPlatform());
        return {};
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
      // containerd's garbage collection (gc.ts) and its scheduler (gc-scheduler.ts).
      type: PluginType.GC,
      id: "scheduler",
      requires: [PluginType.Metadata],
      init: (ic) => {
        const gc = new GarbageCollector(ic.get(PluginType.Metadata), ic.get(PluginType.Content), ic.getAll<Snapshotter>(PluginType.Snapshot), ic.log);
        const cfg = schedulerConfig(ic.pluginConfig);
        Object.assign(ic.exports, {
          PauseThreshold: String(cfg.pauseThreshold),
          DeletionThreshold: String(cfg.deletionThreshold),
          MutationThreshold: String(cfg.mutationThreshold),
          ScheduleDelay: goDuration(cfg.scheduleDelayMs),
        });
        const s = new GCScheduler(gc, cfg);
        s.start();
        ic.onStop(() => s.stop());
        return s;
      },
    },
    ...SERVICE_PLUGINS.map(([id, requires]): PluginRegistration => ({ type: PluginType.Service, id, ...(requires.length ? { requires } : {}), init: () => ({}) })),
    {
      type: PluginType.GRPC,
      id: "introspection",
      requires: viaService,
      init: (ic): GrpcPlugin => ({ services: [introspectionService(loaded, serverUUID(ic.root))] }),
    },
    {
      type: PluginType.GRPC,
      id: "content",
      requires: viaService,
      init: (ic): GrpcPlugin => ({ services: [contentService(ic.get(PluginType.Content), ic.get(PluginType.Metadata), ic.get(PluginType.Event))] }),
    },
    {
      type: PluginType.GRPC,
      id: "diff",
      requires: viaService,
      init: (ic): GrpcPlugin => ({ services: [diffService(ic.get(PluginType.Content), ic.get(PluginType.Metadata))] }),
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
      requires: viaService,
      init: (ic): GrpcPlugin => ({ services: [imagesService(ic.get(PluginType.Metadata), ic.get(PluginType.Event), gcOf(ic))] }),
    },
    {
      type: PluginType.GRPC,
      id: "leases",
      requires: viaService,
      init: (ic): GrpcPlugin => ({ services: [leasesService(ic.get(PluginType.Metadata), gcOf(ic))] }),
    },
    {
      type: PluginType.GRPC,
      id: "namespaces",
      requires: viaService,
      init: (ic): GrpcPlugin => ({ services: [namespacesService(ic.get(PluginType.Metadata), ic.get(PluginType.Event))] }),
    },
    {
      type: PluginType.GRPC,
      id: "snapshots",
      requires: viaService,
      init: (ic): GrpcPlugin => ({ services: [snapshotsService(ic.getAll<Snapshotter>(PluginType.Snapshot), ic.get(PluginType.Metadata), ic.get(PluginType.Event))] }),
    },
    {
      type: PluginType.GRPC,
      id: "version",
      init: (): GrpcPlugin => ({ services: [versionService()] }),
    },
  ];
}
