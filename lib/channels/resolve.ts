/**
 * Which channel carries a sandbox's commands, in this order:
 *
 * 1. the explicit option (`commChannel` in the SDK, `--comm-channel` on the CLI);
 * 2. the choice persisted on the sandbox (create stores an explicit `ssh` or `vsock`);
 * 3. auto: the agent when it answers (a HELLO and a ping within AGENT_PROBE_MS), else SSH.
 *
 * An explicit or persisted `vsock` never falls back: it fails with CHANNEL_UNAVAILABLE saying
 * why and how to use SSH instead. `ssh` never falls back either.
 */
import { ChannelUnavailableError, NotRunningError, SmolError } from "../errors.ts";
import type { AgentClient } from "../agent/client.ts";
import type { VmRecord } from "../state/vms.ts";
import type { Channel, ChannelKind, CommChannel } from "./types.ts";

/** How long the agent gets to answer before auto picks SSH (and explicit vsock gives up). */
export const AGENT_PROBE_MS = 2_000;
/** How long an auto fallback waits for SSH set-up that is still in progress. */
const FALLBACK_SSH_WAIT_MS = 10_000;

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

/** The channel asked for: the explicit option, else the sandbox's persisted one, else auto. */
export function requestedChannel(vm: Pick<VmRecord, "channel">, explicit?: CommChannel): { requested: CommChannel; source: ChannelSource } {
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

/** Connects to the agent through the supervisor and checks it answers (HELLO, then a ping). */
export async function probeAgent(vm: VmRecord): Promise<{ client: AgentClient; rttMs: number }> {
  const { connectSupervisor } = await import("../supervisor/client.ts");
  const t0 = performance.now();
  const client = await connectSupervisor(vm.id, { timeoutMs: AGENT_PROBE_MS });
  try {
    await client.ping({ timeoutMs: AGENT_PROBE_MS });
  } catch (error) {
    await client.close();
    throw error;
  }
  return { client, rttMs: performance.now() - t0 };
}

function noFallback(vm: VmRecord, source: ChannelSource, cause: unknown): SmolError {
  const how = source === "explicit" ? "it was asked for explicitly" : "it was chosen when the sandbox was created";
  return new ChannelUnavailableError(`Cannot reach sandbox "${vm.name}" over the agent channel (vsock): ${message(cause)}`, {
    hint: `${how}, so smolvm does not fall back to SSH; to go over SSH pass --comm-channel ssh (SDK: commChannel: "ssh"), or auto to take whichever answers`,
    cause,
  });
}

function requireLive(vm: VmRecord): void {
  if (vm.status === "paused") {
    throw new NotRunningError(`Cannot reach sandbox "${vm.name}": it is paused`, { hint: `resume it with \`smolvm resume ${vm.name}\`` });
  }
  if (vm.status !== "running") {
    throw new NotRunningError(`Cannot reach sandbox "${vm.name}": it is ${vm.status}`, {
      hint: vm.status === "stopped" || vm.status === "failed" ? `start it with \`smolvm start ${vm.name}\`` : "wait for it to finish",
    });
  }
}

/** Resolves and opens the channel for a running sandbox. */
export async function openChannel(vm: VmRecord, explicit?: CommChannel): Promise<{ channel: Channel; resolution: ChannelResolution }> {
  requireLive(vm);
  const { requested, source } = requestedChannel(vm, explicit);
  const said = describeSource(requested, source);
  if (requested === "ssh") {
    const { SshChannel } = await import("../ssh/channel.ts");
    return { channel: await SshChannel.open(vm), resolution: { kind: "ssh", requested, source, reason: said } };
  }
  let agentFailure: unknown;
  try {
    const { client, rttMs } = await probeAgent(vm);
    const { AgentChannel } = await import("./agent.ts");
    return {
      channel: new AgentChannel(client),
      resolution: { kind: "agent", requested, source, reason: `${said}: the agent answered in ${Math.round(rttMs)} ms` },
    };
  } catch (error) {
    if (requested === "vsock") throw noFallback(vm, source, error);
    agentFailure = error;
  }
  const { SshChannel } = await import("../ssh/channel.ts");
  const { waitForSsh } = await import("../ssh/state.ts");
  try {
    await waitForSsh(vm.id, { timeoutMs: FALLBACK_SSH_WAIT_MS });
    return {
      channel: await SshChannel.open(vm),
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
 * connection (the agent is probed; SSH is judged by its set-up state).
 */
export async function describeChannel(vm: VmRecord, explicit?: CommChannel): Promise<{ channel: ChannelKind | null; reason: string }> {
  const { requested, source } = requestedChannel(vm, explicit);
  const said = describeSource(requested, source);
  if (vm.status !== "running") return { channel: null, reason: `${said}; the sandbox is ${vm.status}` };
  const sshSays = async (): Promise<{ ok: boolean; text: string }> => {
    const { sshReadiness } = await import("../ssh/state.ts");
    try {
      return sshReadiness(vm) === "ready" ? { ok: true, text: "sshd is ready" } : { ok: true, text: "sshd is being set up" };
    } catch (error) {
      return { ok: false, text: message(error) };
    }
  };
  if (requested === "ssh") {
    const ssh = await sshSays();
    return { channel: ssh.ok ? "ssh" : null, reason: `${said}: ${ssh.text}` };
  }
  try {
    const { client, rttMs } = await probeAgent(vm);
    await client.close();
    return { channel: "agent", reason: `${said}: the agent answered in ${Math.round(rttMs)} ms` };
  } catch (error) {
    if (requested === "vsock") return { channel: null, reason: `${said}: the agent did not answer (${message(error)}); no fallback to SSH` };
    const ssh = await sshSays();
    return { channel: ssh.ok ? "ssh" : null, reason: `auto: the agent did not answer (${message(error)}); ${ssh.text}` };
  }
}
