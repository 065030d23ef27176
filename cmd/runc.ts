export async function main(argv: string[]): Promise<number> {
  console.log("runc", argv);
  return 0;
}
