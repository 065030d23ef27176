// A small flag parser for Go-style CLIs (runc's urfave/cli, docker's cobra): `-f`, `--flag`,
// `--flag=value`, `--flag value`, repeatable flags, bundled short bools (`-it`), and parsing that
// stops at the first positional so `runc exec ID cmd -l` keeps `-l` for the command.

export type FlagType = "bool" | "string" | "strings" | "int";

export interface FlagSpec {
  name: string;
  aliases?: string[];
  type: FlagType;
  default?: string | boolean | number | string[];
  help?: string;
  hidden?: boolean;
}

export type FlagValues = Record<string, string | boolean | number | string[] | undefined>;

export class UsageError extends Error {}

export interface Parsed {
  flags: FlagValues;
  args: string[];
}

export function parseFlags(argv: string[], specs: FlagSpec[], opts: { stopAtPositional?: boolean } = {}): Parsed {
  const stop = opts.stopAtPositional ?? true;
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    for (const a of s.aliases ?? []) byName.set(a, s);
  }
  const flags: FlagValues = {};
  for (const s of specs) if (s.default !== undefined) flags[s.name] = Array.isArray(s.default) ? [...s.default] : s.default;
  const args: string[] = [];
  const seen = new Set<string>();

  const set = (spec: FlagSpec, raw: string | undefined, shown: string) => {
    if (spec.type === "bool") {
      if (raw === undefined) flags[spec.name] = true;
      else if (/^(true|1)$/i.test(raw)) flags[spec.name] = true;
      else if (/^(false|0)$/i.test(raw)) flags[spec.name] = false;
      else throw new UsageError(`invalid boolean value "${raw}" for flag ${shown}`);
      return;
    }
    if (raw === undefined) throw new UsageError(`flag needs an argument: ${shown}`);
    if (spec.type === "int") {
      if (!/^-?\d+$/.test(raw)) throw new UsageError(`invalid value "${raw}" for flag ${shown}: parse error`);
      flags[spec.name] = Number(raw);
    } else if (spec.type === "strings") {
      // The first explicit value replaces the default; later ones append.
      if (!seen.has(spec.name)) flags[spec.name] = [];
      seen.add(spec.name);
      (flags[spec.name] as string[]).push(raw);
    } else flags[spec.name] = raw;
  };

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("-") && a !== "-") {
      const long = a.startsWith("--");
      const body = a.slice(long ? 2 : 1);
      const eq = body.indexOf("=");
      const name = eq >= 0 ? body.slice(0, eq) : body;
      const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
      let spec = byName.get(name);
      if (spec) {
        if (spec.type !== "bool" && inline === undefined) {
          if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: ${a}`);
          set(spec, argv[++i], a);
        } else set(spec, inline, a);
        continue;
      }
      // Bundled single-letter flags: -it, -dit, -p80:80 style values.
      if (!long && name.length > 1 && inline === undefined) {
        let ok = true;
        for (let j = 0; j < name.length; j++) {
          const s = byName.get(name[j]!);
          if (!s) { ok = false; break; }
          if (s.type !== "bool") {
            const rest = name.slice(j + 1);
            if (rest.length) set(s, rest, "-" + name[j]);
            else {
              if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name[j]}`);
              set(s, argv[++i], "-" + name[j]);
            }
            break;
          }
          set(s, undefined, "-" + name[j]);
        }
        if (ok) continue;
      }
      throw new UsageError(`flag provided but not defined: ${a}`);
    }
    args.push(a);
    if (stop) {
      args.push(...argv.slice(i + 1));
      break;
    }
  }
  return { flags, args };
}

export function formatFlagHelp(specs: FlagSpec[]): string {
  return specs
    .filter((s) => !s.hidden)
    .map((s) => {
      const names = [s.name, ...(s.aliases ?? [])].map((n) => (n.length === 1 ? "-" : "--") + n).join(", ");
      const v = s.type === "bool" ? "" : " value";
      const d = s.default !== undefined && s.type !== "bool" && s.default !== "" ? ` (default: ${JSON.stringify(s.default)})` : "";
      return `   ${(names + v).padEnd(30)} ${s.help ?? ""}${d}`;
    })
    .join("\n");
}
