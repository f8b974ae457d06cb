import { expect, test } from "bun:test";
import type { Command } from "@commander-js/extra-typings";
import { buildProgram } from "../../cmd/program.ts";
import { COMMAND_GROUPS } from "../../cmd/registry.ts";

type AnyCommand = Command<unknown[], {}, {}>;

/** A command as help and parsing see it: names, arguments, options and subcommands, recursively. */
function shape(command: AnyCommand): unknown {
  return {
    name: command.name(),
    aliases: command.aliases(),
    description: command.description(),
    arguments: command.registeredArguments.map((a) => [a.name(), a.required, a.variadic]),
    options: command.options.map((o) => [o.flags, o.description]),
    commands: command.commands.map((c) => shape(c as AnyCommand)),
  };
}

const whole = (await buildProgram()) as unknown as AnyCommand;
const topLevel = whole.commands.flatMap((c) => [c.name(), ...c.aliases()]);

test("the groups name exactly the top-level commands of the tree", () => {
  const named = COMMAND_GROUPS.flatMap((g) => g.names);
  expect([...named, "completions"].sort()).toEqual([...topLevel].sort());
});

test("a command line builds its command exactly as the whole tree has it", async () => {
  for (const name of topLevel) {
    const partial = (await buildProgram([name])) as unknown as AnyCommand;
    const find = (program: AnyCommand) => program.commands.find((c) => c.name() === name || c.aliases().includes(name)) as AnyCommand;
    expect(find(partial)).toBeDefined();
    expect(shape(find(partial))).toEqual(shape(find(whole)));
  }
});

test("help, completions and unknown words get the whole tree", async () => {
  for (const argv of [["completions", "bash"], ["help"], ["frobnicate"], ["--help"], []]) {
    expect(shape((await buildProgram(argv)) as unknown as AnyCommand)).toEqual(shape(whole));
  }
});
