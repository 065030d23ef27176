// installSeccomp() for real, independent of the runtime: each case runs a throwaway Bun process
// (test/fixtures/seccomp-child.ts) that compiles a profile, installs it on itself and reports what
// some calls then return. A filter can never be removed, so nothing here touches the test runner.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { LinuxSeccomp } from "../ffi/seccomp";

const BUN = join(import.meta.dir, "../node_modules/.bin/bun");
const CHILD = join(import.meta.dir, "fixtures/seccomp-child.ts");
const DOCKER: LinuxSeccomp = JSON.parse(readFileSync(join(import.meta.dir, "fixtures/docker-default-seccomp.json"), "utf8"));
const EPERM = 1, ENOSYS = 38, EDQUOT = 122;
const isRoot = process.getuid?.() === 0;
const hasSysAdmin = (() => {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? (BigInt(`0x${m[1]}`) & (1n << 21n)) !== 0n : false;
})();

let dir = "";
beforeAll(() => {
  dir = mkdtempSync("/tmp/bunker-seccomp-live-");
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Job {
  profile: LinuxSeccomp;
  flags?: string[];
  nnp?: boolean;
  dropCaps?: boolean;
  ops: string[];
  workerOps?: string[];
}
function child(job: Job): { code: number | null; signal: string | null; out: any; stderr: string } {
  const r = Bun.spawnSync([BUN, CHILD, JSON.stringify({ dir, ...job })], { stdout: "pipe", stderr: "pipe", timeout: 20_000 });
  const stdout = r.stdout.toString();
  let out: any;
  try {
    out = JSON.parse(stdout.trim().split("\n").pop() || "null");
  } catch {
    out = undefined;
  }
  return { code: r.exitCode, signal: r.signalCode == null ? null : String(r.signalCode), out, stderr: r.stderr.toString() + stdout };
}

const ERRNO_RULES: LinuxSeccomp = {
  defaultAction: "SCMP_ACT_ALLOW",
  syscalls: [
    { names: ["getppid", "uname"], action: "SCMP_ACT_ERRNO" },
    { names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: EDQUOT },
  ],
};

describe("installSeccomp in a child process", () => {
  test("with no_new_privs: ERRNO rules give EPERM and a custom errno, the rest still works", () => {
    const r = child({ profile: ERRNO_RULES, nnp: true, ops: ["getpid", "getppid", "uname", "mkdir", "readfile", "status"] });
    expect(r.code).toBe(0);
    expect(r.out.installed).toBe(true);
    expect(r.out.getpid.ret).toBeGreaterThan(0);
    expect(r.out.getppid).toEqual({ ret: -1, errno: EPERM });
    expect(r.out.uname).toEqual({ ret: -1, errno: EPERM });
    expect(r.out.mkdir).toEqual({ code: "EDQUOT" });
    expect(r.out.readfile.bytes).toBeGreaterThan(0);
    expect(r.out.status).toEqual({ seccomp: "2", filters: "1", nnp: "1" });
  });

  test.skipIf(!isRoot || !hasSysAdmin)("without no_new_privs, CAP_SYS_ADMIN is enough", () => {
    const r = child({ profile: ERRNO_RULES, ops: ["getppid", "status"] });
    expect(r.out.installed).toBe(true);
    expect(r.out.getppid).toEqual({ ret: -1, errno: EPERM });
    expect(r.out.status).toEqual({ seccomp: "2", filters: "1", nnp: "0" });
  });

  test("without no_new_privs nor CAP_SYS_ADMIN the kernel refuses: EACCES", () => {
    const r = child({ profile: ERRNO_RULES, dropCaps: true, ops: ["getppid", "status"] });
    expect(r.out.installed).toBe(false);
    expect(r.out.errorCode).toBe("EACCES");
    expect(r.out.error).toContain("seccomp(");
    expect(r.out.getppid.ret).toBeGreaterThan(0);
    expect(r.out.status.seccomp).toBe("0");
  });

  test("the filter is per thread; SECCOMP_FILTER_FLAG_TSYNC extends it to the threads that exist", () => {
    const plain = child({ profile: ERRNO_RULES, nnp: true, ops: ["getppid"], workerOps: ["getppid", "status"] });
    expect(plain.out.getppid).toEqual({ ret: -1, errno: EPERM });
    expect(plain.out.worker.getppid.ret).toBeGreaterThan(0);
    expect(plain.out.worker.status.seccomp).toBe("0");
    const tsync = child({ profile: ERRNO_RULES, nnp: true, flags: ["SECCOMP_FILTER_FLAG_TSYNC"], ops: ["getppid"], workerOps: ["getppid", "status"] });
    expect(tsync.out.installed).toBe(true);
    expect(tsync.out.worker.getppid).toEqual({ ret: -1, errno: EPERM });
    expect(tsync.out.worker.status.seccomp).toBe("2");
  });

  test("SECCOMP_FILTER_FLAG_LOG and _SPEC_ALLOW are accepted", () => {
    const r = child({ profile: ERRNO_RULES, nnp: true, flags: ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"], ops: ["getppid"] });
    expect(r.out.installed).toBe(true);
    expect(r.out.getppid).toEqual({ ret: -1, errno: EPERM });
  });

  test("SCMP_ACT_KILL_PROCESS ends the process with SIGSYS", () => {
    const r = child({ profile: { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["getppid"], action: "SCMP_ACT_KILL_PROCESS" }] }, nnp: true, ops: ["getpid", "getppid"] });
    expect(r.signal).toBe("SIGSYS");
    expect(r.out).toBeFalsy(); // it never got to print
  });

  test("SCMP_ACT_TRAP raises SIGSYS: Bun handles it and the call returns ENOSYS", () => {
    const r = child({ profile: { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["getppid"], action: "SCMP_ACT_TRAP" }] }, nnp: true, ops: ["getppid"] });
    // Without a SIGSYS handler the process would die of it; Bun's runtime has one.
    if (r.signal) expect(r.signal).toBe("SIGSYS");
    else expect(r.out.getppid).toEqual({ ret: -1, errno: ENOSYS });
  });

  test("Docker's default profile: Bun keeps running; unshare and keyctl get EPERM, clone3 ENOSYS", () => {
    const r = child({ profile: DOCKER, nnp: true, ops: ["getpid", "unshare-mnt", "keyctl", "clone3", "readfile", "mkdir", "uname", "status"] });
    expect(r.code).toBe(0);
    expect(r.out.installed).toBe(true);
    expect(r.out.getpid.ret).toBeGreaterThan(0);
    expect(r.out["unshare-mnt"]).toEqual({ ret: -1, errno: EPERM }); // root with CAP_SYS_ADMIN could, the filter can't
    expect(r.out.keyctl).toEqual({ ret: -1, errno: EPERM });
    expect(r.out.clone3).toEqual({ ret: -1, errno: ENOSYS });
    expect(r.out.mkdir).toEqual({ ok: true });
    expect(r.out.uname.sysname).toBe("Linux");
    expect(r.out.status.seccomp).toBe("2");
  });
});
