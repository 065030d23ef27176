// Go's text/tabwriter, exactly as the real ctr uses it (tabwriter.NewWriter(w, minwidth, tabwidth,
// padding, ' ', 0) and text written with \t-terminated cells): a cell ends at a tab; the text after
// a line's last tab is not part of any column; consecutive lines sharing a column form a block
// whose width is its widest cell plus padding (at least minwidth). Cells ended by a tab are padded
// even when they are the last ones of the line ("STATUS    "), unlike core/cli/tabwriter.ts.

interface Cell {
  text: string;
  width: number;
}

const runeWidth = (s: string) => [...s].length;

export class GoTabWriter {
  private text = "";

  constructor(
    private readonly minwidth: number,
    private readonly padding: number,
  ) {}

  write(s: string): this {
    this.text += s;
    return this;
  }

  /** Printf-style convenience: cells joined by tabs, terminated by a tab and a newline. */
  row(...cells: string[]): this {
    return this.write(cells.map((c) => c + "\t").join("") + "\n");
  }

  flush(): string {
    const s = formatTabs(this.text, this.minwidth, this.padding);
    this.text = "";
    return s;
  }
}

export function formatTabs(text: string, minwidth: number, padding: number): string {
  const endsWithNewline = text.endsWith("\n");
  const rawLines = (endsWithNewline ? text.slice(0, -1) : text).split("\n");
  const lines: Cell[][] = rawLines.map((l) => l.split("\t").map((t) => ({ text: t, width: runeWidth(t) })));
  const out: string[] = [];
  const widths: number[] = [];

  const writeLines = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      let s = "";
      lines[i]!.forEach((c, j) => {
        s += c.text;
        if (j < widths.length) s += " ".repeat(Math.max(0, widths[j]! - c.width));
      });
      out.push(s);
    }
  };

  const format = (line0: number, line1: number) => {
    const column = widths.length;
    for (let t = line0; t < line1; t++) {
      if (column >= lines[t]!.length - 1) continue;
      writeLines(line0, t);
      line0 = t;
      let width = minwidth;
      for (; t < line1; t++) {
        const line = lines[t]!;
        if (column >= line.length - 1) break;
        width = Math.max(width, line[column]!.width + padding);
      }
      widths.push(width);
      format(line0, t);
      widths.pop();
      line0 = t;
    }
    writeLines(line0, line1);
  };

  format(0, lines.length);
  return out.join("\n") + (endsWithNewline ? "\n" : "");
}
