/**
 * Zod schemas for every JSON control message of the agent protocol (guest-agent/PROTOCOL.md).
 * The client validates what it sends and everything it receives, so a drift between the C
 * agent and this file fails loudly in tests instead of corrupting a result.
 */
import { z } from "../zod.ts";
import { SupervisorInfo } from "./supervisor-messages.ts";

export const PROTOCOL = 1;

const int = z.int();
const nonNegInt = int.check(z.nonnegative());
const posInt = int.check(z.positive());
const intIn = (min: number, max: number) => int.check(z.minimum(min), z.maximum(max));

// ---- HELLO ----

export const HostHello = z.object({
  protocol: z.literal(PROTOCOL),
  nonce: z.string().check(z.minLength(1), z.maxLength(128)),
  client: z.optional(z.string()),
  /** Wall-clock ms; a PID-1 agent sets its clock from it. */
  timeMs: z.optional(z.number().check(z.positive())),
});
export type HostHello = z.infer<typeof HostHello>;

export const AgentHello = z.object({
  protocol: int,
  agentVersion: z.string(),
  nonce: z.string(),
  arch: z.string(),
  pid1: z.boolean(),
  /** CLOCK_BOOTTIME in ms when the agent answered: how long the guest took to be ready. */
  bootTimeMs: z.number(),
  capabilities: z.array(z.string()),
  limits: z.object({
    maxFrame: posInt,
    initialWindow: posInt,
    maxStreams: posInt,
  }),
  /** Present when the answer comes through a sandbox's supervisor (lib/agent/supervisor-messages.ts). */
  supervisor: z.optional(SupervisorInfo),
});
export type AgentHello = z.infer<typeof AgentHello>;

// ---- errors ----

export const AGENT_ERROR_CODES = [
  "BAD_FRAME",
  "HELLO_REQUIRED",
  "UNKNOWN_TYPE",
  "UNKNOWN_OP",
  "BAD_REQUEST",
  "STREAM_IN_USE",
  "TOO_MANY_STREAMS",
  "FLOW_CONTROL",
  "CANCELLED",
  "NOT_FOUND",
  "IS_DIRECTORY",
  "NOT_REGULAR",
  "PERMISSION_DENIED",
  "NO_SPACE",
  "RESOURCE_EXHAUSTED",
  "CONNECTION_REFUSED",
  "IO_ERROR",
  "INTERNAL",
] as const;
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

export const AgentErrorPayload = z.object({
  /** One of AGENT_ERROR_CODES; kept open so a newer agent's codes still parse. */
  code: z.string().check(z.minLength(1)),
  message: z.string(),
  stream: z.optional(nonNegInt),
  /** What to do about it: sent by the supervisor, whose refusals are smolvm's own errors. */
  hint: z.optional(z.string()),
});
export type AgentErrorPayload = z.infer<typeof AgentErrorPayload>;

// ---- requests (OPEN) ----

export const PtySpec = z.object({
  rows: z.optional(intIn(1, 65535)),
  cols: z.optional(intIn(1, 65535)),
  term: z.optional(z.string()),
});

export const ExecRequest = z
  .object({
    op: z.literal("exec"),
    argv: z.optional(z.array(z.string()).check(z.minLength(1))),
    shell: z.optional(z.string()),
    env: z.optional(z.record(z.string(), z.string())),
    cwd: z.optional(z.string()),
    stdin: z.optional(z.boolean()),
    timeoutMs: z.optional(nonNegInt),
    pty: z.optional(PtySpec),
  })
  .check(z.refine((r) => (r.argv === undefined) !== (r.shell === undefined), {
    message: "exactly one of argv and shell is required",
  }));

export const WriteFileRequest = z.object({
  op: z.literal("writeFile"),
  path: z.string().check(z.startsWith("/")),
  mode: z.optional(intIn(0, 0o7777)),
  mkdirParents: z.optional(z.boolean()),
});

export const ReadFileRequest = z.object({ op: z.literal("readFile"), path: z.string().check(z.startsWith("/")) });

const envName = z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/));
export const EnvSetRequest = z.object({ op: z.literal("env.set"), vars: z.record(envName, z.string()) });
export const EnvUnsetRequest = z.object({ op: z.literal("env.unset"), names: z.array(z.string()) });
export const EnvListRequest = z.object({ op: z.literal("env.list") });

export const ForwardRequest = z.object({
  op: z.literal("forward"),
  port: intIn(1, 65535),
  host: z.optional(z.ipv4()),
});

export const PingRequest = z.object({ op: z.literal("ping") });
export const SetTimeRequest = z.object({ op: z.literal("setTime"), timeMs: posInt });
export const ReseedRequest = z.object({ op: z.literal("reseed"), data: z.base64() });
export const SyncRequest = z.object({ op: z.literal("sync") });
export const ShutdownRequest = z.object({
  op: z.literal("shutdown"),
  action: z.optional(z.enum(["reboot", "poweroff"])),
  answer: z.optional(z.enum(["before", "synced"])),
});

export const AgentRequest = z.discriminatedUnion("op", [
  ExecRequest,
  WriteFileRequest,
  ReadFileRequest,
  EnvSetRequest,
  EnvUnsetRequest,
  EnvListRequest,
  ForwardRequest,
  PingRequest,
  SetTimeRequest,
  ReseedRequest,
  SyncRequest,
  ShutdownRequest,
]);
export type AgentRequest = z.infer<typeof AgentRequest>;

// ---- CONTROL ----

export const SignalControl = z.object({ op: z.literal("signal"), signal: z.union([z.string().check(z.minLength(1)), intIn(1, 64)]) });
export const ResizeControl = z.object({ op: z.literal("resize"), rows: intIn(1, 65535), cols: intIn(1, 65535) });
export const AgentControl = z.discriminatedUnion("op", [SignalControl, ResizeControl]);
export type AgentControl = z.infer<typeof AgentControl>;

// ---- EVENT ----

export const StartedEvent = z.object({ event: z.literal("started"), pid: posInt });
export const FileEvent = z.object({ event: z.literal("file"), size: nonNegInt, mode: intIn(0, 0o7777) });
export const ConnectedEvent = z.object({ event: z.literal("connected") });
export const AgentEvent = z.discriminatedUnion("event", [StartedEvent, FileEvent, ConnectedEvent]);
export type AgentEvent = z.infer<typeof AgentEvent>;

// ---- RESULT ----

export const ExecResultMessage = z.object({
  exitCode: z.nullable(int),
  /** Signal name without "SIG" ("KILL") when the process was killed. */
  signal: z.nullable(z.string()),
  timedOut: z.boolean(),
  durationMs: nonNegInt,
});
export const SizeResult = z.object({ size: nonNegInt });
export const EnvResult = z.object({ vars: z.record(z.string(), z.string()) });
export const PingResult = z.object({ timeMs: z.number(), bootTimeMs: z.number() });
export const SetTimeResult = z.object({ applied: z.boolean() });
export const ReseedResult = z.object({ bytes: nonNegInt, credited: z.boolean() });
export const EmptyResult = z.object({});
export const ShutdownResult = z.object({ synced: z.optional(z.boolean()) });
