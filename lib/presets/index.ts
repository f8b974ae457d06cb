/**
 * Coding agents in a sandbox: the presets, starting one, attaching, syncing the workspace. The
 * catalog and defaults are plain data; the functions load their modules when called, so the SDK's
 * index (which the CLI imports on every command) stays cheap.
 */
import type { SmolVM } from "../smolvm.ts";
import type { DirTransferResult } from "../sandbox/dirs.ts";
import type { Preset } from "./catalog.ts";
import type { AgentSessionOptions } from "./attach.ts";
import type { AgentRecord, StartAgentOptions, StartedAgent } from "./start.ts";
import type { ExecHandle } from "../agent/types.ts";

export { findPreset, presetNames, PRESETS, type ConfigCopy, type InstallSpec, type Preset, type PresetId } from "./catalog.ts";
export * from "./defaults.ts";
export type { AgentRecord, AgentSessionOptions, StartAgentOptions, StartedAgent };

/** Starts a sandbox for `presetName` (an id or an alias, e.g. "claude-code"): image, credentials, /workspace. */
export async function startAgent(presetName: string, options: StartAgentOptions = {}): Promise<StartedAgent> {
  return (await import("./start.ts")).startAgent(presetName, options);
}

/** The preset record of a sandbox, or undefined when it was not started as a coding agent. */
export async function readAgentRecord(vm: SmolVM): Promise<AgentRecord | undefined> {
  return (await import("./start.ts")).readAgentRecord(vm);
}

/** The preset of a sandbox started as `expected` (or as any agent when absent). */
export async function agentOf(vm: SmolVM, expected?: string): Promise<{ preset: Preset; record: AgentRecord }> {
  return (await import("./attach.ts")).agentOf(vm, expected);
}

/**
 * Starts the agent on a PTY in /workspace and returns its live handle; closing it (detaching)
 * leaves the sandbox, and in an image with tmux the agent, running.
 */
export async function openAgentSession(
  vm: SmolVM,
  options: AgentSessionOptions & { expected?: string },
): Promise<{ handle: ExecHandle; preset: Preset; persistent: boolean }> {
  return (await import("./attach.ts")).openAgentSession(vm, options);
}

/** Copies /workspace back into the host directory it came from (or `to`), merged file by file. */
export async function syncWorkspace(vm: SmolVM, options: { to?: string; onProgress?: (bytes: number) => void } = {}): Promise<DirTransferResult> {
  return (await import("./attach.ts")).syncWorkspace(vm, options);
}
