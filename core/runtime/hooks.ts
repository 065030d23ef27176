// OCI hooks: each runs with the container state JSON on stdin, with its own args, env and timeout.
import type { Hook, HookKind, Spec, State } from "../oci/types";

export class HookError extends Error {}

/** cwd: runc runs runtime-namespace hooks from the bundle and createContainer from the rootfs. */
export function runHooks(spec: Spec, kind: HookKind, state: State, cwd?: string): void {
  const hooks = spec.hooks?.[kind] ?? [];
  hooks.forEach((h, i) => runHook(h, i, kind, state, cwd));
}

function runHook(h: Hook, index: number, kind: HookKind, state: State, cwd?: string): void {
  const args = h.args?.length ? h.args : [h.path];
  let r;
  try {
    r = Bun.spawnSync([h.path, ...args.slice(1)], {
      argv0: args[0],
      cwd,
      env: Object.fromEntries((h.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
      stdin: Buffer.from(JSON.stringify(state)),
      stdout: "pipe",
      stderr: "pipe",
      timeout: h.timeout ? h.timeout * 1000 : undefined,
      killSignal: "SIGKILL",
    });
  } catch (e: any) {
    const why = e.code === "ENOENT" ? "no such file or directory" : e.code === "EACCES" ? "permission denied" : e.code ?? e.message;
    throw new HookError(`error running hook #${index}: fork/exec ${h.path}: ${why}`);
  }
  if (r.exitCode === 0) return;
  if (h.timeout && r.signalCode === "SIGKILL") throw new HookError(`error running hook #${index}: hook ran past specified timeout of ${h.timeout.toFixed(1)}s`);
  const why = r.signalCode ? `signal: ${signalText(String(r.signalCode))}` : `exit status ${r.exitCode}`;
  // runc's wording, which users grep for: "error running hook #N: ..."
  throw new HookError(`error running hook #${index}: ${why}, stdout: ${r.stdout.toString()}, stderr: ${r.stderr.toString()}`);
}

/** Go's wording for a signal, as in "signal: killed". */
function signalText(sig: string): string {
  const words: Record<string, string> = { SIGKILL: "killed", SIGTERM: "terminated", SIGSEGV: "segmentation fault", SIGABRT: "aborted", SIGINT: "interrupt", SIGHUP: "hangup", SIGPIPE: "broken pipe" };
  return words[sig] ?? sig;
}
