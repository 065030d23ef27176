// containerd's filter syntax (filters/{parser,scanner,quote,filter}.go, containerd 1.6):
//
//   selectors := selector ("," selector)*        every selector must match (AND)
//   selector  := fieldpath (operator value)?     no operator: the field must be present
//   fieldpath := field ("." field)*
//   field     := quoted | [A-Za-z0-9_-]+
//   operator  := "==" | "!=" | "~="              "~=" is a regular expression match
//   value     := quoted | [^\s,]+
//   quoted    := "..." | /.../ | |...|           Go string syntax; / and | behave like "
//
// Several filter strings (ParseAll) match when any of them matches (OR).
import { invalidArgument } from "./errors";

/** Returns a field's value and whether it is present (filters.Adaptor). */
export type Adaptor = (fieldpath: string[]) => [string, boolean];
export type Filter = (a: Adaptor) => boolean;

export const always: Filter = () => true;

const EOF = -1, QUOTED = -2, VALUE = -3, FIELD = -4, SEPARATOR = -5, OPERATOR = -6, ILLEGAL = -7;

const isFieldRune = (c: string) => /^[A-Za-z0-9_-]$/.test(c);
const isOperatorRune = (c: string) => c === "=" || c === "!" || c === "~";
const isQuoteRune = (c: string) => c === "/" || c === "|" || c === '"';
const isSeparatorRune = (c: string) => c === "," || c === ".";
const isSpace = (c: string) => /^\s$/u.test(c);
const isValueRune = (c: string) => c !== "," && !isSpace(c) && /^[\p{L}\p{N}\p{P}\p{S}\p{M} ]$/u.test(c);

class Scanner {
  pos = 0; // start of the current rune
  ppos = 0; // end of the current rune
  value = false;
  err = "";
  constructor(readonly input: string) {}

  /** The next rune, or EOF / ILLEGAL. */
  next(): string | number {
    if (this.pos >= this.input.length && this.ppos >= this.input.length) return EOF;
    this.pos = this.ppos;
    if (this.ppos >= this.input.length) return EOF;
    const cp = this.input.codePointAt(this.ppos)!;
    const ch = String.fromCodePoint(cp);
    this.ppos += ch.length;
    if (cp === 0) {
      this.error("unexpected null");
      return ILLEGAL;
    }
    return ch;
  }
  peek(): string | number {
    const { pos, ppos } = this;
    const ch = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return ch;
  }
  scan(): [number, number | string, string] {
    let ch = this.next();
    let pos = this.pos;
    for (;;) {
      if (ch === EOF || ch === ILLEGAL) return [this.pos, ch, ""];
      const c = ch as string;
      if (isQuoteRune(c)) {
        if (!this.scanQuoted(c)) return [pos, ILLEGAL, this.input.slice(pos, this.ppos)];
        return [pos, QUOTED, this.input.slice(pos, this.ppos)];
      }
      if (isSeparatorRune(c)) {
        this.value = false;
        return [pos, SEPARATOR, this.input.slice(pos, this.ppos)];
      }
      if (isOperatorRune(c)) {
        while (typeof this.peek() === "string" && isOperatorRune(this.peek() as string)) this.next();
        this.value = true;
        return [pos, OPERATOR, this.input.slice(pos, this.ppos)];
      }
      if (isSpace(c)) {
        ch = this.next();
        pos = this.pos;
        continue;
      }
      if (this.value) {
        while (typeof this.peek() === "string" && isValueRune(this.peek() as string)) this.next();
        this.value = false;
        return [pos, VALUE, this.input.slice(pos, this.ppos)];
      }
      if (isFieldRune(c)) {
        while (typeof this.peek() === "string" && isFieldRune(this.peek() as string)) this.next();
        return [pos, FIELD, this.input.slice(pos, this.ppos)];
      }
      return [this.pos, c, ""];
    }
  }
  scanQuoted(quote: string): boolean {
    let illegal = false;
    let ch = this.next();
    while (ch !== quote) {
      if (ch === "\n" || typeof ch === "number") {
        this.error("quoted literal not terminated");
        return false;
      }
      if (ch === "\\") {
        const [c, legal] = this.scanEscape(quote);
        ch = c;
        if (!legal) illegal = true;
      } else {
        ch = this.next();
      }
    }
    return !illegal;
  }
  scanEscape(quote: string): [string | number, boolean] {
    const ch = this.next();
    if (typeof ch === "string" && ("abfnrtv\\".includes(ch) || ch === quote)) return [this.next(), true];
    if (typeof ch === "string" && /^[0-7]$/.test(ch)) return this.scanDigits(ch, 8, 3);
    if (ch === "x") return this.scanDigits(this.next(), 16, 2);
    if (ch === "u") return this.scanDigits(this.next(), 16, 4);
    if (ch === "U") return this.scanDigits(this.next(), 16, 8);
    this.error("illegal escape sequence");
    return [ch, false];
  }
  scanDigits(ch: string | number, base: number, n: number): [string | number, boolean] {
    while (n > 0 && typeof ch === "string" && digitVal(ch) < base) {
      ch = this.next();
      n--;
    }
    if (n > 0) {
      this.error("illegal numeric escape sequence");
      return [ch, false];
    }
    return [ch, true];
  }
  error(msg: string) {
    if (!this.err) this.err = msg;
  }
}

function digitVal(ch: string): number {
  if (/^[0-9]$/.test(ch)) return ch.charCodeAt(0) - 48;
  if (/^[a-f]$/.test(ch)) return ch.charCodeAt(0) - 87;
  if (/^[A-F]$/.test(ch)) return ch.charCodeAt(0) - 55;
  return 16;
}

/** filters' unquote: Go string literal syntax with `"`, `/` and `|` as double quotes. */
function unquote(s: string): string {
  const bad = () => new Error("quote syntax error");
  if (s.length < 2) throw bad();
  const quote = s[0]!;
  if (quote !== s[s.length - 1]) throw bad();
  const body = s.slice(1, -1);
  if (quote !== '"' && quote !== "|" && quote !== "/") throw bad();
  if (body.includes("\n")) throw bad();
  const bytes: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < body.length; ) {
    const c = body[i]!;
    if (c === quote) throw bad();
    if (c !== "\\") {
      const cp = body.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...enc.encode(ch));
      i += ch.length;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) throw bad();
    i += 2;
    const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92 };
    if (e in simple) bytes.push(simple[e]!);
    else if (e === "x" || e === "u" || e === "U") {
      const n = e === "x" ? 2 : e === "u" ? 4 : 8;
      const hex = body.slice(i, i + n);
      if (hex.length < n || !/^[0-9a-fA-F]+$/.test(hex)) throw bad();
      i += n;
      const v = parseInt(hex, 16);
      if (e === "x") bytes.push(v);
      else {
        if (v > 0x10ffff) throw bad();
        bytes.push(...enc.encode(String.fromCodePoint(v)));
      }
    } else if (/^[0-7]$/.test(e)) {
      const oct = e + body.slice(i, i + 2);
      if (!/^[0-7]{3}$/.test(oct)) throw bad();
      i += 2;
      const v = parseInt(oct, 8);
      if (v > 255) throw bad();
      bytes.push(v);
    } else if (e === "'" || e === '"' || e === "|" || e === "/") {
      if (e !== quote) throw bad();
      bytes.push(e.charCodeAt(0));
    } else throw bad();
  }
  return Buffer.from(bytes).toString("utf8");
}

interface Selector {
  fieldpath: string[];
  op: "?" | "==" | "!=" | "~=";
  value: string;
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
    case "~=": {
      let re: RegExp;
      try {
        re = new RegExp(s.value);
      } catch {
        return false;
      }
      return re.test(value);
    }
  }
}

class Parser {
  sc: Scanner;
  constructor(readonly input: string) {
    this.sc = new Scanner(input);
  }
  mkerr(pos: number, msg: string): Error {
    let where: string;
    if (pos < this.input.length) {
      where = `[${this.input.slice(0, pos)} >|${this.input.slice(pos, pos + 1)}|< ${this.input.slice(pos + 1)}]`;
    } else {
      where = `[${this.input}]`;
    }
    return new Error(`parse error: ${where}: ${msg}`);
  }
  parse(): Selector[] {
    const out = [this.selector()];
    for (;;) {
      const tok = this.sc.peek();
      if (tok === ",") {
        const [pos, t] = this.sc.scan();
        if (t !== SEPARATOR) throw this.mkerr(pos, "expected a separator");
        out.push(this.selector());
      } else if (tok === EOF) {
        return out;
      } else {
        throw this.mkerr(this.sc.ppos, `unexpected input: ${typeof tok === "string" ? tok : String.fromCharCode(0xfffd)}`);
      }
    }
  }
  selector(): Selector {
    const fieldpath = this.fieldpath();
    const next = this.sc.peek();
    if (next === "," || next === EOF) return { fieldpath, op: "?", value: "" };
    const op = this.operator();
    const value = this.value();
    return { fieldpath, op, value };
  }
  fieldpath(): string[] {
    const fs = [this.field()];
    while (this.sc.peek() === ".") {
      const [pos, t] = this.sc.scan();
      if (t !== SEPARATOR) throw this.mkerr(pos, "expected a field separator (`.`)");
      fs.push(this.field());
    }
    return fs;
  }
  field(): string {
    const [pos, tok, s] = this.sc.scan();
    if (tok === FIELD) return s;
    if (tok === QUOTED) return this.unquote(pos, s);
    throw this.mkerr(pos, "expected field or quoted");
  }
  operator(): Selector["op"] {
    const [pos, tok, s] = this.sc.scan();
    if (tok === OPERATOR) {
      if (s === "==" || s === "!=" || s === "~=") return s;
      throw this.mkerr(pos, `unsupported operator ${JSON.stringify(s)}`);
    }
    throw this.mkerr(pos, `expected an operator ("=="|"!="|"~=")`);
  }
  value(): string {
    const [pos, tok, s] = this.sc.scan();
    if (tok === VALUE || tok === FIELD) return s;
    if (tok === QUOTED) return this.unquote(pos, s);
    throw this.mkerr(pos, "expected value or quoted");
  }
  unquote(pos: number, s: string): string {
    try {
      return unquote(s);
    } catch (e) {
      throw this.mkerr(pos, `unquoting failed: ${(e as Error).message}`);
    }
  }
}

/** filters.Parse: one filter string; "" matches everything. Throws a plain Error on syntax errors. */
export function parse(s: string): Filter {
  if (s === "") return always;
  let sels: Selector[];
  try {
    sels = new Parser(s).parse();
  } catch (e) {
    throw new Error(`filters: ${(e as Error).message}`);
  }
  return (a) => sels.every((sel) => matchSelector(sel, a));
}

/** filters.ParseAll: any of the filters matches (no filters: everything). Errors are InvalidArgument. */
export function parseAll(ss: string[] = []): Filter {
  if (!ss.length) return always;
  const fs = ss.map((s) => {
    try {
      return parse(s);
    } catch (e) {
      throw invalidArgument((e as Error).message);
    }
  });
  return (a) => fs.some((f) => f(a));
}

