/**
 * Where smolvm's releases live and how their files are named. The GitHub repository is named
 * here and once more at the top of `install.sh` (a test keeps the two equal); change both to
 * move the project. `SMOLVM_INSTALL_URL` points everything (install.sh, `version --check`) at
 * a mirror laid out like GitHub's release downloads:
 *
 *   BASE/latest/download/FILE       the newest release
 *   BASE/download/vX.Y.Z/FILE       one pinned release
 */
import { InvalidInputError } from "../errors.ts";

export const PROJECT_REPOSITORY = "smolvm-dev/smolvm";
export const DEFAULT_RELEASES_URL = `https://github.com/${PROJECT_REPOSITORY}/releases`;

/** The compile targets a release carries, one binary each. */
export const BINARY_TARGETS = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"] as const;
export type BinaryTarget = (typeof BINARY_TARGETS)[number];

export const RELEASE_FILES = {
  checksums: "SHA256SUMS",
  /** The release's version as one line (`0.2.0`), what `version --check` reads. */
  version: "VERSION",
  installer: "install.sh",
  formula: "smolvm.rb",
} as const;

export function binaryAssetName(target: BinaryTarget): string {
  return `smolvm-${target}`;
}

/** The releases base URL: `SMOLVM_INSTALL_URL` when set (validated), else the project's. */
export function releasesUrl(env: Record<string, string | undefined> = process.env): string {
  const override = env.SMOLVM_INSTALL_URL;
  if (override === undefined || override === "") return DEFAULT_RELEASES_URL;
  let parsed: URL;
  try {
    parsed = new URL(override);
  } catch {
    throw new InvalidInputError(`Cannot use SMOLVM_INSTALL_URL "${override}": not a URL`, {
      hint: "set it to a releases base URL such as https://mirror.example/smolvm/releases, or unset it",
    });
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new InvalidInputError(`Cannot use SMOLVM_INSTALL_URL "${override}": only http and https are supported`, {
      hint: "set it to an http(s) URL, or unset it",
    });
  }
  return override.replace(/\/+$/, "");
}

/** The URL of one release file; `version` is a bare version (`0.2.0`) or `latest`. */
export function releaseAssetUrl(base: string, version: string, file: string): string {
  return version === "latest" ? `${base}/latest/download/${file}` : `${base}/download/v${version.replace(/^v/, "")}/${file}`;
}
