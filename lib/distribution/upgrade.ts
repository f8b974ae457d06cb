/**
 * The command that upgrades this smolvm, by how it was installed: a checkout upgrades with git,
 * a Homebrew keg with brew, a downloaded binary by running the install script again into the
 * directory it lives in.
 */
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { DEFAULT_RELEASES_URL, releaseAssetUrl, RELEASE_FILES } from "./release-url.ts";

export interface UpgradeContext {
  /** `source` when running from a checkout, else the compile target. */
  target: string;
  /** The running executable (process.execPath). */
  execPath: string;
  baseUrl: string;
  home?: string;
}

export function upgradeCommand(context: UpgradeContext): string {
  if (context.target === "source") return "git pull && npm ci (in your smolvm checkout)";
  if (/\/Cellar\/smolvm\//.test(context.execPath) || /\/(homebrew|linuxbrew)\//.test(context.execPath)) return "brew upgrade smolvm";
  const script = releaseAssetUrl(context.baseUrl, "latest", RELEASE_FILES.installer);
  const mirror = context.baseUrl === DEFAULT_RELEASES_URL ? "" : `SMOLVM_INSTALL_URL=${context.baseUrl} `;
  const dir = dirname(context.execPath);
  const prefix = dir === join(context.home ?? homedir(), ".local", "bin") ? "" : ` -s -- --prefix ${dir}`;
  return `curl -fsSL ${script} | ${mirror}sh${prefix}`;
}
