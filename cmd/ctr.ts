// ctr: containerd's debug client, speaking containerd's gRPC API to any containerd (ours or the real one).
import { runApp } from "../core/ctr/app";
import { imagesCommand } from "../core/ctr/commands/images";
import { contentCommand, sortContentSubcommands } from "../core/ctr/commands/content";
import { contentFetchCommand } from "../core/ctr/commands/pull";
import { eventsCommand } from "../core/ctr/commands/events";
import { snapshotsCommand } from "../core/ctr/commands/snapshots";
import { leasesCommand } from "../core/ctr/commands/leases";
import { namespacesCommand } from "../core/ctr/commands/namespaces";
import { pluginsCommand } from "../core/ctr/commands/plugins";
import { versionCommand } from "../core/ctr/commands/version";

// ctr content fetch lives with pull (core/ctr/commands/pull.ts).
if (!contentCommand.subcommands?.some((c) => c.name === "fetch")) contentCommand.subcommands?.push(contentFetchCommand);
sortContentSubcommands();

// In any order: the app lists them in ctr 1.6's order.
export const COMMANDS = [pluginsCommand, versionCommand, contentCommand, eventsCommand, imagesCommand, leasesCommand, namespacesCommand, snapshotsCommand];

export function main(argv: string[]): Promise<number> {
  return runApp(argv, COMMANDS);
}
