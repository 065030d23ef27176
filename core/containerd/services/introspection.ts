// containerd.services.introspection.v1.Introspection: the plugins we loaded, and the server's
// identity (a UUID kept under the plugin's root, the pid and its pid namespace).
import { mkdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "../errdefs";
import { parseFilters } from "../filters";
import { defineService, unary } from "../grpc";
import type { LoadedPlugin } from "../plugin";
import type { Platform } from "../types";

export interface PluginInfo {
  type: string;
  id: string;
  requires: string[];
  platforms: Platform[];
  exports: Record<string, string>;
  capabilities: string[];
  initErr: { code: number; message: string; details: [] } | null;
}

export interface ServerResponse {
  uuid: string;
  pid: number | string;
  pidns: number | string;
  deprecations: [];
}

/** The server's UUID: read from <dir>/uuid, created (atomically) on first start. */
export function serverUUID(dir: string): string {
  const path = join(dir, "uuid");
  try {
    const u = readFileSync(path, "utf8").trim();
    if (u) return u;
  } catch {}
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  const u = crypto.randomUUID();
  writeFileSync(path + ".tmp", u, { mode: 0o644 });
  renameSync(path + ".tmp", path);
  return u;
}

function pidNamespace(): number {
  try {
    return Number(/\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/pid"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export function pluginInfo(p: LoadedPlugin): PluginInfo {
  return {
    type: p.reg.type,
    id: p.reg.id,
    requires: p.reg.requires ?? [],
    platforms: p.platforms,
    exports: p.exports,
    capabilities: p.capabilities,
    initErr: p.error ? { code: Code.UNKNOWN, message: p.error.message, details: [] } : null,
  };
}

export const introspectionService = (plugins: () => LoadedPlugin[], uuid: string) =>
  defineService("containerd.services.introspection.v1.Introspection", {
    Plugins: unary<{ filters: string[] }, { plugins: PluginInfo[] }>((req) => {
      // containerd wraps the filters' InvalidArgument once more ("...: invalid argument: invalid argument").
      const filter = parseFilters(req.filters, { doubled: true });
      const infos = plugins()
        .filter((p) => !p.reg.hidden)
        .map(pluginInfo)
        // containerd's plugin adaptor knows the type and the id only (platforms, capabilities
        // and exports never match).
        .filter((p) => filter((path) => (path[0] === "type" ? [p.type, p.type.length > 0] : path[0] === "id" ? [p.id, p.id.length > 0] : ["", false])));
      return { plugins: infos };
    }),
    Server: unary<object, ServerResponse>(() => ({ uuid, pid: process.pid, pidns: pidNamespace(), deprecations: [] })),
  });
