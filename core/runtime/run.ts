// `runc run`: create and start; in the foreground, relay signals and the terminal, wait for the
// container's init, delete the container and exit with its status (128+N when killed by signal N).
import { parseSignal } from "../../ffi/consts";
import * as libc from "../../ffi/libc";
import { attachConsole } from "./console";
import { create, type CreateOptions } from "./create";
import { destroy, start } from "./ops";
import type { StateDir } from "./state";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT"] as const;

export async function run(sd: StateDir, o: CreateOptions & { keep: boolean }): Promise<number> {
  const { state, proc, master } = await create(sd, o);
  if (o.detach) {
    await startOrDestroy(sd, o.id);
    return 0;
  }
  const forward = (sig: string) => () => libc.kill(state.pid, parseSignal(sig));
  const handlers = FORWARDED.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  const console_ = master !== undefined ? attachConsole(master) : undefined;
  try {
    await startOrDestroy(sd, o.id);
  } catch (e) {
    console_?.restore();
    throw e;
  }
  proc.ref();
  const code = await proc.exited;
  const status = proc.signalCode ? 128 + parseSignal(String(proc.signalCode)) : code;
  if (console_) {
    await Promise.race([console_.done, Bun.sleep(500)]);
    console_.restore();
    libc.close(master!);
  }
  for (const [s, h] of handlers) process.off(s, h);
  if (!o.keep) await destroy(sd, sd.load(o.id));
  return status;
}

/** `run` owns the container it created: a failed start must not leave it behind. */
async function startOrDestroy(sd: StateDir, id: string): Promise<void> {
  try {
    await start(sd, id);
  } catch (e) {
    await destroy(sd, sd.load(id)).catch(() => {});
    throw e;
  }
}
