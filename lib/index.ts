/**
 * smolvm's SDK: the one public API. The CLI is a thin client of what is exported here.
 */
export * from "./errors.ts";
export { parseVmConfig, parseSandboxName, type VmConfig, type VmConfigInput } from "./config.ts";
export { listSandboxes, type SandboxSummary } from "./sandboxes.ts";
export { versionInfo, type VersionInfo } from "./version.ts";
export { checkForUpdate, type UpdateCheck, type UpdateStatus } from "./distribution/update-check.ts";
export { SmolVM, type CreateSandboxOptions, type RunOptions, type RunResult, type SandboxInfo, type SandboxEnv, type PortForward } from "./smolvm.ts";
export type { GetFileOptions, PutFileOptions, TransferProgress, TransferResult, WriteFileOptions } from "./sandbox/files.ts";
export type { DirTransferResult, DownloadDirOptions, UploadDirOptions } from "./sandbox/dirs.ts";
export type { PortForwardInfo } from "./sandbox/ports.ts";
export type { ReadFileHandle } from "./agent/types.ts";
export type { CommChannel } from "./channels/types.ts";
export type { StartOptions } from "./sandbox/lifecycle.ts";
export * from "./presets/index.ts";
export type { ExecHandle, ExecResult } from "./agent/_exec.ts";
export {
  buildRelease,
  DownloadError,
  listCachedImages,
  pullImages,
  type CachedImage,
  type PulledRow,
  type PullImagesOptions,
  type ReleaseBuildOptions,
  type ReleaseBuildResult,
} from "./published/index.ts";
