/**
 * Every hint smolvm prints that names a command-line flag names one the command accepts. A hint
 * is what a user types next; a flag that does not exist there turns a fix into a second error.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import type { Command } from "@commander-js/extra-typings";
import { buildProgram } from "../../cmd/program.ts";

type AnyCommand = Command<unknown[], {}, {}>;
const root = join(import.meta.dirname, "..", "..");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "_generated" ? [] : sources(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

/** The text of each `hint` value: from `hint` to the end of the statement or property. */
function hintTexts(text: string): string[] {
  const hints: string[] = [];
  for (const match of text.matchAll(/\bhint\b\s*[:=?]/g)) {
    let end = match.index;
    let depth = 0;
    // Up to the first comma or closing brace at the hint's own nesting depth.
    for (; end < text.length; end++) {
      const c = text[end];
      if (c === "(" || c === "[" || c === "{") depth++;
      else if (c === ")" || c === "]" || c === "}") {
        if (depth === 0) break;
        depth--;
      } else if ((c === "," || c === ";") && depth === 0) break;
    }
    hints.push(text.slice(match.index, end));
  }
  return hints;
}

const program = (await buildProgram()) as unknown as AnyCommand;

function flagsOf(command: AnyCommand): string[] {
  return command.options.flatMap((o) => [o.long, o.short].filter((f): f is string => f !== undefined))
    .flatMap((flag) => [flag, flag.replace(/^--/, "--no-")]);
}

function allCommands(command: AnyCommand, path: string[] = []): Array<{ path: string; flags: string[] }> {
  const here = { path: path.join(" "), flags: flagsOf(command) };
  return [here, ...command.commands.flatMap((c) => allCommands(c as AnyCommand, [...path, c.name()]))];
}

const commands = allCommands(program).map((c) => ({ ...c, flags: [...c.flags, "--help", "-h"] }));
const byPath = new Map(commands.map((c) => [c.path, c.flags]));

/** The command path a hint names right before a flag (`smolvm image build NAME --force` -> "image build"). */
function commandBefore(hint: string, at: number): string | undefined {
  const before = hint.slice(0, at);
  const named = [...before.matchAll(/smolvm((?: [a-z][a-z-]*)+)/g)].pop();
  if (named === undefined) return undefined;
  const words = named[1]!.trim().split(" ");
  for (let n = words.length; n > 0; n--) {
    const path = words.slice(0, n).join(" ");
    if (byPath.has(path)) return path;
  }
  return undefined;
}

/** Whether the nearest program named before the flag is another one (apt-get, ssh, ...). */
function otherProgramsFlag(hint: string, at: number): boolean {
  const programs = [...hint.slice(0, at).matchAll(/\b(smolvm|apt-get|apt|sudo|ssh|scp|usermod|mount|update-binfmts|dpkg|brew|mmdebstrap|make|curl|qemu-[a-z0-9-]+)\b/g)];
  const nearest = programs.pop()?.[1];
  return nearest !== undefined && nearest !== "smolvm";
}

test("every flag a hint names is accepted by the command it names (or by some command)", () => {
  const problems: string[] = [];
  let checked = 0;
  for (const file of [...sources(join(root, "lib")), ...sources(join(root, "cmd"))]) {
    for (const hint of hintTexts(readFileSync(file, "utf8"))) {
      for (const flag of hint.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) {
        if (otherProgramsFlag(hint, flag.index)) continue;
        checked++;
        const path = commandBefore(hint, flag.index);
        const ok = path !== undefined
          ? byPath.get(path)!.includes(flag[0])
          : commands.some((c) => c.flags.includes(flag[0]));
        if (!ok) problems.push(`${relative(root, file)}: ${flag[0]}${path === undefined ? "" : ` (smolvm ${path})`} in ${hint.replace(/\s+/g, " ").slice(0, 160)}`);
      }
    }
  }
  expect(checked).toBeGreaterThan(5);
  expect(problems).toEqual([]);
});

test("the hint scanner finds a flag that no command has", () => {
  const [hint] = hintTexts('throw new X("m", { hint: "pass `smolvm create --no-such-flag`" });');
  expect(hint).toContain("--no-such-flag");
  const at = hint!.indexOf("--no-such-flag");
  expect(commandBefore(hint!, at)).toBe("create");
  expect(byPath.get("create")!.includes("--no-such-flag")).toBe(false);
});
