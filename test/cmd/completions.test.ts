import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { completionScript, SHELLS } from "../../cmd/completions.ts";
import { parseSandboxConfig } from "../../lib/config.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import { buildProgram } from "../../cmd/program.ts";
import { COMPLETION_FILES } from "../../scripts/completions.ts";
import { repoRoot, runCli } from "../helpers/cli.ts";
import { scratchDir } from "../helpers/scratch.ts";

test("checked-in completions match the command tree (run `npm run completions` after changing commands)", async () => {
  for (const shell of SHELLS) {
    const expected = completionScript((await buildProgram()) as never, shell);
    const file = join(repoRoot, "completions", COMPLETION_FILES[shell]);
    expect(readFileSync(file, "utf8")).toBe(expected);
  }
});

test("`smolvm completions SHELL` prints the same script", async () => {
  const printed = await runCli(["completions", "bash"]);
  expect(printed.code).toBe(0);
  expect(printed.stdout).toBe(completionScript((await buildProgram()) as never, "bash"));
  const bad = await runCli(["completions", "powershell"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("bash, zsh, fish");
});

/** Asks bash what it would offer after typing `line`, with `smolvm` resolving to this checkout. */
async function bashComplete(line: string): Promise<string[]> {
  const dir = scratchDir("smolvm-compl-");
  const script = join(dir, "smolvm.bash");
  writeFileSync(script, completionScript((await buildProgram()) as never, "bash"));
  const words = line.split(" ");
  const program = `
    smolvm() { "${process.execPath}" "${join(repoRoot, "main.ts")}" "$@"; }
    source "${script}"
    COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})
    COMP_CWORD=${words.length - 1}
    _smolvm
    printf '%s\\n' "\${COMPREPLY[@]}"`;
  const result = spawnSync("bash", ["-c", program], { encoding: "utf8", env: process.env });
  expect(result.stderr).toBe("");
  return result.stdout.split("\n").filter(Boolean).sort();
}

test("bash completes subcommands, options, choices and syntax-checks in every shell", async () => {
  expect(await bashComplete("smolvm li")).toEqual(["list"]);
  expect(await bashComplete("smolvm image l")).toEqual(["list", "ls"]);
  expect(await bashComplete("smolvm list --")).toEqual(["--all", "--help", "--json"]);
  expect(await bashComplete("smolvm doctor --json --st")).toEqual(["--strict"]);
  for (const shell of ["bash", "zsh", "fish"] as const) {
    const probe = spawnSync("which", [shell]);
    if (probe.status !== 0) continue; // zsh and fish are optional on the host; bash is always checked
    const file = join(repoRoot, "completions", COMPLETION_FILES[shell]);
    const check = spawnSync(shell, shell === "fish" ? ["--no-execute", file] : ["-n", file], { encoding: "utf8" });
    expect(`${shell}: ${check.stderr}`).toBe(`${shell}: `);
  }
});

test("__complete sandboxes lists live names from the state store", async () => {
  const store = StateStore.open();
  store.create({ config: parseSandboxConfig({ name: "zebra" }), backend: "qemu", allocate: {} });
  store.create({ config: parseSandboxConfig({ name: "yak" }), backend: "qemu", allocate: {} });
  store.close();
  const result = await runCli(["__complete", "sandboxes"]);
  expect(result.stdout.split("\n").filter(Boolean).sort()).toEqual(["yak", "zebra"]);
});

test("completions --install writes where the shell looks", async () => {
  const home = scratchDir("smolvm-xdg-");
  const result = await runCli(["completions", "fish", "--install", "--json"], { env: { XDG_CONFIG_HOME: home } });
  expect(result.code).toBe(0);
  const path = JSON.parse(result.stdout).data.path;
  expect(path).toBe(join(home, "fish", "completions", "smolvm.fish"));
  expect(readFileSync(path, "utf8")).toContain("complete -c smolvm");
});
