// OCI runtime-spec types (config.json and state), the subset and shape of runtime-spec 1.x.

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
}

export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: User;
  args?: string[];
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  username?: string;
}

export interface Capabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface Rlimit {
  type: string;
  hard: number;
  soft: number;
}

export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  /** Idmapped-mount mappings (runtime-spec 1.1); validated for shape only. */
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export const HOOK_KINDS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] as const;
export type HookKind = (typeof HOOK_KINDS)[number];
export type Hooks = Partial<Record<HookKind, Hook[]>>;

export interface Namespace {
  type: string;
  path?: string;
}

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface Device {
  type: string;
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface DeviceRule {
  allow: boolean;
  type?: string;
  major?: number | null;
  minor?: number | null;
  access?: string;
}

export interface Resources {
  devices?: DeviceRule[];
  memory?: MemoryResources;
  cpu?: CpuResources;
  pids?: { limit: number };
  blockIO?: BlockIO;
  hugepageLimits?: { pageSize: string; limit: number }[];
  unified?: Record<string, string>;
}

export interface MemoryResources {
  limit?: number;
  reservation?: number;
  swap?: number;
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
}

export interface CpuResources {
  shares?: number;
  quota?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number;
}

export interface BlockIO {
  weight?: number;
  leafWeight?: number;
  weightDevice?: { major: number; minor: number; weight?: number; leafWeight?: number }[];
  throttleReadBpsDevice?: ThrottleDevice[];
  throttleWriteBpsDevice?: ThrottleDevice[];
  throttleReadIOPSDevice?: ThrottleDevice[];
  throttleWriteIOPSDevice?: ThrottleDevice[];
}

export interface ThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

export interface Linux {
  namespaces?: Namespace[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  devices?: Device[];
  cgroupsPath?: string;
  resources?: Resources;
  rootfsPropagation?: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  sysctl?: Record<string, string>;
  seccomp?: unknown;
  mountLabel?: string;
  personality?: unknown;
}

export type Status = "creating" | "created" | "running" | "paused" | "stopped";

/** The state the runtime reports (`runc state`) and passes to hooks on stdin. */
export interface State {
  ociVersion: string;
  id: string;
  status: Status;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}
