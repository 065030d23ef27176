// docker-proxy's pure parts: Go's IP text rules, the command line, and UDP flow expiry (which the
// process tests can't wait 90 s for).
import { describe, expect, test } from "bun:test";
import { UsageError } from "../core/cli/flags";
import { joinHostPort, parseIP } from "../core/net/ip";
import { parseProxyArgs, usage } from "../core/net/proxy-config";
import { FlowTable, UDP_CONNTRACK_TIMEOUT_MS } from "../core/net/udp-flows";

describe("ip: net.ParseIP / JoinHostPort", () => {
  test.each([
    ["127.0.0.1", 4, "127.0.0.1:80"],
    ["0.0.0.0", 4, "0.0.0.0:80"],
    ["::", 6, "[::]:80"],
    ["::1", 6, "[::1]:80"],
    ["[::1]", 6, "[::1]:80"],
    ["::ffff:10.1.2.3", 4, "10.1.2.3:80"], // IPv4-mapped is IPv4 (Go's To4)
    ["2001:0db8:0:0:1:0:0:1", 6, "[2001:db8::1:0:0:1]:80"],
    ["fe80::1:0:0:0:1", 6, "[fe80:0:0:1::1]:80"],
    ["1:0:0:2:0:0:0:3", 6, "[1:0:0:2::3]:80"],
    ["FD00::A", 6, "[fd00::a]:80"],
  ] as const)("%s", (text, family, hostPort) => {
    const ip = parseIP(text);
    expect(ip?.family).toBe(family);
    expect(joinHostPort(ip!, 80)).toBe(hostPort);
  });

  test.each(["", "localhost", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1::2::3", "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "::g"])("refuses %j", (text) => {
    expect(parseIP(text)).toBeUndefined();
  });
});

describe("command line (Go flag package rules)", () => {
  test("dockerd's argv, with -use-listen-fd", () => {
    const p = parseProxyArgs(["-proto", "udp", "-host-ip", "::", "-host-port", "53", "-container-ip", "fd00::2", "-container-port", "5353", "-use-listen-fd"]);
    expect(p.kind).toBe("run");
    if (p.kind !== "run") return;
    expect(p.config).toEqual({
      proto: "udp",
      hostIP: { family: 6, text: "::" },
      hostPort: 53,
      containerIP: { family: 6, text: "fd00::2" },
      containerPort: 5353,
      useListenFd: true,
    });
  });

  test("defaults, --double-dash and -flag=value spellings", () => {
    const p = parseProxyArgs(["--host-port=8080", "-container-port=80"]);
    if (p.kind !== "run") throw new Error("not run");
    expect(p.config.proto).toBe("tcp");
    expect(p.config.hostIP.text).toBe("0.0.0.0");
    expect(p.config.containerIP.text).toBe("0.0.0.0");
    expect([p.config.hostPort, p.config.containerPort, p.config.useListenFd]).toEqual([8080, 80, false]);
  });

  test("-v / -version / -h", () => {
    expect(parseProxyArgs(["-v"]).kind).toBe("version");
    expect(parseProxyArgs(["--version"]).kind).toBe("version");
    expect(parseProxyArgs(["-h"]).kind).toBe("help");
  });

  test("errors in Go's words", () => {
    const msg = (argv: string[]) => {
      try {
        parseProxyArgs(argv);
      } catch (e) {
        if (e instanceof UsageError) return e.message;
        throw e;
      }
      return "";
    };
    expect(msg(["-bogus"])).toBe("flag provided but not defined: -bogus");
    expect(msg(["-host-port", "x"])).toBe('invalid value "x" for flag -host-port: parse error');
    expect(msg(["-host-ip", "nope"])).toBe('invalid value "nope" for flag -host-ip: invalid IP address: nope');
    expect(msg(["-proto"])).toBe("flag needs an argument: -proto");
  });

  test("usage lists every flag like flag.PrintDefaults", () => {
    const u = usage("docker-proxy");
    expect(u).toContain("Usage of docker-proxy:\n");
    expect(u).toContain("  -container-port int\n    \tcontainer port (default -1)\n");
    expect(u).toContain('  -proto string\n    \tproxy protocol (default "tcp")\n');
    expect(u).toContain("  -host-ip value\n    \thost ip (default 0.0.0.0)\n");
    expect(u).toContain("  -use-listen-fd\n    \tuse a supplied listen fd\n");
    expect(u).toContain("  -v\tprint version information and quit\n");
  });
});

describe("udp flow table", () => {
  function table(idleMs: number) {
    let now = 1_000;
    const closed: string[] = [];
    const t = new FlowTable<string>({ idleMs, close: (f) => closed.push(f), now: () => now });
    return { t, closed, advance: (ms: number) => (now += ms) };
  }

  test("moby's 90 s conntrack timeout", () => {
    expect(UDP_CONNTRACK_TIMEOUT_MS).toBe(90_000);
  });

  test("a flow quiet for the timeout is closed; traffic either way keeps it", () => {
    const { t, closed, advance } = table(90_000);
    t.add("a", "flow-a");
    t.add("b", "flow-b");
    advance(60_000);
    expect(t.get("a")).toBe("flow-a"); // a datagram from the client
    advance(20_000);
    t.touch("b"); // a reply from the container
    advance(20_000);
    t.sweep();
    expect(closed).toEqual([]);
    advance(69_000); // a: 109 s since its last datagram; b: 89 s since its last reply
    t.sweep();
    expect(closed).toEqual(["flow-a"]);
    expect(t.get("a")).toBeUndefined();
    expect(t.size).toBe(1);
    t.clear();
    expect(closed).toEqual(["flow-a", "flow-b"]);
    expect(t.size).toBe(0);
  });

  test("the sweep timer runs only while there are flows", async () => {
    let closedCount = 0;
    const t = new FlowTable<number>({ idleMs: 40, close: () => closedCount++ });
    t.add("x", 1);
    await Bun.sleep(150);
    expect(closedCount).toBe(1);
    expect(t.size).toBe(0);
    expect((t as unknown as { timer: unknown }).timer).toBeNull();
  });
});
