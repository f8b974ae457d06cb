/**
 * What a sandbox's supervisor adds to the agent protocol: its part of the HELLO answer, and the
 * `supervisor.*` operations it answers itself (OPEN with one of these ops never reaches the
 * agent). Clients validate what they send and everything they receive against these schemas, and
 * so does the supervisor, like every other message of the protocol. All but the HELLO part are
 * built on first use (lazySchema), so a CLI call that runs a command does not pay for them.
 */
import { lazySchema, z } from "../zod.ts";

const int = lazySchema(() => z.int());
const port = lazySchema(() => int.check(z.minimum(1), z.maximum(65535)));
const portOrAny = lazySchema(() => int.check(z.minimum(0), z.maximum(65535)));

/** The supervisor's part of its HELLO answer (the rest is the agent's own HELLO). */
export const SupervisorInfo = lazySchema(() => z.object({
  pid: int.check(z.positive()),
  /** The sandbox's id. */
  sandbox: z.string(),
  /** `running` or `paused`: what a command may expect right now. */
  state: z.enum(["running", "paused"]),
  /** The VMM's accelerator and why it was chosen (the once-only software-emulation notice says it). */
  accel: z.enum(["kvm", "hvf", "tcg"]),
  accelReason: z.string(),
  /**
   * Why the guest is frozen when its VMM paused it by itself (its disk could not be written on
   * the host): commands are refused with this error until a resume finds room.
   */
  frozen: z.optional(z.object({ code: z.string(), message: z.string(), hint: z.optional(z.string()) })),
  /** It checks every answer of the agent against its schema before passing it on (one from before did not). */
  checks: z.optional(z.literal(true)),
}));
export type SupervisorInfo = z.infer<typeof SupervisorInfo>;

export const PortForwardInfo = lazySchema(() => z.object({
  /** The port on the host; always bound to `address`. */
  hostPort: port,
  guestPort: port,
  /** Always 127.0.0.1: a forward is never reachable from other machines. */
  address: z.string(),
  /** Connections open through it right now. */
  connections: int.check(z.nonnegative()),
  createdAt: z.number(),
}));
/** One port forward as the supervisor reports it. */
export type PortForwardInfo = z.infer<typeof PortForwardInfo>;

export const SshStatus = lazySchema(() => z.object({
  /** `pending` while keys are injected and sshd starts; `unavailable` when the image has no sshd. */
  state: z.enum(["pending", "ready", "unavailable", "failed"]),
  reason: z.optional(z.string()),
  hint: z.optional(z.string()),
}));
export type SshStatus = z.infer<typeof SshStatus>;

const empty = lazySchema(() => z.object({}));

/** At most 256 hosts a list, each at most 255 characters (a DNS name's limit, with room for `*.`). */
const hosts = lazySchema(() => z.array(z.string().check(z.maxLength(255))).check(z.maxLength(256)));

/** Every `supervisor.*` operation: its request (the OPEN body) and its result. */
export const SUPERVISOR_OPS = {
  "supervisor.status": {
    request: lazySchema(() => z.object({ op: z.literal("supervisor.status") })),
    result: lazySchema(() => z.object({
      sandbox: z.string(),
      supervisorPid: int,
      vmmPid: int,
      agentConnected: z.boolean(),
      vmm: z.object({ state: z.string(), detail: z.string() }),
    })),
  },
  /** Powers the guest off; the supervisor records the stop and then hangs up on every client. */
  "supervisor.stop": { request: lazySchema(() => z.object({ op: z.literal("supervisor.stop") })), result: empty },
  /** Kills the VM and removes the sandbox; answered first, done behind the caller. */
  "supervisor.destroy": { request: lazySchema(() => z.object({ op: z.literal("supervisor.destroy") })), result: empty },
  "supervisor.pause": { request: lazySchema(() => z.object({ op: z.literal("supervisor.pause") })), result: empty },
  "supervisor.resume": { request: lazySchema(() => z.object({ op: z.literal("supervisor.resume") })), result: empty },
  "supervisor.expose": {
    request: lazySchema(() => z.object({ op: z.literal("supervisor.expose"), guestPort: port, hostPort: z.optional(portOrAny) })),
    result: PortForwardInfo,
  },
  "supervisor.close": { request: lazySchema(() => z.object({ op: z.literal("supervisor.close"), hostPort: port })), result: PortForwardInfo },
  "supervisor.ports": { request: lazySchema(() => z.object({ op: z.literal("supervisor.ports") })), result: lazySchema(() => z.object({ ports: z.array(PortForwardInfo) })) },
  /**
   * Pauses the VM (unless it is paused), writes its state and a copy of its disk into `dir` (an
   * empty directory under the smolvm home's snapshots or warm templates), and runs it again;
   * the caller stores them (lib/snapshots/). One at a time per sandbox.
   */
  "supervisor.snapshot": {
    request: lazySchema(() => z.object({ op: z.literal("supervisor.snapshot"), dir: z.string().check(z.startsWith("/")) })),
    result: lazySchema(() => z.object({
      accel: z.enum(["kvm", "hvf", "tcg"]),
      /** How long the guest was stopped for it (0 for a sandbox that was paused already). */
      pausedMs: z.number(),
      wasPaused: z.boolean(),
    })),
  },
  /** The SSH set-up of this boot; with `wait`, answered once it has finished (or `timeoutMs` passed). */
  "supervisor.ssh": {
    request: lazySchema(() => z.object({ op: z.literal("supervisor.ssh"), wait: z.optional(z.boolean()), timeoutMs: z.optional(int.check(z.positive())) })),
    result: SshStatus,
  },
  /** Changes the egress policy of the running sandbox (firewall and DNS at once); answers the policy now in force. */
  "supervisor.network": {
    request: lazySchema(() => z.object({ op: z.literal("supervisor.network"), allow: z.optional(hosts), deny: z.optional(hosts) })),
    result: lazySchema(() => z.object({ allowHosts: z.array(z.string()), denyHosts: z.array(z.string()) })),
  },
} as const;

export type SupervisorOp = keyof typeof SUPERVISOR_OPS;
export type SupervisorRequest<Op extends SupervisorOp> = Omit<z.input<(typeof SUPERVISOR_OPS)[Op]["request"]>, "op">;
export type SupervisorResult<Op extends SupervisorOp> = z.output<(typeof SUPERVISOR_OPS)[Op]["result"]>;

export function isSupervisorOp(op: string): op is SupervisorOp {
  return Object.hasOwn(SUPERVISOR_OPS, op);
}
