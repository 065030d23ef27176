// The container's seccomp profile, compiled once by the runtime's parent process and carried to the
// init in its bootstrap message (so a bad profile fails before anything exists, and the init
// doesn't pay for compiling it again).
import { compileSeccomp, type LinuxSeccomp } from "../../ffi/seccomp";
import type { Spec } from "../oci/types";

export interface CompiledSeccomp {
  filter: string;
  flags: string[];
}

export function compileForBootstrap(spec: Spec): CompiledSeccomp | undefined {
  const profile = spec.linux?.seccomp as LinuxSeccomp | undefined;
  if (!profile) return undefined;
  return { filter: Buffer.from(compileSeccomp(profile)).toString("base64"), flags: [...(profile.flags ?? [])] };
}

export function decode(c: CompiledSeccomp): { filter: Uint8Array; flags: string[] } {
  return { filter: new Uint8Array(Buffer.from(c.filter, "base64")), flags: c.flags };
}
