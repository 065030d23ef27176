// ctr's commands.RegistryFlags and the resolver options they make (commands.GetResolver).
import type { RegistryClientOptions } from "../image/registry";
import type { Ctx, CtrFlag } from "./app";

export const REGISTRY_FLAGS: CtrFlag[] = [
  { name: "skip-verify", aliases: ["k"], type: "bool", help: "skip SSL certificate validation" },
  { name: "plain-http", type: "bool", help: "allow connections using plain HTTP" },
  { name: "user", aliases: ["u"], type: "string", help: "user[:password] Registry user and password" },
  { name: "refresh", type: "string", help: "refresh token for authorization server" },
  { name: "hosts-dir", type: "string", help: "Custom hosts configuration directory" },
  { name: "tlscacert", type: "string", help: "path to TLS root CA" },
  { name: "tlscert", type: "string", help: "path to TLS client certificate" },
  { name: "tlskey", type: "string", help: "path to TLS client key" },
  { name: "http-dump", type: "bool", help: "dump all HTTP request/responses when interacting with container registry" },
  { name: "http-trace", type: "bool", help: "enable HTTP tracing for registry interactions" },
];

export function registryOptions(c: Ctx): RegistryClientOptions {
  const o: RegistryClientOptions = { plainHttp: !!c.flags["plain-http"], insecure: !!c.flags["skip-verify"] };
  if (c.flags["hosts-dir"]) o.hostsDirs = [String(c.flags["hosts-dir"])];
  const user = c.flags.user ? String(c.flags.user) : "";
  if (user) {
    const i = user.indexOf(":");
    const username = i < 0 ? user : user.slice(0, i);
    const password = i < 0 ? "" : user.slice(i + 1);
    o.credentials = () => ({ username, password });
  }
  return o;
}
