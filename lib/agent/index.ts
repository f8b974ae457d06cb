/** The guest-agent protocol client, its frame codec and the agent binaries. */
export {
  AgentClient,
  type AgentEnv,
  type CallOptions,
  type ConnectOptions,
  type ExecSpec,
  type PingResultInfo,
  type ReadFileHandle,
  type RunOptions,
  type RunResult,
  type WriteFileOptions,
} from "./client.ts";
export type { ExecHandle, ExecResult } from "./_exec.ts";
export { guestAgentBinary, guestAgentBinaryPath, type GuestArch } from "./binary.ts";
export * from "./frame.ts";
export { AGENT_ERROR_CODES, PROTOCOL, type AgentErrorCode, type AgentHello } from "./messages.ts";
