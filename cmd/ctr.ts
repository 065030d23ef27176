// ctr: containerd's debug client, speaking containerd's gRPC API to any containerd (ours or the real one).
import { runApp } from "../core/ctr/app";
import { imagesCommand } from "../core/ctr/commands/images";
import { leasesCommand } from "../core/ctr/commands/leases";
import { namespacesCommand } from "../core/ctr/commands/namespaces";
import { pluginsCommand } from "../core/ctr/commands/plugins";
import { versionCommand } from "../core/ctr/commands/version";

export const COMMANDS = [pluginsCommand, versionCommand, imagesCommand, leasesCommand, namespacesCommand];

export function main(argv: string[]): Promise<number> {
  return runApp(argv, COMMANDS);
}
