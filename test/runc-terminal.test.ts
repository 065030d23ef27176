// `runc run` in the foreground with process.terminal: true — the seed's interactive session. A
// python3 driver gives runc a real controlling terminal (a pty), types into it, resizes it, and
// checks that runc put the terminal back the way it found it.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ctx, exec, makeBundle, newId, RUNC, useHarness } from "./harness";

useHarness();

const DRIVER = join(import.meta.dir, "fixtures/pty-drive.py");

interface Driven {
  code: number;
  output: string;
  restored: boolean;
}

function drive(args: string[], cmd: string[]): Driven {
  const r = exec(["python3", DRIVER, ...args, "--", ...cmd], { timeoutMs: 30000 });
  if (r.code !== 0) throw new Error(`pty driver failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function interactiveBundle(args = ["sh"]) {
  return makeBundle((s) => {
    s.process.terminal = true;
    s.process.args = args;
  });
}

describe("runc run with a terminal", () => {
  test("the seed's session: a shell that is PID 1, on the container's own pty; exit status passed on", () => {
    const b = interactiveBundle();
    const r = drive(["--input", "ps aux; tty; echo TERM=$TERM; exit 7\n"], [RUNC, "--root", ctx().root, "run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(7);
    const lines = r.output.split(/\r?\n/);
    // busybox ps aux: "    1 root      0:00 sh"
    expect(lines.some((l) => /^\s*1\s+root\s+.*\bsh\s*$/.test(l))).toBe(true);
    expect(lines).toContain("/dev/pts/0");
    expect(lines).toContain("TERM=xterm");
    expect(r.restored).toBe(true);
  });

  test("the window size is the user's terminal's, and a resize reaches the container", () => {
    const b = interactiveBundle(["sh", "-c", "stty size; sleep 1.5; stty size"]);
    const r = drive(["--rows", "37", "--cols", "91", "--resize-after", "0.8", "--rows2", "50", "--cols2", "120"], [RUNC, "--root", ctx().root, "run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(0);
    const sizes = r.output.split(/\r?\n/).filter((l) => /^\d+ \d+$/.test(l));
    expect(sizes).toEqual(["37 91", "50 120"]);
    expect(r.restored).toBe(true);
  });

  test("Ctrl-C goes to the container (raw mode), not to runc", () => {
    const b = interactiveBundle(["sh", "-c", "trap 'echo got-INT; exit 5' INT; echo ready; sleep 10 & wait"]);
    const r = drive(["--input", "\x03", "--input-delay", "1"], [RUNC, "--root", ctx().root, "run", "--bundle", b.dir, newId()]);
    expect(r.output).toContain("got-INT");
    expect(r.code).toBe(5);
    expect(r.restored).toBe(true);
  });

  test("terminal modes are restored when the container fails to start", () => {
    const b = interactiveBundle(["/no/such/program"]);
    const r = drive([], [RUNC, "--root", ctx().root, "run", "--bundle", b.dir, newId()]);
    expect(r.code).toBe(1);
    expect(r.restored).toBe(true);
  });
});
