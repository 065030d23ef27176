// ctr content active|delete|edit|fetch-object|get|ingest|list|push-object|label|prune (fetch comes
// from pull.ts). ctr 1.6's tables: `content ls` pads with tabs, as its tabwriter does.
import { spawnSync } from "node:child_process";
import { closeSync, fstatSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { out } from "../../cli/io";
import { isAlreadyExists, isNotFound, messageOf } from "../../containerd/errdefs";
import { fromTimestamp, type Timestamp } from "../../containerd/types";
import { parseDigest } from "../../image/reference";
import { NotFoundError, RegistryClient, RegistryError } from "../../image/registry";
import { type Command, type Ctx, ExitError, labelArgs } from "../app";
import type { Client } from "../client";
import { CONTENT, openWriter, readAll } from "../remote";
import { parseContainerdRef } from "../export";
import { REGISTRY_FLAGS, registryOptions } from "../registry-flags";
import { expiryLabel } from "./leases";

interface Info {
  digest: string;
  size: string | number;
  createdAt: Timestamp | null;
  labels: Record<string, string>;
}

/** docker/go-units HumanSize: "%.4g" in powers of 1000 (B, kB, MB, ...). */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(4))}${units[i]}`;
}

/** docker/go-units HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3600_000 + 0.5);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3600_000 / 24 / 365)} years`;
}

function sinceMs(t: Timestamp | null | undefined): number {
  const d = fromTimestamp(t);
  return Date.now() - (d.seconds * 1000 + Math.floor(d.nanos / 1e6));
}

/**
 * Go's tabwriter with padchar '\t' (minwidth 1, tabwidth 8, padding 1): a column is as wide as
 * its widest cell plus one, rounded up to a tab stop, and cells are padded with tabs.
 */
export function formatTabsWithTabs(text: string, tabwidth = 8): string {
  const lines = text.replace(/\n$/, "").split("\n").map((l) => l.split("\t"));
  const outLines: string[] = [];
  // Blocks of consecutive lines sharing column j (only cells terminated by a tab count).
  const widths = (line: number, col: number): number => {
    let a = line;
    let b = line;
    while (a > 0 && lines[a - 1]!.length - 1 > col) a--;
    while (b < lines.length - 1 && lines[b + 1]!.length - 1 > col) b++;
    let w = 1;
    for (let i = a; i <= b; i++) w = Math.max(w, [...lines[i]![col]!].length + 1);
    return Math.ceil(w / tabwidth) * tabwidth;
  };
  lines.forEach((cells, i) => {
    let s = "";
    cells.forEach((cell, j) => {
      s += cell;
      if (j < cells.length - 1) {
        const cw = widths(i, j);
        const n = cw - [...cell].length;
        s += "\t".repeat(Math.ceil(n / tabwidth));
      }
    });
    outLines.push(s);
  });
  return outLines.join("\n") + (text.endsWith("\n") ? "\n" : "");
}

/** go-digest's digest.Parse (its own DigestRegexp tells an unknown algorithm from a bad format). */
export function goDigest(s: string): string {
  try {
    parseDigest(s);
  } catch (e) {
    const i = s.indexOf(":");
    const alg = s.slice(0, i);
    if (i > 0 && !["sha256", "sha384", "sha512"].includes(alg) && /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(s)) throw new Error("unsupported digest algorithm");
    throw e;
  }
  return s;
}

/** Go's digest.Parse on a command's argument. */
const digestArg = (s: string | undefined) => goDigest(s ?? "");

/** Labels as ctr prints them after an update: k=v joined with commas (sorted here; Go's map order is random). */
const labelLine = (labels: Record<string, string> | undefined) =>
  Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join(",");

/** os.Stdin as content.Copy reads it: sequentially, or from `offset` when it can seek (a file). */
class Stdin {
  private pos: number | null = null;
  constructor(offset: number, ref: string) {
    if (offset <= 0) return;
    let regular = false;
    try {
      regular = fstatSync(0).isFile();
    } catch {}
    if (!regular) throw new Error(`unable to resume write to ${ref}: failed to seek to offset ${offset}: seek /dev/stdin: illegal seek`);
    this.pos = offset;
  }

  async read(buf: Buffer): Promise<number> {
    for (;;) {
      try {
        const n = readSync(0, buf, 0, buf.length, this.pos);
        if (this.pos !== null) this.pos += n;
        return n;
      } catch (e: any) {
        if (e?.code === "EAGAIN") {
          await Bun.sleep(1);
          continue;
        }
        if (e?.code === "EOF") return 0;
        throw e;
      }
    }
  }
}

/** content.WriteBlob from stdin, as `ctr content ingest` does it (the ingest stays on failure). */
async function ingest(client: Client, ref: string, size: number, expected: string): Promise<void> {
  let opened;
  try {
    opened = await openWriter(client, ref, { digest: expected, size });
  } catch (e) {
    throw new Error(`failed to open writer: ${messageOf(e)}`);
  }
  if (!opened) return; // already exists
  const { w } = opened;
  try {
    let offset = opened.offset;
    const start = offset;
    const stdin = new Stdin(offset, ref);
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      // Fill the 1 MiB buffer as io.CopyBuffer does with a pipe: one message per read.
      const n = await stdin.read(buf);
      if (n === 0) break;
      await w.send({ action: "WRITE", ref, offset: String(offset), data: buf.subarray(0, n) });
      offset += n;
    }
    if (size !== 0 && offset - start < size - start) throw new Error("failed to read expected number of bytes: unexpected EOF");
    try {
      await w.send({ action: "COMMIT", ref, total: String(size), offset: String(offset), expected });
    } catch (e) {
      if (!isAlreadyExists(e)) throw new Error(`failed commit on ref ${JSON.stringify(ref)}: commit failed: ${messageOf(e)}`);
    }
  } finally {
    w.close();
  }
}

/**
 * ctr content edit's write: `data` under `ref`, committed with the digest the daemon computed
 * (the writer's Digest()). An unchanged blob fails as in ctr: "commit failed: ... already exists".
 */
async function writeAndCommit(client: Client, ref: string, data: Uint8Array): Promise<string> {
  const digest = "sha256:" + new Bun.CryptoHasher("sha256").update(data).digest("hex");
  const opened = await openWriter(client, ref, { digest: "", size: 0 });
  if (!opened) return digest;
  const { w } = opened;
  try {
    let offset = opened.offset;
    if (offset > data.byteLength) offset = 0;
    for (let i = offset; i < data.byteLength; i += 1 << 20) {
      const part = data.subarray(i, Math.min(data.byteLength, i + (1 << 20)));
      await w.send({ action: "WRITE", ref, offset: String(i), data: part });
    }
    try {
      await w.send({ action: "COMMIT", ref, total: "0", offset: String(data.byteLength), expected: digest });
    } catch (e) {
      throw new Error(`commit failed: ${messageOf(e)}`);
    }
  } finally {
    w.close();
  }
  return digest;
}

/**
 * ctr 1.6's edit: the blob in a temp file ($XDG_RUNTIME_DIR/edit-N), `sh -c "<editor> <file>"`,
 * then the file read back through the descriptor it was written with (an editor that replaces
 * the file leaves the blob unchanged, as with ctr). A failing editor ends ctr with its status.
 */
function edit(c: Ctx, data: Uint8Array): Uint8Array {
  const editor = String(c.flags.editor ?? "");
  if (!editor) throw new Error("editor is required");
  const dir = process.env.XDG_RUNTIME_DIR || tmpdir();
  let file = "";
  let fd = -1;
  for (let i = 0; fd < 0; i++) {
    file = join(dir, `edit-${Math.floor(Math.random() * 4294967295)}`);
    try {
      fd = openSync(file, "wx+", 0o600);
    } catch (e: any) {
      if (e?.code !== "EEXIST" || i > 100) throw new Error(`open ${file}: ${e?.message ?? e}`);
    }
  }
  try {
    writeSync(fd, data);
    const r = spawnSync("sh", ["-c", `${editor} ${file}`], { stdio: "inherit" });
    if (r.error) throw r.error;
    if (r.signal) throw new ExitError(`signal: ${signalName(r.signal)}`, 255);
    if (r.status !== 0) throw new ExitError(`exit status ${r.status}`, r.status ?? 1);
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(size);
    let n = 0;
    while (n < size) {
      const k = readSync(fd, buf, n, size - n, n);
      if (k === 0) break;
      n += k;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
}

/** Go's signal names ("killed", "terminated", "interrupt"). */
function signalName(sig: string): string {
  const names: Record<string, string> = { SIGKILL: "killed", SIGTERM: "terminated", SIGINT: "interrupt", SIGHUP: "hangup", SIGQUIT: "quit", SIGABRT: "aborted", SIGSEGV: "segmentation fault", SIGPIPE: "broken pipe" };
  return names[sig] ?? sig.toLowerCase();
}

/** remotes.MakeRefKey: the ingest ref a push of this media type uses. */
function refKey(media: string, digest: string): string {
  if (/manifest/.test(media) && !/list/.test(media)) return `manifest-${digest}`;
  if (/index|manifest\.list/.test(media)) return `index-${digest}`;
  if (/layer|rootfs/.test(media)) return `layer-${digest}`;
  if (/config/.test(media)) return `config-${digest}`;
  return `unknown-${digest}`;
}

/** Go's http.StatusText for the answers a registry gives. */
const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
  413: "Request Entity Too Large", 416: "Requested Range Not Satisfiable", 429: "Too Many Requests",
  500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};

const LAYER_PREFIX = "containerd.io/gc.ref.content.l.";
const CONTENT_PREFIX = "containerd.io/gc.ref.content.";

/** prune references: layer references (and legacy numbered ones but the config's, 0). */
function isLayerLabel(key: string): boolean {
  if (key.startsWith(LAYER_PREFIX)) return true;
  if (!key.startsWith(CONTENT_PREFIX)) return false;
  const rest = key.slice(CONTENT_PREFIX.length);
  return /^\d*$/.test(rest) && rest !== "0";
}

/** leases.WithRandomID: "<nanoseconds>-<4 url-safe base64 chars>". */
function randomLeaseID(): string {
  const ns = (Date.now() % 1000) * 1e6 + Math.floor(Math.random() * 1e6);
  return `${ns}-${Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString("base64url")}`;
}

async function listInfos(client: Client, filters: string[], each: (i: Info) => void): Promise<void> {
  for await (const r of client.stream<{ info: Info[] }>(CONTENT, "List", { filters })) for (const i of r.info ?? []) each(i);
}

export const contentCommand: Command = {
  name: "content",
  usage: "manage content",
  subcommands: [
    {
      name: "list",
      aliases: ["ls"],
      usage: "list all blobs in the store",
      argsUsage: "[flags]",
      description: "list blobs in the content store",
      flags: [{ name: "quiet", aliases: ["q"], type: "bool", help: "print only the blob digest" }],
      action: async (c) => {
        const client = await c.client();
        if (c.flags.quiet) return listInfos(client, c.args, (i) => out(i.digest + "\n"));
        // The table is flushed even when the walk fails (ctr's deferred tw.Flush()).
        let text = "DIGEST\tSIZE\tAGE\tLABELS\n";
        try {
          await listInfos(client, c.args, (i) => {
            const labels = Object.entries(i.labels ?? {}).map(([k, v]) => `${k}=${v}`).sort().join(",") || "-";
            text += `${i.digest}\t${humanSize(Number(i.size))}\t${humanDuration(sinceMs(i.createdAt))}\t${labels}\n`;
          });
        } finally {
          out(formatTabsWithTabs(text));
        }
      },
    },
    {
      name: "get",
      usage: "get the data for an object",
      argsUsage: "[<digest>, ...]",
      description: "display the image object",
      action: async (c) => {
        const dgst = digestArg(c.args[0]);
        const client = await c.client();
        await client.call(CONTENT, "Info", { digest: dgst });
        for await (const r of client.stream<{ data: Uint8Array }>(CONTENT, "Read", { digest: dgst })) {
          const data = Buffer.from(r.data);
          await new Promise<void>((res, rej) => process.stdout.write(data, (e) => (e ? rej(e) : res())));
        }
      },
    },
    {
      name: "ingest",
      usage: "accept content into the store",
      argsUsage: "[flags] <key>",
      description: "ingest objects into the local content store",
      flags: [
        { name: "expected-size", type: "int64", default: 0, defaultText: "0", help: "validate against provided size" },
        { name: "expected-digest", type: "string", default: "", help: "verify content against expected digest" },
      ],
      action: async (c) => {
        const ref = c.args[0] ?? "";
        const expected = String(c.flags["expected-digest"] ?? "");
        if (expected) goDigest(expected);
        if (!ref) throw new Error("must specify a transaction reference");
        await ingest(await c.client(), ref, Number(c.flags["expected-size"] ?? 0), expected);
      },
    },
    {
      name: "delete",
      aliases: ["del", "remove", "rm"],
      usage: "permanently delete one or more blobs",
      argsUsage: "[<digest>, ...]",
      description: `Delete one or more blobs permanently. Successfully deleted
  blobs are printed to stdout.`,
      action: async (c) => {
        const client = await c.client();
        let exitErr: unknown;
        for (const arg of c.args) {
          try {
            goDigest(arg);
            await client.call(CONTENT, "Delete", { digest: arg });
            out(arg + "\n");
          } catch (e) {
            if (isNotFound(e)) continue;
            exitErr ??= e;
            c.log.error(`could not delete ${arg}`, { error: messageOf(e) });
          }
        }
        if (exitErr) throw exitErr;
      },
    },
    {
      name: "label",
      usage: "add labels to content",
      argsUsage: "<digest> [<label>=<value> ...]",
      description: "labels blobs in the content store",
      action: async (c) => {
        const [object = "", ...rest] = c.args;
        const labels = labelArgs(rest);
        const client = await c.client();
        const digest = digestArg(object);
        const set: Record<string, string> = {};
        const paths: string[] = [];
        for (const [k, v] of Object.entries(labels)) {
          paths.push(`labels.${k}`);
          if (v !== "") set[k] = v;
        }
        const { info } = paths.length
          ? await client.call<{ info: Info }>(CONTENT, "Update", { info: { digest, labels: set }, updateMask: { paths } })
          : await client.call<{ info: Info }>(CONTENT, "Info", { digest });
        out(labelLine(info.labels) + "\n");
      },
    },
    {
      name: "edit",
      usage: "edit a blob and return a new digest",
      argsUsage: "[flags] <digest>",
      description: "edit a blob and return a new digest",
      flags: [
        { name: "validate", type: "string", default: "", help: "validate the result against a format (json, mediatype, etc.)" },
        { name: "editor", type: "string", default: "", env: "EDITOR", help: "select editor (vim, emacs, etc.)" },
      ],
      action: async (c) => {
        if (c.flags.validate) throw new Error("validating the edit result not supported");
        const object = c.args[0] ?? "";
        const digest = digestArg(object);
        const client = await c.client();
        await client.call(CONTENT, "Info", { digest });
        const edited = edit(c, await readAll(client, digest));
        out((await writeAndCommit(client, `edit-${object}`, edited)) + "\n");
      },
    },
    {
      name: "fetch-object",
      usage: "retrieve objects from a remote",
      argsUsage: "[flags] <remote> <object> [<hint>, ...]",
      description: "Fetch objects by identifier from a remote.",
      flags: REGISTRY_FLAGS,
      action: async (c) => {
        const ref = c.args[0] ?? "";
        // The docker resolver's checks: reference.Parse, then an object to resolve.
        if (!parseContainerdRef(ref).object) throw new Error("object required");
        const reg = new RegistryClient(registryOptions(c));
        let descriptor;
        try {
          ({ descriptor } = await reg.resolve(ref));
        } catch (e) {
          // The docker resolver's words for a reference the registry does not have.
          if (!(e instanceof NotFoundError)) throw e;
          c.log.info("trying next host - response was http.StatusNotFound", { host: parseContainerdRef(ref).locator.split("/")[0], ref });
          throw new Error(`${ref}: not found`);
        }
        const m = await reg.fetchManifest(ref, descriptor);
        out(m.bytes);
      },
    },
    {
      name: "push-object",
      usage: "push an object to a remote",
      argsUsage: "[flags] <remote> <object> <type>",
      description: "Push objects by identifier to a remote.",
      flags: REGISTRY_FLAGS,
      action: async (c) => {
        const [ref = "", object = "", media = ""] = c.args;
        const digest = digestArg(object);
        const client = await c.client();
        const reg = new RegistryClient(registryOptions(c));
        const { info } = await client.call<{ info: Info }>(CONTENT, "Info", { digest });
        const size = Number(info.size);
        const data = await readAll(client, digest);
        try {
          if (/manifest|index|list/.test(media)) await reg.pushManifest(ref, data, media);
          else await reg.pushBlob(ref, { digest, size }, data);
        } catch (e) {
          // The docker pusher's words for a registry that refuses the upload.
          if (!(e instanceof RegistryError) || !e.status) throw e;
          throw new Error(`failed commit on ref "${refKey(media, digest)}": unexpected status: ${e.status} ${STATUS_TEXT[e.status] ?? ""}`.trimEnd());
        }
        out(`Pushed ${digest} ${media}\n`);
      },
    },
    {
      name: "active",
      usage: "display active transfers",
      argsUsage: "[flags] [<regexp>]",
      description: "display the ongoing transfers",
      flags: [
        { name: "timeout", aliases: ["t"], type: "duration", default: "0s", defaultText: "0s", env: "CONTAINERD_FETCH_TIMEOUT", help: "total timeout for fetch" },
        { name: "root", type: "string", default: "/tmp/content", defaultText: '"/tmp/content"', help: "path to content store root" },
      ],
      action: async (c) => {
        const client = await c.client();
        // ctr hands the argument over as a filter (ListStatuses(ctx, match)).
        const filters = c.args[0] !== undefined ? [c.args[0]] : [];
        const { statuses } = await client.call<{ statuses: { ref: string; offset: string; startedAt: Timestamp | null }[] }>(CONTENT, "ListStatuses", { filters });
        let text = "REF\tSIZE\tAGE\t\n";
        for (const s of statuses ?? []) text += `${s.ref}\t${humanSize(Number(s.offset))}\t${humanDuration(sinceMs(s.startedAt))}\t\n`;
        out(formatTabsWithTabs(text));
      },
    },
    {
      name: "prune",
      usage: "prunes content from the content store",
      subcommands: [
        {
          name: "references",
          usage: "prunes preference labels from the content store (layers only by default)",
          flags: [
            { name: "async", type: "bool", help: "allow garbage collection to cleanup asynchronously" },
            { name: "dry", type: "bool", help: "just show updates without applying (enables debug logging)" },
          ],
          action: async (c) => {
            const client = await c.client();
            const dry = !!c.flags.dry;
            if (dry) {
              c.log.level = "debug";
              c.log.debug("dry run, no changes will be applied");
            }
            const infos: Info[] = [];
            await listInfos(client, [], (i) => infos.push(i));
            for (const info of infos) {
              const paths: string[] = [];
              const labels = { ...(info.labels ?? {}) };
              for (const k of Object.keys(info.labels ?? {})) {
                if (!isLayerLabel(k)) continue;
                c.log.debug("Removing label", { digest: info.digest, label: k });
                if (dry) continue;
                paths.push(`labels.${k}`);
                delete labels[k];
              }
              if (!paths.length) continue;
              await client.call(CONTENT, "Update", { info: { digest: info.digest, labels }, updateMask: { paths } });
            }
            const LEASES = "containerd.services.leases.v1.Leases";
            const { lease } = await client.call<{ lease: { id: string } }>(LEASES, "Create", { id: randomLeaseID(), labels: { "containerd.io/gc.expire": expiryLabel(3600_000) } });
            await client.call(LEASES, "Delete", { id: lease.id, sync: !c.flags.async });
          },
        },
      ],
    },
  ],
};

// ctr 1.6's order of the content subcommands (fetch is added from pull.ts): call after adding.
const CONTENT_ORDER = ["active", "delete", "edit", "fetch", "fetch-object", "get", "ingest", "list", "push-object", "label", "prune"];
export function sortContentSubcommands(): void {
  const rank = (c: Command) => CONTENT_ORDER.indexOf(c.name) + 1 || 99;
  contentCommand.subcommands!.sort((a, b) => rank(a) - rank(b));
}
