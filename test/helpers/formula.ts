/** Runs a rendered Homebrew formula through formula-shim.rb (a stand-in for Homebrew's DSL). */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

export const haveRuby = spawnSync("ruby", ["--version"]).status === 0;

export interface Evaluated {
  class: string;
  superclass: string;
  has_test: boolean;
  declared: { desc: string; homepage: string; version: string; license: string; urls: string[]; sha256s: string[]; depends_on: string[] };
  installed?: string[];
  completions?: Record<string, string>;
  test?: string;
}

/** What the formula declares on one platform; with `stage`, also runs `install` and `test do`. */
export function evaluateFormula(file: string, os: "mac" | "linux", cpu: "arm" | "intel", stage?: { dir: string; prefix: string; env?: Record<string, string> }): Evaluated {
  const run = spawnSync("ruby", [join(import.meta.dir, "formula-shim.rb"), file, os, cpu, ...(stage === undefined ? [] : [stage.dir, stage.prefix])], {
    encoding: "utf8",
    env: { ...process.env, ...stage?.env },
  });
  if (run.status !== 0) throw new Error(`formula-shim.rb failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}
