// ctr events [filter...]: subscribe to containerd's events and print one line per event, as ctr
// 1.6 does with fmt.Println(e.Timestamp, e.Namespace, e.Topic, string(json.Marshal(event))):
//   2026-11-23 14:30:39.42308619 +0000 UTC evns /snapshot/commit {"key":"s1","name":"s2"}
// The event is the Go struct gogo generates from the proto, marshalled by encoding/json: fields
// in declaration order under their proto names, empty ones left out (omitempty), timestamps as
// RFC 3339, maps with sorted keys, <>& escaped.
import type protobuf from "protobufjs";
import { out } from "../../cli/io";
import { CODE_NAMES } from "../../containerd/errdefs";
import { lookupType } from "../../containerd/proto";
import { formatRFC3339, fromTimestamp, type Time, type Timestamp } from "../../containerd/types";
import type { Command } from "../app";
import { statusDetails } from "../client";

const EVENTS = "containerd.services.events.v1.Events";

/** Go's json.Marshal string escaping (HTML-safe, U+2028/2029 escaped). */
export function goJSONString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
}

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === "" || v === false || v === 0 || v === "0") return true;
  if (Array.isArray(v) || v instanceof Uint8Array) return v.length === 0;
  return false;
}

/** The time.Time a gogo stdtime field holds, as time.Time.MarshalJSON writes it (UTC). */
const jsonTime = (t: Time) => goJSONString(formatRFC3339(t));

function scalarJSON(type: string, v: unknown, resolved: protobuf.ReflectionObject | null): string {
  if (resolved && (resolved as protobuf.Type).fieldsArray) return messageJSON(resolved as protobuf.Type, v as Record<string, unknown>);
  if (resolved && (resolved as protobuf.Enum).values) {
    const values = (resolved as protobuf.Enum).values;
    return String(typeof v === "string" ? (values[v] ?? 0) : Number(v ?? 0));
  }
  switch (type) {
    case "string":
      return goJSONString(String(v ?? ""));
    case "bool":
      return v ? "true" : "false";
    case "bytes":
      return goJSONString(Buffer.from((v as Uint8Array) ?? []).toString("base64"));
    default:
      return String(v ?? 0);
  }
}

/** encoding/json of the gogo struct for a decoded message. */
export function messageJSON(type: protobuf.Type, obj: Record<string, unknown> | null | undefined): string {
  if (type.fullName === ".google.protobuf.Timestamp") return jsonTime(fromTimestamp(obj as unknown as Timestamp));
  const parts: string[] = [];
  for (const f of type.fieldsArray) {
    f.resolve();
    const v = obj?.[f.name];
    const key = goJSONString(snake(f.name));
    const rt = f.resolvedType;
    if (f.map) {
      const m = (v ?? {}) as Record<string, unknown>;
      const keys = Object.keys(m).sort();
      if (!keys.length) continue;
      parts.push(`${key}:{${keys.map((k) => `${goJSONString(k)}:${scalarJSON(f.type, m[k], rt)}`).join(",")}}`);
    } else if (f.repeated) {
      const a = (v ?? []) as unknown[];
      if (!a.length) continue;
      parts.push(`${key}:[${a.map((x) => scalarJSON(f.type, x, rt)).join(",")}]`);
    } else if (rt && (rt as protobuf.Type).fieldsArray) {
      // Timestamps are gogo stdtime values (never omitted); other messages are pointers.
      if ((rt as protobuf.Type).fullName === ".google.protobuf.Timestamp") parts.push(`${key}:${jsonTime(fromTimestamp(v as Timestamp))}`);
      else if (v !== null && v !== undefined) parts.push(`${key}:${messageJSON(rt as protobuf.Type, v as Record<string, unknown>)}`);
    } else {
      if (isEmpty(v) || (rt && (rt as protobuf.Enum).values && scalarJSON(f.type, v, rt) === "0")) continue;
      parts.push(`${key}:${scalarJSON(f.type, v, rt)}`);
    }
  }
  return `{${parts.join(",")}}`;
}

/** Go's time.Time.String() of a UTC time: "2006-01-02 15:04:05.999999999 +0000 UTC". */
export function goTimeString(t: Time): string {
  const d = new Date(t.seconds * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  let s = `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
  if (t.nanos > 0) s += "." + p(t.nanos, 9).replace(/0+$/, "");
  return s + " +0000 UTC";
}

interface Envelope {
  timestamp: Timestamp | null;
  namespace: string;
  topic: string;
  event: { typeUrl: string; value: Uint8Array } | null;
}

function eventJSON(any: Envelope["event"]): string {
  if (!any) return "";
  const name = any.typeUrl.replace(/^.*\//, "");
  let type: protobuf.Type;
  try {
    type = lookupType(name);
  } catch {
    throw new Error(`type with url ${any.typeUrl}: not found`);
  }
  return messageJSON(type, type.toObject(type.decode(any.value), { longs: String, enums: String, defaults: true, arrays: true, objects: true }) as Record<string, unknown>);
}

export const eventsCommand: Command = {
  name: "events",
  aliases: ["event"],
  usage: "display containerd events",
  action: async (c) => {
    const client = await c.client();
    try {
      for await (const e of client.streamRaw<Envelope>(EVENTS, "Subscribe", { filters: c.args })) {
        out(`${goTimeString(fromTimestamp(e.timestamp))} ${e.namespace} ${e.topic} ${eventJSON(e.event)}\n`);
      }
    } catch (e: any) {
      // Recv's error is the gRPC status itself (ctr does not convert it with errdefs).
      if (typeof e?.code === "number" && CODE_NAMES[e.code]) throw new Error(`rpc error: code = ${CODE_NAMES[e.code]} desc = ${statusDetails(e)}`);
      throw e;
    }
    throw new Error("EOF");
  },
};
