/**
 * The error tree every smolvm failure is reported through.
 *
 * Each error carries a stable `code` (what scripts branch on), a `message` that names the failed
 * action first and the cause after a colon, and a `hint` that says what to do about it:
 *
 *   Cannot start sandbox "dev": /dev/kvm is not accessible (hint: add your user to group kvm)
 *
 * Subclasses exist only where a caller will branch on them. Anything else is a plain
 * `SmolError` with a specific code.
 */
import { paths } from "./paths.ts";

export const ERROR_CODES = [
  "INVALID_INPUT",
  "USAGE",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "NOT_RUNNING",
  "TIMEOUT",
  "BACKEND_UNAVAILABLE",
  "AGENT_UNAVAILABLE",
  "CHANNEL_UNAVAILABLE",
  "COMMAND_FAILED",
  "HOST_DEPENDENCY_MISSING",
  "STATE_CORRUPT",
  "RESOURCE_EXHAUSTED",
  "IO_ERROR",
  /** A file does not match what vouches for it: a checksum, a signature, dpkg's record. */
  "INTEGRITY_FAILED",
  "INTERNAL",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);
}

export interface SmolErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Structured facts for `--json` output and the log (field names, paths, pids). */
  details?: Record<string, unknown>;
}

export class SmolError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: SmolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  /** The shape `--json` prints and the SDK documents. */
  toJSON(): { code: ErrorCode; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

/** A value from the user (flag, config field, SDK option) is not acceptable. */
export class InvalidInputError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super("INVALID_INPUT", message, options);
  }
}

/** The command line itself is malformed (unknown flag, missing argument): exit code 2. */
export class UsageError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super("USAGE", message, options);
  }
}

/** A named thing (sandbox, image, kernel, file in the guest) does not exist. */
export class NotFoundError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super("NOT_FOUND", message, options);
  }
}

/** The sandbox exists but is not running, so the operation cannot reach it. */
export class NotRunningError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super("NOT_RUNNING", message, options);
  }
}

/** A deadline passed: boot, command, transfer or shutdown. */
export class TimeoutError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super("TIMEOUT", message, options);
  }
}

/** The VMM cannot be used on this host (missing binary, no KVM, wrong platform). */
export class BackendUnavailableError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super("BACKEND_UNAVAILABLE", message, options);
  }
}

/** The guest agent does not answer, went away mid-operation, or spoke out of protocol. */
export class AgentUnavailableError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super("AGENT_UNAVAILABLE", message, options);
  }
}

/** An external program smolvm relies on failed (qemu-img, mkfs.ext4, make, apt-get). */
export class CommandFailedError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super("COMMAND_FAILED", message, options);
  }
}

/** Wraps anything thrown that is not a SmolError, keeping the original as the cause. */
export function toSmolError(error: unknown): SmolError {
  if (error instanceof SmolError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new SmolError("INTERNAL", `Unexpected failure: ${message}`, {
    cause: error,
    hint: `this is a bug in smolvm; the stack trace is in ${paths.logFile()}, please include it in a report`,
  });
}

/** Exit status for a failure: 2 for usage mistakes, 1 for everything else. */
export function exitCodeFor(error: SmolError): number {
  return error.code === "USAGE" ? 2 : 1;
}
