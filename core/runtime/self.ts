// How to start another process of our own binary under a given personality.
const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");

/** argv for `<personality> <args...>` of this same binary, and the argv0 to show in ps. */
export function selfCommand(personality: string, args: string[]): { cmd: string[]; argv0: string } {
  if (compiled) return { cmd: [process.execPath, ...args], argv0: personality };
  return { cmd: [process.execPath, Bun.main, personality, ...args], argv0: personality };
}
