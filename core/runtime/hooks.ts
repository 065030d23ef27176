// OCI hooks: each runs with the container state JSON on stdin, with its own args, env and timeout.
import type { Hook, HookKind, Spec, State } from "../oci/types";

export class HookError extends Error {}

export function runHooks(spec: Spec, kind: HookKind, state: State): void {
  const hooks = spec.hooks?.[kind] ?? [];
  hooks.forEach((h, i) => runHook(h, i, kind, state));
}

function runHook(h: Hook, index: number, kind: HookKind, state: State): void {
  const args = h.args?.length ? h.args : [h.path];
  let r;
  try {
    r = Bun.spawnSync([h.path, ...args.slice(1)], {
      argv0: args[0],
      env: Object.fromEntries((h.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
      stdin: Buffer.from(JSON.stringify(state)),
      stdout: "pipe",
      stderr: "pipe",
      timeout: h.timeout ? h.timeout * 1000 : undefined,
      killSignal: "SIGKILL",
    });
  } catch (e: any) {
    throw new HookError(`error running ${kind} hook #${index}: ${h.path}: ${e.code ?? e.message}`);
  }
  if (r.exitCode === 0) return;
  const why = r.signalCode
    ? h.timeout && r.signalCode === "SIGKILL"
      ? `timeout after ${h.timeout}s`
      : `signal: ${r.signalCode}`
    : `exit status ${r.exitCode}`;
  throw new HookError(`error running ${kind} hook #${index}: ${why}, stdout: ${r.stdout.toString().trim()}, stderr: ${r.stderr.toString().trim()}`);
}
