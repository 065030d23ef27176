// compileSeccomp() against the real runc (libseccomp + runc's -ENOSYS patch) as an oracle: start a
// container with a profile under /usr/sbin/runc, read back the BPF the kernel holds for its process
// (ptrace PTRACE_SECCOMP_GET_FILTER), and check that our program decides every call of a large grid
// (syscall numbers of every arch, x32 numbers, odd ones; argument values around 32-bit edges) the
// same way. Skipped where there is no real runc or the kernel cannot hand out filters.
//
// Profiles name only calls old enough for any libseccomp 2.5 to know (our tables are newer), and
// avoid overlapping conditional rules with different actions (libseccomp orders those its own way,
// see ffi/seccomp.ts).
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compileSeccomp, type LinuxSeccomp } from "../ffi/seccomp";
import { SYSCALLS_I386, SYSCALLS_X32, SYSCALLS_X86_64 } from "../ffi/syscalls";
import { ctx, exec, makeBundle, newId, useHarness, type Spec } from "./harness";
import { AUDIT, decode, runFilter, verdict, type Insn } from "./seccomp-bpf";

useHarness();

const ORACLE = process.env.SECCOMP_ORACLE_RUNC || "/usr/sbin/runc";
const BUN = join(import.meta.dir, "../node_modules/.bin/bun");
const DUMP = join(import.meta.dir, "fixtures/seccomp-dump.ts");
const CHILD = join(import.meta.dir, "fixtures/seccomp-child.ts");
const DOCKER: LinuxSeccomp = JSON.parse(readFileSync(join(import.meta.dir, "fixtures/docker-default-seccomp.json"), "utf8"));

/** Can this kernel hand out a filter (PTRACE_SECCOMP_GET_FILTER needs CONFIG_CHECKPOINT_RESTORE)? */
async function canReadFilters(): Promise<string> {
  const job = { profile: { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["getppid"], action: "SCMP_ACT_ERRNO" }] }, nnp: true, ops: [], holdMs: 10_000 };
  const child = Bun.spawn([BUN, CHILD, JSON.stringify(job)], { stdout: "pipe", stderr: "ignore" });
  try {
    await child.stdout.getReader().read(); // the filter is in once it reports
    const d = Bun.spawnSync([BUN, DUMP, String(child.pid)]);
    return d.exitCode === 0 && d.stdout.toString().trim() ? "" : `cannot read seccomp filters back: ${d.stderr.toString().trim()}`;
  } finally {
    child.kill(9);
  }
}
const why = !existsSync(ORACLE) ? `no ${ORACLE}` : process.getuid?.() !== 0 ? "not root" : process.arch !== "x64" ? "not x86_64" : await canReadFilters();
if (why) console.warn(`seccomp-oracle: skipping: ${why}`);
const it = test.skipIf(!!why);

/** Run `profile` under the real runc and return the filter its container process got. */
function oracleFilter(profile: LinuxSeccomp, mutate?: (s: Spec) => void): Insn[] | string {
  const b = makeBundle((s) => {
    s.process.args = ["sleep", "300"];
    s.process.noNewPrivileges = false;
    s.linux.seccomp = profile;
    mutate?.(s);
  });
  const id = newId("oracle");
  const root = ctx().root;
  try {
    const run = exec([ORACLE, "--root", root, "run", "-d", "--bundle", b.dir, id]);
    if (run.code !== 0) return `oracle runc failed: ${run.stderr}`;
    const st = exec([ORACLE, "--root", root, "state", id]);
    const pid = JSON.parse(st.stdout).pid;
    const dump = exec([BUN, DUMP, String(pid)]);
    if (dump.code !== 0) return `dump failed: ${dump.stderr}`;
    return decode(new Uint8Array(Buffer.from(dump.stdout.trim(), "hex")));
  } finally {
    exec([ORACLE, "--root", root, "delete", "--force", id]);
  }
}

const V = 0x1_0000_0005n;
const VALUES = [0n, 1n, 2n, 3n, 5n, 7n, 8n, 12n, 13n, 38n, 40n, V - 1n, V, V + 1n, 0x2_0000_0005n, 0x2_0000_0004n, 0xffff_ffffn, 0x1_0000_0000n, 0xff_0000_00ffn, 0x10000000n, 0x7e020000n, 0x20000n, 0x20008n, (1n << 64n) - 1n];

/** Every call of the grid on which the two programs disagree (at most `limit`). */
function compare(theirs: Insn[], profile: LinuxSeccomp, limit = 10): string[] {
  const ours = decode(compileSeccomp(profile, "x64"));
  const withArgs = new Set<string>();
  for (const s of profile.syscalls ?? []) {
    if (!s.args?.length) continue;
    for (const n of s.names) {
      if (SYSCALLS_X86_64[n] !== undefined) withArgs.add(`${AUDIT.X86_64}:${SYSCALLS_X86_64[n]}`);
      if (SYSCALLS_X32[n] !== undefined) withArgs.add(`${AUDIT.X86_64}:${(SYSCALLS_X32[n]! | 0x40000000) >>> 0}`);
      if (SYSCALLS_I386[n] !== undefined) withArgs.add(`${AUDIT.I386}:${SYSCALLS_I386[n]}`);
    }
  }
  const nrs: number[] = [];
  for (let n = 0; n < 1100; n++) nrs.push(n);
  for (let n = 0; n < 600; n++) nrs.push(0x40000000 + n);
  nrs.push(0x3fffffff, 0x7fffffff, 0x80000000, 0x80000001, 0xc0000000, 0xc0000005, 0xfffffffe, 0xffffffff, 0xf0001, 0xf0005);
  const bad: string[] = [];
  for (const arch of [AUDIT.X86_64, AUDIT.I386, AUDIT.AARCH64, AUDIT.ARM, 0x12345678]) {
    for (const nr of nrs) {
      const sets: bigint[][] = [[0n, 0n, 0n, 0n, 0n, 0n], [1n, 2n, 3n, 4n, 5n, 6n]];
      if (withArgs.has(`${arch}:${nr}`)) {
        for (let i = 0; i < 6; i++) for (const v of VALUES) sets.push(Object.assign([0n, 0n, 0n, 0n, 0n, 0n], { [i]: v }));
        for (const v of VALUES) for (const w of VALUES) sets.push([v, w, 0n, 0n, w, v]);
      }
      for (const args of sets) {
        const a = runFilter(theirs, { nr, arch, args }), b = runFilter(ours, { nr, arch, args });
        if (a !== b && bad.push(`arch 0x${arch.toString(16)} nr 0x${nr.toString(16)} args ${args.map((x) => "0x" + x.toString(16)).join(",")}: runc ${verdict(a)}, ours ${verdict(b)}`) >= limit) return bad;
      }
    }
  }
  return bad;
}

/** Drop the calls newer than libseccomp 2.5.0 knows (x32's own 512..547 are old). */
function oldCallsOnly(p: LinuxSeccomp): LinuxSeccomp {
  const oldNr = (nr: number | undefined, x32 = false) => nr === undefined || nr < 440 || (x32 && nr >= 512 && nr <= 547);
  const old = (n: string) => n !== "uretprobe" && oldNr(SYSCALLS_X86_64[n]) && oldNr(SYSCALLS_I386[n]) && oldNr(SYSCALLS_X32[n], true);
  return { ...p, syscalls: p.syscalls!.map((s) => ({ ...s, names: s.names.filter(old) })).filter((s) => s.names.length) };
}

type Arg = NonNullable<NonNullable<LinuxSeccomp["syscalls"]>[number]["args"]>;
const r = (names: string[], action: string, args?: Arg, errnoRet?: number) => ({
  names,
  action,
  ...(args ? { args } : {}),
  ...(errnoRet !== undefined ? { errnoRet } : {}),
});
const a = (index: number, op: string, value: bigint | number, valueTwo?: bigint | number) => ({ index, op, value: Number(value), ...(valueTwo !== undefined ? { valueTwo: Number(valueTwo) } : {}) });

describe("the same decisions as the real runc's filter", () => {
  it("Docker's default profile (x86_64, x86, x32)", () => {
    const p = oldCallsOnly(DOCKER);
    const theirs = oracleFilter(p);
    if (typeof theirs === "string") throw new Error(theirs);
    expect(compare(theirs, p)).toEqual([]);
  });

  it("Docker's profile for x86_64 alone, killing by default (no x32, no i386, ENOSYS stub)", () => {
    const p = { ...oldCallsOnly(DOCKER), architectures: ["SCMP_ARCH_X86_64"], defaultAction: "SCMP_ACT_KILL_PROCESS", defaultErrnoRet: undefined };
    const theirs = oracleFilter(p);
    if (typeof theirs === "string") throw new Error(theirs);
    expect(compare(theirs, p)).toEqual([]);
  });

  it("every operator on 64-bit values, every action, AND/OR of args, i386 rules", () => {
    const E = "SCMP_ACT_ERRNO";
    const p: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      syscalls: [
        r(["getpgid"], E, [a(0, "SCMP_CMP_EQ", V)], 11),
        r(["getsid"], E, [a(0, "SCMP_CMP_NE", V)], 12),
        r(["sysfs"], E, [a(0, "SCMP_CMP_LT", V)], 13),
        r(["getpriority"], E, [a(1, "SCMP_CMP_LE", V)], 14),
        r(["setpriority"], E, [a(2, "SCMP_CMP_GT", V)], 15),
        r(["acct"], E, [a(0, "SCMP_CMP_GE", V)], 16),
        r(["quotactl"], E, [a(3, "SCMP_CMP_MASKED_EQ", 0xff_0000_00ffn, V)], 17),
        r(["kcmp"], "SCMP_ACT_TRAP", [a(0, "SCMP_CMP_EQ", 1), a(1, "SCMP_CMP_GT", 2)]),
        r(["tee"], E, [a(0, "SCMP_CMP_EQ", 1), a(0, "SCMP_CMP_EQ", 2)], 20),
        r(["lookup_dcookie"], E, [a(0, "SCMP_CMP_EQ", 3)], 23),
        r(["lookup_dcookie"], E, undefined, 24),
        r(["swapon"], "SCMP_ACT_KILL"),
        r(["swapoff"], "SCMP_ACT_KILL_PROCESS"),
        r(["ustat"], "SCMP_ACT_TRAP"),
        r(["uselib"], "SCMP_ACT_TRACE", undefined, 77),
        r(["iopl"], "SCMP_ACT_TRACE"),
        r(["ioperm"], "SCMP_ACT_LOG"),
        r(["syslog"], E),
        r(["mbind"], E, [a(5, "SCMP_CMP_GE", 0xffff_ffff), a(4, "SCMP_CMP_LE", 7)], 25),
        r(["no_such_syscall", "socketcall", "vhangup"], E, undefined, 26),
      ],
    };
    const theirs = oracleFilter(p);
    if (typeof theirs === "string") throw new Error(theirs);
    expect(compare(theirs, p)).toEqual([]);
  });
});
