/**
 * `bun run scripts/release.ts --out DIR [--dist dist] [--tag vX.Y.Z] [--formula FILE]`
 *
 * Turns the binaries from `npm run build` into a release directory (see release/assemble.ts):
 * binaries, install.sh, VERSION, SHA256SUMS and the Homebrew formula (smolvm.rb, also copied to
 * FILE when given, e.g. Formula/smolvm.rb). Image artifacts already in DIR (from `smolvm
 * release build --out DIR`) are checksummed with the rest.
 */
import { join, resolve } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { releasesUrl, RELEASE_FILES } from "../lib/distribution/release-url.ts";
import { gitCommitOf } from "../lib/version.ts";
import { assembleRelease } from "./release/assemble.ts";

const root = join(import.meta.dirname, "..");
const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
};
const out = option("--out");
if (out === undefined) {
  console.error("usage: bun run scripts/release.ts --out DIR [--dist DIR] [--tag vX.Y.Z] [--formula FILE]");
  process.exit(2);
}
const formulaCopy = option("--formula");
const tag = option("--tag");
try {
  const release = await assembleRelease({
    dist: resolve(option("--dist") ?? join(root, "dist")),
    out: resolve(out),
    version: pkg.version,
    ...(tag === undefined ? {} : { tag }),
    ...(gitCommitOf(root) === undefined ? {} : { commit: gitCommitOf(root)! }),
    releasesUrl: releasesUrl(),
    description: pkg.description.replace(/: a CLI and a TypeScript SDK$/, ""),
    license: pkg.license,
    installScript: join(root, "install.sh"),
  });
  if (formulaCopy !== undefined) {
    mkdirSync(dirname(resolve(formulaCopy)), { recursive: true });
    copyFileSync(join(resolve(out), RELEASE_FILES.formula), resolve(formulaCopy));
  }
  for (const name of release.files) console.log(release.checksums.has(name) ? `${release.checksums.get(name)}  ${name}` : `${" ".repeat(64)}  ${name} (not checksummed)`);
} catch (error) {
  console.error(`release: ${(error as Error).message}`);
  process.exit(1);
}
