/**
 * The channel a sandbox's commands take, opened for real: the policy (lib/channels/policy.ts)
 * with the SDK's two openers, the agent through the supervisor and SSH once its sshd is ready.
 */
import type { AgentClient } from "../agent/client.ts";
import type { SshStatus } from "../agent/supervisor-messages.ts";
import { AgentChannel } from "../channels/agent.ts";
import { describeChannel, resolveChannel, type ChannelResolution } from "../channels/policy.ts";
import type { Channel, ChannelKind, CommChannel } from "../channels/types.ts";
import type { SshEndpoint } from "../ssh/state.ts";
import type { SandboxRecord } from "../state/record.ts";
import { fromWire } from "../errors.ts";
import { processStat } from "../host/pids.ts";
import { assertMay, readSandbox, refusal } from "./status.ts";
import { connectSupervisor } from "./supervisor-client.ts";

const REACH = { kind: "reach", what: "reach" } as const;

/**
 * How long a supervisor whose process runs may take to answer a HELLO before the agent channel
 * is given up on: under load it answers late (100 commands at once on 2 cores took seconds), and
 * a late answer is not a missing one.
 */
const SUPERVISOR_PATIENCE_MS = 60_000;

/**
 * The supervisor's session, refused when its HELLO says the sandbox is paused (the supervisor
 * refuses what `first` sent behind the HELLO then, too).
 */
export async function agentSession(vm: SandboxRecord, timeoutMs: number, first?: (client: AgentClient) => void): Promise<AgentClient> {
  const client = await connectSupervisor(vm, { timeoutMs, patienceMs: SUPERVISOR_PATIENCE_MS, ...(first === undefined ? {} : { first }) });
  const frozen = client.hello.supervisor?.frozen;
  if (frozen !== undefined) {
    await client.close();
    throw fromWire(frozen);
  }
  const refused = refusal({ name: vm.name, status: client.hello.supervisor?.state ?? "running" }, REACH);
  if (refused !== undefined) {
    await client.close();
    throw refused;
  }
  return client;
}

/**
 * Opens the channel the policy picks for a running sandbox. A record that says it is not running
 * is read again before the refusal (it may be older than the caller thinks); one that says it
 * runs is trusted as far as the supervisor, whose HELLO has the last word.
 */
export async function openChannel(record: SandboxRecord, explicit?: CommChannel, first?: (client: AgentClient) => void): Promise<{ channel: Channel; resolution: ChannelResolution }> {
  const vm = refusal(record, REACH) === undefined ? record : readSandbox(record.id);
  assertMay(vm, REACH);
  return resolveChannel(vm, explicit, {
    agent: async (timeoutMs) => new AgentChannel(await agentSession(vm, timeoutMs, first)),
    ssh: async (waitMs) => {
      // Its sshd is behind the VMM: a VMM stopped by a signal would accept the connection and
      // never answer, for the whole handshake timeout.
      const vmm = vm.vmmPid === null ? undefined : processStat(vm.vmmPid);
      if (vmm?.state === "T" || vmm?.state === "t") {
        const { channelUnavailable } = await import("../ssh/state.ts");
        throw channelUnavailable(vm, `its VM's process (pid ${vm.vmmPid}) is stopped by a signal`, `\`kill -CONT ${vm.vmmPid}\` lets it go on`);
      }
      const { SshChannel } = await import("../ssh/channel.ts");
      return SshChannel.open(vm, await sshEndpointWhenReady(vm, waitMs));
    },
  });
}

/** The channel a command would take now and why, for `info`: no SSH connection is made. */
export function probeChannel(vm: SandboxRecord, explicit?: CommChannel): Promise<{ channel: ChannelKind | null; reason: string }> {
  return describeChannel(vm, explicit, {
    agent: async (timeoutMs) => {
      const t0 = performance.now();
      await (await agentSession(vm, timeoutMs)).close();
      return performance.now() - t0;
    },
    ssh: async () => {
      try {
        const endpoint = await sshEndpointNow(vm, await sshStatus(vm, false));
        return { ok: true, text: endpoint === undefined ? "sshd is being set up" : "sshd is ready" };
      } catch (error) {
        return { ok: false, text: (error as Error).message };
      }
    },
  });
}

/** How the SSH set-up of this boot stands: its supervisor says (waiting, if asked); else its record. */
async function sshStatus(vm: SandboxRecord, wait: boolean, timeoutMs = 30_000): Promise<SshStatus> {
  let client: AgentClient | undefined;
  try {
    client = await connectSupervisor(vm, { timeoutMs: 2_000 });
  } catch {
    const { recordedSshStatus } = await import("../ssh/state.ts");
    return recordedSshStatus(vm);
  }
  try {
    return await client.supervisor("supervisor.ssh", { wait, timeoutMs }, { timeoutMs: timeoutMs + 5_000 });
  } finally {
    await client.close();
  }
}

async function sshEndpointNow(vm: SandboxRecord, status: SshStatus): Promise<SshEndpoint | undefined> {
  const { sshEndpointFor } = await import("../ssh/state.ts");
  return sshEndpointFor(vm, status);
}

/**
 * Where the sandbox's sshd answers, once its supervisor has injected the keys and started it
 * (never connecting early: an early connect to a slirp forward can stall for seconds).
 */
export async function sshEndpointWhenReady(vm: SandboxRecord, timeoutMs = 30_000): Promise<SshEndpoint> {
  assertMay(vm, REACH);
  const endpoint = await sshEndpointNow(vm, await sshStatus(vm, true, timeoutMs));
  if (endpoint !== undefined) return endpoint;
  const { channelUnavailable } = await import("../ssh/state.ts");
  throw channelUnavailable(vm, `sshd did not become ready within ${Math.round(timeoutMs / 1000)} s`,
    `see the supervisor log in the sandbox's directory, or use the agent channel (--comm-channel vsock or auto)`);
}
