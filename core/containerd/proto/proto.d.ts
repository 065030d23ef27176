// Bun bundles `import text from "./x.proto" with { type: "text" }` as the file's text.
declare module "*.proto" {
  const text: string;
  export default text;
}
