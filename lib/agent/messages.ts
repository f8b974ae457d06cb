/**
 * Zod schemas for every JSON control message of the agent protocol (guest-agent/PROTOCOL.md).
 * The client validates what it sends and everything it receives, so a drift between the C
 * agent and this file fails loudly in tests instead of corrupting a result.
 */
import { z } from "zod";

export const PROTOCOL = 1;

const int = z.number().int();
const nonNegInt = int.nonnegative();

// ---- HELLO ----

export const HostHello = z.object({
  protocol: z.literal(PROTOCOL),
  nonce: z.string().min(1).max(128),
  client: z.string().optional(),
  /** Wall-clock ms; a PID-1 agent sets its clock from it. */
  timeMs: z.number().positive().optional(),
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
    maxFrame: int.positive(),
    initialWindow: int.positive(),
    maxStreams: int.positive(),
  }),
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
  code: z.string().min(1),
  message: z.string(),
  stream: nonNegInt.optional(),
});
export type AgentErrorPayload = z.infer<typeof AgentErrorPayload>;

// ---- requests (OPEN) ----

export const PtySpec = z.object({
  rows: int.min(1).max(65535).optional(),
  cols: int.min(1).max(65535).optional(),
  term: z.string().optional(),
});

export const ExecRequest = z
  .object({
    op: z.literal("exec"),
    argv: z.array(z.string()).min(1).optional(),
    shell: z.string().optional(),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().optional(),
    stdin: z.boolean().optional(),
    timeoutMs: nonNegInt.optional(),
    pty: PtySpec.optional(),
  })
  .refine((r) => (r.argv === undefined) !== (r.shell === undefined), {
    message: "exactly one of argv and shell is required",
  });

export const WriteFileRequest = z.object({
  op: z.literal("writeFile"),
  path: z.string().startsWith("/"),
  mode: int.min(0).max(0o7777).optional(),
  mkdirParents: z.boolean().optional(),
});

export const ReadFileRequest = z.object({ op: z.literal("readFile"), path: z.string().startsWith("/") });

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/);
export const EnvSetRequest = z.object({ op: z.literal("env.set"), vars: z.record(envName, z.string()) });
export const EnvUnsetRequest = z.object({ op: z.literal("env.unset"), names: z.array(z.string()) });
export const EnvListRequest = z.object({ op: z.literal("env.list") });

export const ForwardRequest = z.object({
  op: z.literal("forward"),
  port: int.min(1).max(65535),
  host: z.ipv4().optional(),
});

export const PingRequest = z.object({ op: z.literal("ping") });
export const SetTimeRequest = z.object({ op: z.literal("setTime"), timeMs: int.positive() });
export const ReseedRequest = z.object({ op: z.literal("reseed"), data: z.base64() });
export const SyncRequest = z.object({ op: z.literal("sync") });
export const ShutdownRequest = z.object({
  op: z.literal("shutdown"),
  action: z.enum(["reboot", "poweroff"]).optional(),
  answer: z.enum(["before", "synced"]).optional(),
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

export const SignalControl = z.object({ op: z.literal("signal"), signal: z.union([z.string().min(1), int.min(1).max(64)]) });
export const ResizeControl = z.object({ op: z.literal("resize"), rows: int.min(1).max(65535), cols: int.min(1).max(65535) });
export const AgentControl = z.discriminatedUnion("op", [SignalControl, ResizeControl]);
export type AgentControl = z.infer<typeof AgentControl>;

// ---- EVENT ----

export const StartedEvent = z.object({ event: z.literal("started"), pid: int.positive() });
export const FileEvent = z.object({ event: z.literal("file"), size: nonNegInt, mode: int.min(0).max(0o7777) });
export const ConnectedEvent = z.object({ event: z.literal("connected") });
export const AgentEvent = z.discriminatedUnion("event", [StartedEvent, FileEvent, ConnectedEvent]);
export type AgentEvent = z.infer<typeof AgentEvent>;

// ---- RESULT ----

export const ExecResultMessage = z.object({
  exitCode: int.nullable(),
  /** Signal name without "SIG" ("KILL") when the process was killed. */
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  durationMs: nonNegInt,
});
export const SizeResult = z.object({ size: nonNegInt });
export const EnvResult = z.object({ vars: z.record(z.string(), z.string()) });
export const PingResult = z.object({ timeMs: z.number(), bootTimeMs: z.number() });
export const SetTimeResult = z.object({ applied: z.boolean() });
export const ReseedResult = z.object({ bytes: nonNegInt, credited: z.boolean() });
export const EmptyResult = z.object({});
export const ShutdownResult = z.object({ synced: z.boolean().optional() });
