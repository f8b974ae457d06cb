/** Coding agents in a sandbox: the presets, starting one, attaching, syncing the workspace. */
export { findPreset, presetNames, PRESETS, type ConfigCopy, type InstallSpec, type Preset, type PresetId } from "./catalog.ts";
export { agentOf, openAgentSession, syncWorkspace, type AgentSessionOptions } from "./attach.ts";
export {
  DEFAULT_AGENT_DISK_MIB,
  DEFAULT_AGENT_MEMORY_MIB,
  LARGE_WORKSPACE_BYTES,
  readAgentRecord,
  startAgent,
  WORKSPACE,
  type AgentRecord,
  type StartAgentOptions,
  type StartedAgent,
} from "./start.ts";
export { DEFAULT_INSTALL_TIMEOUT_MS } from "./install.ts";
