// OCI platforms as containerd's `platforms` package handles them (containerd 1.6/1.7): parsing of
// specifiers ("linux/arm64/v8", "amd64", "linux"), normalisation (aarch64 → arm64, armhf →
// arm/v7, x86_64 → amd64...), formatting, the host's platform, and matchers: `only` (the
// platform and what it can run, best first, as platforms.Only / platforms.Default), `ordered`,
// `any`, `all`.

import { readFileSync } from "node:fs";

/** OCI image-spec Platform. */
export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  features?: string[];
}

export class PlatformError extends Error {
  override name = "PlatformError";
}

const SPECIFIER_RE = /^[A-Za-z0-9_-]+$/;

const KNOWN_OS = new Set([
  "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl", "netbsd",
  "openbsd", "plan9", "solaris", "windows", "zos",
]);
const KNOWN_ARCH = new Set([
  "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips", "mipsle",
  "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64",
  "wasm",
]);

export function isKnownOS(os: string): boolean {
  return KNOWN_OS.has(os);
}
export function isKnownArch(arch: string): boolean {
  return KNOWN_ARCH.has(arch);
}

// ---------------------------------------------------------------------------------------------
// Host

/** Node/Bun's process.arch → GOARCH. */
function goArch(arch: string = process.arch): string {
  switch (arch) {
    case "x64":
      return "amd64";
    case "ia32":
      return "386";
    case "arm64":
      return "arm64";
    case "arm":
      return "arm";
    case "ppc64":
      return "ppc64le"; // Node reports little-endian ppc64 as ppc64
    case "s390x":
      return "s390x";
    case "riscv64":
      return "riscv64";
    case "loong64":
      return "loong64";
    case "mips":
      return "mips";
    case "mipsel":
      return "mipsle";
    default:
      return arch;
  }
}

function goOS(platform: string = process.platform): string {
  return platform === "win32" ? "windows" : platform;
}

let cachedVariant: string | undefined;
/** containerd's cpuVariant(): only ARM has one ("v6", "v7", "v8"); empty elsewhere. */
export function hostCpuVariant(): string {
  if (cachedVariant !== undefined) return cachedVariant;
  let v = "";
  const arch = goArch();
  // arm64: containerd reports v8, which normalisation drops; arm: from /proc/cpuinfo's
  // "CPU architecture" (7 → v7, 6/6TEJ → v6, 5* → v5), v7 when unknown.
  if (arch === "arm") {
    let value = "";
    try {
      value = (/^CPU architecture\s*:\s*(\S+)/im.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").toLowerCase();
    } catch {}
    if (value.startsWith("6")) v = "v6";
    else if (value.startsWith("5") || value === "4t") v = "v5";
    else if (value === "8" || value === "aarch64") v = "v8";
    else v = "v7";
  }
  cachedVariant = v;
  return v;
}

/** platforms.DefaultSpec(): the host (linux/amd64 here). */
export function hostPlatform(): Platform {
  const p: Platform = { os: goOS(), architecture: goArch() };
  const v = hostCpuVariant();
  if (v) p.variant = v;
  return p;
}

/** platforms.DefaultString(). */
export function hostPlatformString(): string {
  return formatPlatform(hostPlatform());
}

// ---------------------------------------------------------------------------------------------
// Normalise, parse, format

export function normalizeOS(os: string): string {
  if (!os) return goOS();
  os = os.toLowerCase();
  if (os === "macos") os = "darwin";
  return os;
}

export function normalizeArch(arch: string, variant: string): [string, string] {
  arch = arch.toLowerCase();
  variant = variant.toLowerCase();
  switch (arch) {
    case "i386":
      arch = "386";
      variant = "";
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      arch = "amd64";
      if (variant === "v1") variant = "";
      break;
    case "aarch64":
    case "arm64":
      arch = "arm64";
      if (variant === "8" || variant === "v8" || variant === "v8.0") variant = "";
      else if (variant === "9" || variant === "9.0" || variant === "v9.0") variant = "v9";
      break;
    case "armhf":
      arch = "arm";
      variant = "v7";
      break;
    case "armel":
      arch = "arm";
      variant = "v6";
      break;
    case "arm":
      if (variant === "" || variant === "7") variant = "v7";
      else if (variant === "5" || variant === "6" || variant === "8") variant = "v" + variant;
      break;
  }
  return [arch, variant];
}

/** platforms.Normalize: a normalised copy (variant dropped when empty). */
export function normalizePlatform(p: Platform): Platform {
  const [architecture, variant] = normalizeArch(p.architecture ?? "", p.variant ?? "");
  const out: Platform = { ...p, os: normalizeOS(p.os ?? ""), architecture };
  if (variant) out.variant = variant;
  else delete out.variant;
  return out;
}

function withVariant(os: string, architecture: string, variant: string): Platform {
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** platforms.Parse: "linux", "amd64", "linux/arm64", "linux/arm/v7"... Throws containerd's messages. */
export function parsePlatform(specifier: string): Platform {
  if (specifier.includes("*")) throw new PlatformError(`"${specifier}": wildcards not yet supported: invalid argument`);
  const parts = specifier.split("/");
  for (const part of parts) {
    if (!SPECIFIER_RE.test(part)) {
      throw new PlatformError(
        `"${part}" is an invalid component of "${specifier}": platform specifier component must match "${SPECIFIER_RE.source}": invalid argument`,
      );
    }
  }
  switch (parts.length) {
    case 1: {
      const os = normalizeOS(parts[0]!);
      if (isKnownOS(os)) {
        const arch = goArch();
        const v = arch === "arm" && hostCpuVariant() !== "v7" ? hostCpuVariant() : "";
        return withVariant(os, arch, v);
      }
      let [arch, variant] = normalizeArch(parts[0]!, "");
      if (arch === "arm" && variant === "v7") variant = "";
      if (isKnownArch(arch)) return withVariant(goOS(), arch, variant);
      throw new PlatformError(`"${specifier}": unknown operating system or architecture: invalid argument`);
    }
    case 2: {
      const os = normalizeOS(parts[0]!);
      let [arch, variant] = normalizeArch(parts[1]!, "");
      if (arch === "arm" && variant === "v7") variant = "";
      return withVariant(os, arch, variant);
    }
    case 3: {
      const os = normalizeOS(parts[0]!);
      let [arch, variant] = normalizeArch(parts[1]!, parts[2]!);
      if (arch === "arm64" && variant === "") variant = "v8";
      return withVariant(os, arch, variant);
    }
  }
  throw new PlatformError(`"${specifier}": cannot parse platform specifier: invalid argument`);
}

/** platforms.Format: "os/arch[/variant]", "unknown" without an OS. */
export function formatPlatform(p: Platform): string {
  if (!p.os) return "unknown";
  return [p.os, p.architecture, p.variant].filter((s) => s).join("/");
}

// ---------------------------------------------------------------------------------------------
// Matchers

export interface PlatformMatcher {
  match(p: Platform): boolean;
  /** True when p1 is preferred over p2. */
  less(p1: Platform, p2: Platform): boolean;
  /** Human form, for errors. */
  readonly description: string;
}

/** The exact matcher (platforms.NewMatcher on Linux): normalised os, arch and variant equal. */
export function exactMatch(want: Platform, p: Platform): boolean {
  const a = normalizePlatform(want);
  const b = normalizePlatform(p);
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? "") === (b.variant ?? "");
}

/** The platform followed by the ones it can also run, best first (containerd's platformVector). */
export function platformVector(p: Platform): Platform[] {
  const vector: Platform[] = [p];
  const base = (architecture: string, variant?: string): Platform => {
    const q: Platform = { os: p.os, architecture };
    if (p["os.version"]) q["os.version"] = p["os.version"];
    if (p["os.features"]) q["os.features"] = p["os.features"];
    if (variant) q.variant = variant;
    return q;
  };
  switch (p.architecture) {
    case "amd64": {
      const n = Number.parseInt((p.variant ?? "").replace(/^v/, ""), 10);
      if (Number.isInteger(n) && n > 1) for (let v = n - 1; v >= 1; v--) vector.push(base("amd64", `v${v}`));
      vector.push(base("386"));
      break;
    }
    case "arm": {
      const n = Number.parseInt((p.variant ?? "").replace(/^v/, ""), 10);
      if (Number.isInteger(n) && n > 5) for (let v = n - 1; v >= 5; v--) vector.push(base("arm", `v${v}`));
      break;
    }
    case "arm64": {
      const variant = p.variant || "v8";
      vector.push(...platformVector(base("arm", variant)));
      break;
    }
  }
  return vector;
}

/** platforms.Ordered: matches any of the platforms; earlier ones are preferred. */
export function orderedMatcher(...platforms: Platform[]): PlatformMatcher {
  const wants = platforms.map(normalizePlatform);
  return {
    description: wants.map(formatPlatform).join(", "),
    match: (p) => wants.some((w) => exactMatch(w, p)),
    less(p1, p2) {
      for (const w of wants) {
        const m1 = exactMatch(w, p1);
        const m2 = exactMatch(w, p2);
        if (m1 && !m2) return true;
        if (m1 || m2) return false;
      }
      return false;
    },
  };
}

/** platforms.Only: the platform and the ones it can run (amd64 → 386; arm64 → arm/v8..v5...). */
export function onlyMatcher(p: Platform): PlatformMatcher {
  const m = orderedMatcher(...platformVector(normalizePlatform(p)));
  return { ...m, description: formatPlatform(normalizePlatform(p)) };
}

/** platforms.OnlyStrict: exactly this platform. */
export function onlyStrictMatcher(p: Platform): PlatformMatcher {
  const m = orderedMatcher(p);
  return m;
}

/** platforms.Any: any of these, no order among them. */
export function anyMatcher(...platforms: Platform[]): PlatformMatcher {
  const wants = platforms.map(normalizePlatform);
  return {
    description: wants.map(formatPlatform).join(", "),
    match: (p) => wants.some((w) => exactMatch(w, p)),
    less(p1, p2) {
      let m1 = false;
      let m2 = false;
      for (const w of wants) {
        if (!m1 && exactMatch(w, p1)) m1 = true;
        if (!m2 && exactMatch(w, p2)) m2 = true;
        if (m1 && m2) return false;
      }
      return m1 && !m2;
    },
  };
}

/** platforms.All: every platform. */
export const allPlatforms: PlatformMatcher = {
  description: "all platforms",
  match: () => true,
  less: () => false,
};

/** platforms.Default(): only the host platform (and what it can run). */
export function defaultMatcher(): PlatformMatcher {
  return onlyMatcher(hostPlatform());
}

/** A matcher from a specifier string ("linux/arm64"), or the default for undefined. */
export function platformMatcher(spec?: string | Platform | PlatformMatcher): PlatformMatcher {
  if (spec === undefined) return defaultMatcher();
  if (typeof spec === "string") return onlyMatcher(parsePlatform(spec));
  if ("match" in spec) return spec;
  return onlyMatcher(spec);
}
