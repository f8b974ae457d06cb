/** The guest-agent protocol client, its frame codec and the agent binaries. */
export { AgentClient } from "./client.ts";
export type {
  AgentEnv,
  CallOptions,
  ConnectOptions,
  ExecSpec,
  PingResultInfo,
  ReadFileHandle,
  RunOptions,
  RunResult,
  WriteFileOptions,
} from "./types.ts";
export type { ExecHandle, ExecResult } from "./_exec.ts";
export { guestAgentBinary, guestAgentBinaryPath, type GuestArch } from "./binary.ts";
export * from "./frame.ts";
export { AGENT_ERROR_CODES, PROTOCOL, type AgentErrorCode, type AgentHello } from "./messages.ts";
