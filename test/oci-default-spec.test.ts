// defaultSpec/rootlessSpec must reproduce what the real runc writes, byte for byte, because tools
// (and people diffing bundles) compare our `runc spec` output against the reference runc's.

import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultSpec, OCI_VERSION, rootlessSpec, specJSON } from "../core/oci/default-spec";

const RUNC = "/usr/sbin/runc";
const haveRunc = existsSync(RUNC);
if (!haveRunc) console.warn(`skipping byte-for-byte comparison: ${RUNC} not found`);

/** Runs the reference runc's `spec` in a scratch directory and returns the file it wrote. */
function referenceSpec(...flags: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "runc-spec-"));
  try {
    const r = Bun.spawnSync([RUNC, "spec", ...flags], { cwd: dir, stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`runc spec ${flags.join(" ")}: ${r.stderr.toString()}`);
    return readFileSync(join(dir, "config.json"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!haveRunc)("matches the reference runc", () => {
  test("runc spec", () => {
    expect(specJSON(defaultSpec())).toBe(referenceSpec());
  });

  test("runc spec --rootless", () => {
    expect(specJSON(rootlessSpec())).toBe(referenceSpec("--rootless"));
  });
});

describe("defaultSpec", () => {
  test("carries runc 1.1.5's ociVersion", () => {
    expect(defaultSpec().ociVersion).toBe(OCI_VERSION);
    expect(OCI_VERSION).toBe("1.0.2-dev");
  });

  test("returns independent copies", () => {
    const a = defaultSpec();
    a.process!.args!.push("-c");
    a.mounts![1]!.options!.length = 0;
    expect(defaultSpec().process!.args).toEqual(["sh"]);
    expect(defaultSpec().mounts![1]!.options!.length).toBe(4);
  });
});

describe("rootlessSpec", () => {
  const spec = rootlessSpec({ uid: 1000, gid: 1001 });

  test("maps the given ids to root and swaps the network namespace for a user one", () => {
    expect(spec.linux!.uidMappings).toEqual([{ containerID: 0, hostID: 1000, size: 1 }]);
    expect(spec.linux!.gidMappings).toEqual([{ containerID: 0, hostID: 1001, size: 1 }]);
    expect(spec.linux!.namespaces!.map((n) => n.type)).toEqual(["pid", "ipc", "uts", "mount", "user"]);
    expect(spec.linux!.resources).toBeUndefined();
  });

  test("bind-mounts /sys and drops uid=/gid= options", () => {
    const sys = spec.mounts!.find((m) => m.destination === "/sys")!;
    expect(sys).toEqual({ destination: "/sys", type: "none", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"] });
    const pts = spec.mounts!.find((m) => m.destination === "/dev/pts")!;
    expect(pts.options).not.toContain("gid=5");
    expect("options" in spec.mounts![0]!).toBe(false);
  });
});

describe("specJSON", () => {
  const withArg = (arg: string): string => {
    const s = defaultSpec();
    s.process!.args = [arg];
    return specJSON(s);
  };

  test("uses tabs and no trailing newline", () => {
    const out = specJSON(defaultSpec());
    expect(out.startsWith('{\n\t"ociVersion": "1.0.2-dev",\n\t"process": {\n\t\t"terminal": true,')).toBe(true);
    expect(out.endsWith("\n\t}\n}")).toBe(true);
  });

  test("escapes like Go's encoder", () => {
    expect(withArg("a<b>&c")).toContain('"a\\u003cb\\u003e\\u0026c"');
    expect(withArg("\u2028\u2029")).toContain('"\\u2028\\u2029"');
    expect(withArg("\b\f\n\t\x01")).toContain('"\\u0008\\u000c\\n\\t\\u0001"');
  });

  test("does not mistake an escaped backslash before b/f for a control escape", () => {
    expect(withArg("\\b\\f")).toContain('"\\\\b\\\\f"');
  });

  test("round-trips through JSON.parse", () => {
    const s = defaultSpec();
    s.process!.args = ["<&>\b\\b\u2028"];
    expect(JSON.parse(specJSON(s))).toEqual(s);
  });
});
