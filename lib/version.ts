/**
 * Build identity. `scripts/build.ts` replaces these globals through `--define` when it compiles
 * a binary; running from source falls back to package.json's version and the live platform.
 */
import { arch, platform } from "node:process";
import pkg from "../package.json" with { type: "json" };

declare const SMOLVM_BUILD_VERSION: string | undefined;
declare const SMOLVM_BUILD_TARGET: string | undefined;

export interface VersionInfo {
  version: string;
  /** bun-<version>, deno-<version> or node-<version>: what is executing this code. */
  runtime: string;
  /** The compile target (`linux-x64`...) or `source` when run from a checkout. */
  target: string;
  platform: string;
  arch: string;
}

export function versionInfo(): VersionInfo {
  const versions = process.versions as Record<string, string | undefined>;
  const runtime = versions.bun
    ? `bun-${versions.bun}`
    : versions.deno
      ? `deno-${versions.deno}`
      : `node-${versions.node}`;
  return {
    version: typeof SMOLVM_BUILD_VERSION === "string" ? SMOLVM_BUILD_VERSION : pkg.version,
    runtime,
    target: typeof SMOLVM_BUILD_TARGET === "string" ? SMOLVM_BUILD_TARGET : "source",
    platform,
    arch,
  };
}
