/**
 * Whether a sandbox can be reached over SSH, as one small file (`vms/<id>/ssh.json`) the
 * supervisor writes after each boot's key injection. Callers ask the supervisor (`supervisor.ssh`,
 * which can wait for the set-up to finish); the file answers when the supervisor cannot.
 *
 * States: `pending` (the supervisor is injecting keys and starting sshd), `ready`,
 * `unavailable` (the image has no sshd, the sandbox has no network) and `failed` (set-up went
 * wrong; the reason says how). A state belongs to one boot: it records the VMM's pid, and one
 * written for another VMM process is stale.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "../zod.ts";
import type { SshStatus } from "../agent/supervisor-messages.ts";
import { ChannelUnavailableError, type SmolError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { paths } from "../paths.ts";
import type { SandboxRecord } from "../state/record.ts";

const stateSchema = z.object({
  state: z.enum(["pending", "ready", "unavailable", "failed"]),
  reason: z.optional(z.string()),
  hint: z.optional(z.string()),
  vmmPid: z.nullable(z.number()),
  supervisorPid: z.number(),
  /** How long injection and sshd start-up took, once ready. */
  setupMs: z.optional(z.number()),
  at: z.number(),
});

export type SshState = z.infer<typeof stateSchema>;

/** Where the guest's sshd is reached from the host. */
export interface SshEndpoint {
  host: string;
  port: number;
}

export function sshStatePath(vmId: string): string {
  return join(paths.sandboxDir(vmId), "ssh.json");
}

export function writeSshState(vmId: string, state: Omit<SshState, "at" | "supervisorPid">): void {
  const file = sshStatePath(vmId);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, JSON.stringify({ ...state, supervisorPid: process.pid, at: Date.now() }));
  renameSync(tmp, file);
}

export function readSshState(vmId: string): SshState | undefined {
  try {
    const parsed = stateSchema.safeParse(JSON.parse(readFileSync(sshStatePath(vmId), "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The endpoint of a sandbox's sshd from the host: the guest's own address with TAP networking
 * (only the host can open connections to it), else the forward on 127.0.0.1 (pasta's with user
 * networking, the supervisor's through the agent without a network).
 */
export function sshEndpoint(vm: SandboxRecord): SshEndpoint | undefined {
  if (vm.config.network === "tap" && vm.ip !== null) return { host: vm.ip, port: 22 };
  return vm.sshPort === null ? undefined : { host: "127.0.0.1", port: vm.sshPort };
}

export function channelUnavailable(vm: { name: string }, why: string, hint?: string, cause?: unknown): SmolError {
  return new ChannelUnavailableError(`Cannot reach sandbox "${vm.name}" over SSH: ${why}`, {
    hint: hint ?? "use the agent channel instead (--comm-channel vsock or auto)",
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * What this boot's set-up recorded, for when its supervisor cannot be asked: `pending` when
 * nothing was recorded for the running VMM (or the supervisor that was setting it up is gone).
 */
export function recordedSshStatus(vm: SandboxRecord): SshStatus {
  const state = readSshState(vm.id);
  if (state === undefined || state.vmmPid !== vm.vmmPid) return { state: "pending" };
  // A supervisor that died mid-set-up is replaced by one that re-attaches and sets up again.
  const replaced = vm.supervisorPid !== null && vm.supervisorPid !== state.supervisorPid && pidAlive(vm.supervisorPid);
  if (state.state === "pending" && !pidAlive(state.supervisorPid) && !replaced) {
    return {
      state: "failed",
      reason: "its supervisor exited before SSH was set up",
      hint: `restart it: \`smolvm stop ${vm.name}\` then \`smolvm start ${vm.name}\``,
    };
  }
  return { state: state.state, ...(state.reason === undefined ? {} : { reason: state.reason }), ...(state.hint === undefined ? {} : { hint: state.hint }) };
}

/**
 * Where a running sandbox's sshd is, once its set-up status says ready; undefined while it is
 * pending; CHANNEL_UNAVAILABLE, with the reason and what to do, when SSH cannot work at all.
 */
export function sshEndpointFor(vm: SandboxRecord, status: SshStatus): SshEndpoint | undefined {
  const endpoint = sshEndpoint(vm);
  if (endpoint === undefined) {
    throw channelUnavailable(vm, "it has no SSH port (it was made by an earlier smolvm without a network)", "start it again (`smolvm stop`, then `smolvm start`) to give it one, or use the agent channel (--comm-channel vsock or auto)");
  }
  if (status.state === "ready") return endpoint;
  if (status.state === "pending") return undefined;
  throw channelUnavailable(vm, status.reason ?? "SSH set-up failed", status.hint);
}
