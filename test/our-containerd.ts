// Our containerd, started for a test file in its own temporary root, and torn down (process,
// mounts, files) afterwards even when tests failed.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { exec, type ExecResult, rand, TMP_PREFIX, waitFor } from "./harness";

export const OUR_CONTAINERD = join(import.meta.dir, "..", "dist", "bin", "containerd");
export const OUR_CTR = join(import.meta.dir, "..", "dist", "bin", "ctr");
export const REAL_CTR = "/usr/bin/ctr";

export class OurContainerd {
  readonly dir = `${TMP_PREFIX}${rand()}`;
  readonly root = join(this.dir, "root");
  readonly address = join(this.dir, "run", "containerd.sock");
  readonly logFile = join(this.dir, "containerd.log");
  proc?: ReturnType<typeof Bun.spawn>;

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    // A restart appends to the same log: only a boot message after this point counts.
    const from = this.log().length;
    const fd = openSync(this.logFile, "a");
    this.proc = Bun.spawn([OUR_CONTAINERD, "--root", this.root, "--state", join(this.dir, "state"), "--address", this.address, "--log-level", "debug"], { stdin: "ignore", stdout: fd, stderr: fd });
    closeSync(fd);
    const up = await waitFor(() => this.log().slice(from).includes("successfully booted") || this.proc!.exitCode !== null, 15_000, 20);
    if (!up || this.proc.exitCode !== null) throw new Error(`our containerd did not start:\n${this.log().slice(from)}`);
  }

  async kill(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill("SIGKILL");
      await p.exited;
    }
  }

  log(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  /** Runs a ctr binary (ours or Debian's) against this daemon in namespace `ns`. */
  run(ctr: string, ns: string, args: string[]): ExecResult {
    return exec([ctr, "--address", this.address, "-n", ns, ...args], { timeoutMs: 60_000 });
  }

  /** As run, but a failure throws with the daemon's log tail. */
  runOk(ctr: string, ns: string, args: string[]): string {
    const r = this.run(ctr, ns, args);
    if (r.code !== 0) throw new Error(`${ctr} ${args.join(" ")} failed (${r.code}): ${r.stderr}\n--- daemon log tail:\n${this.log().split("\n").slice(-20).join("\n")}`);
    return r.stdout;
  }

  async cleanup(): Promise<void> {
    await this.kill();
    // Nothing of ours should still be mounted under the root; unmount defensively before removing.
    const mounts = readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(this.dir)).reverse();
    for (const m of mounts) exec(["umount", "-l", m]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
