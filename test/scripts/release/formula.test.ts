/**
 * The Homebrew formula generator, rendered for a fake release and checked two ways: `ruby -c`
 * for syntax, and evaluation under a stand-in for Homebrew's DSL (formula-shim.rb) on each of
 * the four platforms, so every on_macos/on_linux x on_arm/on_intel branch is seen to name its
 * own binary's URL and checksum and nothing else.
 */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY_TARGETS, binaryAssetName, PROJECT_REPOSITORY } from "../../../lib/distribution/release-url.ts";
import { renderFormula, type FormulaInput } from "../../../scripts/release/formula.ts";
import { evaluateFormula, haveRuby } from "../../helpers/formula.ts";
import { scratchDir } from "../../helpers/scratch.ts";

if (!haveRuby) console.log("skipping the Ruby checks: ruby is not installed (Debian package `ruby`)");
const withRuby = haveRuby ? test : test.skip;

const fakeSha = (name: string) => createHash("sha256").update(`fake ${name}`).digest("hex");
function fakeRelease(overrides: Partial<FormulaInput> = {}): FormulaInput {
  return {
    version: "1.2.3",
    releasesUrl: "https://example.test/org/smolvm/releases",
    checksums: new Map(BINARY_TARGETS.map((t) => [binaryAssetName(t), fakeSha(binaryAssetName(t))])),
    description: "Disposable, hardware-isolated Linux sandboxes (microVMs) for AI agents",
    license: "Apache-2.0",
    ...overrides,
  };
}

function writeFormula(text: string): string {
  const file = join(scratchDir("smolvm-formula-"), "smolvm.rb");
  writeFileSync(file, text);
  return file;
}

withRuby("the rendered formula is valid Ruby", () => {
  const check = spawnSync("ruby", ["-c", writeFormula(renderFormula(fakeRelease()))], { encoding: "utf8" });
  expect(check.stdout.trim()).toBe("Syntax OK");
});

withRuby("each platform branch names its own binary's URL and SHA-256; macOS alone depends on qemu", () => {
  const file = writeFormula(renderFormula(fakeRelease()));
  for (const [os, cpu, target] of [["mac", "arm", "darwin-arm64"], ["mac", "intel", "darwin-x64"], ["linux", "arm", "linux-arm64"], ["linux", "intel", "linux-x64"]] as const) {
    const result = evaluateFormula(file, os, cpu);
    expect(result.class).toBe("Smolvm");
    expect(result.superclass).toBe("Formula");
    expect(result.has_test).toBe(true);
    expect(result.declared).toEqual({
      desc: "Disposable, hardware-isolated Linux sandboxes (microVMs) for AI agents",
      homepage: `https://github.com/${PROJECT_REPOSITORY}`,
      version: "1.2.3",
      license: "Apache-2.0",
      urls: [`https://example.test/org/smolvm/releases/download/v1.2.3/smolvm-${target}`],
      sha256s: [fakeSha(`smolvm-${target}`)],
      depends_on: os === "mac" ? ["qemu"] : [],
    });
  }
});

withRuby("text from outside cannot break out of a Ruby string", () => {
  const file = writeFormula(renderFormula(fakeRelease({ description: 'say "hi" #{system("false")} \\ done' })));
  expect(evaluateFormula(file, "linux", "intel").declared.desc).toBe('say "hi" #{system("false")} \\ done');
});

test("a release missing a target, a malformed checksum or a non-version is refused", () => {
  const partial = new Map(fakeRelease().checksums);
  partial.delete("smolvm-darwin-x64");
  expect(() => renderFormula(fakeRelease({ checksums: partial }))).toThrow("SHA256SUMS has no smolvm-darwin-x64");
  const bad = new Map(fakeRelease().checksums).set("smolvm-linux-arm64", "abc");
  expect(() => renderFormula(fakeRelease({ checksums: bad }))).toThrow(`smolvm-linux-arm64's checksum "abc" is not a SHA-256`);
  expect(() => renderFormula(fakeRelease({ version: "1.2" }))).toThrow('"1.2" is not a version');
});
