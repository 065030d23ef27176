// ffi/seccomp.ts compileSeccomp(): the BPF it generates, run through a small BPF interpreter
// (test/seccomp-bpf.ts) on seccomp_data we make up. No process gets a filter here.
//
// fixtures/docker-default-seccomp.json is moby's default profile (github.com/moby/profiles,
// seccomp/default.json at 02e898b1) as dockerd writes it into config.json for a root container
// with Docker's default capabilities on amd64 (kernel >= 4.8): archMap resolved to x86_64 + x86 +
// x32, rules kept or dropped by their includes/excludes (caps, arches, minKernel), comments gone.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { compileSeccomp, seccompAction, seccompFilterFlags, type LinuxSeccomp } from "../ffi/seccomp";
import { AUDIT_ARCH, OCI_ARCH, SYSCALLS_AARCH64, SYSCALLS_ARM, SYSCALLS_I386, SYSCALLS_X32, SYSCALLS_X86_64 } from "../ffi/syscalls";
import { AUDIT, decode, errnoRet, RET, runFilter, validate, verdict } from "./seccomp-bpf";

const DOCKER: LinuxSeccomp = JSON.parse(readFileSync(join(import.meta.dir, "fixtures/docker-default-seccomp.json"), "utf8"));
const X32_BIT = 0x40000000;
const EPERM = 1, ENOSYS = 38;
const nr64 = (name: string) => SYSCALLS_X86_64[name]!;

function compile(cfg: LinuxSeccomp, arch = "x64"): Uint8Array {
  const f = compileSeccomp(cfg, arch);
  validate(f);
  return f;
}
/** Verdict of a filter for a call by name (x86_64 unless arch says otherwise). */
function call(f: Uint8Array, name: string, args: (bigint | number)[] = [], arch: number = AUDIT.X86_64, table = SYSCALLS_X86_64): string {
  const nr = table[name];
  if (nr === undefined) throw new Error(`no ${name} in table`);
  return verdict(runFilter(f, { nr, arch, args }));
}
const V = (r: number) => verdict(r);

describe("syscall tables", () => {
  test("well-known numbers", () => {
    expect([nr64("read"), nr64("write"), nr64("clone"), nr64("unshare"), nr64("seccomp"), nr64("keyctl"), nr64("clone3")]).toEqual([0, 1, 56, 272, 317, 250, 435]);
    expect([SYSCALLS_AARCH64.read, SYSCALLS_AARCH64.unshare, SYSCALLS_AARCH64.seccomp, SYSCALLS_AARCH64.clone, SYSCALLS_AARCH64.renameat]).toEqual([63, 97, 277, 220, 38]);
    expect(SYSCALLS_AARCH64.open).toBeUndefined(); // the generic table has openat only
    expect([SYSCALLS_I386.socketcall, SYSCALLS_I386.getpid, SYSCALLS_I386.socket]).toEqual([102, 20, 359]);
    expect([SYSCALLS_X32.read, SYSCALLS_X32.rt_sigaction, SYSCALLS_X32.execve]).toEqual([0, 512, 520]);
    expect([SYSCALLS_ARM.breakpoint, SYSCALLS_ARM.set_tls, SYSCALLS_ARM.sync_file_range2]).toEqual([0xf0001, 0xf0005, 341]);
    // Calls newer than the headers the tables come from.
    for (const t of [SYSCALLS_X86_64, SYSCALLS_AARCH64, SYSCALLS_I386, SYSCALLS_ARM]) expect([t.cachestat, t.listmount, t.mseal, t.removexattrat, t.file_setattr]).toEqual([451, 458, 462, 466, 469]);
    expect(SYSCALLS_X86_64.uretprobe).toBe(335);
  });
  test("every name of Docker's profile exists on x86_64 or on one of its compat arches", () => {
    const names = DOCKER.syscalls!.flatMap((s) => s.names);
    const missing = names.filter((n) => [SYSCALLS_X86_64, SYSCALLS_I386, SYSCALLS_X32].every((t) => t[n] === undefined));
    expect(missing).toEqual(["recv", "riscv_hwprobe", "send"]); // recv/send: arm only; riscv_hwprobe: riscv only
    expect([SYSCALLS_ARM.recv, SYSCALLS_ARM.send]).toEqual([291, 289]);
  });
  test("AUDIT_ARCH and OCI names", () => {
    expect(AUDIT_ARCH).toEqual({ X86_64: 0xc000003e, I386: 0x40000003, AARCH64: 0xc00000b7, ARM: 0x40000028 });
    expect(OCI_ARCH.SCMP_ARCH_X32.audit).toBe(AUDIT_ARCH.X86_64);
    expect(OCI_ARCH.SCMP_ARCH_X86.table).toBe(SYSCALLS_I386);
  });
});

describe("actions", () => {
  test("default action alone", () => {
    const cases: [LinuxSeccomp, number][] = [
      [{ defaultAction: "SCMP_ACT_ALLOW" }, RET.ALLOW],
      [{ defaultAction: "SCMP_ACT_ERRNO" }, errnoRet(EPERM)],
      [{ defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 5 }, errnoRet(5)],
      [{ defaultAction: "SCMP_ACT_KILL" }, RET.KILL_THREAD],
      [{ defaultAction: "SCMP_ACT_KILL_THREAD" }, RET.KILL_THREAD],
      [{ defaultAction: "SCMP_ACT_KILL_PROCESS" }, RET.KILL_PROCESS],
      [{ defaultAction: "SCMP_ACT_TRAP" }, RET.TRAP],
      [{ defaultAction: "SCMP_ACT_LOG" }, RET.LOG],
      [{ defaultAction: "SCMP_ACT_TRACE" }, (RET.TRACE | EPERM) >>> 0],
      [{ defaultAction: "SCMP_ACT_TRACE", defaultErrnoRet: 1234 }, (RET.TRACE | 1234) >>> 0],
    ];
    for (const [cfg, want] of cases) {
      const f = compile(cfg);
      for (const nr of [0, 1, 59, 317, 435, 1000, 0x3fffffff, 0xffffffff]) expect(V(runFilter(f, { nr, arch: AUDIT.X86_64 }))).toBe(V(want));
    }
  });
  test("rule actions and errnoRet", () => {
    const f = compile({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [
        { names: ["mkdir"], action: "SCMP_ACT_ERRNO" },
        { names: ["rmdir"], action: "SCMP_ACT_ERRNO", errnoRet: 13 },
        { names: ["getppid"], action: "SCMP_ACT_KILL" },
        { names: ["getpgrp"], action: "SCMP_ACT_KILL_PROCESS" },
        { names: ["setsid"], action: "SCMP_ACT_TRAP" },
        { names: ["uname"], action: "SCMP_ACT_LOG" },
        { names: ["sync"], action: "SCMP_ACT_TRACE", errnoRet: 42 },
        { names: ["syncfs"], action: "SCMP_ACT_TRACE" },
      ],
    });
    expect(call(f, "mkdir")).toBe("ERRNO(1)");
    expect(call(f, "rmdir")).toBe("ERRNO(13)");
    expect(call(f, "getppid")).toBe("KILL_THREAD");
    expect(call(f, "getpgrp")).toBe("KILL_PROCESS");
    expect(call(f, "setsid")).toBe("TRAP");
    expect(call(f, "uname")).toBe("LOG");
    expect(call(f, "sync")).toBe("TRACE(42)");
    expect(call(f, "syncfs")).toBe("TRACE(1)");
    expect(call(f, "read")).toBe("ALLOW");
  });
  test("seccompAction values", () => {
    expect(seccompAction("SCMP_ACT_ERRNO", 0x10005)).toBe(errnoRet(5)); // SECCOMP_RET_DATA is 16 bits
    expect(seccompAction("SCMP_ACT_ALLOW", 1)).toBe(RET.ALLOW); // ignored, as runc 1.1 does
    expect(() => seccompAction("SCMP_ACT_BOGUS", undefined)).toThrow(/unknown action "SCMP_ACT_BOGUS"/);
  });
});

describe("allow lists", () => {
  const cfg: LinuxSeccomp = {
    defaultAction: "SCMP_ACT_ERRNO",
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [{ names: ["read", "write", "exit_group", "openat", "futex_waitv"], action: "SCMP_ACT_ALLOW" }],
  };
  test("listed calls pass, others get the default action", () => {
    const f = compile(cfg);
    for (const n of ["read", "write", "exit_group", "openat", "futex_waitv"]) expect(call(f, n)).toBe("ALLOW");
    for (const n of ["open", "close", "mkdir", "unshare", "mount", "clone"]) expect(call(f, n)).toBe("ERRNO(1)");
    expect(V(runFilter(f, { nr: 448, arch: AUDIT.X86_64 }))).toBe("ERRNO(1)");
  });
  test("calls numbered above every name in the profile get ENOSYS (runc's patch for newer syscalls)", () => {
    const f = compile(cfg);
    const max = nr64("futex_waitv");
    expect(V(runFilter(f, { nr: max, arch: AUDIT.X86_64 }))).toBe("ALLOW");
    expect(V(runFilter(f, { nr: max + 1, arch: AUDIT.X86_64 }))).toBe("ERRNO(38)");
    expect(V(runFilter(f, { nr: 0x3fffffff, arch: AUDIT.X86_64 }))).toBe("ERRNO(38)");
    expect(V(runFilter(f, { nr: 0x80000000, arch: AUDIT.X86_64 }))).toBe("ERRNO(38)");
    // Not for permissive defaults, nor when the default already is ENOSYS, nor for unlisted arches.
    for (const c of [
      { ...cfg, defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["futex_waitv"], action: "SCMP_ACT_KILL" }] },
      { ...cfg, defaultAction: "SCMP_ACT_LOG", syscalls: [{ names: ["futex_waitv"], action: "SCMP_ACT_KILL" }] },
      { ...cfg, defaultErrnoRet: ENOSYS },
      { ...cfg, defaultAction: "SCMP_ACT_KILL_PROCESS", architectures: [] },
    ] as LinuxSeccomp[]) {
      const g = compile(c);
      const want = { SCMP_ACT_ALLOW: "ALLOW", SCMP_ACT_LOG: "LOG", SCMP_ACT_ERRNO: `ERRNO(${c.defaultErrnoRet ?? 1})`, SCMP_ACT_KILL_PROCESS: "KILL_PROCESS" }[c.defaultAction]!;
      expect(V(runFilter(g, { nr: max + 1, arch: AUDIT.X86_64 }))).toBe(want);
    }
  });
  test("a rule with the default action is redundant and dropped", () => {
    const f = compile({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO" }, { names: ["read"], action: "SCMP_ACT_ALLOW" }] });
    expect(call(f, "read")).toBe("ALLOW");
    const g = compile({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", errnoRet: 2 }, { names: ["read"], action: "SCMP_ACT_ALLOW" }] });
    expect(call(g, "read")).toBe("ERRNO(2)");
  });
  test("unknown names are skipped, not errors", () => {
    const f = compile({
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [{ names: ["no_such_syscall", "socketcall", "_llseek", "read", "arm_fadvise64_64"], action: "SCMP_ACT_ALLOW" }],
    });
    expect(call(f, "read")).toBe("ALLOW");
    expect(call(f, "write")).toBe("ERRNO(1)");
    // A profile naming nothing this arch knows still compiles.
    const g = compile({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["breakpoint", "set_tls"], action: "SCMP_ACT_KILL" }] });
    expect(call(g, "read")).toBe("ALLOW");
  });
  test("legacy `name` instead of `names`", () => {
    const f = compile({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ name: "mkdir", action: "SCMP_ACT_ERRNO" } as any] });
    expect(call(f, "mkdir")).toBe("ERRNO(1)");
  });
});

describe("argument comparisons", () => {
  const OPS: Record<string, (a: bigint, v: bigint, v2: bigint) => boolean> = {
    SCMP_CMP_EQ: (a, v) => a === v,
    SCMP_CMP_NE: (a, v) => a !== v,
    SCMP_CMP_LT: (a, v) => a < v,
    SCMP_CMP_LE: (a, v) => a <= v,
    SCMP_CMP_GT: (a, v) => a > v,
    SCMP_CMP_GE: (a, v) => a >= v,
    SCMP_CMP_MASKED_EQ: (a, v, v2) => (a & v) === v2,
  };
  const M64 = (1n << 64n) - 1n;
  // Values whose high halves differ from, equal, or straddle each other.
  const VALUES = [0n, 1n, 5n, 0xffffffffn, 0x1_00000000n, 0x1_00000005n, 0x1_00000004n, 0x1_00000006n, 0x2_00000005n, 0x0_00000006n, 0xff_000000ffn, 0x8000_0000_0000_0000n, M64 - 1n, M64];
  const ARGS = [...VALUES, 0x2_00000004n, 0x1_ffffffffn, 0xfe_00000005n, 0x01_ffffff05n, 0x00_00000005n, 0xff_00000005n];

  for (const [op, ref] of Object.entries(OPS)) {
    test(`${op} on 64-bit values, both halves`, () => {
      for (const value of VALUES) {
        const valueTwo = op === "SCMP_CMP_MASKED_EQ" ? value & 0x1_00000005n : 0n;
        for (const index of [0, 3, 5]) {
          const f = compile({
            defaultAction: "SCMP_ACT_ALLOW",
            syscalls: [{ names: ["getpgid"], action: "SCMP_ACT_ERRNO", errnoRet: 99, args: [{ index, value, valueTwo, op }] }],
          });
          for (const a of ARGS) {
            const args = [7n, 7n, 7n, 7n, 7n, 7n];
            args[index] = a;
            const got = runFilter(f, { nr: nr64("getpgid"), arch: AUDIT.X86_64, args });
            const want = ref(a, value, valueTwo) ? errnoRet(99) : RET.ALLOW;
            if (got !== want) throw new Error(`${op} arg${index}=0x${a.toString(16)} value=0x${value.toString(16)} valueTwo=0x${valueTwo.toString(16)}: got ${V(got)}, want ${V(want)}`);
          }
        }
      }
    });
  }
  test("32-bit arches compare the low 32 bits only (as libseccomp)", () => {
    const f = compile({
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      syscalls: [{ names: ["getpgid"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 0x1_00000005, op: "SCMP_CMP_EQ" }] }],
    });
    expect(call(f, "getpgid", [5n], AUDIT.I386, SYSCALLS_I386)).toBe("ERRNO(1)");
    expect(call(f, "getpgid", [0x7_00000005n], AUDIT.I386, SYSCALLS_I386)).toBe("ERRNO(1)");
    expect(call(f, "getpgid", [6n], AUDIT.I386, SYSCALLS_I386)).toBe("ALLOW");
    expect(call(f, "getpgid", [5n])).toBe("ALLOW");
    expect(call(f, "getpgid", [0x1_00000005n])).toBe("ERRNO(1)");
  });
  test("args of one rule are ANDed", () => {
    const f = compile({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["kcmp"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }, { index: 4, value: 10, op: "SCMP_CMP_GT" }] }],
    });
    expect(call(f, "kcmp", [1, 0, 0, 0, 11])).toBe("ERRNO(1)");
    expect(call(f, "kcmp", [1, 0, 0, 0, 10])).toBe("ALLOW");
    expect(call(f, "kcmp", [2, 0, 0, 0, 11])).toBe("ALLOW");
  });
  test("args naming the same index are ORed (runc splits them into rules)", () => {
    const f = compile({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["tee"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }, { index: 0, value: 2, op: "SCMP_CMP_EQ" }] }],
    });
    expect(call(f, "tee", [1])).toBe("ERRNO(1)");
    expect(call(f, "tee", [2])).toBe("ERRNO(1)");
    expect(call(f, "tee", [3])).toBe("ALLOW");
  });
  test("several rules for one syscall: ORed in order; an unconditional rule wins", () => {
    const f = compile({
      defaultAction: "SCMP_ACT_ERRNO",
      architectures: ["SCMP_ARCH_X86_64"],
      syscalls: [
        { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0, op: "SCMP_CMP_EQ" }] },
        { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }] },
        { names: ["personality"], action: "SCMP_ACT_ERRNO", errnoRet: 22, args: [{ index: 0, value: 8, op: "SCMP_CMP_GE" }] },
        { names: ["getpgid"], action: "SCMP_ACT_ERRNO", errnoRet: 23, args: [{ index: 0, value: 3, op: "SCMP_CMP_EQ" }] },
        { names: ["getpgid"], action: "SCMP_ACT_ALLOW" },
      ],
    });
    expect(call(f, "personality", [0])).toBe("ALLOW");
    expect(call(f, "personality", [8])).toBe("ALLOW");
    expect(call(f, "personality", [9])).toBe("ERRNO(22)");
    expect(call(f, "personality", [1])).toBe("ERRNO(1)");
    expect(call(f, "getpgid", [3])).toBe("ALLOW");
  });
  test("values: bigint and decimal strings, UINT64_MAX as JSON rounds it", () => {
    const mk = (value: any) => compile({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["getpgid"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value, op: "SCMP_CMP_EQ" }] }] });
    for (const v of [18446744073709551615n, "18446744073709551615", JSON.parse("18446744073709551615")]) expect(call(mk(v), "getpgid", [M64])).toBe("ERRNO(1)");
    expect(call(mk("4294967301"), "getpgid", [0x1_00000005n])).toBe("ERRNO(1)");
  });
});

describe("architectures", () => {
  const cfg = (arches: string[]): LinuxSeccomp => ({
    defaultAction: "SCMP_ACT_ERRNO",
    architectures: arches,
    syscalls: [{ names: ["read", "getpid", "exit_group", "socketcall"], action: "SCMP_ACT_ALLOW" }],
  });
  test("a foreign arch is killed", () => {
    const f = compile(cfg(["SCMP_ARCH_X86_64"]));
    expect(V(runFilter(f, { nr: 0, arch: AUDIT.X86_64 }))).toBe("ALLOW");
    for (const arch of [AUDIT.AARCH64, AUDIT.ARM, AUDIT.I386, 0, 0x12345678]) expect(V(runFilter(f, { nr: 0, arch }))).toBe("KILL_THREAD");
  });
  test("the native arch is always filtered, even when not listed", () => {
    const f = compile(cfg([]));
    expect(call(f, "getpid")).toBe("ALLOW");
    expect(call(f, "getppid")).toBe("ERRNO(1)");
    expect(V(runFilter(f, { nr: 0, arch: AUDIT.I386 }))).toBe("KILL_THREAD");
  });
  test("i386 processes on x86_64 when SCMP_ARCH_X86 is listed", () => {
    const f = compile(cfg(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]));
    expect(call(f, "getpid", [], AUDIT.I386, SYSCALLS_I386)).toBe("ALLOW");
    expect(call(f, "socketcall", [], AUDIT.I386, SYSCALLS_I386)).toBe("ALLOW");
    expect(call(f, "getppid", [], AUDIT.I386, SYSCALLS_I386)).toBe("ERRNO(1)");
    // The same number means another call on x86_64 (20 is writev there, not in this profile).
    expect(V(runFilter(f, { nr: SYSCALLS_I386.getpid!, arch: AUDIT.X86_64 }))).toBe("ERRNO(1)");
  });
  test("x32: killed unless SCMP_ARCH_X32 is listed (libseccomp), then its own numbers", () => {
    const without = compile(cfg(["SCMP_ARCH_X86_64"]));
    expect(V(runFilter(without, { nr: X32_BIT | 0, arch: AUDIT.X86_64 }))).toBe("KILL_THREAD");
    expect(V(runFilter(without, { nr: X32_BIT | 1000, arch: AUDIT.X86_64 }))).toBe("KILL_THREAD");
    expect(V(runFilter(without, { nr: 0xffffffff, arch: AUDIT.X86_64 }))).toBe("ERRNO(1)"); // nr -1: default
    const withX32 = compile(cfg(["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]));
    expect(V(runFilter(withX32, { nr: X32_BIT | SYSCALLS_X32.read!, arch: AUDIT.X86_64 }))).toBe("ALLOW");
    expect(V(runFilter(withX32, { nr: X32_BIT | SYSCALLS_X32.getppid!, arch: AUDIT.X86_64 }))).toBe("ERRNO(1)");
    expect(V(runFilter(withX32, { nr: 0, arch: AUDIT.X86_64 }))).toBe("ALLOW");
  });
  test("aarch64 and arm", () => {
    const f = compile(cfg(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]), "arm64");
    expect(call(f, "read", [], AUDIT.AARCH64, SYSCALLS_AARCH64)).toBe("ALLOW");
    expect(call(f, "chdir", [], AUDIT.AARCH64, SYSCALLS_AARCH64)).toBe("ERRNO(1)");
    expect(call(f, "getppid", [], AUDIT.AARCH64, SYSCALLS_AARCH64)).toBe("ERRNO(38)"); // 173 > getpid's 172
    expect(call(f, "getpid", [], AUDIT.ARM, SYSCALLS_ARM)).toBe("ALLOW");
    expect(call(f, "getppid", [], AUDIT.ARM, SYSCALLS_ARM)).toBe("ERRNO(1)");
    expect(V(runFilter(f, { nr: 0, arch: AUDIT.X86_64 }))).toBe("KILL_THREAD");
    // An x86_64 host's compat arch is not an aarch64 one: listed or not, it never matches here.
    const g = compile(cfg(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]), "arm64");
    expect(call(g, "read", [], AUDIT.AARCH64, SYSCALLS_AARCH64)).toBe("ALLOW");
    expect(V(runFilter(g, { nr: 0, arch: AUDIT.I386 }))).toBe("KILL_THREAD");
  });
});

describe("layout", () => {
  test("long jumps: hundreds of arg rules and alternating allow/deny numbers", () => {
    const names = Object.keys(SYSCALLS_X86_64).filter((n) => SYSCALLS_X86_64[n]! % 2 === 0 && n !== "ioctl");
    const cfg: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      architectures: ["SCMP_ARCH_X86_64"],
      syscalls: [
        { names, action: "SCMP_ACT_ALLOW", args: [{ index: 1, value: 0x1_00000000, op: "SCMP_CMP_LT" }] },
        ...Array.from({ length: 60 }, (_, i) => ({ names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 100 + i, args: [{ index: 1, value: 0x5400 + i, op: "SCMP_CMP_EQ" }] })),
      ],
    };
    const f = compile(cfg);
    expect(f.length / 8).toBeGreaterThan(300);
    // Some jump needed BPF_JA: at least one is present.
    expect(decode(f).some((i) => i.code === 0x05)).toBe(true);
    const max = Math.max(...names.map((n) => SYSCALLS_X86_64[n]!));
    for (let nr = 0; nr < 600; nr++) {
      const even = Object.entries(SYSCALLS_X86_64).some(([, v]) => v === nr) && nr % 2 === 0;
      const want = nr > max ? "ERRNO(38)" : nr === nr64("ioctl") ? "ERRNO(1)" : even ? "ALLOW" : "ERRNO(1)";
      expect(`${nr}: ${V(runFilter(f, { nr, arch: AUDIT.X86_64, args: [0, 1] }))}`).toBe(`${nr}: ${want}`);
      if (even && nr <= max && nr !== nr64("ioctl")) expect(V(runFilter(f, { nr, arch: AUDIT.X86_64, args: [0, 0x1_00000000n] }))).toBe("ERRNO(1)");
    }
    for (let i = 0; i < 60; i++) expect(call(f, "ioctl", [0, 0x5400 + i])).toBe(`ERRNO(${100 + i})`);
  });
  test("too long a program is refused", () => {
    const syscalls = Array.from({ length: 900 }, (_, i) => ({ names: ["ioctl"], action: "SCMP_ACT_ERRNO", args: [{ index: 1, value: i, op: "SCMP_CMP_EQ" }] }));
    expect(() => compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", syscalls }, "x64")).toThrow(/more than the kernel's 4096/);
  });
});

describe("invalid profiles", () => {
  const bad: [string, any, RegExp][] = [
    ["no default action", {}, /defaultAction is required/],
    ["SCMP_ACT_NOTIFY default", { defaultAction: "SCMP_ACT_NOTIFY" }, /SCMP_ACT_NOTIFY is not supported/],
    ["SCMP_ACT_NOTIFY rule", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_NOTIFY" }] }, /SCMP_ACT_NOTIFY is not supported/],
    ["listenerPath", { defaultAction: "SCMP_ACT_ALLOW", listenerPath: "/run/agent.sock" }, /listenerPath is not supported/],
    ["unknown action", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_NOPE" }] }, /unknown action/],
    ["unknown op", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_KILL", args: [{ index: 0, value: 1, op: "SCMP_CMP_XX" }] }] }, /unknown operator/],
    ["arg index 6", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_KILL", args: [{ index: 6, value: 1, op: "SCMP_CMP_EQ" }] }] }, /index must be 0..5/],
    ["negative value", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_KILL", args: [{ index: 0, value: -1, op: "SCMP_CMP_EQ" }] }] }, /out of range/],
    ["unknown flag", { defaultAction: "SCMP_ACT_ALLOW", flags: ["SECCOMP_FILTER_FLAG_BOGUS"] }, /seccomp flag SECCOMP_FILTER_FLAG_BOGUS is not known/],
    ["unknown arch", { defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_Z80"] }, /invalid architecture "SCMP_ARCH_Z80"/],
    ["no names", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: [], action: "SCMP_ACT_KILL" }] }, /has no names/],
  ];
  for (const [what, cfg, re] of bad) test(what, () => expect(() => compileSeccomp(cfg, "x64")).toThrow(re));
  test("flags", () => {
    expect(seccompFilterFlags(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])).toBe(7);
    expect(seccompFilterFlags([])).toBe(0);
  });
});

describe("Docker's default profile (resolved for root, default capabilities, x86_64)", () => {
  const f = compile(DOCKER);
  const CLONE_NEWUSER = 0x10000000, CLONE_NEWNS = 0x00020000;
  // glibc pthread_create's flags: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID.
  const THREAD_FLAGS = 0x3d0f00;
  const SIGCHLD = 17;

  test("compact enough", () => {
    expect(f.length / 8).toBeLessThan(1000);
  });
  test("refused: unshare, keyctl, add_key, request_key, mount, umount2, setns, pivot_root, bpf, reboot", () => {
    for (const n of ["unshare", "keyctl", "add_key", "request_key", "mount", "umount2", "setns", "pivot_root", "bpf", "reboot", "open_by_handle_at", "kexec_load", "init_module", "swapon", "perf_event_open"]) {
      expect(`${n}: ${call(f, n)}`).toBe(`${n}: ERRNO(1)`);
    }
  });
  test("allowed: read, write, chroot (CAP_SYS_CHROOT is a default cap), ptrace (allowed since kernel 4.8)", () => {
    for (const n of ["read", "write", "openat", "execve", "exit_group", "futex", "chroot", "ptrace", "process_vm_readv", "arch_prctl", "modify_ldt", "seccomp"]) {
      expect(`${n}: ${call(f, n)}`).toBe(`${n}: ALLOW`);
    }
    // io_uring was dropped from the default profile.
    expect(call(f, "io_uring_setup")).toBe("ERRNO(1)");
  });
  test("every unconditional name of the profile is allowed on x86_64", () => {
    for (const s of DOCKER.syscalls!) {
      if (s.args?.length || s.action !== "SCMP_ACT_ALLOW") continue;
      for (const n of s.names) if (SYSCALLS_X86_64[n] !== undefined) expect(`${n}: ${call(f, n)}`).toBe(`${n}: ALLOW`);
    }
  });
  test("clone: thread and fork flags pass, namespace flags do not", () => {
    expect(call(f, "clone", [THREAD_FLAGS])).toBe("ALLOW");
    expect(call(f, "clone", [SIGCHLD])).toBe("ALLOW");
    expect(call(f, "clone", [SIGCHLD | CLONE_NEWUSER])).toBe("ERRNO(1)");
    expect(call(f, "clone", [SIGCHLD | CLONE_NEWNS])).toBe("ERRNO(1)");
    expect(call(f, "clone", [0x1_00000000n | BigInt(SIGCHLD)])).toBe("ALLOW");
    expect(call(f, "clone3")).toBe("ERRNO(38)");
  });
  test("socket: ordinary families yes, AF_VSOCK and AF_ALG no", () => {
    for (const af of [1, 2, 10, 16, 17]) expect(call(f, "socket", [af, 1])).toBe("ALLOW");
    for (const af of [38, 40, 12, 46]) expect(`${af}: ${call(f, "socket", [af, 1])}`).toBe(`${af}: ERRNO(1)`);
  });
  test("personality: only the listed personas", () => {
    for (const p of [0, 8, 0x20000, 0x20008, 0xffffffff]) expect(call(f, "personality", [p])).toBe("ALLOW");
    for (const p of [1, 0x0040000, 0x1_00000000n]) expect(call(f, "personality", [p])).toBe("ERRNO(1)");
  });
  test("i386 and x32 processes get the same treatment", () => {
    expect(call(f, "getpid", [], AUDIT.I386, SYSCALLS_I386)).toBe("ALLOW");
    expect(call(f, "socketcall", [], AUDIT.I386, SYSCALLS_I386)).toBe("ALLOW");
    expect(call(f, "unshare", [], AUDIT.I386, SYSCALLS_I386)).toBe("ERRNO(1)");
    expect(call(f, "clone", [0, CLONE_NEWUSER], AUDIT.I386, SYSCALLS_I386)).toBe("ALLOW"); // i386 clone has flags in arg 0
    expect(call(f, "clone", [CLONE_NEWUSER], AUDIT.I386, SYSCALLS_I386)).toBe("ERRNO(1)");
    expect(V(runFilter(f, { nr: X32_BIT | SYSCALLS_X32.read!, arch: AUDIT.X86_64 }))).toBe("ALLOW");
    expect(V(runFilter(f, { nr: X32_BIT | SYSCALLS_X32.keyctl!, arch: AUDIT.X86_64 }))).toBe("ERRNO(1)");
  });
  test("syscalls newer than the profile get ENOSYS; a foreign arch is killed", () => {
    const max = Math.max(...DOCKER.syscalls!.flatMap((s) => s.names).map((n) => SYSCALLS_X86_64[n] ?? -1));
    expect(max).toBe(SYSCALLS_X86_64.removexattrat!);
    expect(V(runFilter(f, { nr: max + 1, arch: AUDIT.X86_64 }))).toBe("ERRNO(38)");
    expect(V(runFilter(f, { nr: 1000, arch: AUDIT.X86_64 }))).toBe("ERRNO(38)");
    expect(V(runFilter(f, { nr: 0, arch: AUDIT.AARCH64 }))).toBe("KILL_THREAD");
  });
  test("on aarch64 the same profile compiles against the generic table", () => {
    const g = compile({ ...DOCKER, architectures: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"] }, "arm64");
    expect(call(g, "read", [], AUDIT.AARCH64, SYSCALLS_AARCH64)).toBe("ALLOW");
    expect(call(g, "unshare", [], AUDIT.AARCH64, SYSCALLS_AARCH64)).toBe("ERRNO(1)");
    expect(call(g, "clone", [CLONE_NEWUSER], AUDIT.AARCH64, SYSCALLS_AARCH64)).toBe("ERRNO(1)");
    expect(call(g, "clone", [SIGCHLD], AUDIT.AARCH64, SYSCALLS_AARCH64)).toBe("ALLOW");
    expect(call(g, "getpid", [], AUDIT.ARM, SYSCALLS_ARM)).toBe("ALLOW");
  });
});

describe("random profiles against a direct evaluation of the same rules", () => {
  // A plain-JS reading of a profile, per the semantics documented in ffi/seccomp.ts; the compiled
  // BPF must decide every call the same way.
  const ACT: Record<string, number> = {
    SCMP_ACT_ALLOW: RET.ALLOW, SCMP_ACT_KILL: RET.KILL_THREAD, SCMP_ACT_KILL_PROCESS: RET.KILL_PROCESS,
    SCMP_ACT_TRAP: RET.TRAP, SCMP_ACT_LOG: RET.LOG, SCMP_ACT_ERRNO: RET.ERRNO, SCMP_ACT_TRACE: RET.TRACE,
  };
  const act = (a: string, e?: number) => (a === "SCMP_ACT_ERRNO" || a === "SCMP_ACT_TRACE" ? (ACT[a]! | ((e ?? 1) & 0xffff)) >>> 0 : ACT[a]!);
  const holds = (op: string, a: bigint, v: bigint, v2: bigint) =>
    ({ SCMP_CMP_EQ: a === v, SCMP_CMP_NE: a !== v, SCMP_CMP_LT: a < v, SCMP_CMP_LE: a <= v, SCMP_CMP_GT: a > v, SCMP_CMP_GE: a >= v, SCMP_CMP_MASKED_EQ: (a & v) === v2 })[op]!;

  function reference(cfg: LinuxSeccomp, d: { nr: number; arch: number; args: bigint[] }): number {
    const def = act(cfg.defaultAction, cfg.defaultErrnoRet);
    const listed = new Set(cfg.architectures ?? []);
    let table: Readonly<Record<string, number>>, bits32 = false, nr = d.nr;
    const names = (cfg.syscalls ?? []).flatMap((s) => s.names);
    const maxIn = (t: Readonly<Record<string, number>>) => Math.max(-1, ...names.map((n) => t[n] ?? -1));
    const stub = ![RET.ALLOW, RET.LOG].includes(def as any) && (def & 0xffff0000) >>> 0 !== RET.TRACE && !(cfg.defaultAction === "SCMP_ACT_ERRNO" && cfg.defaultErrnoRet === 38);
    if (d.arch === AUDIT.X86_64) {
      const x32 = listed.has("SCMP_ARCH_X32");
      if (stub) {
        if (nr & X32_BIT) {
          if (x32 && maxIn(SYSCALLS_X32) > 0 && nr > ((maxIn(SYSCALLS_X32) | X32_BIT) >>> 0)) return errnoRet(38);
        } else if (listed.has("SCMP_ARCH_X86_64") && maxIn(SYSCALLS_X86_64) > 0 && nr > maxIn(SYSCALLS_X86_64)) return errnoRet(38);
      }
      if (nr >= X32_BIT && !x32) return nr === 0xffffffff ? def : RET.KILL_THREAD;
      if (nr >= X32_BIT) {
        if (nr >= 2 * X32_BIT) return def;
        (table = SYSCALLS_X32), (bits32 = true), (nr -= X32_BIT);
      } else table = SYSCALLS_X86_64;
    } else if (d.arch === AUDIT.I386 && listed.has("SCMP_ARCH_X86")) {
      (table = SYSCALLS_I386), (bits32 = true);
      if (stub && maxIn(SYSCALLS_I386) > 0 && nr > maxIn(SYSCALLS_I386)) return errnoRet(38);
    } else return RET.KILL_THREAD;
    const rules: { action: number; conds: { index: number; op: string; value: bigint; valueTwo: bigint }[] }[] = [];
    for (const s of cfg.syscalls ?? []) {
      const action = act(s.action, s.errnoRet);
      if (action === def) continue;
      if (!s.names.some((n) => table[n] === nr)) continue;
      const conds = (s.args ?? []).map((a) => ({ index: a.index, op: a.op, value: BigInt(a.value), valueTwo: BigInt(a.valueTwo ?? 0) }));
      const split = new Set(conds.map((c) => c.index)).size !== conds.length;
      for (const n of s.names) if (table[n] === nr) (split ? conds.map((c) => [c]) : [conds]).forEach((cs) => rules.push({ action, conds: cs }));
    }
    const uncond = rules.find((r) => r.conds.length === 0);
    if (uncond) return uncond.action;
    const lo = (x: bigint) => x & 0xffffffffn;
    for (const r of rules) {
      if (r.conds.every((c) => (bits32 ? holds(c.op, lo(d.args[c.index]!), lo(c.value), lo(c.valueTwo)) : holds(c.op, d.args[c.index]!, c.value, c.valueTwo)))) return r.action;
    }
    return def;
  }

  // Deterministic pseudo-random numbers (xorshift32).
  let seed = 0x9e3779b9;
  const rnd = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const pick = <T,>(xs: readonly T[]) => xs[rnd(xs.length)]!;
  const NAMES = ["read", "write", "getpid", "getppid", "ioctl", "personality", "socket", "clone", "getpgid", "kcmp", "mbind", "futex_waitv", "mseal", "bogus_call", "socketcall", "uselib", "setsid", "execve", "rt_sigaction", "readv"];
  const ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"];
  const OPS = ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"];
  const VALS = [0n, 1n, 2n, 7n, 0xffn, 0xffffffffn, 0x1_00000000n, 0x1_00000001n, 0x2_00000000n, 0xff_0000ffffn, (1n << 64n) - 1n];
  const ARCH_SETS = [[], ["SCMP_ARCH_X86_64"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], ["SCMP_ARCH_X32"]];

  test("300 random profiles", () => {
    for (let round = 0; round < 300; round++) {
      const defaultAction = pick(ACTIONS);
      const cfg: LinuxSeccomp = {
        defaultAction,
        ...(defaultAction === "SCMP_ACT_ERRNO" || defaultAction === "SCMP_ACT_TRACE" ? { defaultErrnoRet: pick([1, 1, 38, 13]) } : {}),
        architectures: pick(ARCH_SETS),
        syscalls: Array.from({ length: 1 + rnd(round % 10 === 0 ? 120 : 12) }, () => {
          const action = pick(ACTIONS);
          return {
            names: Array.from({ length: 1 + rnd(3) }, () => pick(NAMES)),
            action,
            ...((action === "SCMP_ACT_ERRNO" || action === "SCMP_ACT_TRACE") && rnd(2) ? { errnoRet: 1 + rnd(200) } : {}),
            ...(rnd(3) ? { args: Array.from({ length: 1 + rnd(3) }, () => ({ index: rnd(3), op: pick(OPS), value: pick(VALS), valueTwo: pick(VALS) })) } : {}),
          };
        }),
      };
      const f = compileSeccomp(cfg, "x64");
      validate(f);
      const p = decode(f);
      const nrs = [...new Set(NAMES.flatMap((n) => [SYSCALLS_X86_64[n], SYSCALLS_I386[n], SYSCALLS_X32[n] === undefined ? undefined : (SYSCALLS_X32[n]! | X32_BIT) >>> 0]).filter((x) => x !== undefined))] as number[];
      nrs.push(0, 500, 1000, 0x3fffffff, X32_BIT | 600, 0x80000000, 0xffffffff);
      for (const arch of [AUDIT.X86_64, AUDIT.I386, AUDIT.AARCH64]) {
        for (const nr of nrs) {
          for (let k = 0; k < 6; k++) {
            const args = [pick(VALS), pick(VALS), pick(VALS), 0n, 0n, 0n];
            const got = runFilter(p, { nr, arch, args }), want = reference(cfg, { nr, arch, args });
            if (got !== want) throw new Error(`round ${round} arch 0x${arch.toString(16)} nr 0x${nr.toString(16)} args ${args.slice(0, 3).map((a) => "0x" + a.toString(16))}: got ${V(got)} want ${V(want)}\n${JSON.stringify(cfg, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
          }
        }
      }
    }
  });
});
