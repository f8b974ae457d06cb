#!/usr/bin/env bun
/**
 * smolvm's command line. This entry is kept tiny on purpose: the two commands people run most
 * to see whether the tool works, `--help` and `--version`, are answered from text a compiled
 * binary carries (captured by scripts/build.ts), before any other module but the tiny
 * `cmd/stdio.ts` loads (and without `process.stdout`, whose set-up costs ~20 ms); a plain `exec`
 * goes straight to its body. Everything else goes to `cmd/cli.ts`, and command groups load their
 * heavy dependencies only when they run.
 */

import { printOut } from "./cmd/stdio.ts";

/** `smolvm --help` as commander renders it and `smolvm --version`'s line, baked in at build time. */
declare const SMOLVM_ROOT_HELP: string | undefined;
declare const SMOLVM_VERSION_LINE: string | undefined;

export async function main(argv: string[]): Promise<number> {
  const only = argv.length === 1 ? argv[0] : undefined;
  if (typeof SMOLVM_VERSION_LINE === "string" && (only === "--version" || only === "-V")) {
    printOut(SMOLVM_VERSION_LINE);
    return 0;
  }
  if (typeof SMOLVM_ROOT_HELP === "string" && (argv.length === 0 || only === "--help" || only === "-h")) {
    printOut(SMOLVM_ROOT_HELP);
    return 0;
  }
  const plain = plainExec(argv);
  if (plain !== undefined) {
    try {
      return await (await import("./cmd/streams.ts")).execIn(plain.name, plain.words);
    } catch (thrown) {
      return (await import("./cmd/cli.ts")).reportFailure("exec", thrown);
    }
  }
  const { runCli } = await import("./cmd/cli.ts");
  return runCli(argv);
}

/**
 * `smolvm exec NAME -- CMD...` with no option: the command agents run in loops, so it goes
 * straight to its body, without the command tree (commander and the group: ~3 ms of every call)
 * or cli.ts and its output helpers, which load only to report a failure. Anything else,
 * `--help` included, takes the full parse.
 */
function plainExec(argv: string[]): { name: string; words: string[] } | undefined {
  const [command, name, separator, ...words] = argv;
  if (command !== "exec" || name === undefined || name.startsWith("-") || separator !== "--" || words.length === 0) return undefined;
  return { name, words };
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // Let pending stdout writes drain (pipes are asynchronous) before leaving.
  process.exitCode = code;
}
