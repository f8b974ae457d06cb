/**
 * The guest kernel: its verified source, cached builds, and the command line it boots with.
 */
export { GUEST_ARCHES, debianArch, hostGuestArch, parseGuestArch, type GuestArch } from "./arch.ts";
export { buildKernel, ensureKernel, type BuildKernelOptions, type KernelBuildPhase, type KernelProgress } from "./build.ts";
export { findKernel, listKernels, type KernelInfo, type KernelManifest } from "./cache.ts";
export {
  AGENT_GUEST_PATH,
  kernelCmdline,
  kernelCmdlineArgs,
  type KernelCmdlineOptions,
} from "./cmdline.ts";
export {
  customSource,
  debianSourcePath,
  KERNEL_SOURCE_PACKAGE,
  resolveKernelSource,
  verifyDebianSource,
  type KernelSource,
} from "./source.ts";
export { kernelKey, kernelInputs, recipeKey } from "./recipe.ts";
