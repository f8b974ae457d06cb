/**
 * Lays out one release directory: the four binaries (each checked to be what its name says),
 * install.sh, VERSION, SHA256SUMS over every file in the directory (the image builder's kernels,
 * images and manifest.json included when they are there), and the Homebrew formula rendered
 * from those checksums. The release workflow runs exactly this; so can anyone, locally.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY_TARGETS, binaryAssetName, RELEASE_FILES } from "../../lib/distribution/release-url.ts";
import { formatChecksums, parseChecksums, sha256File } from "./checksums.ts";
import { targetProblems } from "./executable.ts";
import { renderFormula } from "./formula.ts";

export interface AssembleOptions {
  /** Where `npm run build` put the binaries. */
  dist: string;
  /** The release directory; created if missing, other files in it are kept and checksummed. */
  out: string;
  version: string;
  /** The git tag being released; must be v<version> when given. */
  tag?: string;
  /** The commit the binaries must have been built from (checked on the host's binary). */
  commit?: string;
  releasesUrl: string;
  description: string;
  license: string;
  installScript: string;
}

export interface AssembledRelease {
  files: string[];
  checksums: Map<string, string>;
  formula: string;
}

export async function assembleRelease(options: AssembleOptions): Promise<AssembledRelease> {
  if (options.tag !== undefined && options.tag !== `v${options.version}`) {
    throw new Error(`tag ${options.tag} does not match package.json's version ${options.version} (expected v${options.version})`);
  }
  mkdirSync(options.out, { recursive: true });
  for (const target of BINARY_TARGETS) {
    const source = join(options.dist, binaryAssetName(target));
    if (!existsSync(source)) throw new Error(`${source} is missing: run \`npm run build\` (it builds all four targets)`);
    const problems = targetProblems(readFileSync(source), target);
    if (problems.length > 0) throw new Error(`${source} ${problems.join("; ")}`);
    copyFileSync(source, join(options.out, binaryAssetName(target)));
  }
  checkHostBinary(options);
  copyFileSync(options.installScript, join(options.out, RELEASE_FILES.installer));
  writeFileSync(join(options.out, RELEASE_FILES.version), `${options.version}\n`);

  const skip = new Set<string>([RELEASE_FILES.checksums, RELEASE_FILES.formula]);
  const files = readdirSync(options.out).filter((name) => !skip.has(name) && statSync(join(options.out, name)).isFile()).sort();
  const sums = new Map<string, string>();
  for (const name of files) sums.set(name, await sha256File(join(options.out, name)));
  writeFileSync(join(options.out, RELEASE_FILES.checksums), formatChecksums(sums));

  // The formula is rendered from the file just written, so it names exactly what was published.
  const checksums = parseChecksums(readFileSync(join(options.out, RELEASE_FILES.checksums), "utf8"));
  const formula = renderFormula({ version: options.version, releasesUrl: options.releasesUrl, checksums, description: options.description, license: options.license });
  writeFileSync(join(options.out, RELEASE_FILES.formula), formula);
  return { files: [...files, RELEASE_FILES.checksums, RELEASE_FILES.formula], checksums, formula };
}

/** The binary for this machine must run and report this release's version (and commit). */
function checkHostBinary(options: AssembleOptions): void {
  const host = `${process.platform}-${process.arch}`;
  if (!(BINARY_TARGETS as readonly string[]).includes(host)) return;
  const run = spawnSync(join(options.out, `smolvm-${host}`), ["version", "--json"], { encoding: "utf8", timeout: 30_000 });
  let data: { version?: string; commit?: string } = {};
  try {
    data = JSON.parse(run.stdout).data ?? {};
  } catch {
    throw new Error(`smolvm-${host} does not run here: ${run.stderr || run.error?.message || `exit ${run.status}`}`);
  }
  if (data.version !== options.version) throw new Error(`smolvm-${host} reports version ${data.version}, not ${options.version}: rebuild with \`npm run build\``);
  if (options.commit !== undefined && data.commit !== options.commit) {
    throw new Error(`smolvm-${host} was built from commit ${data.commit}, not ${options.commit}: rebuild with \`npm run build\``);
  }
}
