/**
 * Every command group, in the order `smolvm --help` lists them. A command is registered only
 * once it works end to end.
 */
import type { Command } from "@commander-js/extra-typings";
import { registerCompletions } from "./completions.ts";
import { registerDoctor } from "./doctor.ts";
import { registerList } from "./list.ts";
import { registerVersion } from "./version.ts";

export function registerCommands(program: Command): void {
  registerList(program);
  registerDoctor(program);
  registerVersion(program);
  registerCompletions(program);
}
