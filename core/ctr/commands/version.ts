// ctr version: the client's version, then the server's (Version and Introspection/Server).
import { err, out } from "../../cli/io";
import { CONTAINERD_REVISION, CONTAINERD_VERSION } from "../../containerd/version";
import type { Command } from "../app";

export const versionCommand: Command = {
  name: "version",
  usage: "print the client and server versions",
  action: async (c) => {
    out(`Client:\n  Version:  ${CONTAINERD_VERSION}\n  Revision: ${CONTAINERD_REVISION}\n  Go version: bun${Bun.version}\n\n`);
    const client = await c.client();
    const v = await client.callRaw<{ version: string; revision: string }>("containerd.services.version.v1.Version", "Version");
    out(`Server:\n  Version:  ${v.version}\n  Revision: ${v.revision}\n`);
    const s = await client.callRaw<{ uuid: string }>("containerd.services.introspection.v1.Introspection", "Server");
    out(`  UUID: ${s.uuid}\n`);
    if (v.version !== CONTAINERD_VERSION) err("WARNING: version mismatch\n");
    if (v.revision !== CONTAINERD_REVISION) err("WARNING: revision mismatch\n");
  },
};
