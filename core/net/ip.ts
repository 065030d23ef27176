// IP address text as Go's net package reads and writes it: docker-proxy's -host-ip/-container-ip go
// through net.ParseIP, and its error texts print addresses with net.IP.String / net.JoinHostPort.
// Keeping Go's rules means an address dockerd hands us means the same thing to us as to moby's proxy
// (an IPv4-mapped IPv6 address is an IPv4 address; "::" is IPv6-only).

export interface IP {
  family: 4 | 6;
  /** Canonical text: dotted quad, or RFC 5952 IPv6 (what Go's IP.String prints). */
  text: string;
}

function parseV4(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    // Go refuses leading zeros ("010") as ambiguous octal, and empty or over-long parts.
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

/** Eight 16-bit groups, or undefined. Accepts "::" compression and a trailing dotted quad. */
function parseV6(s: string): number[] | undefined {
  if (!s.includes(":")) return undefined;
  // A trailing dotted quad ("::ffff:1.2.3.4") stands for the last two groups.
  const lastColon = s.lastIndexOf(":");
  const last = s.slice(lastColon + 1);
  if (last.includes(".")) {
    const v4 = parseV4(last);
    if (!v4) return undefined;
    s = `${s.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    for (const g of h.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !rest) return undefined;
  const all = [...head, ...rest];
  if (halves.length === 2) {
    if (all.length > 7) return undefined;
    return [...head, ...new Array(8 - all.length).fill(0), ...rest];
  }
  return all.length === 8 ? all : undefined;
}

function formatV6(g: number[]): string {
  // RFC 5952: compress the longest run (first on ties) of two or more zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/**
 * net.ParseIP, plus brackets around an IPv6 address ("[::1]", as people write it next to a port).
 * IPv4-mapped IPv6 addresses are IPv4, as Go's To4() says. Zones are refused, as Go does.
 */
export function parseIP(input: string): IP | undefined {
  let s = input;
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const v4 = parseV4(s);
  if (v4) return { family: 4, text: v4.join(".") };
  const v6 = parseV6(s);
  if (!v6) return undefined;
  if (v6.slice(0, 5).every((x) => x === 0) && v6[5] === 0xffff) {
    return { family: 4, text: [v6[6]! >> 8, v6[6]! & 255, v6[7]! >> 8, v6[7]! & 255].join(".") };
  }
  return { family: 6, text: formatV6(v6) };
}

/** net.JoinHostPort: "1.2.3.4:80", "[::1]:80". */
export function joinHostPort(ip: IP | string, port: number): string {
  const text = typeof ip === "string" ? ip : ip.text;
  return text.includes(":") ? `[${text}]:${port}` : `${text}:${port}`;
}

/** The comparable key of an address as Bun reports it (a v4-mapped "::ffff:1.2.3.4" is 1.2.3.4). */
export function canonicalIP(text: string): string {
  return parseIP(text)?.text ?? text;
}
