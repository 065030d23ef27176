// containerd's API as protobufjs reflection objects, built from the .proto text embedded in the
// binary (no file is read at run time). Everything lives in one Root, so any service, message or
// event type is found by its full name ("containerd.services.images.v1.Images", "containerd.types.Mount").
//
// Conventions for the plain objects the rest of the code sees (see grpc.ts `decode`/`encode`):
//   field names in lowerCamelCase (media_type -> mediaType), int64/uint64 as decimal strings,
//   enums as their names ("COMMITTED"), bytes as Uint8Array, maps as plain objects, absent
//   sub-messages as null, absent repeated fields as [].
import protobuf from "protobufjs";
import Long from "long";

import googleProtobuf from "./google/protobuf.proto" with { type: "text" };
import googleRpc from "./google/rpc.proto" with { type: "text" };
import googleHealth from "./google/health.proto" with { type: "text" };
import typesMount from "./types/mount.proto" with { type: "text" };
import typesDescriptor from "./types/descriptor.proto" with { type: "text" };
import typesPlatform from "./types/platform.proto" with { type: "text" };
import typesMetrics from "./types/metrics.proto" with { type: "text" };
import typesTask from "./types/task.proto" with { type: "text" };
import version from "./services/version.proto" with { type: "text" };
import introspection from "./services/introspection.proto" with { type: "text" };
import namespaces from "./services/namespaces.proto" with { type: "text" };
import images from "./services/images.proto" with { type: "text" };
import leases from "./services/leases.proto" with { type: "text" };
import content from "./services/content.proto" with { type: "text" };
import snapshots from "./services/snapshots.proto" with { type: "text" };
import diff from "./services/diff.proto" with { type: "text" };
import events from "./services/events.proto" with { type: "text" };
import containers from "./services/containers.proto" with { type: "text" };
import tasks from "./services/tasks.proto" with { type: "text" };
import eventTypes from "./events/events.proto" with { type: "text" };
import imageEventTypes from "./events/images.proto" with { type: "text" };

/** Every embedded file, by the name other files import it under. */
export const PROTO_FILES: Record<string, string> = {
  "google/protobuf.proto": googleProtobuf,
  "google/rpc.proto": googleRpc,
  "google/health.proto": googleHealth,
  "types/mount.proto": typesMount,
  "types/descriptor.proto": typesDescriptor,
  "types/platform.proto": typesPlatform,
  "types/metrics.proto": typesMetrics,
  "types/task.proto": typesTask,
  "services/version.proto": version,
  "services/introspection.proto": introspection,
  "services/namespaces.proto": namespaces,
  "services/images.proto": images,
  "services/leases.proto": leases,
  "services/content.proto": content,
  "services/snapshots.proto": snapshots,
  "services/diff.proto": diff,
  "services/events.proto": events,
  "services/containers.proto": containers,
  "services/tasks.proto": tasks,
  "events/events.proto": eventTypes,
  "events/images.proto": imageEventTypes,
};

// int64 fields decode exactly (as Long, then to strings) only when protobufjs has a Long
// implementation; a bundled binary has no `require("long")` for it to find, so hand it over.
protobuf.util.Long = Long;
protobuf.configure();

// Files are parsed on demand, with their imports, into one shared Root: a short-lived client such as
// `ctr version` parses the 3 files it needs (~5 ms) rather than all of them (~40 ms cold).
const root = new protobuf.Root();
const loaded = new Set<string>();
const IMPORT_RE = /^import\s+"([^"]+)";/gm;
const PACKAGE_RE = /^package\s+([\w.]+);/m;

/** package name -> files declaring it */
const byPackage = new Map<string, string[]>();
for (const [name, text] of Object.entries(PROTO_FILES)) {
  const pkg = PACKAGE_RE.exec(text)?.[1] ?? "";
  byPackage.set(pkg, [...(byPackage.get(pkg) ?? []), name]);
}

function load(name: string): void {
  if (loaded.has(name)) return;
  const text = PROTO_FILES[name];
  if (text === undefined) throw new Error(`proto: no embedded file ${name}`);
  loaded.add(name);
  for (const m of text.matchAll(IMPORT_RE)) load(m[1]!);
  try {
    protobuf.parse(text, root, { keepCase: false });
  } catch (e: any) {
    throw new Error(`proto ${name}: ${e?.message ?? e}`);
  }
}

/** Load the files of the package a full name (service, message, nested message) belongs to. */
function loadFor(fullName: string): void {
  const name = fullName.replace(/^\./, "");
  let best = "";
  for (const pkg of byPackage.keys()) if (name.startsWith(pkg + ".") && pkg.length > best.length) best = pkg;
  for (const f of byPackage.get(best) ?? []) load(f);
}

/** The Root with every file of the API loaded (the daemon; tests). */
export function protoRoot(): protobuf.Root {
  for (const name of Object.keys(PROTO_FILES)) load(name);
  return root;
}

export function lookupService(fullName: string): protobuf.Service {
  loadFor(fullName);
  return root.lookupService(fullName);
}

export function lookupType(fullName: string): protobuf.Type {
  loadFor(fullName);
  return root.lookupType(fullName);
}
