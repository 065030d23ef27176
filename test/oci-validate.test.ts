// Every rule in core/oci/validate.ts gets one breaking case whose message must name the field,
// starting from the default spec so each case differs from a valid config in one place only.

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultSpec, rootlessSpec, specJSON } from "../core/oci/default-spec";
import { HOOK_KINDS } from "../core/oci/types";
import { ConfigError, parseConfigFile, validateSpec } from "../core/oci/validate";

// The cases deliberately write ill-typed values, so they see the spec as untyped JSON.
type Raw = any;
type Mutation = (s: Raw) => void;

/** A fresh default spec with `mutate` applied, as plain JSON would arrive from disk. */
function specWith(mutate: Mutation): Raw {
  const s: Raw = JSON.parse(specJSON(defaultSpec()));
  mutate(s);
  return s;
}

function errorOf(raw: unknown, opts = {}): ConfigError {
  try {
    validateSpec(raw, opts);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError, validation passed");
}

const rejects = (mutate: Mutation, message: string): void => {
  expect(errorOf(specWith(mutate)).message).toBe(`config.json: ${message}`);
};
const accepts = (mutate: Mutation): void => {
  expect(() => validateSpec(specWith(mutate))).not.toThrow();
};

/** Namespaces of the default spec minus `type`. */
const without = (s: Raw, type: string): void => {
  s.linux.namespaces = s.linux.namespaces.filter((n: Raw) => n.type !== type);
};

type Case = [string, Mutation, string];

const SHAPE_CASES: Case[] = [
  ["ociVersion missing", (s) => delete s.ociVersion, "ociVersion: is required"],
  ["ociVersion not a string", (s) => (s.ociVersion = 1), "ociVersion: must be a string"],
  ["ociVersion not 1.x", (s) => (s.ociVersion = "2.0.0"), 'ociVersion: unsupported version "2.0.0", want 1.x'],
  ["root.path missing", (s) => delete s.root.path, "root.path: is required"],
  ["root.path not a string", (s) => (s.root.path = 7), "root.path: must be a string"],
  ["root.readonly not a boolean", (s) => (s.root.readonly = "yes"), "root.readonly: must be a boolean"],
  ["process not an object", (s) => (s.process = []), "process: must be an object"],
  ["uid negative", (s) => (s.process.user.uid = -1), "process.user.uid: must be a non-negative 32-bit integer"],
  ["gid fractional", (s) => (s.process.user.gid = 1.5), "process.user.gid: must be a non-negative 32-bit integer"],
  ["uid too large", (s) => (s.process.user.uid = 2 ** 32), "process.user.uid: must be a non-negative 32-bit integer"],
  ["additionalGids entry", (s) => (s.process.user.additionalGids = [1, "2"]), "process.user.additionalGids[1]: must be a non-negative 32-bit integer"],
  ["args empty", (s) => (s.process.args = []), "process.args: must be a non-empty array of strings"],
  ["args not an array", (s) => (s.process.args = "sh"), "process.args: must be a non-empty array of strings"],
  ["args entry", (s) => (s.process.args = ["sh", 3]), "process.args[1]: must be a string"],
  ["args missing", (s) => delete s.process.args, "process.args: is required"],
  ["env without =", (s) => s.process.env.push("FOO"), 'process.env[2]: must have the form KEY=VALUE, got "FOO"'],
  ["env empty name", (s) => (s.process.env = ["=x"]), "process.env[0]: variable name must not be empty"],
  ["env NUL", (s) => (s.process.env = ["A=b\0c"]), "process.env[0]: must not contain a NUL byte"],
  ["env not strings", (s) => (s.process.env = [1]), "process.env[0]: must be a string"],
  ["cwd relative", (s) => (s.process.cwd = "tmp"), "process.cwd: must be an absolute path"],
  ["cwd missing", (s) => delete s.process.cwd, "process.cwd: is required"],
  ["rlimit type", (s) => (s.process.rlimits[0].type = "RLIMIT_FOO"), 'process.rlimits[0].type: unknown rlimit type "RLIMIT_FOO"'],
  ["rlimit soft > hard", (s) => (s.process.rlimits[0].soft = 2048), "process.rlimits[0].soft: must not exceed hard (1024)"],
  ["rlimit hard type", (s) => (s.process.rlimits[0].hard = "1024"), "process.rlimits[0].hard: must be a non-negative integer"],
  ["rlimit soft missing", (s) => delete s.process.rlimits[0].soft, "process.rlimits[0].soft: is required"],
  [
    "rlimit duplicate",
    (s) => s.process.rlimits.push({ type: "RLIMIT_NOFILE", hard: 1, soft: 1 }),
    'process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"',
  ],
  ["capability not a string", (s) => (s.process.capabilities.bounding[0] = 5), "process.capabilities.bounding[0]: must be a string"],
  ["capability set not an array", (s) => (s.process.capabilities.ambient = "CAP_KILL"), "process.capabilities.ambient: must be an array"],
  ["noNewPrivileges", (s) => (s.process.noNewPrivileges = "yes"), "process.noNewPrivileges: must be a boolean"],
  ["terminal", (s) => (s.process.terminal = 1), "process.terminal: must be a boolean"],
  ["oomScoreAdj too high", (s) => (s.process.oomScoreAdj = 1001), "process.oomScoreAdj: must be an integer between -1000 and 1000"],
  ["oomScoreAdj too low", (s) => (s.process.oomScoreAdj = -1001), "process.oomScoreAdj: must be an integer between -1000 and 1000"],
  ["oomScoreAdj fractional", (s) => (s.process.oomScoreAdj = 0.5), "process.oomScoreAdj: must be an integer between -1000 and 1000"],
  ["consoleSize width", (s) => (s.process.consoleSize = { height: 24 }), "process.consoleSize.width: is required"],
  ["hostname", (s) => (s.hostname = 5), "hostname: must be a string"],
  ["mounts not an array", (s) => (s.mounts = {}), "mounts: must be an array"],
  ["mount destination empty", (s) => (s.mounts[3].destination = ""), "mounts[3].destination: must not be empty"],
  ["mount destination missing", (s) => delete s.mounts[3].destination, "mounts[3].destination: is required"],
  ["mount type", (s) => (s.mounts[0].type = 1), "mounts[0].type: must be a string"],
  ["mount source", (s) => (s.mounts[0].source = false), "mounts[0].source: must be a string"],
  ["mount options not an array", (s) => (s.mounts[1].options = "ro"), "mounts[1].options: must be an array"],
  ["mount option", (s) => (s.mounts[1].options[2] = 1), "mounts[1].options[2]: must be a string"],
  ["annotation value", (s) => (s.annotations = { "a.b": 1 }), 'annotations["a.b"]: must be a string'],
  ["hooks not an object", (s) => (s.hooks = []), "hooks: must be an object"],
  ["hook path missing", (s) => (s.hooks = { prestart: [{}] }), "hooks.prestart[0].path: is required"],
  ["hook args", (s) => (s.hooks = { poststop: [{ path: "/bin/true", args: "x" }] }), "hooks.poststop[0].args: must be an array"],
  ["hook env", (s) => (s.hooks = { poststart: [{ path: "/bin/true", env: [1] }] }), "hooks.poststart[0].env[0]: must be a string"],
  ["hook timeout zero", (s) => (s.hooks = { createRuntime: [{ path: "/bin/true", timeout: 0 }] }), "hooks.createRuntime[0].timeout: must be a positive integer"],
  ["hook timeout fractional", (s) => (s.hooks = { startContainer: [{ path: "/bin/true", timeout: 1.5 }] }), "hooks.startContainer[0].timeout: must be a positive integer"],
  ["namespace type", (s) => (s.linux.namespaces[2].type = "foo"), 'linux.namespaces[2].type: unknown namespace type "foo"'],
  ["namespace type missing", (s) => delete s.linux.namespaces[0].type, "linux.namespaces[0].type: is required"],
  ["namespace duplicate", (s) => s.linux.namespaces.push({ type: "pid" }), 'linux.namespaces[5].type: duplicate namespace "pid"'],
  ["namespace path", (s) => (s.linux.namespaces[1].path = "proc/1/ns/net"), "linux.namespaces[1].path: must be an absolute path"],
  ["maskedPaths entry", (s) => s.linux.maskedPaths.push("proc/kcore"), "linux.maskedPaths[10]: must be an absolute path"],
  ["readonlyPaths entry", (s) => (s.linux.readonlyPaths[0] = 3), "linux.readonlyPaths[0]: must be a string"],
  ["sysctl not an object", (s) => (s.linux.sysctl = ["a=b"]), "linux.sysctl: must be an object"],
  ["sysctl value", (s) => (s.linux.sysctl = { "net.ipv4.ip_forward": 1 }), 'linux.sysctl["net.ipv4.ip_forward"]: must be a string'],
  ["device type", (s) => (s.linux.devices = [{ type: "x", path: "/dev/x" }]), 'linux.devices[0].type: unknown device type "x"'],
  ["device path", (s) => (s.linux.devices = [{ type: "p", path: "dev/fifo" }]), "linux.devices[0].path: must be an absolute path"],
  ["device major missing", (s) => (s.linux.devices = [{ type: "c", path: "/dev/null", minor: 3 }]), 'linux.devices[0].major: is required for device type "c"'],
  ["device minor missing", (s) => (s.linux.devices = [{ type: "b", path: "/dev/sda", major: 8 }]), 'linux.devices[0].minor: is required for device type "b"'],
  ["device major type", (s) => (s.linux.devices = [{ type: "u", path: "/dev/u", major: "1", minor: 0 }]), "linux.devices[0].major: must be an integer"],
  ["device fileMode", (s) => (s.linux.devices = [{ type: "p", path: "/dev/f", fileMode: -1 }]), "linux.devices[0].fileMode: must be a file mode between 0 and 4095 (07777)"],
  ["rootfsPropagation", (s) => (s.linux.rootfsPropagation = "bogus"), 'linux.rootfsPropagation: unknown rootfs propagation "bogus"'],
  ["cgroupsPath", (s) => (s.linux.cgroupsPath = 5), "linux.cgroupsPath: must be a string"],
  ["device rule access", (s) => (s.linux.resources.devices[0].access = "rx"), 'linux.resources.devices[0].access: must be a combination of "r", "w" and "m"'],
  ["device rule allow", (s) => delete s.linux.resources.devices[0].allow, "linux.resources.devices[0].allow: is required"],
  [
    "uidMappings entry",
    (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: -1, size: 1 }];
    },
    "linux.uidMappings[0].hostID: must be a non-negative 32-bit integer",
  ],
  [
    "gidMappings size missing",
    (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.gidMappings = [{ containerID: 0, hostID: 0 }];
    },
    "linux.gidMappings[0].size: is required",
  ],
  ["uidMappings not an array", (s) => (s.linux.uidMappings = {}), "linux.uidMappings: must be an array"],
];

const SEMANTIC_CASES: Case[] = [
  ["hostname without uts", (s) => without(s, "uts"), "hostname: unable to set hostname without a private UTS namespace"],
  [
    "domainname without uts",
    (s) => {
      without(s, "uts");
      delete s.hostname;
      s.domainname = "example.org";
    },
    "domainname: unable to set domainname without a private UTS namespace",
  ],
  [
    "net sysctl without netns",
    (s) => {
      without(s, "network");
      s.linux.sysctl = { "net.ipv4.ip_forward": "1" };
    },
    'linux.sysctl["net.ipv4.ip_forward"]: sysctl "net.ipv4.ip_forward" not allowed in host network namespace',
  ],
  ...["kernel.shmmax", "kernel.msgmnb", "kernel.sem", "kernel.shm_rmid_forced", "fs.mqueue.msg_max"].map(
    (name): Case => [
      `${name} without ipc ns`,
      (s) => {
        without(s, "ipc");
        s.linux.sysctl = { [name]: "1" };
      },
      `linux.sysctl["${name}"]: sysctl "${name}" is not allowed in the hosts ipc namespace`,
    ],
  ),
  [
    "kernel.hostname conflicts with the hostname field",
    (s) => (s.linux.sysctl = { "kernel.hostname": "x" }),
    'linux.sysctl["kernel.hostname"]: sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field',
  ],
  ...["kernel.hostname", "kernel.domainname"].map(
    (name): Case => [
      `${name} without uts ns`,
      (s) => {
        without(s, "uts");
        delete s.hostname;
        s.linux.sysctl = { [name]: "x" };
      },
      `linux.sysctl["${name}"]: sysctl "${name}" is not in a separate kernel namespace`,
    ],
  ),
  [
    "non-namespaced sysctl",
    (s) => (s.linux.sysctl = { "vm.swappiness": "10" }),
    'linux.sysctl["vm.swappiness"]: sysctl "vm.swappiness" is not in a separate kernel namespace',
  ],
  [
    "user ns without uid mappings",
    (s) => s.linux.namespaces.push({ type: "user" }),
    "linux.uidMappings: user namespaces enabled, but no uid mappings found",
  ],
  [
    "user ns without gid mappings",
    (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    },
    "linux.gidMappings: user namespaces enabled, but no gid mappings found",
  ],
  [
    "mappings without user ns",
    (s) => (s.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]),
    "linux.gidMappings: user namespace mappings specified, but USER namespace isn't enabled in the config",
  ],
  [
    "maskedPaths without mount ns",
    (s) => without(s, "mount"),
    "linux.maskedPaths: unable to restrict sys entries without a private MNT namespace",
  ],
  [
    "readonlyPaths without mount ns",
    (s) => {
      without(s, "mount");
      delete s.linux.maskedPaths;
    },
    "linux.readonlyPaths: unable to restrict sys entries without a private MNT namespace",
  ],
];

describe("rejects, naming the field", () => {
  test.each(SHAPE_CASES)("%s", (_, mutate, message) => rejects(mutate, message));
});

describe("runc's semantic checks", () => {
  test.each(SEMANTIC_CASES)("%s", (_, mutate, message) => rejects(mutate, message));

  test("namespaced sysctls pass with their namespace", () => {
    accepts((s) => {
      s.linux.sysctl = { "net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "10", "kernel.domainname": "d" };
    });
  });

  test("a joined network namespace allows net.* (its host-ness is a create-time check)", () => {
    accepts((s) => {
      s.linux.namespaces[1].path = "/proc/1/ns/net";
      s.linux.sysctl = { "net.core.somaxconn": "1024" };
    });
  });
});

describe("accepts", () => {
  test("runc's default spec", () => {
    expect(validateSpec(defaultSpec())).toEqual(defaultSpec());
  });

  test("runc's rootless spec", () => {
    expect(() => validateSpec(rootlessSpec({ uid: 1000, gid: 1000 }))).not.toThrow();
  });

  test("the default spec as it comes off disk", () => {
    expect(validateSpec(JSON.parse(specJSON(defaultSpec())))).toEqual(defaultSpec());
  });

  test("unknown fields anywhere, for forward compatibility", () => {
    accepts((s) => {
      s.vm = { hypervisor: {} };
      s.process.ioPriority = { class: "IOPRIO_CLASS_BE" };
      s.process.user.extra = true;
      s.linux.timeOffsets = { boottime: { secs: 1 } };
      s.mounts[0].futureOption = 1;
      s.hooks = { futureHookKind: [{ whatever: 1 }] };
    });
  });

  test("relative mount destinations, as runc 1.1 still does", () => {
    accepts((s) => (s.mounts[0].destination = "proc"));
  });

  test("every hook kind", () => {
    accepts((s) => (s.hooks = Object.fromEntries(HOOK_KINDS.map((k) => [k, [{ path: "/bin/true", args: ["true"], env: ["A=1"], timeout: 5 }]]))));
  });

  test("empty and recursive rootfs propagation", () => {
    for (const p of ["", "rslave", "private"]) accepts((s) => (s.linux.rootfsPropagation = p));
  });

  test("fifo devices without numbers, char devices with them", () => {
    accepts((s) => {
      s.linux.devices = [
        { type: "p", path: "/dev/fifo" },
        { type: "c", path: "/dev/null", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
      ];
    });
  });

  test("a user namespace with both mappings", () => {
    accepts((s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    });
  });

  test("every known namespace type, including time and cgroup", () => {
    accepts((s) => s.linux.namespaces.push({ type: "cgroup" }, { type: "time" }));
  });
});

describe("Go decoder leniencies", () => {
  test("null means absent and is dropped", () => {
    const spec = validateSpec(specWith((s) => (s.process.capabilities = null)));
    expect("capabilities" in spec.process!).toBe(false);
  });

  test("a missing user is root, as Go's zero value", () => {
    expect(validateSpec(specWith((s) => delete s.process.user)).process!.user).toEqual({ uid: 0, gid: 0 });
    expect(validateSpec(specWith((s) => (s.process.user = { gid: 5 }))).process!.user).toEqual({ uid: 0, gid: 5 });
  });
});

describe("document level", () => {
  test("rejects a non-object", () => {
    expect(errorOf([]).message).toBe("config.json: must be a JSON object");
    expect(errorOf("x").field).toBeUndefined();
  });

  test("exposes the field", () => {
    const e = errorOf(specWith((s) => (s.linux.namespaces[2].type = "foo")));
    expect(e.field).toBe("linux.namespaces[2].type");
    expect(e.detail).toBe('unknown namespace type "foo"');
    expect(e).toBeInstanceOf(Error);
  });

  test("process and root are optional unless validating for create", () => {
    const bare = specWith((s) => {
      delete s.process;
      delete s.root;
    });
    expect(() => validateSpec(bare)).not.toThrow();
    expect(errorOf(bare, { create: true }).message).toBe("config.json: process: is required");
    expect(errorOf({ ...bare, process: defaultSpec().process }, { create: true }).message).toBe("config.json: root: is required");
  });
});

describe("parseConfigFile", () => {
  const withDir = (fn: (dir: string) => void): void => {
    const dir = mkdtempSync(join(tmpdir(), "oci-validate-"));
    try {
      fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const parseError = (path: string): string => {
    try {
      parseConfigFile(path);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).message;
    }
    throw new Error("expected a ConfigError");
  };

  test("reads and validates a good file", () =>
    withDir((dir) => {
      writeFileSync(join(dir, "config.json"), specJSON(defaultSpec()));
      expect(parseConfigFile(join(dir, "config.json"))).toEqual(defaultSpec());
    }));

  test("missing file", () =>
    withDir((dir) => {
      const path = join(dir, "config.json");
      expect(parseError(path)).toBe(`config.json: open ${path}: no such file or directory`);
    }));

  test("a directory in its place", () =>
    withDir((dir) => {
      expect(parseError(dir)).toBe(`config.json: read ${dir}: is a directory`);
    }));

  test("invalid JSON", () =>
    withDir((dir) => {
      writeFileSync(join(dir, "config.json"), '{"ociVersion": ');
      expect(parseError(join(dir, "config.json"))).toStartWith("config.json: invalid JSON: ");
    }));

  test("valid JSON, invalid config", () =>
    withDir((dir) => {
      writeFileSync(join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", process: { cwd: "/", args: [] } }));
      expect(parseError(join(dir, "config.json"))).toBe("config.json: process.args: must be a non-empty array of strings");
    }));
});
