/**
 * The one table from agent error codes (PROTOCOL.md) to smolvm's error codes, whose classes come
 * from errors.ts's table. The agent's code is kept in `details.agentCode` for callers that need
 * the finer distinction (IS_DIRECTORY vs NOT_REGULAR both surface as INVALID_INPUT). A code that
 * is smolvm's own already (the supervisor's answers: ALREADY_EXISTS, NOT_RUNNING...) passes
 * through with its hint.
 */
import { AgentUnavailableError, isErrorCode, smolError, type ErrorCode, type SmolError } from "../errors.ts";
import { printable } from "../util/printable.ts";
import type { z } from "../zod.ts";
import type { Frame } from "./frame.ts";
import type { AgentErrorPayload } from "./messages.ts";

const TABLE: Record<string, { code: ErrorCode; hint?: string }> = {
  NOT_FOUND: { code: "NOT_FOUND" },
  IS_DIRECTORY: { code: "INVALID_INPUT" },
  NOT_REGULAR: { code: "INVALID_INPUT", hint: "only regular files can be copied" },
  BAD_REQUEST: { code: "INVALID_INPUT" },
  PERMISSION_DENIED: { code: "IO_ERROR" },
  NO_SPACE: { code: "RESOURCE_EXHAUSTED", hint: "free space in the sandbox or give it a bigger disk" },
  RESOURCE_EXHAUSTED: { code: "RESOURCE_EXHAUSTED" },
  TOO_MANY_STREAMS: { code: "RESOURCE_EXHAUSTED", hint: "wait for some running commands or transfers to finish" },
  CONNECTION_REFUSED: { code: "IO_ERROR", hint: "nothing listens on that port inside the sandbox" },
  IO_ERROR: { code: "IO_ERROR" },
  UNKNOWN_OP: {
    code: "AGENT_UNAVAILABLE",
    hint: "the guest agent is older than this smolvm: rebuild or update the sandbox image",
  },
  UNKNOWN_TYPE: { code: "AGENT_UNAVAILABLE" },
  BAD_FRAME: { code: "AGENT_UNAVAILABLE" },
  HELLO_REQUIRED: { code: "AGENT_UNAVAILABLE" },
  STREAM_IN_USE: { code: "AGENT_UNAVAILABLE" },
  FLOW_CONTROL: { code: "AGENT_UNAVAILABLE" },
  CANCELLED: { code: "INTERNAL" },
  INTERNAL: { code: "INTERNAL" },
};

function capitalize(s: string): string {
  return s.length ? s[0]!.toUpperCase() + s.slice(1) : s;
}

/** A SmolError for an ERROR frame the agent sent about one operation. */
export function agentError(payload: AgentErrorPayload, op: string): SmolError {
  const entry = TABLE[payload.code] ?? { code: isErrorCode(payload.code) ? payload.code : "INTERNAL" as ErrorCode };
  // The words are the guest's: shown to a person, so made printable and kept short.
  const message = capitalize(printable(payload.message, 1000)) || `Guest agent ${op} failed with ${printable(payload.code, 64)}`;
  const hint = payload.hint === undefined ? entry.hint : printable(payload.hint, 1000);
  const options = { ...(hint === undefined ? {} : { hint }), details: { agentCode: payload.code, op } };
  return smolError(entry.code, message, options);
}

export const AGENT_GONE_HINT =
  "the sandbox may have stopped or restarted: check its status and its console log";

/** The error every pending call gets when the connection drops. */
export function connectionLost(why: string, cause?: unknown): AgentUnavailableError {
  return new AgentUnavailableError(`Lost the connection to the guest agent: ${why}`, {
    hint: AGENT_GONE_HINT,
    cause,
  });
}

export const PROTOCOL_VIOLATION_HINT =
  "nothing more it says can be trusted: delete the sandbox (its image, or something running in it as root, may be hostile), or rebuild its image";

/**
 * The guest agent did something the protocol forbids (data beyond its credit, a frame type only
 * the host sends): the connection is cut, since nothing it says afterwards can be trusted.
 */
/** A frame's JSON payload; a payload that is not JSON breaks the protocol. */
export function frameJson(frame: Frame): unknown {
  try {
    return JSON.parse(frame.payload.toString("utf8"));
  } catch (error) {
    throw new AgentUnavailableError(`The guest agent sent invalid JSON in a frame of type ${frame.type}`, { cause: error });
  }
}

/** A message that does not match its schema. */
export function invalidMessage(what: string, error: z.ZodError): AgentUnavailableError {
  return new AgentUnavailableError(`The guest agent sent an invalid ${what}: ${error.issues[0]?.message}`, {
    hint: "the guest agent and this smolvm disagree on the protocol: rebuild the image",
    cause: error,
  });
}

/** A message checked against `schema`, unless its sender checked it already; a bad one is thrown. */
export function checkedMessage<T>(schema: z.ZodMiniType<T>, body: unknown, what: string, checkedAlready: boolean): T {
  if (checkedAlready) return body as T;
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw invalidMessage(what, parsed.error);
  return parsed.data;
}

export function protocolViolation(what: string): AgentUnavailableError {
  return new AgentUnavailableError(`The guest agent broke the protocol: ${what}`, {
    hint: PROTOCOL_VIOLATION_HINT,
    details: { violation: what },
  });
}

/** The error every pending call gets when a sandbox's supervisor connection drops without a word. */
export function supervisorLost(sandbox: string, pid: number, why: string, cause?: unknown): AgentUnavailableError {
  return new AgentUnavailableError(`Lost the connection to the supervisor of sandbox ${sandbox} (pid ${pid}): ${why}`, {
    hint: `\`smolvm info ${sandbox}\` shows its state; the supervisor's log is supervisor.log in the sandbox's directory`,
    cause,
  });
}
