/**
 * The release directory from the real `npm run build` binaries: SHA256SUMS over everything
 * (image artifacts included), checked by `sha256sum -c`; the formula rendered from it, which
 * installs the real linux-x64 binary and passes its own `test do` under the DSL stand-in; and
 * the refusals (wrong tag, a binary under the wrong name).
 */
import { afterAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY_TARGETS, binaryAssetName, releaseAssetUrl } from "../../../lib/distribution/release-url.ts";
import { assembleRelease, type AssembleOptions } from "../../../scripts/release/assemble.ts";
import { repoRoot } from "../../helpers/cli.ts";
import { evaluateFormula, haveRuby } from "../../helpers/formula.ts";

const version = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;
const dist = join(repoRoot, "dist");
const missing = BINARY_TARGETS.map((t) => join(dist, binaryAssetName(t))).filter((f) => !existsSync(f));
if (missing.length > 0) console.log(`skipping the release assembly: ${missing.join(", ")} missing (\`npm run build\` builds all four)`);
const withBinaries = missing.length === 0 ? test : test.skip;
const work = mkdtempSync(join(tmpdir(), "smolvm-release-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const options = (out: string, overrides: Partial<AssembleOptions> = {}): AssembleOptions => ({
  dist,
  out,
  version,
  releasesUrl: "http://127.0.0.1:9/releases",
  description: "Disposable, hardware-isolated Linux sandboxes (microVMs) for AI agents",
  license: "Apache-2.0",
  installScript: join(repoRoot, "install.sh"),
  ...overrides,
});

withBinaries("a release directory: binaries, installer, VERSION, SHA256SUMS over all of it, and the formula from those sums", async () => {
  const out = join(work, "release");
  mkdirSync(out);
  // What `smolvm release build --out DIR` leaves there: checksummed along with the binaries.
  writeFileSync(join(out, "manifest.json"), '{"schema":1}\n');
  writeFileSync(join(out, "base-x86_64.ext4.zst"), "pretend image\n");
  const release = await assembleRelease(options(out, { tag: `v${version}` }));
  const listed = readFileSync(join(out, "SHA256SUMS"), "utf8").trim().split("\n").map((line) => line.split("  ")[1]);
  expect(listed).toEqual(["VERSION", "base-x86_64.ext4.zst", "install.sh", "manifest.json", ...BINARY_TARGETS.map(binaryAssetName).sort()]);
  const verify = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: out, encoding: "utf8" });
  expect(verify.status).toBe(0);
  expect(readFileSync(join(out, "VERSION"), "utf8")).toBe(`${version}\n`);
  expect(readFileSync(join(out, "install.sh"), "utf8")).toBe(readFileSync(join(repoRoot, "install.sh"), "utf8"));
  expect(readFileSync(join(out, "smolvm.rb"), "utf8")).toBe(release.formula);
  if (!haveRuby) return void console.log("skipping the formula evaluation: ruby is not installed");
  expect(spawnSync("ruby", ["-c", join(out, "smolvm.rb")], { encoding: "utf8" }).stdout.trim()).toBe("Syntax OK");
  for (const [os, cpu, target] of [["mac", "arm", "darwin-arm64"], ["mac", "intel", "darwin-x64"], ["linux", "arm", "linux-arm64"], ["linux", "intel", "linux-x64"]] as const) {
    const declared = evaluateFormula(join(out, "smolvm.rb"), os, cpu).declared;
    expect(declared.urls).toEqual([releaseAssetUrl("http://127.0.0.1:9/releases", version, `smolvm-${target}`)]);
    expect(declared.sha256s).toEqual([release.checksums.get(`smolvm-${target}`)!]);
  }
  if (process.platform !== "linux" || process.arch !== "x64") return;
  // Homebrew's part, for real on this host: install the staged binary, generate completions,
  // and run the formula's test block (smolvm version, smolvm doctor --json) against it.
  const prefix = join(work, "cellar");
  const home = join(work, "brew-home");
  mkdirSync(home);
  const result = evaluateFormula(join(out, "smolvm.rb"), "linux", "intel", { dir: out, prefix, env: { HOME: home, SMOLVM_HOME: join(home, ".smolvm") } });
  expect(result.test).toBe("passed");
  expect(result.installed).toContain("bin/smolvm");
  for (const file of Object.values(result.completions!)) expect(readFileSync(file, "utf8")).toStartWith(file.endsWith("_smolvm") ? "#compdef smolvm" : "# ");
});

withBinaries("a tag that is not v<package version> is refused before anything is written", async () => {
  const out = join(work, "wrong-tag");
  await expect(assembleRelease(options(out, { tag: "v99.0.0" }))).rejects.toThrow(`tag v99.0.0 does not match package.json's version ${version}`);
  expect(existsSync(out)).toBe(false);
});

withBinaries("a binary under another target's name, or built from another commit, is refused", async () => {
  const fakeDist = join(work, "swapped-dist");
  mkdirSync(fakeDist);
  for (const target of BINARY_TARGETS) symlinkSync(join(dist, binaryAssetName(target)), join(fakeDist, binaryAssetName(target)));
  rmSync(join(fakeDist, "smolvm-linux-arm64"));
  symlinkSync(join(dist, "smolvm-linux-x64"), join(fakeDist, "smolvm-linux-arm64"));
  await expect(assembleRelease(options(join(work, "swapped"), { dist: fakeDist }))).rejects.toThrow("smolvm-linux-arm64 is built for x64, expected arm64");
  if (process.platform === "linux" && process.arch === "x64") {
    await expect(assembleRelease(options(join(work, "stale"), { commit: "0".repeat(40) }))).rejects.toThrow(`was built from commit`);
  }
});
