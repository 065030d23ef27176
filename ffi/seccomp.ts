// seccomp for the runtime, without libseccomp: compiles an OCI `linux.seccomp` object into a classic
// BPF program (struct sock_filter[]) and installs it with seccomp(2).
//
// The program follows what runc 1.1 builds (libseccomp's filter plus runc's -ENOSYS patch):
//
//   ld  arch                    ; seccomp_data.arch
//   jeq AUDIT_ARCH_<native> -> native section, jeq <each listed compat arch> -> its section
//   ret KILL_THREAD             ; any other arch (libseccomp's default "bad arch" action)
//   section:
//     ld nr
//     -ENOSYS stub (runc): a syscall number above the largest one the profile names for this arch
//       gets ENOSYS instead of the default action, so a newer libc falls back to older calls. Only
//       when the default action is not ALLOW/LOG/TRACE and defaultErrnoRet is not ENOSYS itself.
//     binary search on nr over the ranges of syscalls that share an outcome
//     shared `ret` instructions, then one block per syscall with argument rules
//
// Semantics, as runc 1.1 + libseccomp 2.5 apply a profile (checked against the filter real runc
// installs, see test/seccomp-oracle.test.ts):
//  - names unknown for an arch are skipped on that arch (not an error);
//  - a rule whose action equals the default action is dropped (runc: "redundant");
//  - args in one rule are ANDed; but when two args of a rule name the same index, runc adds each
//    arg as a rule of its own, so they are ORed;
//  - several rules for one syscall: an unconditional rule wins over conditional ones (the first
//    unconditional one if several); conditional rules are tried in order, first match wins.
//    (libseccomp merges overlapping conditional rules with DIFFERENT actions into a decision tree
//    where a rule on a higher argument index, or with a lower-numbered operator on the same
//    argument, takes precedence, and refuses some combinations with EEXIST. Profiles in the wild
//    do not mix actions that way; rules with one action behave the same either way.)
//  - 64-bit argument comparisons check both 32-bit halves (high half first); on 32-bit arches
//    (i386, arm, and x32 rules) only the low 32 bits of the argument and the value are compared;
//  - x86_64: a syscall number with the x32 bit (0x40000000) is an x32 call. With SCMP_ARCH_X32
//    listed it is matched against the x32 rules (numbers | 0x40000000); without it it gets the
//    bad-arch action (KILL_THREAD), as libseccomp does, except nr -1 (0xffffffff), which gets the
//    default action;
//  - the -ENOSYS stub only covers arches listed in `architectures`, with the largest number any
//    rule names (whatever its action);
//  - SCMP_ACT_NOTIFY (and listenerPath) are not supported: compileSeccomp throws.
// Not reproduced: libseccomp's rewriting of socket/ipc rules into socketcall/ipc multiplexer
// rules on i386 (a profile allowing "socketcall"/"ipc" by name, like Docker's, is unaffected).
import { dlopen, ptr } from "bun:ffi";
import { errno } from "./libc";
import { SyscallError } from "./errno";
import { AUDIT_ARCH, OCI_ARCH_NAMES, SYSCALLS_AARCH64, SYSCALLS_ARM, SYSCALLS_I386, SYSCALLS_X32, SYSCALLS_X86_64 } from "./syscalls";

// ---------------------------------------------------------------------------------------------
// The OCI runtime-spec `linux.seccomp` object

export interface SeccompArg {
  index: number;
  /** A JSON number; bigint or a decimal string are accepted too (JSON numbers lose precision past 2^53). */
  value: number | bigint | string;
  valueTwo?: number | bigint | string;
  op: string;
}
export interface SeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}
export interface LinuxSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: SeccompSyscall[];
}

// SECCOMP_RET_* (linux/seccomp.h)
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;
export const SECCOMP_RET_ACTION_FULL = 0xffff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

export const SECCOMP_FILTER_FLAG = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
} as const;

const EPERM = 1;
const ENOSYS = 38;
const X32_SYSCALL_BIT = 0x40000000;
const BAD_ARCH_ACTION = SECCOMP_RET.KILL_THREAD;
/** BPF_MAXINSNS: the kernel refuses longer filters. */
export const BPF_MAXINSNS = 4096;

const ACTIONS: Record<string, number> = {
  SCMP_ACT_KILL: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_THREAD: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_PROCESS: SECCOMP_RET.KILL_PROCESS,
  SCMP_ACT_TRAP: SECCOMP_RET.TRAP,
  SCMP_ACT_ERRNO: SECCOMP_RET.ERRNO,
  SCMP_ACT_TRACE: SECCOMP_RET.TRACE,
  SCMP_ACT_ALLOW: SECCOMP_RET.ALLOW,
  SCMP_ACT_LOG: SECCOMP_RET.LOG,
};

const OPS = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"] as const;
type Op = (typeof OPS)[number];

/**
 * The SECCOMP_RET_* value of an OCI action; errnoRet is the data of ERRNO and TRACE (EPERM when
 * absent). Like runc 1.1, an errnoRet on any other action is ignored (the runtime-spec would have
 * it refused, but configs runc accepts should work here too).
 */
export function seccompAction(action: string, errnoRet: number | undefined, what = "action"): number {
  if (action === "SCMP_ACT_NOTIFY") throw new Error(`seccomp: ${what} SCMP_ACT_NOTIFY is not supported (no seccomp user notification / listenerPath support)`);
  const base = ACTIONS[action];
  if (base === undefined) throw new Error(`seccomp: unknown ${what} ${JSON.stringify(action)}`);
  if (action === "SCMP_ACT_ERRNO" || action === "SCMP_ACT_TRACE") {
    const e = errnoRet ?? EPERM;
    if (!Number.isInteger(e) || e < 0) throw new Error(`seccomp: invalid errnoRet ${JSON.stringify(errnoRet)}`);
    return (base | (e & SECCOMP_RET_DATA)) >>> 0;
  }
  return base >>> 0;
}

/** The seccomp(2) flags word for the OCI flag names; runc's error for unknown ones. */
export function seccompFilterFlags(flags: readonly string[] = []): number {
  let f = 0;
  for (const name of flags) {
    const v = (SECCOMP_FILTER_FLAG as Record<string, number>)[name];
    if (v === undefined) throw new Error(`seccomp flag ${name} is not known to runc`);
    f |= v;
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// Architectures

interface ArchDef {
  audit: number;
  table: Readonly<Record<string, number>>;
  /** Compare only the low 32 bits of arguments. */
  bits32: boolean;
}

const OCI_ARCHES = new Set(OCI_ARCH_NAMES);

const ARCH_X86_64: ArchDef = { audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X86_64, bits32: false };
const ARCH_I386: ArchDef = { audit: AUDIT_ARCH.I386, table: SYSCALLS_I386, bits32: true };
const ARCH_AARCH64: ArchDef = { audit: AUDIT_ARCH.AARCH64, table: SYSCALLS_AARCH64, bits32: false };
const ARCH_ARM: ArchDef = { audit: AUDIT_ARCH.ARM, table: SYSCALLS_ARM, bits32: true };

/** process.arch names and OCI names -> the native arch and the compat arches its kernel can run. */
function nativeArch(arch: string): { native: string; compat: Record<string, ArchDef> } {
  switch (arch) {
    case "x64":
    case "x86_64":
    case "amd64":
    case "SCMP_ARCH_X86_64":
      return { native: "SCMP_ARCH_X86_64", compat: { SCMP_ARCH_X86: ARCH_I386 } };
    case "arm64":
    case "aarch64":
    case "SCMP_ARCH_AARCH64":
      return { native: "SCMP_ARCH_AARCH64", compat: { SCMP_ARCH_ARM: ARCH_ARM } };
    default:
      throw new Error(`seccomp: unsupported architecture ${arch}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Normalized rules

interface Cond {
  index: number;
  op: Op;
  value: bigint;
  valueTwo: bigint;
}
interface Rule {
  name: string;
  action: number;
  conds: Cond[];
}

const U64_MAX = (1n << 64n) - 1n;
function u64(v: unknown, what: string): bigint {
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new Error(`seccomp: ${what} ${v} is not an integer`);
    // JSON.parse rounds 18446744073709551615 (UINT64_MAX) up to 2^64.
    b = v === 2 ** 64 ? U64_MAX : BigInt(v);
  } else if (typeof v === "string" && /^\d+$/.test(v)) b = BigInt(v);
  else if (v === undefined || v === null) b = 0n;
  else throw new Error(`seccomp: ${what} ${JSON.stringify(v)} is not a number`);
  if (b < 0n || b > U64_MAX) throw new Error(`seccomp: ${what} ${b} is out of range`);
  return b;
}

function normalize(cfg: LinuxSeccomp): { defaultAction: number; rules: Rule[]; allNames: string[] } {
  if (!cfg || typeof cfg !== "object") throw new Error("seccomp: linux.seccomp must be an object");
  if (typeof cfg.defaultAction !== "string") throw new Error("seccomp: defaultAction is required");
  const defaultAction = seccompAction(cfg.defaultAction, cfg.defaultErrnoRet, "defaultAction");
  seccompFilterFlags(cfg.flags ?? []);
  for (const a of cfg.architectures ?? []) if (!OCI_ARCHES.has(a)) throw new Error(`seccomp: invalid architecture ${JSON.stringify(a)}`);
  const rules: Rule[] = [];
  const allNames: string[] = [];
  for (const [i, sc] of (cfg.syscalls ?? []).entries()) {
    if (!sc || typeof sc !== "object") throw new Error(`seccomp: syscalls[${i}] must be an object`);
    const names: string[] = Array.isArray(sc.names) ? sc.names : typeof (sc as any).name === "string" ? [(sc as any).name] : [];
    if (!names.length) throw new Error(`seccomp: syscalls[${i}] has no names`);
    if (typeof sc.action !== "string") throw new Error(`seccomp: syscalls[${i}] has no action`);
    const action = seccompAction(sc.action, sc.errnoRet, `action of syscalls[${i}]`);
    const conds: Cond[] = (sc.args ?? []).map((a, j) => {
      const what = `syscalls[${i}].args[${j}]`;
      if (!Number.isInteger(a?.index) || a.index < 0 || a.index > 5) throw new Error(`seccomp: ${what}.index must be 0..5`);
      if (!(OPS as readonly string[]).includes(a.op)) throw new Error(`seccomp: ${what}: unknown operator ${JSON.stringify(a.op)}`);
      return { index: a.index, op: a.op as Op, value: u64(a.value, `${what}.value`), valueTwo: u64(a.valueTwo, `${what}.valueTwo`) };
    });
    for (const name of names) {
      if (typeof name !== "string" || !name) throw new Error(`seccomp: syscalls[${i}] has an empty syscall name`);
      allNames.push(name);
      // runc skips a rule that would do what the default action does anyway.
      if (action === defaultAction) continue;
      const sameIndex = new Set(conds.map((c) => c.index)).size !== conds.length;
      if (sameIndex) for (const c of conds) rules.push({ name, action, conds: [c] });
      else rules.push({ name, action, conds });
    }
  }
  return { defaultAction, rules, allNames };
}

// ---------------------------------------------------------------------------------------------
// A tiny assembler: instructions with symbolic forward jumps, long jumps made with BPF_JA.

const BPF = {
  LD_W_ABS: 0x20,
  ALU_AND_K: 0x54,
  JA: 0x05,
  JEQ: 0x15,
  JGT: 0x25,
  JGE: 0x35,
  JSET: 0x45,
  RET_K: 0x06,
} as const;
type JOp = "jeq" | "jgt" | "jge" | "jset";
const JCODE: Record<JOp, number> = { jeq: BPF.JEQ, jgt: BPF.JGT, jge: BPF.JGE, jset: BPF.JSET };

type Label = number;
type Ins =
  | { k: "label"; id: Label }
  | { k: "ld"; off: number }
  | { k: "and"; v: number }
  | { k: "ret"; v: number }
  | { k: "ja"; to: Label }
  | { k: "j"; op: JOp; v: number; t: Label; f: Label };

class Asm {
  code: Ins[] = [];
  private next = 0;
  label(): Label {
    return this.next++;
  }
  place(id: Label): void {
    this.code.push({ k: "label", id });
  }
  ld(off: number): void {
    this.code.push({ k: "ld", off });
  }
  and(v: number): void {
    this.code.push({ k: "and", v: v >>> 0 });
  }
  ret(v: number): void {
    this.code.push({ k: "ret", v: v >>> 0 });
  }
  ja(to: Label): void {
    this.code.push({ k: "ja", to });
  }
  j(op: JOp, v: number, t: Label, f: Label): void {
    this.code.push({ k: "j", op, v: v >>> 0, t, f });
  }

  /** Lay out and encode. Conditional jumps farther than 255 get a BPF_JA (or the target's ret) after them. */
  assemble(): Uint8Array {
    const code = this.code;
    const far = code.map(() => ({ t: false, f: false }));
    // The ret a label leads to (through other labels), to copy instead of jumping to it.
    const retAfter = new Map<Label, number>();
    for (let i = 0; i < code.length; i++) {
      const c = code[i]!;
      if (c.k !== "label") continue;
      let j = i;
      while (j < code.length && code[j]!.k === "label") j++;
      const r = code[j];
      if (r?.k === "ret") retAfter.set(c.id, r.v);
    }
    let pos: number[] = [];
    const labelPos = new Map<Label, number>();
    for (;;) {
      pos = [];
      labelPos.clear();
      let p = 0;
      for (let i = 0; i < code.length; i++) {
        const c = code[i]!;
        pos.push(p);
        if (c.k === "label") labelPos.set(c.id, p);
        else p += c.k === "j" ? 1 + (far[i]!.t ? 1 : 0) + (far[i]!.f ? 1 : 0) : 1;
      }
      let changed = false;
      for (let i = 0; i < code.length; i++) {
        const c = code[i]!;
        if (c.k !== "j") continue;
        // Offsets count from the next instruction, which is the first long jump if any.
        const base = pos[i]! + 1;
        if (!far[i]!.t && this.dist(labelPos, c.t, base) > 255) (far[i]!.t = true), (changed = true);
        if (!far[i]!.f && this.dist(labelPos, c.f, base) > 255) (far[i]!.f = true), (changed = true);
      }
      if (!changed) break;
    }
    const out: number[][] = [];
    const emit = (code: number, jt: number, jf: number, k: number) => out.push([code, jt, jf, k >>> 0]);
    for (let i = 0; i < code.length; i++) {
      const c = code[i]!;
      const here = out.length;
      switch (c.k) {
        case "label":
          break;
        case "ld":
          emit(BPF.LD_W_ABS, 0, 0, c.off);
          break;
        case "and":
          emit(BPF.ALU_AND_K, 0, 0, c.v);
          break;
        case "ret":
          emit(BPF.RET_K, 0, 0, c.v);
          break;
        case "ja":
          emit(BPF.JA, 0, 0, this.dist(labelPos, c.to, here + 1));
          break;
        case "j": {
          const { t: ft, f: ff } = far[i]!;
          const base = here + 1;
          const jt = ft ? 0 : this.dist(labelPos, c.t, base);
          const jf = ff ? (ft ? 1 : 0) : this.dist(labelPos, c.f, base);
          emit(JCODE[c.op], jt, jf, c.v);
          // Long jumps: a copy of the target's ret, or a BPF_JA to it.
          for (const [isFar, to] of [[ft, c.t], [ff, c.f]] as const) {
            if (!isFar) continue;
            const r = retAfter.get(to);
            if (r !== undefined) emit(BPF.RET_K, 0, 0, r);
            else emit(BPF.JA, 0, 0, this.dist(labelPos, to, out.length + 1));
          }
          break;
        }
      }
    }
    if (out.length > BPF_MAXINSNS) throw new Error(`seccomp: the filter needs ${out.length} BPF instructions, more than the kernel's ${BPF_MAXINSNS}`);
    if (!out.length || out[out.length - 1]![0] !== BPF.RET_K) throw new Error("seccomp: internal error: the filter does not end with ret");
    const buf = new Uint8Array(out.length * 8);
    const dv = new DataView(buf.buffer);
    out.forEach(([code, jt, jf, k], i) => {
      dv.setUint16(i * 8, code!, true);
      dv.setUint8(i * 8 + 2, jt!);
      dv.setUint8(i * 8 + 3, jf!);
      dv.setUint32(i * 8 + 4, k!, true);
    });
    return buf;
  }

  private dist(labelPos: Map<Label, number>, to: Label, from: number): number {
    const p = labelPos.get(to);
    if (p === undefined) throw new Error(`seccomp: internal error: label ${to} not placed`);
    const d = p - from;
    if (d < 0) throw new Error("seccomp: internal error: backward jump");
    return d;
  }
}

// seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian hosts only).
const OFF_NR = 0;
const OFF_ARCH = 4;
const argLo = (i: number) => 16 + 8 * i;
const argHi = (i: number) => 20 + 8 * i;

/** One rule's conditions: falls through when all hold, jumps to `fail` otherwise. */
function emitConds(a: Asm, conds: Cond[], bits32: boolean, fail: Label): void {
  for (const c of conds) {
    const pass = a.label();
    const lo = Number(c.value & 0xffffffffn), hi = Number(c.value >> 32n);
    const lo2 = Number(c.valueTwo & 0xffffffffn), hi2 = Number(c.valueTwo >> 32n);
    if (bits32) {
      a.ld(argLo(c.index));
      switch (c.op) {
        case "SCMP_CMP_EQ": a.j("jeq", lo, pass, fail); break;
        case "SCMP_CMP_NE": a.j("jeq", lo, fail, pass); break;
        case "SCMP_CMP_GT": a.j("jgt", lo, pass, fail); break;
        case "SCMP_CMP_GE": a.j("jge", lo, pass, fail); break;
        case "SCMP_CMP_LT": a.j("jge", lo, fail, pass); break;
        case "SCMP_CMP_LE": a.j("jgt", lo, fail, pass); break;
        case "SCMP_CMP_MASKED_EQ": a.and(lo); a.j("jeq", lo2, pass, fail); break;
      }
      a.place(pass);
      continue;
    }
    const loHalf = a.label();
    a.ld(argHi(c.index));
    switch (c.op) {
      case "SCMP_CMP_EQ":
        a.j("jeq", hi, loHalf, fail); a.place(loHalf);
        a.ld(argLo(c.index)); a.j("jeq", lo, pass, fail);
        break;
      case "SCMP_CMP_NE":
        a.j("jeq", hi, loHalf, pass); a.place(loHalf);
        a.ld(argLo(c.index)); a.j("jeq", lo, fail, pass);
        break;
      case "SCMP_CMP_GT":
      case "SCMP_CMP_GE": {
        const eqHi = a.label();
        a.j("jgt", hi, pass, eqHi); a.place(eqHi);
        a.j("jeq", hi, loHalf, fail); a.place(loHalf);
        a.ld(argLo(c.index)); a.j(c.op === "SCMP_CMP_GT" ? "jgt" : "jge", lo, pass, fail);
        break;
      }
      case "SCMP_CMP_LT":
      case "SCMP_CMP_LE": {
        const eqHi = a.label();
        a.j("jgt", hi, fail, eqHi); a.place(eqHi);
        a.j("jeq", hi, loHalf, pass); a.place(loHalf);
        a.ld(argLo(c.index)); a.j(c.op === "SCMP_CMP_LT" ? "jge" : "jgt", lo, fail, pass);
        break;
      }
      case "SCMP_CMP_MASKED_EQ":
        a.and(hi); a.j("jeq", hi2, loHalf, fail); a.place(loHalf);
        a.ld(argLo(c.index)); a.and(lo); a.j("jeq", lo2, pass, fail);
        break;
    }
    a.place(pass);
  }
}

/** What a syscall number leads to in a section. */
type Target = { ret: number } | { block: number };
const targetKey = (t: Target) => ("ret" in t ? `r${t.ret}` : `b${t.block}`);

interface Section {
  audit: number;
  /** nr (x32 numbers with the x32 bit) -> its rules on this arch, in order. */
  calls: Map<number, { rules: Rule[]; bits32: boolean }>;
  /** runc's -ENOSYS limits: the largest nr the profile names for this arch, and for x32 (x86_64 only). */
  enosys: { max?: number; x32Max?: number };
  /** [0x40000000, 0xffffffff] without x32 rules: x32 calls' fate on x86_64. */
  x32Region?: number;
}

/**
 * Compile an OCI linux.seccomp object to a classic BPF program: struct sock_filter[] (8 bytes each:
 * u16 code, u8 jt, u8 jf, u32 k, host little-endian), ready for installSeccomp().
 */
export function compileSeccomp(cfg: LinuxSeccomp, arch: string = process.arch): Uint8Array {
  const { native, compat } = nativeArch(arch);
  if (cfg?.listenerPath) throw new Error("seccomp: listenerPath is not supported (SCMP_ACT_NOTIFY needs seccomp user notification, which this runtime does not implement)");
  const { defaultAction, rules, allNames } = normalize(cfg);
  const listed = new Set(cfg.architectures ?? []);
  const x32 = native === "SCMP_ARCH_X86_64" && listed.has("SCMP_ARCH_X32");
  const stub = !(
    defaultAction >>> 0 === SECCOMP_RET.ALLOW ||
    (defaultAction & SECCOMP_RET_ACTION_FULL) >>> 0 === SECCOMP_RET.LOG ||
    (defaultAction & SECCOMP_RET_ACTION_FULL) >>> 0 === SECCOMP_RET.TRACE ||
    (cfg.defaultAction === "SCMP_ACT_ERRNO" && cfg.defaultErrnoRet === ENOSYS)
  );

  const collect = (table: Readonly<Record<string, number>>, bits32: boolean, bit = 0) => {
    const calls: Section["calls"] = new Map();
    for (const r of rules) {
      const n = table[r.name];
      if (n === undefined) continue;
      const nr = (n | bit) >>> 0;
      let e = calls.get(nr);
      if (!e) calls.set(nr, (e = { rules: [], bits32 }));
      e.rules.push(r);
    }
    return calls;
  };
  const maxOf = (table: Readonly<Record<string, number>>) => {
    let m = -1;
    for (const n of allNames) if (table[n] !== undefined && table[n]! > m) m = table[n]!;
    return m;
  };

  // runc computes its -ENOSYS limits only for the arches listed in the profile (not an implicit
  // native one), from every name in the profile, whatever the rule's action.
  const limit = (name: string, table: Readonly<Record<string, number>>) => {
    if (!stub || !listed.has(name)) return undefined;
    const m = maxOf(table);
    return m > 0 ? m : undefined;
  };
  const sections: Section[] = [];
  if (native === "SCMP_ARCH_X86_64") {
    const calls = collect(SYSCALLS_X86_64, false);
    if (x32) for (const [nr, e] of collect(SYSCALLS_X32, true, X32_SYSCALL_BIT)) calls.set(nr, e);
    const s: Section = { audit: ARCH_X86_64.audit, calls, enosys: { max: limit("SCMP_ARCH_X86_64", SYSCALLS_X86_64), x32Max: limit("SCMP_ARCH_X32", SYSCALLS_X32) } };
    if (!x32) s.x32Region = BAD_ARCH_ACTION;
    sections.push(s);
  } else {
    sections.push({ audit: ARCH_AARCH64.audit, calls: collect(SYSCALLS_AARCH64, false), enosys: { max: limit("SCMP_ARCH_AARCH64", SYSCALLS_AARCH64) } });
  }
  for (const [name, def] of Object.entries(compat)) {
    if (!listed.has(name)) continue;
    sections.push({ audit: def.audit, calls: collect(def.table, def.bits32), enosys: { max: limit(name, def.table) } });
  }

  const a = new Asm();
  const sectionLabels = sections.map(() => a.label());
  a.ld(OFF_ARCH);
  sections.forEach((s, i) => {
    const next = a.label();
    a.j("jeq", s.audit, sectionLabels[i]!, next);
    a.place(next);
  });
  a.ret(BAD_ARCH_ACTION);
  sections.forEach((s, i) => {
    a.place(sectionLabels[i]!);
    emitSection(a, s, defaultAction);
  });
  return a.assemble();
}

function emitSection(a: Asm, s: Section, defaultAction: number): void {
  const rets = new Map<number, Label>();
  const retLabel = (v: number) => {
    let l = rets.get(v >>> 0);
    if (l === undefined) rets.set(v >>> 0, (l = a.label()));
    return l;
  };
  const blocks = new Map<number, Label>();

  // nr -> outcome: an unconditional rule's action, or the block of its conditional rules.
  const targets = new Map<number, Target>();
  for (const [nr, e] of s.calls) {
    const uncond = e.rules.find((r) => r.conds.length === 0);
    if (uncond) targets.set(nr, { ret: uncond.action });
    else targets.set(nr, { block: nr });
  }
  // Ranges over the whole u32 space, neighbours with one outcome merged.
  const ranges: { lo: number; target: Target }[] = [];
  const push = (lo: number, target: Target) => {
    const last = ranges[ranges.length - 1];
    if (last && targetKey(last.target) === targetKey(target)) return;
    ranges.push({ lo, target });
  };
  const def: Target = { ret: defaultAction };
  let cursor = 0;
  const limit = s.x32Region !== undefined ? X32_SYSCALL_BIT : 2 ** 32;
  for (const nr of [...targets.keys()].sort((x, y) => x - y)) {
    if (nr >= limit) continue;
    if (nr > cursor) push(cursor, def);
    push(nr, targets.get(nr)!);
    cursor = nr + 1;
  }
  if (cursor < limit) push(cursor, def);
  if (s.x32Region !== undefined) {
    push(X32_SYSCALL_BIT, { ret: s.x32Region });
    // libseccomp leaves nr -1 (a syscall skipped by a tracer) to the default action.
    push(0xffffffff, def);
  }

  const labelOf = (t: Target): Label => {
    if ("ret" in t) return retLabel(t.ret);
    let l = blocks.get(t.block);
    if (l === undefined) blocks.set(t.block, (l = a.label()));
    return l;
  };

  a.ld(OFF_NR);
  const tree = a.label();
  const { max, x32Max } = s.enosys;
  const enosys = () => retLabel(SECCOMP_RET.ERRNO | ENOSYS);
  if (s.audit === AUDIT_ARCH.X86_64 && (max !== undefined || x32Max !== undefined)) {
    // runc: the x32 bit picks the limit; a mode whose arch is not listed skips the stub.
    const native64 = a.label(), x32Check = a.label();
    a.j("jset", X32_SYSCALL_BIT, x32Max !== undefined ? x32Check : tree, max !== undefined ? native64 : tree);
    if (max !== undefined) {
      a.place(native64);
      a.j("jgt", max, enosys(), tree);
    }
    if (x32Max !== undefined) {
      a.place(x32Check);
      a.j("jgt", (x32Max | X32_SYSCALL_BIT) >>> 0, enosys(), tree);
    }
  } else if (max !== undefined) {
    a.j("jgt", max, enosys(), tree);
  }
  a.place(tree);
  // Binary search over the ranges.
  const node = (i: number, j: number, here?: Label): void => {
    // ranges[i..j]; `here` is this node's label when it was jumped to.
    if (here !== undefined) a.place(here);
    if (i === j) {
      a.ja(labelOf(ranges[i]!.target));
      return;
    }
    const m = (i + j + 1) >> 1;
    const left = i === m - 1 ? labelOf(ranges[i]!.target) : a.label();
    const right = m === j ? labelOf(ranges[j]!.target) : a.label();
    a.j("jge", ranges[m]!.lo, right, left);
    if (i !== m - 1) node(i, m - 1, left);
    if (m !== j) node(m, j, right);
  };
  if (ranges.length === 1) a.ja(labelOf(ranges[0]!.target));
  else node(0, ranges.length - 1);
  for (const [v, l] of rets) {
    a.place(l);
    a.ret(v);
  }
  for (const [nr, l] of blocks) {
    a.place(l);
    const { rules, bits32 } = s.calls.get(nr)!;
    for (const r of rules) {
      const fail = a.label();
      emitConds(a, r.conds, bits32, fail);
      a.ret(r.action);
      a.place(fail);
    }
    a.ret(defaultAction);
  }
}

// ---------------------------------------------------------------------------------------------
// Installing

const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_NR: Record<string, number> = { x64: SYSCALLS_X86_64.seccomp!, arm64: SYSCALLS_AARCH64.seccomp! };

let syscallFn: ((...a: bigint[]) => bigint) | undefined;
function rawSyscall(nr: number, a1: bigint, a2: bigint, a3: bigint): number {
  syscallFn ??= dlopen("libc.so.6", { syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64"], returns: "i64" } }).symbols.syscall as any;
  return Number(syscallFn!(BigInt(nr), a1, a2, a3, 0n, 0n));
}

/**
 * Install a compiled filter on the calling thread: seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)
 * with struct sock_fprog { u16 len; u64 filter } and flags from the OCI list
 * (SECCOMP_FILTER_FLAG_TSYNC / _LOG / _SPEC_ALLOW).
 *
 * The kernel only lets a thread install a filter when it has no_new_privs set
 * (prctl(PR_SET_NO_NEW_PRIVS, 1)) or CAP_SYS_ADMIN in its user namespace; otherwise EACCES. So the
 * runtime calls it, like runc, either while still privileged (noNewPrivileges false: before
 * dropping capabilities and switching user) or, with noNewPrivileges, last thing before execve.
 * Every syscall made after it (by this thread and, with TSYNC, every thread) is filtered, execve
 * included. Without TSYNC only the calling thread is filtered: call it on the thread that execs.
 */
export function installSeccomp(filter: Uint8Array, flags: readonly string[] = []): void {
  if (filter.byteLength === 0 || filter.byteLength % 8 !== 0) throw new Error("seccomp: the filter is not a list of 8-byte BPF instructions");
  const len = filter.byteLength / 8;
  if (len > BPF_MAXINSNS) throw new Error(`seccomp: the filter has ${len} instructions, more than ${BPF_MAXINSNS}`);
  const nr = SECCOMP_NR[process.arch];
  if (nr === undefined) throw new Error(`seccomp: unsupported architecture ${process.arch}`);
  const f = seccompFilterFlags(flags);
  const prog = new Uint8Array(16);
  const dv = new DataView(prog.buffer);
  dv.setUint16(0, len, true);
  dv.setBigUint64(8, BigInt(ptr(filter) as unknown as number), true);
  // `filter` and `prog` stay referenced (and so alive) until the call returns.
  const r = rawSyscall(nr, BigInt(SECCOMP_SET_MODE_FILTER), BigInt(f), BigInt(ptr(prog) as unknown as number));
  if (r < 0) throw new SyscallError("seccomp", ["SECCOMP_SET_MODE_FILTER", ...flags], errno());
  // With TSYNC a positive result is the id of a thread that could not be synchronized.
  if (r > 0) throw new Error(`seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC): thread ${r} could not be synchronized`);
}
