// containerd's filter syntax (its filters package), used by every List call:
//
//   filters   := selector ("," selector)*          all must match
//   selector  := fieldpath [operator value]        no operator: the field is present
//   fieldpath := field ("." field)*
//   operator  := "==" | "!=" | "~="                "~=" is a regular expression
//   value     := quoted | runes up to "," or space
//   quoted    := "..." | /.../ | |...|             Go string syntax, / and | for regexps
//
// Several filter strings in one request are OR-ed. Objects are matched through an adaptor that
// returns the value at a field path and whether it is present.
import { invalidArgument } from "./errdefs";

export type Adaptor = (fieldpath: string[]) => [value: string, present: boolean];
export type Filter = (a: Adaptor) => boolean;

export const always: Filter = () => true;

class ParseError extends Error {}

type Tok = { kind: "eof" | "quoted" | "value" | "field" | "sep" | "op" | "illegal"; pos: number; text: string };

const isFieldRune = (c: string) => /[A-Za-z0-9_-]/.test(c);
const isQuote = (c: string) => c === "/" || c === "|" || c === '"';
const isSep = (c: string) => c === "," || c === ".";
const isOp = (c: string) => c === "=" || c === "!" || c === "~";
const isSpace = (c: string) => /\s/.test(c);

class Scanner {
  pos = 0;
  value = false;
  constructor(readonly input: string) {}

  private peekAt(p: number): string {
    return p < this.input.length ? this.input[p]! : "";
  }

  peek(): string {
    const save = [this.pos, this.value] as const;
    const t = this.scan();
    [this.pos, this.value] = save;
    return t.kind === "eof" ? "EOF" : t.kind === "sep" || t.kind === "illegal" ? t.text : t.kind;
  }

  scan(): Tok {
    while (this.pos < this.input.length && isSpace(this.input[this.pos]!)) this.pos++;
    const start = this.pos;
    if (start >= this.input.length) return { kind: "eof", pos: start, text: "" };
    const c = this.input[start]!;
    if (isQuote(c)) {
      let p = start + 1;
      while (p < this.input.length && this.input[p] !== c) {
        if (this.input[p] === "\n") break;
        p += this.input[p] === "\\" ? 2 : 1;
      }
      if (p >= this.input.length || this.input[p] !== c) {
        this.pos = this.input.length;
        return { kind: "illegal", pos: start, text: this.input.slice(start) };
      }
      this.pos = p + 1;
      return { kind: "quoted", pos: start, text: this.input.slice(start, this.pos) };
    }
    if (isSep(c)) {
      this.pos++;
      this.value = false;
      return { kind: "sep", pos: start, text: c };
    }
    if (isOp(c)) {
      let p = start;
      while (isOp(this.peekAt(p))) p++;
      this.pos = p;
      this.value = true;
      return { kind: "op", pos: start, text: this.input.slice(start, p) };
    }
    if (this.value) {
      let p = start;
      while (p < this.input.length && this.input[p] !== "," && !isSpace(this.input[p]!)) p++;
      this.pos = p;
      this.value = false;
      return { kind: "value", pos: start, text: this.input.slice(start, p) };
    }
    if (isFieldRune(c)) {
      let p = start;
      while (p < this.input.length && isFieldRune(this.input[p]!)) p++;
      this.pos = p;
      return { kind: "field", pos: start, text: this.input.slice(start, p) };
    }
    this.pos++;
    return { kind: "illegal", pos: start, text: c };
  }
}

/** Go strconv.Unquote, extended (as containerd's) to / and | delimiters. */
function unquote(s: string): string {
  const quote = s[0]!;
  const body = s.slice(1, -1);
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === quote) throw new Error("invalid syntax");
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = body[++i];
    const simple: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\" };
    if (e === undefined) throw new Error("invalid syntax");
    if (simple[e] !== undefined) out += simple[e];
    else if (e === quote) out += e;
    else if (e === "x" || e === "u" || e === "U") {
      const n = e === "x" ? 2 : e === "u" ? 4 : 8;
      const hex = body.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) throw new Error("invalid syntax");
      out += String.fromCodePoint(parseInt(hex, 16));
      i += n;
    } else if (/[0-7]/.test(e)) {
      const oct = body.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) throw new Error("invalid syntax");
      out += String.fromCharCode(parseInt(oct, 8));
      i += 2;
    } else throw new Error("invalid syntax");
  }
  return out;
}

class Parser {
  private s: Scanner;
  constructor(private readonly input: string) {
    this.s = new Scanner(input);
  }

  private err(pos: number, msg: string): ParseError {
    const i = this.input;
    const where = pos < i.length ? `[${i.slice(0, pos)} >|${i.slice(pos, pos + 1)}|< ${i.slice(pos + 1)}]` : `[${i}]`;
    return new ParseError(`parse error: ${where}: ${msg}`);
  }

  parse(): Filter {
    const all: Filter[] = [this.selector()];
    for (;;) {
      const t = this.s.scan();
      if (t.kind === "eof") break;
      if (t.kind === "sep" && t.text === ",") {
        all.push(this.selector());
        continue;
      }
      throw this.err(t.pos, `unexpected input: ${t.text}`);
    }
    return (a) => all.every((f) => f(a));
  }

  private selector(): Filter {
    const path = this.fieldpath();
    const save = [this.s.pos, this.s.value] as const;
    const t = this.s.scan();
    if (t.kind === "eof" || (t.kind === "sep" && t.text === ",")) {
      [this.s.pos, this.s.value] = save;
      return (a) => a(path)[1];
    }
    if (t.kind !== "op") throw this.err(t.pos, `expected an operator ("=="|"!="|"~=")`);
    const op = t.text;
    if (op !== "==" && op !== "!=" && op !== "~=") throw this.err(t.pos, `unsupported operator ${JSON.stringify(op)}`);
    const v = this.s.scan();
    let value: string;
    if (v.kind === "value" || v.kind === "field") value = v.text;
    else if (v.kind === "quoted") value = this.unq(v);
    else throw this.err(v.pos, "expected value or quoted");
    if (op === "==") return (a) => {
      const [x, present] = a(path);
      return present && x === value;
    };
    if (op === "!=") return (a) => a(path)[0] !== value;
    let re: RegExp | undefined;
    try {
      re = new RegExp(value);
    } catch {
      re = undefined;
    }
    return (a) => (re ? re.test(a(path)[0]) : false);
  }

  private unq(t: Tok): string {
    try {
      return unquote(t.text);
    } catch (e: any) {
      throw this.err(t.pos, `unquoting failed: ${e.message}`);
    }
  }

  private field(): string {
    const t = this.s.scan();
    if (t.kind === "field") return t.text;
    if (t.kind === "quoted") return this.unq(t);
    throw this.err(t.pos, "expected field or quoted");
  }

  private fieldpath(): string[] {
    const fs = [this.field()];
    for (;;) {
      const save = [this.s.pos, this.s.value] as const;
      const t = this.s.scan();
      if (t.kind === "sep" && t.text === ".") {
        fs.push(this.field());
        continue;
      }
      [this.s.pos, this.s.value] = save;
      return fs;
    }
  }
}

/** Parse one filter string ("" matches everything). Throws Error("parse error: ...") when malformed. */
export function parseFilter(s: string): Filter {
  if (s === "") return always;
  try {
    return new Parser(s).parse();
  } catch (e) {
    if (e instanceof ParseError) throw new Error(`filters: ${e.message}`);
    throw e;
  }
}

/**
 * Parse a request's filters (OR-ed). Invalid ones throw InvalidArgument with containerd's text;
 * `doubled` repeats the kind as containerd's metadata stores do ("...: invalid argument: invalid argument").
 */
export function parseFilters(ss: readonly string[], opts: { doubled?: boolean } = {}): Filter {
  if (!ss.length) return always;
  const fs: Filter[] = [];
  for (const s of ss) {
    try {
      fs.push(parseFilter(s));
    } catch (e: any) {
      throw invalidArgument(opts.doubled ? `${e.message}: invalid argument` : e.message);
    }
  }
  return (a) => fs.some((f) => f(a));
}

/** A map lookup for a "labels.<key>" style path (the rest of the path joined by "."). */
export function mapField(path: string[], m: Record<string, string> | undefined): [string, boolean] {
  if (!m || !Object.keys(m).length) return ["", false];
  const k = path.join(".");
  return k in m ? [m[k]!, true] : ["", false];
}
