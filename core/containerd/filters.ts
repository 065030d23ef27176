// containerd's filter syntax (its filters package, 1.6), used by every List call:
//
//   filters   := selector ("," selector)*          all must match
//   selector  := fieldpath [operator value]        no operator: the field is present
//   fieldpath := field ("." field)*
//   field     := quoted | [A-Za-z0-9_-]+
//   operator  := "==" | "!=" | "~="                "~=" is a regular expression
//   value     := quoted | runes up to "," or space
//   quoted    := "..."                             Go string syntax; a "~=" value may also be
//                                                  quoted /.../ or |...| (regexps)
//
// Several filter strings in one request are OR-ed. Objects are matched through an adaptor that
// returns the value at a field path and whether it is present.
//
// The scanner and parser follow containerd's rune by rune, on the UTF-8 bytes of the filter, so a
// malformed filter fails with containerd's message at containerd's byte position:
//   filters: parse error: [name== >|"|< x]: quoted literal not terminated
// Its quirks are kept: whitespace after a value is "unexpected input", a scanner error (bad escape,
// unterminated quote, U+FFFD, NUL) is reported instead of the parser's expectation, and the first
// scanner error sticks for the rest of the string.
import { invalidArgument } from "./errdefs";

export type Adaptor = (fieldpath: string[]) => [value: string, present: boolean];
export type Filter = (a: Adaptor) => boolean;

export const always: Filter = () => true;

class ParseError extends Error {}

// Go's token constants (negative, so they never clash with a rune).
const EOF = -1;
const QUOTED = -2;
const VALUE = -3;
const FIELD = -4;
const SEPARATOR = -5;
const OPERATOR = -6;
const ILLEGAL = -7;

const RUNE_ERROR = 0xfffd;
const ch = (s: string) => s.codePointAt(0)!;
const COMMA = ch(",");
const DOT = ch(".");
const BACKSLASH = ch("\\");
const NEWLINE = ch("\n");

const isFieldRune = (r: number) => r === 0x2d || r === 0x5f || (r >= 0x41 && r <= 0x5a) || (r >= 0x61 && r <= 0x7a) || (r >= 0x30 && r <= 0x39);
const isOperatorRune = (r: number) => r === 0x3d || r === 0x21 || r === 0x7e; // = ! ~
const isQuoteRune = (r: number) => r === 0x2f || r === 0x7c || r === 0x22; // / | "
const isSeparatorRune = (r: number) => r === COMMA || r === DOT;
/** unicode.IsSpace: the White_Space property. */
const isSpace = (r: number) => r >= 0 && /^\p{White_Space}$/u.test(String.fromCodePoint(r));
/** Not "," nor space, and a letter, digit, number, graphic or punctuation rune. */
const isValueRune = (r: number) => r >= 0 && r !== COMMA && !isSpace(r) && /^[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]$/u.test(String.fromCodePoint(r));

/** utf8.DecodeRune: [rune, width]; an invalid or truncated sequence is [RuneError, 1]. */
function decodeRune(b: Uint8Array, i: number): [number, number] {
  if (i >= b.length) return [RUNE_ERROR, 0];
  const c0 = b[i]!;
  if (c0 < 0x80) return [c0, 1];
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (c0 >= 0xc2 && c0 <= 0xdf && cont(1)) return [((c0 & 0x1f) << 6) | (b[i + 1]! & 0x3f), 2];
  if (c0 >= 0xe0 && c0 <= 0xef && cont(1) && cont(2)) {
    const r = ((c0 & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f);
    if (r >= 0x800 && (r < 0xd800 || r > 0xdfff)) return [r, 3];
  }
  if (c0 >= 0xf0 && c0 <= 0xf4 && cont(1) && cont(2) && cont(3)) {
    const r = ((c0 & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f);
    if (r >= 0x10000 && r <= 0x10ffff) return [r, 4];
  }
  return [RUNE_ERROR, 1];
}

const decoder = new TextDecoder("utf-8", { fatal: false });
const text = (b: Uint8Array, from: number, to = b.length) => decoder.decode(b.subarray(from, to));

class Scanner {
  pos = 0; // start of the current rune
  ppos = 0; // end of the current rune
  value = false;
  err = "";
  constructor(readonly input: Uint8Array) {}

  next(): number {
    if (this.pos >= this.input.length) return EOF;
    this.pos = this.ppos;
    const [r, w] = decodeRune(this.input, this.ppos);
    this.ppos += w;
    if (r === RUNE_ERROR) {
      if (w > 0) {
        this.error("rune error");
        return ILLEGAL;
      }
      return EOF;
    }
    if (r === 0) {
      this.error("unexpected null");
      return ILLEGAL;
    }
    return r;
  }

  peek(): number {
    const [pos, ppos] = [this.pos, this.ppos];
    const r = this.next();
    [this.pos, this.ppos] = [pos, ppos];
    return r;
  }

  /** [position, token (a constant, or the rune itself when it starts no token), text]. */
  scan(): [number, number, string] {
    let r = this.next();
    let pos = this.pos;
    for (;;) {
      if (r === EOF || r === ILLEGAL) break;
      if (isQuoteRune(r)) {
        if (!this.scanQuoted(r)) return [pos, ILLEGAL, text(this.input, pos, this.ppos)];
        return [pos, QUOTED, text(this.input, pos, this.ppos)];
      }
      if (isSeparatorRune(r)) {
        this.value = false;
        return [pos, SEPARATOR, text(this.input, pos, this.ppos)];
      }
      if (isOperatorRune(r)) {
        while (isOperatorRune(this.peek())) this.next();
        this.value = true;
        return [pos, OPERATOR, text(this.input, pos, this.ppos)];
      }
      if (isSpace(r)) {
        r = this.next();
        pos = this.pos;
        continue;
      }
      if (this.value) {
        while (isValueRune(this.peek())) this.next();
        this.value = false;
        return [pos, VALUE, text(this.input, pos, this.ppos)];
      }
      if (isFieldRune(r)) {
        while (isFieldRune(this.peek())) this.next();
        return [pos, FIELD, text(this.input, pos, this.ppos)];
      }
      break;
    }
    return [this.pos, r, ""];
  }

  private scanQuoted(quote: number): boolean {
    let illegal = false;
    let r = this.next();
    while (r !== quote) {
      if (r === NEWLINE || r < 0) {
        this.error("quoted literal not terminated");
        return false;
      }
      if (r === BACKSLASH) {
        let legal: boolean;
        [r, legal] = this.scanEscape(quote);
        if (!legal) illegal = true;
      } else r = this.next();
    }
    return !illegal;
  }

  private scanEscape(quote: number): [number, boolean] {
    const r = this.next();
    if (r === quote || (r >= 0 && "abfnrtv\\".includes(String.fromCodePoint(r)))) return [this.next(), true];
    if (r >= 0x30 && r <= 0x37) return this.scanDigits(r, 8, 3);
    if (r === ch("x")) return this.scanDigits(this.next(), 16, 2);
    if (r === ch("u")) return this.scanDigits(this.next(), 16, 4);
    if (r === ch("U")) return this.scanDigits(this.next(), 16, 8);
    this.error("illegal escape sequence");
    return [r, false];
  }

  private scanDigits(r: number, base: number, n: number): [number, boolean] {
    while (n > 0 && digitVal(r) < base) {
      r = this.next();
      n--;
    }
    if (n > 0) {
      this.error("illegal numeric escape sequence");
      return [r, false];
    }
    return [r, true];
  }

  private error(msg: string): void {
    if (!this.err) this.err = msg;
  }
}

function digitVal(r: number): number {
  if (r >= 0x30 && r <= 0x39) return r - 0x30;
  if (r >= 0x61 && r <= 0x66) return r - 0x61 + 10;
  if (r >= 0x41 && r <= 0x46) return r - 0x41 + 10;
  return 16;
}

/** containerd's unquote: Go's strconv.Unquote with `/` and `|` as further double quotes. */
function unquote(s: string): string {
  const bad = () => new Error("quote syntax error");
  const b = new TextEncoder().encode(s);
  const n = b.length;
  if (n < 2) throw bad();
  const quote = b[0]!;
  if (quote !== b[n - 1]) throw bad();
  const body = b.subarray(1, n - 1);
  if (quote !== 0x22 && quote !== 0x27 && quote !== 0x7c && quote !== 0x2f) throw bad();
  if (body.includes(0x0a)) throw bad();
  const out: number[] = [];
  const enc = new TextEncoder();
  const hex = (c: number) => (c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1);
  for (let i = 0; i < body.length; ) {
    const c = body[i]!;
    if (c === quote) throw bad();
    if (c !== BACKSLASH) {
      out.push(c);
      i++;
      continue;
    }
    if (i + 1 >= body.length) throw bad();
    const e = body[i + 1]!;
    i += 2;
    const simple: Record<number, number> = { 0x61: 7, 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9, 0x76: 11, 0x5c: 0x5c };
    if (simple[e] !== undefined) out.push(simple[e]!);
    else if (e === 0x78 || e === 0x75 || e === 0x55) {
      const k = e === 0x78 ? 2 : e === 0x75 ? 4 : 8;
      if (body.length - i < k) throw bad();
      let v = 0;
      for (let j = 0; j < k; j++) {
        const x = hex(body[i + j]!);
        if (x < 0) throw bad();
        v = v * 16 + x;
      }
      i += k;
      if (e === 0x78) out.push(v);
      else {
        if (v > 0x10ffff) throw bad();
        out.push(...enc.encode(String.fromCodePoint(v >= 0xd800 && v <= 0xdfff ? RUNE_ERROR : v)));
      }
    } else if (e >= 0x30 && e <= 0x37) {
      if (body.length - i < 2) throw bad();
      let v = e - 0x30;
      for (let j = 0; j < 2; j++) {
        const x = body[i + j]! - 0x30;
        if (x < 0 || x > 7) throw bad();
        v = (v << 3) | x;
      }
      i += 2;
      if (v > 255) throw bad();
      out.push(v);
    } else if (e === 0x27 || e === 0x22 || e === 0x7c || e === 0x2f) {
      if (e !== quote) throw bad();
      out.push(e);
    } else throw bad();
  }
  return decoder.decode(new Uint8Array(out));
}

type Op = "?" | "==" | "!=" | "~=";

interface Selector {
  fieldpath: string[];
  op: Op;
  value: string;
  re?: RegExp | null;
}

/**
 * A Go (RE2) regular expression as a JS one. A leading flag group "(?i)", "(?s)", "(?m)" becomes
 * the JS flag; anything JS can't compile matches nothing, as containerd's failed Compile does.
 */
function compileRegexp(src: string): RegExp | null {
  let flags = "";
  const m = /^\(\?([ims]+)\)/.exec(src);
  if (m) {
    flags = [...new Set(m[1]!)].join("");
    src = src.slice(m[0].length);
  }
  try {
    return new RegExp(src, flags);
  } catch {
    return null;
  }
}

function matchSelector(s: Selector, a: Adaptor): boolean {
  const [value, present] = a(s.fieldpath);
  switch (s.op) {
    case "?":
      return present;
    case "==":
      return present && value === s.value;
    case "!=":
      return value !== s.value;
    case "~=":
      if (s.re === undefined) s.re = compileRegexp(s.value);
      return s.re ? s.re.test(value) : false;
  }
}

class Parser {
  private readonly b: Uint8Array;
  private readonly s: Scanner;
  constructor(input: string) {
    this.b = new TextEncoder().encode(input);
    this.s = new Scanner(this.b);
  }

  private err(pos: number, msg: string): ParseError {
    const b = this.b;
    const where = pos < b.length ? `[${text(b, 0, pos)} >|${text(b, pos, pos + 1)}|< ${text(b, pos + 1)}]` : `[${text(b, 0)}]`;
    return new ParseError(`parse error: ${where}: ${msg}`);
  }

  parse(): Selector[] {
    const out = [this.selector()];
    for (;;) {
      const r = this.s.peek();
      if (r === COMMA) {
        const [pos, tok] = this.s.scan();
        if (tok !== SEPARATOR) throw this.err(pos, "expected a separator");
        out.push(this.selector());
      } else if (r === EOF) {
        return out;
      } else {
        throw this.err(this.s.ppos, `unexpected input: ${String.fromCodePoint(r < 0 ? RUNE_ERROR : r)}`);
      }
    }
  }

  private selector(): Selector {
    const fieldpath = this.fieldpath();
    const r = this.s.peek();
    if (r === COMMA || r === EOF) return { fieldpath, op: "?", value: "" };
    const op = this.operator();
    const value = this.value(op === "~=");
    return { fieldpath, op, value };
  }

  private fieldpath(): string[] {
    const fs = [this.field()];
    while (this.s.peek() === DOT) {
      const [pos, tok] = this.s.scan();
      if (tok !== SEPARATOR) throw this.err(pos, "expected a field separator (`.`)");
      fs.push(this.field());
    }
    return fs;
  }

  private field(): string {
    const [pos, tok, s] = this.s.scan();
    if (tok === FIELD) return s;
    if (tok === QUOTED) return this.unquote(pos, s, false);
    if (tok === ILLEGAL) throw this.err(pos, this.s.err);
    throw this.err(pos, "expected field or quoted");
  }

  private operator(): Op {
    const [pos, tok, s] = this.s.scan();
    if (tok === OPERATOR) {
      if (s === "==" || s === "!=" || s === "~=") return s;
      throw this.err(pos, `unsupported operator ${JSON.stringify(s)}`);
    }
    if (tok === ILLEGAL) throw this.err(pos, this.s.err);
    throw this.err(pos, `expected an operator ("=="|"!="|"~=")`);
  }

  private value(allowAltQuotes: boolean): string {
    const [pos, tok, s] = this.s.scan();
    if (tok === VALUE || tok === FIELD) return s;
    if (tok === QUOTED) return this.unquote(pos, s, allowAltQuotes);
    if (tok === ILLEGAL) throw this.err(pos, this.s.err);
    throw this.err(pos, "expected value or quoted");
  }

  private unquote(pos: number, s: string, allowAlts: boolean): string {
    if (!allowAlts && s[0] !== "'" && s[0] !== '"') throw this.err(pos, "invalid quote encountered");
    try {
      return unquote(s);
    } catch (e: any) {
      throw this.err(pos, `unquoting failed: ${e.message}`);
    }
  }
}

/** Parse one filter string ("" matches everything). Throws Error("filters: parse error: ...") when malformed. */
export function parseFilter(s: string): Filter {
  if (s === "") return always;
  let sels: Selector[];
  try {
    sels = new Parser(s).parse();
  } catch (e) {
    if (e instanceof ParseError) throw new Error(`filters: ${e.message}`);
    throw e;
  }
  return (a) => sels.every((sel) => matchSelector(sel, a));
}

/**
 * Parse a request's filters (OR-ed). Invalid ones throw InvalidArgument with containerd's text
 * (filters.ParseAll: "filters: parse error: ...: invalid argument"); `doubled` wraps it in
 * InvalidArgument once more, as containerd's image and lease stores do
 * ("...: invalid argument: invalid argument"). Its content store does not.
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
