// npm run build: compile the one executable and the personality symlinks next to it.
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";

const out = join(import.meta.dir, "dist");
const bin = join(out, "bin");
mkdirSync(bin, { recursive: true });

const result = await Bun.build({
  entrypoints: [join(import.meta.dir, "cmd/main.ts")],
  // --smol: a smaller initial heap. Every runc invocation is a fresh process, and this takes ~1.5 ms
  // of kernel work off each start; the daemons trade a little GC time for a smaller footprint.
  compile: { outfile: join(out, "bunker"), execArgv: ["--smol"] },
  minify: true,
  sourcemap: "none",
  bytecode: true,
  target: "bun",
  // Each personality is loaded with import(): split chunks keep one personality's code (gRPC for
  // containerd, say) out of another's start-up, which matters for runc's many short processes.
  format: "esm",
  splitting: true,
});
if (!result.success) {
  for (const l of result.logs) console.error(l);
  process.exit(1);
}
const names = ["docker", "dockerd", "containerd", "containerd-shim-runc-v2", "ctr", "docker-proxy", "docker-init", "runc"];
for (const n of names) {
  rmSync(join(bin, n), { force: true });
  symlinkSync("../bunker", join(bin, n));
}
console.log(`built ${join(out, "bunker")} and ${names.length} personality links in ${bin}`);
