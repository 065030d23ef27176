// `runc features` (runc 1.1's JSON): what this runtime implements, so callers can decide before
// they hand us a config. It lists only what we really do.
import { CAPABILITIES } from "../../ffi/consts";
import { HOOK_KINDS } from "../oci/types";
import { knownMountOptions } from "./mountopts";
import { OCI_VERSION } from "./state";

export function features(version: string): object {
  return {
    ociVersionMin: "1.0.0",
    ociVersionMax: OCI_VERSION,
    hooks: [...HOOK_KINDS],
    mountOptions: knownMountOptions(),
    linux: {
      namespaces: ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
      capabilities: CAPABILITIES,
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false },
      seccomp: {
        enabled: true,
        actions: ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
        operators: ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
        archs: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: {
      "org.opencontainers.runc.checkpoint.enabled": "false",
      "org.opencontainers.runc.version": version,
      "org.opencontainers.runc.commit": "bunker",
    },
  };
}
