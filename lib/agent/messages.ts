/**
 * Zod schemas for every JSON control message of the agent protocol (guest-agent/PROTOCOL.md).
 * The client validates what it sends and everything it receives, so a drift between the C
 * agent and this file fails loudly in tests instead of corrupting a result.
 */
import { lazySchema, z } from "../zod.ts";
import { SupervisorInfo } from "./supervisor-messages.ts";

export const PROTOCOL = 1;
/** The largest frame payload the protocol allows (PROTOCOL.md, `limits.maxFrame`). */
const MAX_FRAME_PAYLOAD = 65536;
/** The largest credit window a host accepts from an agent's HELLO (the protocol's is 256 KiB). */
export const MAX_INITIAL_WINDOW = 1024 * 1024;

// Every schema here is built on first use (lazySchema): a CLI call sends one or two
// kinds of request, reads a few kinds of answer, and exits; building the rest cost it milliseconds.
const int = lazySchema(() => z.int());
const nonNegInt = lazySchema(() => int.check(z.nonnegative()));
const posInt = lazySchema(() => int.check(z.positive()));
const intIn = (min: number, max: number) => int.check(z.minimum(min), z.maximum(max));

// ---- HELLO ----

export const HostHello = lazySchema(() => z.object({
  protocol: z.literal(PROTOCOL),
  nonce: z.string().check(z.minLength(1), z.maxLength(128)),
  client: z.optional(z.string()),
  /** Wall-clock ms; a PID-1 agent sets its clock from it. */
  timeMs: z.optional(z.number().check(z.positive())),
}));
export type HostHello = z.infer<typeof HostHello>;

export const AgentHello = lazySchema(() => z.object({
  protocol: int,
  agentVersion: z.string(),
  nonce: z.string(),
  arch: z.string(),
  pid1: z.boolean(),
  /** CLOCK_BOOTTIME in ms when the agent answered: how long the guest took to be ready. */
  bootTimeMs: z.number(),
  capabilities: z.array(z.string()),
  /**
   * Bounded here, not only typed: the window is how much a guest may send on one channel before
   * the host grants more, so an agent that claimed a huge one would claim unbounded host memory.
   */
  limits: z.object({
    maxFrame: posInt.check(z.maximum(MAX_FRAME_PAYLOAD)),
    initialWindow: posInt.check(z.maximum(MAX_INITIAL_WINDOW)),
    maxStreams: posInt,
  }),
  /** Present when the answer comes through a sandbox's supervisor (lib/agent/supervisor-messages.ts). */
  supervisor: z.optional(SupervisorInfo),
}));
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

export const AgentErrorPayload = lazySchema(() => z.object({
  /** One of AGENT_ERROR_CODES; kept open so a newer agent's codes still parse. */
  code: z.string().check(z.minLength(1)),
  message: z.string(),
  stream: z.optional(nonNegInt),
  /** What to do about it: sent by the supervisor, whose refusals are smolvm's own errors. */
  hint: z.optional(z.string()),
}));
export type AgentErrorPayload = z.infer<typeof AgentErrorPayload>;

// ---- requests (OPEN) ----

export const PtySpec = lazySchema(() => z.object({
  rows: z.optional(intIn(1, 65535)),
  cols: z.optional(intIn(1, 65535)),
  term: z.optional(z.string()),
}));

export const ExecRequest = lazySchema(() => z
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
  })));

export const WriteFileRequest = lazySchema(() => z.object({
  op: z.literal("writeFile"),
  path: z.string().check(z.startsWith("/")),
  mode: z.optional(intIn(0, 0o7777)),
  mkdirParents: z.optional(z.boolean()),
}));

export const ReadFileRequest = lazySchema(() => z.object({ op: z.literal("readFile"), path: z.string().check(z.startsWith("/")) }));

export const EnvSetRequest = lazySchema(() => z.object({ op: z.literal("env.set"), vars: z.record(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/)), z.string()) }));
export const EnvUnsetRequest = lazySchema(() => z.object({ op: z.literal("env.unset"), names: z.array(z.string()) }));
export const EnvListRequest = lazySchema(() => z.object({ op: z.literal("env.list") }));

export const ForwardRequest = lazySchema(() => z.object({
  op: z.literal("forward"),
  port: intIn(1, 65535),
  host: z.optional(z.ipv4()),
}));

export const PingRequest = lazySchema(() => z.object({ op: z.literal("ping") }));
export const SetTimeRequest = lazySchema(() => z.object({ op: z.literal("setTime"), timeMs: posInt }));
export const ReseedRequest = lazySchema(() => z.object({ op: z.literal("reseed"), data: z.base64() }));
/** After a snapshot restore: the clock, the RNG, the hostname, the boot id and eth0 of a new machine. */
export const IdentityRequest = lazySchema(() => z.object({
  op: z.literal("identity"),
  timeMs: posInt,
  seed: z.base64(),
  hostname: z.optional(z.string().check(z.regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/))),
  ip: z.optional(z.string().check(z.regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/))),
  gw: z.optional(z.ipv4()),
  dns: z.optional(z.ipv4()),
}));
export const SyncRequest = lazySchema(() => z.object({ op: z.literal("sync") }));
export const ShutdownRequest = lazySchema(() => z.object({
  op: z.literal("shutdown"),
  action: z.optional(z.enum(["reboot", "poweroff"])),
  answer: z.optional(z.enum(["before", "synced"])),
}));

/** Every request the agent answers, by its op. */
const REQUESTS = {
  exec: ExecRequest,
  writeFile: WriteFileRequest,
  readFile: ReadFileRequest,
  "env.set": EnvSetRequest,
  "env.unset": EnvUnsetRequest,
  "env.list": EnvListRequest,
  forward: ForwardRequest,
  ping: PingRequest,
  setTime: SetTimeRequest,
  reseed: ReseedRequest,
  identity: IdentityRequest,
  sync: SyncRequest,
  shutdown: ShutdownRequest,
} as const;

export type AgentRequest = z.infer<(typeof REQUESTS)[keyof typeof REQUESTS]>;

/** Checks a request against the schema of its op. */
export const AgentRequest = {
  safeParse(input: unknown): { success: true; data: AgentRequest } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } {
    const op = typeof input === "object" && input !== null ? (input as { op?: unknown }).op : undefined;
    if (typeof op !== "string" || !Object.hasOwn(REQUESTS, op)) {
      return { success: false, error: { issues: [{ path: ["op"], message: `unknown op ${JSON.stringify(op)}` }] } };
    }
    const parsed = REQUESTS[op as keyof typeof REQUESTS].safeParse(input);
    return parsed.success ? { success: true, data: parsed.data as AgentRequest } : { success: false, error: parsed.error };
  },
};

/** What is wrong with a request, in words (`Invalid exec request: timeoutMs: ...`), or undefined. */
export function requestProblem(request: { op?: unknown }): string | undefined {
  const parsed = AgentRequest.safeParse(request);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0];
  return `Invalid ${String(request.op)} request: ${issue?.path.join(".") || "request"}: ${issue?.message}`;
}

// ---- CONTROL ----

export const SignalControl = lazySchema(() => z.object({ op: z.literal("signal"), signal: z.union([z.string().check(z.minLength(1)), intIn(1, 64)]) }));
export const ResizeControl = lazySchema(() => z.object({ op: z.literal("resize"), rows: intIn(1, 65535), cols: intIn(1, 65535) }));
export type AgentControl = z.infer<typeof SignalControl> | z.infer<typeof ResizeControl>;

// ---- EVENT ----

export const StartedEvent = lazySchema(() => z.object({ event: z.literal("started"), pid: posInt }));
export const FileEvent = lazySchema(() => z.object({ event: z.literal("file"), size: nonNegInt, mode: intIn(0, 0o7777) }));
export const ConnectedEvent = lazySchema(() => z.object({ event: z.literal("connected") }));
export const AgentEvent = lazySchema(() => z.discriminatedUnion("event", [StartedEvent, FileEvent, ConnectedEvent]));
export type AgentEvent = z.infer<typeof AgentEvent>;

// ---- RESULT ----

export const ExecResultMessage = lazySchema(() => z.object({
  exitCode: z.nullable(int),
  /** Signal name without "SIG" ("KILL") when the process was killed. */
  signal: z.nullable(z.string()),
  timedOut: z.boolean(),
  durationMs: nonNegInt,
}));
export const SizeResult = lazySchema(() => z.object({ size: nonNegInt }));
export const EnvResult = lazySchema(() => z.object({ vars: z.record(z.string(), z.string()) }));
export const PingResult = lazySchema(() => z.object({ timeMs: z.number(), bootTimeMs: z.number() }));
export const SetTimeResult = lazySchema(() => z.object({ applied: z.boolean() }));
export const ReseedResult = lazySchema(() => z.object({ bytes: nonNegInt, credited: z.boolean(), reseeded: z.optional(z.boolean()) }));
/** `applied` is false in a test-mode agent; `bootId` (a UUID, 64 characters at most from any guest) is empty when the agent could not set one. */
export const IdentityResult = lazySchema(() => z.object({ applied: z.boolean(), bootId: z.optional(z.string().check(z.maxLength(64))), reseeded: z.optional(z.boolean()) }));
export const EmptyResult = lazySchema(() => z.object({}));
export const ShutdownResult = lazySchema(() => z.object({ synced: z.optional(z.boolean()) }));

/**
 * What the agent answers each op with (its RESULT). `readFile` and `forward` answer `{}`, which
 * nothing reads: unchecked.
 */
const RESULTS: Readonly<Record<string, z.ZodMiniType | undefined>> = {
  exec: ExecResultMessage,
  writeFile: SizeResult,
  "env.set": EnvResult,
  "env.unset": EnvResult,
  "env.list": EnvResult,
  ping: PingResult,
  setTime: SetTimeResult,
  reseed: ReseedResult,
  identity: IdentityResult,
  sync: EmptyResult,
  shutdown: ShutdownResult,
};

/** A control message of the agent's on a stream of `op`: an EVENT, the RESULT, or an ERROR. */
export type AgentAnswer = "event" | "result" | "error";

/**
 * The agent's message, checked against its schema: the value to use, or what is wrong with it.
 * The one check of everything a guest says on a stream, made where it enters the host: by the
 * sandbox's supervisor (whose clients then trust what it passes on), or by a client that talks
 * to an agent itself.
 */
export function checkAnswer(op: string, kind: AgentAnswer, body: unknown): { value: unknown } | { problem: string } {
  const schema: z.ZodMiniType | undefined = kind === "event" ? AgentEvent : kind === "error" ? AgentErrorPayload : RESULTS[op];
  if (schema === undefined) return { value: body };
  const parsed = schema.safeParse(body);
  if (parsed.success) return { value: parsed.data };
  const issue = parsed.error.issues[0];
  const what = kind === "event" ? "EVENT" : kind === "error" ? "ERROR" : `${op} RESULT`;
  return { problem: `its ${what} is not valid (${issue?.path.join(".") || "message"}: ${issue?.message})` };
}
