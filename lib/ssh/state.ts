/**
 * Whether a sandbox can be reached over SSH, as one small file (`vms/<id>/ssh.json`) the
 * supervisor writes after each boot's key injection and anyone can read: no supervisor round
 * trip, so it also answers when the agent channel does not.
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
import { ChannelUnavailableError, NotRunningError, SmolError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { paths } from "../paths.ts";
import { reconcile } from "../sandboxes.ts";
import { StateStore, type VmRecord } from "../state/vms.ts";

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
  return join(paths.vmDir(vmId), "ssh.json");
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

/** The endpoint of a sandbox's sshd on the host (user networking: the 127.0.0.1 forward). */
export function sshEndpoint(vm: VmRecord): SshEndpoint | undefined {
  return vm.sshPort === null ? undefined : { host: "127.0.0.1", port: vm.sshPort };
}

export function channelUnavailable(vm: { name: string }, why: string, hint?: string, cause?: unknown): SmolError {
  return new ChannelUnavailableError(`Cannot reach sandbox "${vm.name}" over SSH: ${why}`, {
    hint: hint ?? "use the agent channel instead (--comm-channel vsock or auto)",
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * What the SSH state of a running sandbox says right now, without waiting: `ready`, a final
 * failure (thrown), or `pending`.
 */
export function sshReadiness(vm: VmRecord): "ready" | "pending" {
  if (vm.status === "paused") {
    throw new NotRunningError(`Cannot reach sandbox "${vm.name}": it is paused`, { hint: `resume it with \`smolvm resume ${vm.name}\`` });
  }
  if (vm.status !== "running") {
    throw new NotRunningError(`Cannot reach sandbox "${vm.name}": it is ${vm.status}`, {
      hint: vm.status === "stopped" || vm.status === "failed" ? `start it with \`smolvm start ${vm.name}\`` : "wait for it to finish",
    });
  }
  if (sshEndpoint(vm) === undefined) {
    throw channelUnavailable(vm, "it has no SSH endpoint (its network mode is \"none\")", "create it with user networking, or use the agent channel (--comm-channel vsock or auto)");
  }
  const state = readSshState(vm.id);
  if (state === undefined || state.vmmPid !== vm.vmmPid) return "pending";
  if (state.state === "ready") return "ready";
  if (state.state === "pending") {
    // A supervisor that died mid-set-up is replaced by one that re-attaches and sets up again.
    const replaced = vm.supervisorPid !== null && vm.supervisorPid !== state.supervisorPid && pidAlive(vm.supervisorPid);
    if (!pidAlive(state.supervisorPid) && !replaced) {
      throw channelUnavailable(vm, "its supervisor exited before SSH was set up", `restart it: \`smolvm stop ${vm.name}\` then \`smolvm start ${vm.name}\``);
    }
    return "pending";
  }
  throw channelUnavailable(vm, state.reason ?? "SSH set-up failed", state.hint);
}

/**
 * Waits until the sandbox's sshd has our keys and listens (never connecting early: an early
 * connect to a slirp forward can stall for seconds), and returns where it is.
 */
export async function waitForSsh(vmId: string, options: { timeoutMs?: number } = {}): Promise<{ vm: VmRecord; endpoint: SshEndpoint }> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const store = StateStore.open();
  try {
    for (;;) {
      const vm = reconcile(store, store.getVm(vmId));
      if (sshReadiness(vm) === "ready") return { vm, endpoint: sshEndpoint(vm)! };
      if (Date.now() > deadline) {
        throw channelUnavailable(vm, `sshd did not become ready within ${Math.round(timeoutMs / 1000)} s`, `see ${join(paths.vmDir(vm.id), "supervisor.log")}, or use the agent channel (--comm-channel vsock or auto)`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    store.close();
  }
}
