/**
 * The kernel's build inputs (script and config fragments, embedded as text) and the cache key
 * derived from them. Pure: no filesystem access, so the key is cheap to compute on every start.
 */
import { createHash } from "node:crypto";
import buildScript from "../../kernel/build.sh" with { type: "text" };
import commonConfig from "../../kernel/config/common.config" with { type: "text" };
import x86Config from "../../kernel/config/x86_64.config" with { type: "text" };
import arm64Config from "../../kernel/config/arm64.config" with { type: "text" };
import type { GuestArch } from "./arch.ts";

/** Bump when the way a build dir is produced changes without any input file changing. */
export const KERNEL_BUILDER_VERSION = 2;

export interface KernelInputs {
  arch: GuestArch;
  /** Files of the build recipe, by path relative to `kernel/`, as build.sh expects them. */
  files: Record<string, string>;
  /** The artifact build.sh leaves in its output dir. */
  artifact: "vmlinux" | "Image";
}

export function kernelInputs(arch: GuestArch): KernelInputs {
  const files: Record<string, string> = {
    "build.sh": buildScript,
    "config/common.config": commonConfig,
  };
  if (arch === "x86_64") files["config/x86_64.config"] = x86Config;
  else files["config/arm64.config"] = arm64Config;
  return { arch, files, artifact: arch === "x86_64" ? "vmlinux" : "Image" };
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * The recipe's own key: a hash over the builder version, arch and each recipe file's checksum,
 * written as lines so it can be reproduced with sha256sum:
 *
 *   smolvm-kernel/2 \n arch=x86_64 \n build.sh <sha> \n config/... <sha>
 *
 * Every build of this recipe, from whichever source version, shares it.
 */
export function recipeKey(inputs: KernelInputs): string {
  let text = `smolvm-kernel/${KERNEL_BUILDER_VERSION}\narch=${inputs.arch}\n`;
  for (const name of Object.keys(inputs.files).sort()) text += `${name} ${sha256(inputs.files[name]!)}\n`;
  return sha256(text);
}

/**
 * The full cache key: the recipe key plus the source's identity (`debian:linux-source-6.12=
 * 6.12.117-1~deb12u1`, or `sha256:<hex>` for a tarball given by path):
 *
 *   sha256("<recipe key>\nsource=<id>\n")
 */
export function kernelKey(inputs: KernelInputs, sourceId: string): string {
  return sha256(`${recipeKey(inputs)}\nsource=${sourceId}\n`);
}

/** Directory name of a build inside the kernels cache: readable arch plus a short key. */
export function kernelDirName(arch: GuestArch, key: string): string {
  return `${arch}-${key.slice(0, 16)}`;
}
