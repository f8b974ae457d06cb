#!/usr/bin/env bun
/**
 * smolvm's command line. Command groups live in `cmd/` and load their heavy dependencies only
 * when they run, so `smolvm --help` costs little more than the runtime's own start-up.
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { invocation } from "./cmd/action.ts";
import { printError } from "./cmd/output.ts";
import { registerCommands } from "./cmd/registry.ts";
import { exitCodeFor, toSmolError, UsageError } from "./lib/errors.ts";
import { versionInfo } from "./lib/version.ts";

export function buildProgram(): Command {
  const info = versionInfo();
  const program = new Command()
    .name("smolvm")
    .description("Disposable, hardware-isolated Linux sandboxes (microVMs) for AI agents")
    .version(`smolvm ${info.version} (${info.runtime}, ${info.target})`, "-V, --version", "print the version")
    .showSuggestionAfterError(true)
    .enablePositionalOptions();
  registerCommands(program);
  applyToTree(program, (command) => {
    command.exitOverride();
    // Commander prints its own errors; ours go through printError so --json stays one document.
    command.configureOutput({ outputError: () => {} });
  });
  return program;
}

function applyToTree(command: Command<unknown[], {}, {}>, apply: (c: Command<unknown[], {}, {}>) => void): void {
  apply(command);
  for (const sub of command.commands) applyToTree(sub as Command<unknown[], {}, {}>, apply);
}

/** The subcommand a command line names, for errors raised before its action could run. */
function commandPathOf(program: Command, argv: string[]): string {
  let command: Command<unknown[], {}, {}> = program as unknown as Command<unknown[], {}, {}>;
  const names: string[] = [];
  for (const word of argv) {
    if (word.startsWith("-")) continue;
    const sub = command.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (sub === undefined) break;
    command = sub as Command<unknown[], {}, {}>;
    names.push(sub.name());
  }
  return names.length === 0 ? "smolvm" : names.join(" ");
}

export async function main(argv: string[]): Promise<number> {
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
