/**
 * The command line proper: parse with the command tree, run, and turn every failure into one
 * report (text or `--json`) and an exit status. `main.ts` calls it for everything its fast
 * paths do not answer.
 */
import { invocation } from "./action.ts";
import { printError } from "./output.ts";
import { printOut } from "./stdio.ts";
import { exitCodeFor, toSmolError, UsageError } from "../lib/errors.ts";
import { versionInfo } from "../lib/version.ts";

export async function runCli(argv: string[]): Promise<number> {
  // From source there is no version line baked in, but the version is at hand without commander.
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    const info = versionInfo();
    printOut(`smolvm ${info.version} (${info.runtime}, ${info.target})`);
    return 0;
  }
  const { CommanderError } = await import("@commander-js/extra-typings");
  const { buildProgram, commandPathOf } = await import("./program.ts");
  const program = await buildProgram(argv);
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
      let message = thrown.message.replace(/^error:\s*/i, "");
      if (invocation.command === "smolvm") invocation.command = commandPathOf(program, argv);
      let hint = `run \`smolvm ${invocation.command === "smolvm" ? "" : `${invocation.command} `}--help\` for usage`;
      // `smolvm cursor start`: an agent smolvm has no preset for.
      if (thrown.code === "commander.unknownCommand" && ["start", "attach", "sync"].includes(argv[1] ?? "")) {
        const { PRESETS } = await import("../lib/index.ts");
        message = `unknown coding agent "${argv[0]}"`;
        hint = `known agents: ${PRESETS.map((p) => (p.aliases.length ? `${p.id} (${p.aliases.join(", ")})` : p.id)).join(", ")}; e.g. \`smolvm claude ${argv[1]}\``;
      }
      const usage = new UsageError(message.charAt(0).toUpperCase() + message.slice(1), { hint });
      printError(invocation.command, usage, invocation.json);
      return 2;
    }
    return report(thrown);
  }
}

/** A failure of `command` that ran without the command tree (main.ts's plain `exec`), reported as any other. */
export function reportFailure(command: string, thrown: unknown): Promise<number> {
  invocation.command = command;
  return report(thrown);
}

/** Every failure but a usage error: logged, printed as text or JSON, and an exit status. */
async function report(thrown: unknown): Promise<number> {
  const error = toSmolError(thrown);
  const { logEvent } = await import("../lib/index.ts");
  logEvent("error", error.message, {
    command: invocation.command,
    code: error.code,
    stack: thrown instanceof Error ? thrown.stack : String(thrown),
    cause: error.cause instanceof Error ? error.cause.stack : error.cause === undefined ? undefined : String(error.cause),
  });
  printError(invocation.command, error, invocation.json);
  // A command that could not even start within its timeout ended as one whose timeout passed.
  if (error.code === "TIMEOUT" && (invocation.command === "exec" || invocation.command === "run")) return 124;
  return exitCodeFor(error);
}
