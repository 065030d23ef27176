// The flags of `runc update` and `runc events` (runc 1.1's, in its order), in a module with no
// dependencies so the command table can list them without loading the commands themselves.
import type { FlagSpec } from "../cli/flags";

export const UPDATE_USAGE = "runc update [command options] <container-id>";
export const UPDATE_ABOUT = "update container resource constraints";

const RESOURCES_HELP = `path to the file containing the resources to update or '-' to read from the standard input

The accepted format is as follow (unchanged values can be omitted):

{
  "memory": {
    "limit": 0,
    "reservation": 0,
    "swap": 0
  },
  "cpu": {
    "shares": 0,
    "quota": 0,
    "period": 0,
    "realtimeRuntime": 0,
    "realtimePeriod": 0,
    "cpus": "",
    "mems": ""
  },
  "blockIO": {
    "weight": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored.`;

/** runc 1.1's `update` flags, in its order. */
export const UPDATE_FLAGS: FlagSpec[] = [
  { name: "resources", aliases: ["r"], type: "string", help: RESOURCES_HELP },
  { name: "blkio-weight", type: "int", default: 0, help: "Specifies per cgroup weight, range is from 10 to 1000" },
  { name: "cpu-period", type: "string", help: "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default" },
  { name: "cpu-quota", type: "string", help: "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period" },
  { name: "cpu-share", type: "string", help: "CPU shares (relative weight vs. other containers)" },
  { name: "cpu-rt-period", type: "string", help: "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default" },
  { name: "cpu-rt-runtime", type: "string", help: "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period" },
  { name: "cpuset-cpus", type: "string", help: "CPU(s) to use" },
  { name: "cpuset-mems", type: "string", help: "Memory node(s) to use" },
  { name: "kernel-memory", type: "string", help: "(obsoleted; do not use)", hidden: true },
  { name: "kernel-memory-tcp", type: "string", help: "(obsoleted; do not use)", hidden: true },
  { name: "memory", type: "string", help: "Memory limit (in bytes)" },
  { name: "memory-reservation", type: "string", help: "Memory reservation or soft_limit (in bytes)" },
  { name: "memory-swap", type: "string", help: "Total memory usage (memory + swap); set '-1' to enable unlimited swap" },
  { name: "pids-limit", type: "int", default: 0, help: "Maximum number of pids allowed in the container" },
  { name: "l3-cache-schema", type: "string", help: "The string of Intel RDT/CAT L3 cache schema" },
  { name: "mem-bw-schema", type: "string", help: "The string of Intel RDT/MBA memory bandwidth schema" },
];

export const EVENTS_USAGE = "runc events [command options] <container-id>";
export const EVENTS_ABOUT = "display container events such as OOM notifications, cpu, memory, and IO usage statistics";

export const EVENTS_FLAGS: FlagSpec[] = [
  { name: "interval", type: "string", default: "5s", help: "set the stats collection interval" },
  { name: "stats", type: "bool", help: "display the container's stats then exit" },
];
