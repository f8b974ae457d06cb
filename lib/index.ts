/**
 * smolvm's SDK: the one public API. The CLI is a thin client of what is exported here, and loads
 * this module on every command, so everything exported is cheap to import: heavy work is loaded
 * by the functions that need it.
 */
export * from "./errors.ts";
export * from "./choices.ts";
export { checkEnvName, checkEnvVars, DEFAULT_IMAGE, parseSandboxConfig, parseSandboxName, type SandboxConfig, type SandboxConfigInput } from "./config.ts";
export * from "./version.ts";
export { logEvent } from "./log.ts";

// One sandbox, and its operations by noun.
export {
  SmolVM, type AttachOptions, type ChannelReport, type CreateSandboxOptions, type ForkOptions, type SandboxInfo, type SnapshotOptions, type SshCommand,
} from "./smolvm.ts";
export type { SnapshotInfo } from "./snapshots/store.ts";
export type { CreatedFrom } from "./snapshots/warm.ts";
export { Commands, type ExecOptions, type RunOptions, type RunResult } from "./sandbox/commands.ts";
export type { ExecHandle, ExecResult, FileStream, OutputCallback, PtyOptions } from "./agent/types.ts";
export {
  Filesystem, type DownloadOptions, type FileData, type ReadFileOptions, type TransferProgress, type TransferResult, type UploadOptions,
  type WriteFileOptions,
} from "./sandbox/files.ts";
export type { DirTransferResult, DownloadDirOptions, UploadDirOptions } from "./sandbox/dirs.ts";
export { EnvVars, parseEnvAssignments } from "./sandbox/env.ts";
export { parsePortSpec, Ports, type ExposeOptions, type PortForward, type PortForwardInfo } from "./sandbox/ports.ts";
export { Network, type NetworkPolicy, type NetworkPolicyChange, type SandboxNetworkInfo } from "./sandbox/network.ts";
export type { BackendInfo, DeleteOptions, StartOptions } from "./sandbox/lifecycle.ts";
export type { LogsOptions } from "./sandbox/logs.ts";
export type { PrepareProgress } from "./sandbox/artifacts.ts";
export type { CommChannel } from "./channels/types.ts";
export type { AccelInfo } from "./backends/accel.ts";
export { emulationNoticeOnce, noticeOncePerHome } from "./sandbox/notice.ts";

// Every sandbox.
export { listSandboxes, sandboxNames, type SandboxSummary } from "./sandbox/status.ts";
export type { SandboxError, SandboxStatus } from "./state/record.ts";

// The host: kernels, images (built and published), releases, set-up, checks, reclaiming space.
export * from "./host-api.ts";

// Coding agents in a sandbox.
export * from "./presets/index.ts";
