/**
 * The command tree. Kept apart from `main.ts` so that the entry can answer `--help` and
 * `--version` without loading commander at all (see SMOLVM_ROOT_HELP there).
 */
import { Command } from "@commander-js/extra-typings";
import { versionInfo } from "../lib/version.ts";
import { registerCommands } from "./registry.ts";

/**
 * The command tree, or with `argv`, just enough of it for that command line: the group its first
 * word names (help, completions and unknown words get the whole tree).
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const info = versionInfo();
  const program = new Command()
    .name("smolvm")
    .description("Disposable, hardware-isolated Linux sandboxes (microVMs) for AI agents")
    .version(`smolvm ${info.version} (${info.runtime}, ${info.target})`, "-V, --version", "print the version")
    .showSuggestionAfterError(true)
    .enablePositionalOptions();
  await registerCommands(program, argv?.find((word) => !word.startsWith("-")));
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
export function commandPathOf(program: Command, argv: string[]): string {
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
