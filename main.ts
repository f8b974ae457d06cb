#!/usr/bin/env bun
/**
 * smolvm's command line. Command groups live in `cmd/` and load their heavy dependencies only
 * when they run, so `smolvm --help` costs little more than the runtime's own start-up.
 */
import { invocation } from "./cmd/action.ts";
import { printError } from "./cmd/output.ts";
import { exitCodeFor, toSmolError, UsageError } from "./lib/errors.ts";
import { versionInfo } from "./lib/version.ts";

/** `smolvm --help` as commander renders it, captured by scripts/build.ts at build time. */
declare const SMOLVM_ROOT_HELP: string | undefined;

export async function main(argv: string[]): Promise<number> {
  // The two commands people run most to see whether the tool works answer without loading the
  // command tree: a compiled binary carries the root help text, and the version is at hand.
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    const info = versionInfo();
    process.stdout.write(`smolvm ${info.version} (${info.runtime}, ${info.target})\n`);
    return 0;
  }
  if (typeof SMOLVM_ROOT_HELP === "string" && (argv.length === 0 || (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")))) {
    process.stdout.write(SMOLVM_ROOT_HELP);
    return 0;
  }
  const { CommanderError } = await import("@commander-js/extra-typings");
  const { buildProgram, commandPathOf } = await import("./cmd/program.ts");
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    // A command that passes on its child's status (run, exec) sets process.exitCode itself.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      if (thrown.code === "commander.helpDisplayed" || thrown.code === "commander.version" || thrown.exitCode === 0) {
        return 0;
      }
      // A group named without its subcommand (`smolvm file`): commander printed the group's help.
      if (thrown.code === "commander.help") return argv.length === 0 ? 0 : 2;
      const message = thrown.message.replace(/^error:\s*/i, "");
      if (invocation.command === "smolvm") invocation.command = commandPathOf(program, argv);
      const usage = new UsageError(message.charAt(0).toUpperCase() + message.slice(1), {
        hint: `run \`smolvm ${invocation.command === "smolvm" ? "" : `${invocation.command} `}--help\` for usage`,
      });
      printError(invocation.command, usage, invocation.json);
      return 2;
    }
    const error = toSmolError(thrown);
    const { logEvent } = await import("./lib/log.ts");
    logEvent("error", error.message, {
      command: invocation.command,
      code: error.code,
      stack: thrown instanceof Error ? thrown.stack : String(thrown),
      cause: error.cause instanceof Error ? error.cause.stack : error.cause === undefined ? undefined : String(error.cause),
    });
    printError(invocation.command, error, invocation.json);
    return exitCodeFor(error);
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // Let pending stdout writes drain (pipes are asynchronous) before leaving.
  process.exitCode = code;
}
