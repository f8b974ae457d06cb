/**
 * Which channel carries a sandbox's commands, in this order:
 *
 * 1. the explicit option (`commChannel` in the SDK, `--comm-channel` on the CLI);
 * 2. the choice persisted on the sandbox (create stores an explicit `ssh` or `vsock`);
 * 3. auto: the agent when it answers (its supervisor's HELLO within AGENT_PROBE_MS), else SSH.
 *
 * An explicit or persisted `vsock` never falls back: it fails with CHANNEL_UNAVAILABLE saying
 * why and how to use SSH instead. `ssh` never falls back either.
 *
 * The policy is pure over two openers (the SDK wires the real ones in lib/sandbox/connection.ts),
 * so it is tested without a VM.
 */
import { ChannelUnavailableError, NotRunningError, SmolError } from "../errors.ts";
import type { Channel, ChannelKind, CommChannel } from "./types.ts";

/** How long the agent gets to answer before auto picks SSH (and explicit vsock gives up). */
export const AGENT_PROBE_MS = 2_000;
/** How long an auto fallback waits for SSH set-up that is still in progress. */
export const FALLBACK_SSH_WAIT_MS = 10_000;

export type ChannelSource = "explicit" | "persisted" | "auto";

export interface ChannelResolution {
  /** The channel that carries the commands. */
  kind: ChannelKind;
  /** What was asked for, and where that came from. */
  requested: CommChannel;
  source: ChannelSource;
  /** Why this channel, in words: `auto: the agent answered in 2 ms`. */
  reason: string;
}

/** What the policy needs to try each channel. */
export interface ChannelOpeners {
  /** The agent channel: resolves once the agent (through its supervisor) answered HELLO. */
  agent(timeoutMs: number): Promise<Channel>;
  /** The SSH channel: waits up to `waitMs` for sshd's set-up, then connects. */
  ssh(waitMs: number): Promise<Channel>;
}

/** What `describeChannel` needs: can the agent be reached, and how SSH stands, without connecting over SSH. */
export interface ChannelProbes {
  /** Resolves with how long the agent took to answer, or rejects with why it did not. */
  agent(timeoutMs: number): Promise<number>;
  /** `ok` false when SSH cannot work at all; `text` says how it stands. */
  ssh(): Promise<{ ok: boolean; text: string }>;
}

/** The channel asked for: the explicit option, else the sandbox's persisted one, else auto. */
export function requestedChannel(vm: { channel: "agent" | "ssh" | null }, explicit?: CommChannel): { requested: CommChannel; source: ChannelSource } {
  if (explicit !== undefined) return { requested: explicit, source: "explicit" };
  if (vm.channel === "ssh") return { requested: "ssh", source: "persisted" };
  if (vm.channel === "agent") return { requested: "vsock", source: "persisted" };
  return { requested: "auto", source: "auto" };
}

/** The value create persists for an explicit choice (`auto` persists nothing). */
export function persistedChannel(choice: CommChannel | undefined): "agent" | "ssh" | null {
  return choice === "ssh" ? "ssh" : choice === "vsock" ? "agent" : null;
}

function describeSource(requested: CommChannel, source: ChannelSource): string {
  return source === "explicit" ? `asked for ${requested}` : source === "persisted" ? `${requested} was chosen at create` : "auto";
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The sandbox itself cannot run commands now (it is not running, or frozen on a full host disk): no channel would do. */
function aboutTheSandbox(error: unknown): boolean {
  return error instanceof NotRunningError || (error instanceof SmolError && error.code === "HOST_DISK_FULL");
}

function noFallback(vm: { name: string }, source: ChannelSource, cause: unknown): ChannelUnavailableError {
  const how = source === "explicit" ? "it was asked for explicitly" : "it was chosen when the sandbox was created";
  return new ChannelUnavailableError(`Cannot reach sandbox "${vm.name}" over the agent channel (vsock): ${message(cause)}`, {
    hint: `${how}, so smolvm does not fall back to SSH; to go over SSH pass --comm-channel ssh (SDK: commChannel: "ssh"), or auto to take whichever answers`,
    cause,
  });
}

/** Opens the channel the policy picks for a running sandbox. */
export async function resolveChannel(
  vm: { name: string; channel: "agent" | "ssh" | null },
  explicit: CommChannel | undefined,
  open: ChannelOpeners,
): Promise<{ channel: Channel; resolution: ChannelResolution }> {
  const { requested, source } = requestedChannel(vm, explicit);
  const said = describeSource(requested, source);
  if (requested === "ssh") return { channel: await open.ssh(FALLBACK_SSH_WAIT_MS), resolution: { kind: "ssh", requested, source, reason: said } };
  let agentFailure: unknown;
  const t0 = performance.now();
  try {
    const channel = await open.agent(AGENT_PROBE_MS);
    return { channel, resolution: { kind: "agent", requested, source, reason: `${said}: the agent answered in ${Math.round(performance.now() - t0)} ms` } };
  } catch (error) {
    // A paused, stopped or frozen sandbox is not a channel problem: SSH would not answer either.
    if (aboutTheSandbox(error)) throw error;
    if (requested === "vsock") throw noFallback(vm, source, error);
    agentFailure = error;
  }
  try {
    return {
      channel: await open.ssh(FALLBACK_SSH_WAIT_MS),
      resolution: { kind: "ssh", requested, source, reason: `auto: the agent did not answer (${message(agentFailure)})` },
    };
  } catch (error) {
    throw new ChannelUnavailableError(`Cannot reach sandbox "${vm.name}": the agent did not answer (${message(agentFailure)}) and SSH failed (${message(error)})`, {
      hint: `see \`smolvm logs ${vm.name}\`; \`smolvm stop ${vm.name}\` then \`smolvm start ${vm.name}\` restarts it`,
      cause: error,
    });
  }
}

/**
 * What `info` reports: the channel a command would take now and why, without opening an SSH
 * connection (the agent is asked for a HELLO; SSH is judged by its set-up state).
 */
export async function describeChannel(
  vm: { name: string; channel: "agent" | "ssh" | null; status: string },
  explicit: CommChannel | undefined,
  probe: ChannelProbes,
): Promise<{ channel: ChannelKind | null; reason: string }> {
  const { requested, source } = requestedChannel(vm, explicit);
  const said = describeSource(requested, source);
  if (vm.status !== "running") return { channel: null, reason: `${said}; the sandbox is ${vm.status}` };
  if (requested === "ssh") {
    const ssh = await probe.ssh();
    return { channel: ssh.ok ? "ssh" : null, reason: `${said}: ${ssh.text}` };
  }
  try {
    const ms = await probe.agent(AGENT_PROBE_MS);
    return { channel: "agent", reason: `${said}: the agent answered in ${Math.round(ms)} ms` };
  } catch (error) {
    if (requested === "vsock") return { channel: null, reason: `${said}: the agent did not answer (${message(error)}); no fallback to SSH` };
    const ssh = await probe.ssh();
    return { channel: ssh.ok ? "ssh" : null, reason: `auto: the agent did not answer (${message(error)}); ${ssh.text}` };
  }
}
