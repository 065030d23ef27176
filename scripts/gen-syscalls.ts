// Regenerates ffi/syscalls.ts: the syscall name -> number tables seccomp needs (x86_64, x32, i386,
// aarch64, arm EABI), from the kernel's UAPI headers plus the calls added after them.
//
//   apt-get download linux-libc-dev-arm64-cross linux-libc-dev-armhf-cross
//   for f in *.deb; do dpkg-deb -x "$f" /tmp/cross; done
//   node_modules/.bin/bun scripts/gen-syscalls.ts /tmp/cross > ffi/syscalls.ts
//
// The x86 tables come from the host's linux-libc-dev (/usr/include/x86_64-linux-gnu/asm), the
// generic (aarch64) and arm ones from the cross packages; gcc -E -dM expands their macros.
// LATER lists the calls newer than those headers (kernel 6.1), from the kernel's syscall tables.
import { readFileSync } from "node:fs";

const cross = process.argv[2] ?? "/tmp/cross";
const X86 = "/usr/include/x86_64-linux-gnu/asm";

/** `#define __NR_name <expr>` lines -> name -> number, expanding the macros they reference. */
function resolveDefines(text: string, prefix: RegExp, consts: Record<string, number> = {}): Record<string, number> {
  const defs = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^#define\s+(\w+)\s+(.+?)\s*$/.exec(line);
    if (m) defs.set(m[1]!, m[2]!);
  }
  const cache = new Map<string, number | undefined>(Object.entries(consts));
  const evalName = (name: string, depth = 0): number | undefined => {
    if (cache.has(name)) return cache.get(name);
    const expr = defs.get(name);
    if (expr === undefined || depth > 20) return undefined;
    let ok = true;
    const js = expr.replace(/\b0[xX][0-9a-fA-F]+\b|[A-Za-z_]\w*/g, (id) => {
      if (/^0[xX]/.test(id)) return id;
      const v = evalName(id, depth + 1);
      if (v === undefined) ok = false;
      return String(v);
    });
    let v: number | undefined;
    if (ok && /^[\d\s()+\-x*a-fA-F|<]+$/.test(js)) v = Number(Function(`return (${js})`)());
    cache.set(name, v);
    return v;
  };
  const out: Record<string, number> = {};
  for (const name of defs.keys()) {
    const m = prefix.exec(name);
    if (!m) continue;
    const v = evalName(name);
    if (v !== undefined && Number.isInteger(v)) out[m[1]!] = v;
  }
  return out;
}

function gccDefines(args: string[]): string {
  const r = Bun.spawnSync(["gcc", "-E", "-dM", "-nostdinc", ...args, "-x", "c", "-"], { stdin: Buffer.from("#include <asm/unistd.h>\n") });
  if (r.exitCode !== 0) throw new Error(`gcc failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const NOT_CALLS = new Set(["syscalls", "arch_specific_syscall", "SYSCALL_BASE", "SYSCALL_MASK", "OABI_SYSCALL_BASE"]);
function clean(t: Record<string, number>): Record<string, number> {
  for (const k of Object.keys(t)) if (NOT_CALLS.has(k) || k.startsWith("3264")) delete t[k];
  return t;
}

const x86_64 = clean(resolveDefines(readFileSync(`${X86}/unistd_64.h`, "utf8"), /^__NR_(\w+)$/));
const i386 = clean(resolveDefines(readFileSync(`${X86}/unistd_32.h`, "utf8"), /^__NR_(\w+)$/));
// x32 numbers are stored without __X32_SYSCALL_BIT; the compiler adds it.
const x32 = clean(resolveDefines(readFileSync(`${X86}/unistd_x32.h`, "utf8"), /^__NR_(\w+)$/, { __X32_SYSCALL_BIT: 0 }));
const aarch64 = clean(resolveDefines(gccDefines(["-I", `${cross}/usr/aarch64-linux-gnu/include`]), /^__NR_(\w+)$/));
const armText = gccDefines(["-D__ARM_EABI__", "-I", `${cross}/usr/arm-linux-gnueabihf/include`]);
const arm = clean(resolveDefines(armText, /^__NR_(\w+)$/));
// ARM private calls (__ARM_NR_*), named as libseccomp names them.
Object.assign(arm, resolveDefines(armText, /^__ARM_NR_(breakpoint|cacheflush|usr26|usr32|set_tls|get_tls)$/));

// Calls added after the 6.1 headers (numbers from arch/x86/entry/syscalls/*.tbl, scripts/syscall.tbl,
// arch/arm/tools/syscall.tbl); 453 (map_shadow_stack) is reserved on every arch, as libseccomp has it.
const LATER: [string, number][] = [
  ["cachestat", 451], ["fchmodat2", 452], ["map_shadow_stack", 453], ["futex_wake", 454], ["futex_wait", 455],
  ["futex_requeue", 456], ["statmount", 457], ["listmount", 458], ["lsm_get_self_attr", 459],
  ["lsm_set_self_attr", 460], ["lsm_list_modules", 461], ["mseal", 462], ["setxattrat", 463], ["getxattrat", 464],
  ["listxattrat", 465], ["removexattrat", 466], ["open_tree_attr", 467], ["file_getattr", 468], ["file_setattr", 469],
];
for (const [name, nr] of LATER) for (const t of [x86_64, x32, i386, aarch64, arm]) t[name] ??= nr;
x86_64.uretprobe ??= 335;
x32.uretprobe ??= 335;

const ARCH_CONSTANTS = `/** AUDIT_ARCH_* (linux/audit.h): the seccomp_data.arch values an x86_64 or aarch64 kernel reports. */
export const AUDIT_ARCH = {
  X86_64: 0xc000003e,
  I386: 0x40000003,
  AARCH64: 0xc00000b7,
  ARM: 0x40000028,
} as const;

/**
 * The OCI runtime-spec architecture names (linux.seccomp.architectures) that have a table here, with
 * their AUDIT_ARCH. SCMP_ARCH_X32 is x86_64's AUDIT_ARCH with 0x40000000 ORed into the call number.
 */
export const OCI_ARCH = {
  SCMP_ARCH_X86_64: { audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X86_64 },
  SCMP_ARCH_X32: { audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X32 },
  SCMP_ARCH_X86: { audit: AUDIT_ARCH.I386, table: SYSCALLS_I386 },
  SCMP_ARCH_AARCH64: { audit: AUDIT_ARCH.AARCH64, table: SYSCALLS_AARCH64 },
  SCMP_ARCH_ARM: { audit: AUDIT_ARCH.ARM, table: SYSCALLS_ARM },
} as const;

/** Every architecture name the runtime-spec (and runc) accepts; the others never run on our kernels. */
export const OCI_ARCH_NAMES: readonly string[] = [
  "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",
  "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
  "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
];
`;

function emit(name: string, doc: string, t: Record<string, number>): string {
  const entries = Object.entries(t).sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  const lines: string[] = [];
  let line = "";
  for (const [k, v] of entries) {
    const item = `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${v},`;
    if (line.length + item.length + 1 > 110) {
      lines.push(line);
      line = "";
    }
    line += (line ? " " : "  ") + item;
  }
  if (line) lines.push(line);
  return `/** ${doc} */\nexport const ${name}: Readonly<Record<string, number>> = {\n${lines.join("\n")}\n};\n`;
}

const out = [
  `// Syscall name -> number tables for the architectures a seccomp filter on an x86_64 or aarch64 kernel`,
  `// can meet. GENERATED by scripts/gen-syscalls.ts from the kernel UAPI headers (6.1) plus the calls`,
  `// added up to Linux 6.17; do not edit by hand. Names are the kernel's (and libseccomp's): a name`,
  `// missing from an arch's table does not exist there and seccomp rules naming it are skipped.`,
  ``,
  emit("SYSCALLS_X86_64", "x86_64 (arch/x86/entry/syscalls/syscall_64.tbl: common + 64).", x86_64),
  emit("SYSCALLS_X32", "x32 ABI, WITHOUT __X32_SYSCALL_BIT (0x40000000), which the kernel reports ORed in.", x32),
  emit("SYSCALLS_I386", "i386 (syscall_32.tbl): 32-bit processes on an x86_64 kernel.", i386),
  emit("SYSCALLS_AARCH64", "aarch64: the generic table (asm-generic/unistd.h) with arm64's renameat, rlimit, memfd_secret.", aarch64),
  emit("SYSCALLS_ARM", "arm EABI (arch/arm/tools/syscall.tbl) plus the ARM private calls at 0xf0000+: 32-bit processes on aarch64.", arm),
  ARCH_CONSTANTS,
].join("\n");
process.stdout.write(out);
