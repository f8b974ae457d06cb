/**
 * The guest kernel: pinned source, cached builds, and the command line it boots with.
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
  DEBIAN_SOURCE_PATH,
  DEBIAN_SOURCE_PINS,
  KERNEL_ORG_SOURCE_PIN,
  verifySource,
  type SourcePin,
  type VerifiedSource,
} from "./source.ts";
export { kernelKey, kernelInputs } from "./recipe.ts";
