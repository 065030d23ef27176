// Two commands on one container at once must not corrupt it: each container has a lock, and state is
// replaced by rename, so readers see a whole old or a whole new state.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ctx, errMsg, makeBundle, newId, RUNC, runcOk, state, tempDir, useHarness } from "./harness";

useHarness();

let seq = 0;
/** Output goes to files: a created container inherits runc's stdio and would hold a pipe open. */
async function runcAsync(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = join(tempDir("out"), String(++seq));
  const p = Bun.spawn([RUNC, "--root", ctx().root, ...args], { stdout: Bun.file(base + ".out"), stderr: Bun.file(base + ".err"), stdin: "ignore" });
  const code = await p.exited;
  return { code, stdout: readFileSync(base + ".out", "utf8"), stderr: readFileSync(base + ".err", "utf8") };
}

describe("commands racing on one container", () => {
  test("of several concurrent starts exactly one wins; the rest say it is already running", async () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["create", "--bundle", b.dir, id]);
    const results = await Promise.all(Array.from({ length: 4 }, () => runcAsync(["start", id])));
    expect(results.filter((r) => r.code === 0).length).toBe(1);
    for (const r of results.filter((r) => r.code !== 0)) expect(errMsg(r.stderr)).toBe("cannot start an already running container");
    expect(state(id).status).toBe("running");
  });

  test("of several concurrent creates with one id exactly one wins", async () => {
    const b = makeBundle();
    const id = newId();
    const results = await Promise.all(Array.from({ length: 4 }, () => runcAsync(["create", "--bundle", b.dir, id])));
    expect(results.filter((r) => r.code === 0).length).toBe(1);
    for (const r of results.filter((r) => r.code !== 0)) expect(errMsg(r.stderr)).toBe("runc create failed: container with given ID already exists");
    expect(state(id).status).toBe("created");
  });

  test("state read while delete --force runs is whole JSON or 'does not exist', never torn", async () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["run", "-d", "--bundle", b.dir, id]);
    const readers = Array.from({ length: 8 }, () => runcAsync(["state", id]));
    const [del, ...reads] = await Promise.all([runcAsync(["delete", "--force", id]), ...readers]);
    expect(del.code).toBe(0);
    for (const r of reads) {
      if (r.code === 0) expect(JSON.parse(r.stdout).id).toBe(id);
      else expect(errMsg(r.stderr)).toBe("container does not exist");
    }
    expect((await runcAsync(["state", id])).code).toBe(1);
  });

  test("kill and delete --force racing leave nothing behind", async () => {
    const b = makeBundle();
    const id = newId();
    runcOk(["run", "-d", "--bundle", b.dir, id]);
    const [k, d] = await Promise.all([runcAsync(["kill", id, "KILL"]), runcAsync(["delete", "--force", id])]);
    expect(d.code).toBe(0);
    if (k.code !== 0) expect(["container not running", "container does not exist"]).toContain(errMsg(k.stderr));
    expect((await runcAsync(["list", "-q"])).stdout).toBe("");
  });
});
