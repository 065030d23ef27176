// Capabilities and user switch, in the order that keeps the wanted capabilities across setuid:
// bounding set first, KEEPCAPS, groups/gid/uid, then capset and the ambient set.
import { readFileSync } from "node:fs";
import { CAPABILITIES, PR } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import type { Capabilities, User } from "../oci/types";

export function capMask(names: string[] = []): bigint {
  let m = 0n;
  for (const n of names) {
    const i = CAPABILITIES.indexOf(n);
    if (i < 0) throw new Error(`unknown capability "${n}"`);
    m |= 1n << BigInt(i);
  }
  return m;
}

/** Highest capability this kernel knows (cap_last_cap); newer names beyond it are skipped. */
function lastCap(): number {
  try {
    return Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8"));
  } catch {
    return CAPABILITIES.length - 1;
  }
}

/** Capability names in the config that this kernel doesn't have: runc warns and skips them. */
export function unknownCaps(caps: Capabilities | undefined): string[] {
  const last = lastCap();
  const all = Object.values(caps ?? {}).flat() as string[];
  return [...new Set(all.filter((n) => !(CAPABILITIES.indexOf(n) >= 0 && CAPABILITIES.indexOf(n) <= last)))];
}

export function applyUserAndCaps(user: User, given: Capabilities | undefined): void {
  const last = lastCap();
  const known = (names?: string[]) => (names ?? []).filter((n) => CAPABILITIES.indexOf(n) >= 0 && CAPABILITIES.indexOf(n) <= last);
  // No capabilities object means no capabilities at all, as with runc.
  const caps = given ?? {};
  const bounding = capMask(known(caps.bounding));
  for (let i = 0; i <= last; i++) if (!(bounding & (1n << BigInt(i)))) libc.prctl(PR.CAPBSET_DROP, i);
  libc.prctl(PR.SET_KEEPCAPS, 1);
  libc.setgroups(user.additionalGids ?? []);
  libc.setresgid(user.gid);
  libc.setresuid(user.uid);
  libc.prctl(PR.SET_KEEPCAPS, 0);
  libc.capset(capMask(known(caps.effective)), capMask(known(caps.permitted)), capMask(known(caps.inheritable)));
  libc.prctl(PR.CAP_AMBIENT, PR.CAP_AMBIENT_CLEAR_ALL);
  for (const n of known(caps.ambient)) {
    try {
      libc.prctl(PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, CAPABILITIES.indexOf(n));
    } catch (e: any) {
      // Raising an ambient cap needs it in permitted and inheritable; runc skips ones that aren't.
      if (e.code !== "EPERM") throw e;
    }
  }
}
