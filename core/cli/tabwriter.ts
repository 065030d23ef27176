// Go's text/tabwriter as the real tools use it: each column is as wide as its widest cell plus
// padding, never narrower than minwidth; the last column is not padded.
export function tabwrite(rows: string[][], minwidth: number, padding: number): string {
  const cols = Math.max(0, ...rows.map((r) => r.length));
  const width: number[] = [];
  for (let c = 0; c < cols - 1; c++) width[c] = Math.max(minwidth, ...rows.map((r) => (r[c] ?? "").length + padding));
  return rows.map((r) => r.map((cell, c) => (c < r.length - 1 ? cell.padEnd(width[c]!) : cell)).join("") + "\n").join("");
}
