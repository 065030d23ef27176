// A small classic-BPF interpreter for seccomp filters (struct sock_filter[], little-endian), used by
// the seccomp tests to check what a compiled filter decides for a given seccomp_data — the same
// way the kernel runs it. It also checks the program the way the kernel's loader does (forward
// jumps in range, ends with ret, aligned loads within seccomp_data).

export interface SeccompData {
  nr: number;
  arch: number;
  ip?: bigint;
  args?: (bigint | number)[];
}

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export const AUDIT = { X86_64: 0xc000003e, I386: 0x40000003, AARCH64: 0xc00000b7, ARM: 0x40000028 } as const;

export function decode(filter: Uint8Array): Insn[] {
  if (filter.byteLength % 8) throw new Error("filter length is not a multiple of 8");
  const dv = new DataView(filter.buffer, filter.byteOffset, filter.byteLength);
  const out: Insn[] = [];
  for (let i = 0; i < filter.byteLength; i += 8) {
    out.push({ code: dv.getUint16(i, true), jt: dv.getUint8(i + 2), jf: dv.getUint8(i + 3), k: dv.getUint32(i + 4, true) });
  }
  return out;
}

/** seccomp_data as the kernel lays it out: int nr; u32 arch; u64 ip; u64 args[6]. */
export function seccompData(d: SeccompData): DataView {
  const b = new DataView(new ArrayBuffer(64));
  b.setUint32(0, d.nr >>> 0, true);
  b.setUint32(4, d.arch >>> 0, true);
  b.setBigUint64(8, d.ip ?? 0n, true);
  (d.args ?? []).forEach((a, i) => b.setBigUint64(16 + 8 * i, BigInt.asUintN(64, BigInt(a)), true));
  return b;
}

const CLASS = (c: number) => c & 0x07;
const SIZE = (c: number) => c & 0x18;
const MODE = (c: number) => c & 0xe0;
const OP = (c: number) => c & 0xf0;
const SRC = (c: number) => c & 0x08;

/** The kernel's checks on a seccomp program (bpf_check_classic + seccomp_check_filter, the parts we use). */
export function validate(filter: Uint8Array): void {
  const p = decode(filter);
  if (!p.length || p.length > 4096) throw new Error(`bad length ${p.length}`);
  p.forEach((ins, i) => {
    const c = ins.code;
    switch (CLASS(c)) {
      case 0x00: // LD
        if (MODE(c) === 0x20) {
          if (SIZE(c) !== 0x00 || ins.k & 3 || ins.k >= 64) throw new Error(`insn ${i}: bad seccomp_data load ${ins.k}`);
        } else if (MODE(c) !== 0x00 && MODE(c) !== 0x60 && MODE(c) !== 0x80) throw new Error(`insn ${i}: load mode not allowed in seccomp`);
        break;
      case 0x05: // JMP
        if (OP(c) === 0x00) {
          if (i + 1 + ins.k >= p.length) throw new Error(`insn ${i}: ja out of range`);
        } else if (i + 1 + ins.jt >= p.length || i + 1 + ins.jf >= p.length) throw new Error(`insn ${i}: jump out of range`);
        break;
    }
  });
  const last = p[p.length - 1]!;
  if (CLASS(last.code) !== 0x06) throw new Error("program does not end with ret");
}

/** Run the filter on one seccomp_data; returns the 32-bit SECCOMP_RET_* value. */
export function runFilter(filter: Uint8Array | Insn[], d: SeccompData): number {
  const p = Array.isArray(filter) ? filter : decode(filter);
  const data = seccompData(d);
  const mem = new Uint32Array(16);
  let A = 0, X = 0, pc = 0;
  for (let steps = 0; steps < 100000; steps++) {
    const ins = p[pc];
    if (!ins) throw new Error(`pc ${pc} out of program`);
    const c = ins.code;
    pc++;
    switch (CLASS(c)) {
      case 0x00: // LD
      case 0x01: {
        // LDX
        let v: number;
        if (MODE(c) === 0x20) {
          if (SIZE(c) !== 0x00) throw new Error("only 32-bit loads from seccomp_data");
          v = data.getUint32(ins.k, true);
        } else if (MODE(c) === 0x00) v = ins.k;
        else if (MODE(c) === 0x60) v = mem[ins.k]!;
        else if (MODE(c) === 0x80) v = 64; // BPF_LEN
        else throw new Error(`unsupported load mode 0x${c.toString(16)}`);
        if (CLASS(c) === 0x00) A = v >>> 0;
        else X = v >>> 0;
        break;
      }
      case 0x02:
        mem[ins.k] = A;
        break;
      case 0x03:
        mem[ins.k] = X;
        break;
      case 0x04: {
        // ALU
        const s = SRC(c) ? X : ins.k;
        switch (OP(c)) {
          case 0x00: A = (A + s) >>> 0; break;
          case 0x10: A = (A - s) >>> 0; break;
          case 0x20: A = Math.imul(A, s) >>> 0; break;
          case 0x30: A = s ? Math.floor(A / s) >>> 0 : 0; break;
          case 0x40: A = (A | s) >>> 0; break;
          case 0x50: A = (A & s) >>> 0; break;
          case 0x60: A = s >= 32 ? 0 : (A << s) >>> 0; break;
          case 0x70: A = s >= 32 ? 0 : A >>> s; break;
          case 0x80: A = -A >>> 0; break;
          case 0x90: A = s ? A % s : 0; break;
          case 0xa0: A = (A ^ s) >>> 0; break;
          default: throw new Error(`unsupported alu 0x${c.toString(16)}`);
        }
        break;
      }
      case 0x05: {
        // JMP
        if (OP(c) === 0x00) {
          pc += ins.k;
          break;
        }
        const s = (SRC(c) ? X : ins.k) >>> 0;
        let cond: boolean;
        switch (OP(c)) {
          case 0x10: cond = A === s; break;
          case 0x20: cond = A > s; break;
          case 0x30: cond = A >= s; break;
          case 0x40: cond = (A & s) !== 0; break;
          default: throw new Error(`unsupported jump 0x${c.toString(16)}`);
        }
        pc += cond ? ins.jt : ins.jf;
        break;
      }
      case 0x06:
        return (SRC(c) || (c & 0x18) === 0x10 ? A : ins.k) >>> 0;
      case 0x07:
        if (c === 0x07) X = A;
        else if (c === 0x87) A = X;
        else throw new Error(`unsupported misc 0x${c.toString(16)}`);
        break;
    }
  }
  throw new Error("filter did not return");
}

export const RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

export const errnoRet = (e: number) => (RET.ERRNO | e) >>> 0;

/** A readable form of a SECCOMP_RET_* value, for test messages: "ALLOW", "ERRNO(1)", ... */
export function verdict(r: number): string {
  const action = (r & 0xffff0000) >>> 0, data = r & 0xffff;
  const name = Object.entries(RET).find(([, v]) => v >>> 0 === action)?.[0] ?? `0x${action.toString(16)}`;
  return action === RET.ERRNO || action === RET.TRACE ? `${name}(${data})` : data ? `${name}+${data}` : name;
}
