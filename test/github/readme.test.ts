/**
 * The README's Install and "smolvm in CI" sections: every YAML block parses strictly and is a
 * valid workflow (GitHub) or job (GitLab), every shell script in them parses, every `smolvm`
 * command line they use names a real command with real flags, and every URL names the project's
 * repository as lib/distribution does.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "@commander-js/extra-typings";
import { buildProgram } from "../../cmd/program.ts";
import { DEFAULT_RELEASES_URL, PROJECT_REPOSITORY, releaseAssetUrl } from "../../lib/distribution/release-url.ts";
import { repoRoot } from "../helpers/cli.ts";
import { parseYamlStrict, workflowProblems } from "../helpers/github-yaml.ts";

const readme = readFileSync(join(repoRoot, "README.md"), "utf8");

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}`);
  if (start === -1) throw new Error(`README has no "## ${title}" section`);
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

function blocks(text: string, language: string): string[] {
  return [...text.matchAll(new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);
}

const install = section("Install");
const ci = section("smolvm in CI");
const yamlBlocks = blocks(ci, "yaml");

type AnyCommand = Command<unknown[], {}, {}>;
const program = (await buildProgram()) as unknown as AnyCommand;

/** Problems with one `smolvm ...` command line: unknown subcommand or an option it does not take. */
function commandLineProblems(line: string): string[] {
  const words = line.trim().replace(/^.*?\bsmolvm\s+/, "").split(/\s+/);
  let command = program;
  const path = ["smolvm"];
  for (const word of words) {
    if (word.startsWith("-") || word.startsWith('"') || word === "--") break;
    const sub = command.commands.find((c) => c.name() === word || c.aliases().includes(word)) as AnyCommand | undefined;
    if (sub === undefined) break;
    command = sub;
    path.push(word);
  }
  if (path.length === 1) return [`${line.trim()}: names no smolvm command`];
  const flags = words.slice(0, words.includes("--") ? words.indexOf("--") : undefined).filter((w) => w.startsWith("--") && w !== "--");
  const known = new Set(command.options.map((o) => o.long));
  return flags.filter((flag) => !known.has(flag.split("=")[0]!)).map((flag) => `${path.join(" ")}: no option ${flag}`);
}

function smolvmLines(script: string): string[] {
  return script.split("\n").filter((line) => /(^|[\s(=$;&|])smolvm\s+[a-z]/.test(line) && !line.trim().startsWith("#") && !line.includes("uses:"));
}

describe("README: Install", () => {
  test("the one-liner fetches install.sh from the project's latest release, then setup, then a first command", () => {
    const [script] = blocks(install, "sh");
    expect(script!.split("\n").filter(Boolean)).toEqual([
      `curl -fsSL ${releaseAssetUrl(DEFAULT_RELEASES_URL, "latest", "install.sh")} | sh`,
      "smolvm setup",
      "smolvm run -- uname -a",
    ]);
  });

  test("every smolvm command line in it is a real command with real options", () => {
    const lines = blocks(install, "sh").flatMap(smolvmLines);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.flatMap(commandLineProblems)).toEqual([]);
  });
});

describe("README: smolvm in CI", () => {
  test("has the GitHub workflow and the GitLab job, both parsing as strict YAML", () => {
    expect(yamlBlocks.length).toBe(2);
    for (const block of yamlBlocks) expect(() => parseYamlStrict(block)).not.toThrow();
  });

  test("the GitHub Actions example is a valid workflow using this repository's action, and its scripts parse", () => {
    const workflow = parseYamlStrict(yamlBlocks[0]!) as { jobs: Record<string, { steps: { uses?: string; run?: string }[] }> };
    expect(workflowProblems(workflow)).toEqual([]);
    const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);
    expect(steps.map((s) => s.uses).filter((u) => u?.includes("smolvm"))).toEqual([`${PROJECT_REPOSITORY}@v1`]);
    const scripts = steps.flatMap((s) => (s.run === undefined ? [] : [s.run]));
    expect(scripts.length).toBeGreaterThan(0);
    for (const script of scripts) {
      const check = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
      expect(check.stderr).toBe("");
      expect(smolvmLines(script).flatMap(commandLineProblems)).toEqual([]);
    }
    expect(scripts.join("\n")).toContain("smolvm exec");
  });

  test("the GitLab CI job's script is plain shell that parses, with real smolvm commands", () => {
    const gitlab = parseYamlStrict(yamlBlocks[1]!) as Record<string, { script: string[]; after_script?: string[]; image?: string }>;
    const jobs = Object.entries(gitlab);
    expect(jobs.length).toBe(1);
    const [, job] = jobs[0]!;
    expect(Array.isArray(job.script)).toBe(true);
    for (const script of [job.script, job.after_script ?? []]) {
      const text = script.join("\n");
      const check = spawnSync("sh", ["-n"], { input: text, encoding: "utf8" });
      expect(check.stderr).toBe("");
      expect(smolvmLines(text).flatMap(commandLineProblems)).toEqual([]);
    }
    expect(job.script).toContain(`curl -fsSL ${releaseAssetUrl(DEFAULT_RELEASES_URL, "latest", "install.sh")} | sh`);
  });

  test("the command checker catches a wrong command or option", () => {
    expect(commandLineProblems("smolvm frobnicate x")).toEqual(["smolvm frobnicate x: names no smolvm command"]);
    expect(commandLineProblems('smolvm exec "$vm" --cwdd /src -- true')).toEqual(["smolvm exec: no option --cwdd"]);
  });
});

test("every GitHub URL in the README names the project's repository", () => {
  const urls = [...readme.matchAll(/github\.com\/([\w.-]+\/[\w.-]+)/g)].map((m) => m[1]);
  expect(urls.length).toBeGreaterThan(0);
  for (const url of urls) expect(url).toBe(PROJECT_REPOSITORY);
  for (const uses of readme.matchAll(/uses: ([\w.-]+\/smolvm)@/g)) expect(uses[1]).toBe(PROJECT_REPOSITORY);
});
