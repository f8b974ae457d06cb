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
import { statfsSync } from "node:fs";
import { dirname } from "node:path";
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
  /** The host file system smolvm writes to (its home, a sandbox's disk) is full. */
  "HOST_DISK_FULL",
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

/** The codes that have a subclass of their own: only `smolError` or the subclass builds them. */
export type ClassedErrorCode = keyof typeof ERROR_CLASSES;
/** Codes without a subclass: a plain SmolError carries them. */
export type PlainErrorCode = Exclude<ErrorCode, ClassedErrorCode>;

export class SmolError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  /**
   * Only for codes without a subclass (the type refuses the others, so `instanceof NotFoundError`
   * holds for every NOT_FOUND); `smolError(code, ...)` picks the class for a code known at run time.
   */
  constructor(code: PlainErrorCode, message: string, options: SmolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  /** The shape `--json` prints, the supervisor sends, and the SDK documents. */
  toJSON(): WireError {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

/** An error as it travels between processes (the supervisor's ERROR frames) and in `--json`. */
export interface WireError {
  code: ErrorCode;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

/** Lets a subclass hand its own code to the base constructor, which refuses classed codes. */
const own = (code: ClassedErrorCode) => code as unknown as PlainErrorCode;

/** A value from the user (flag, config field, SDK option) is not acceptable. */
export class InvalidInputError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("INVALID_INPUT"), message, options);
  }
}

/** The command line itself is malformed (unknown flag, missing argument): exit code 2. */
export class UsageError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("USAGE"), message, options);
  }
}

/** A named thing (sandbox, image, kernel, file in the guest, port forward) does not exist. */
export class NotFoundError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("NOT_FOUND"), message, options);
  }
}

/** A name or a port is taken already. */
export class AlreadyExistsError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("ALREADY_EXISTS"), message, options);
  }
}

/** The sandbox exists but is not running (or is paused), so the operation cannot reach it. */
export class NotRunningError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("NOT_RUNNING"), message, options);
  }
}

/** A deadline passed: boot, command, transfer or shutdown. */
export class TimeoutError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("TIMEOUT"), message, options);
  }
}

/** The VMM cannot be used on this host (missing binary, no KVM, wrong platform, not built yet). */
export class BackendUnavailableError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("BACKEND_UNAVAILABLE"), message, options);
  }
}

/** The guest agent does not answer, went away mid-operation, or spoke out of protocol. */
export class AgentUnavailableError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("AGENT_UNAVAILABLE"), message, options);
  }
}

/** The control channel asked for (agent or SSH) cannot carry commands to this sandbox. */
export class ChannelUnavailableError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("CHANNEL_UNAVAILABLE"), message, options);
  }
}

/** An external program smolvm relies on failed (qemu-img, mkfs.ext4, make, apt-get). */
export class CommandFailedError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("COMMAND_FAILED"), message, options);
  }
}

/** A host program or package smolvm needs is not installed. */
export class HostDependencyMissingError extends SmolError {
  constructor(message: string, options: SmolErrorOptions = {}) {
    super(own("HOST_DEPENDENCY_MISSING"), message, options);
  }
}

/** The one table from an error code to its class, for local and wire errors alike. */
export const ERROR_CLASSES = {
  INVALID_INPUT: InvalidInputError,
  USAGE: UsageError,
  NOT_FOUND: NotFoundError,
  ALREADY_EXISTS: AlreadyExistsError,
  NOT_RUNNING: NotRunningError,
  TIMEOUT: TimeoutError,
  BACKEND_UNAVAILABLE: BackendUnavailableError,
  AGENT_UNAVAILABLE: AgentUnavailableError,
  CHANNEL_UNAVAILABLE: ChannelUnavailableError,
  COMMAND_FAILED: CommandFailedError,
  HOST_DEPENDENCY_MISSING: HostDependencyMissingError,
} as const satisfies Partial<Record<ErrorCode, new (message: string, options?: SmolErrorOptions) => SmolError>>;

function isClassed(code: ErrorCode): code is ClassedErrorCode {
  return code in ERROR_CLASSES;
}

/** A SmolError of the class `code` has, for a code known only at run time. */
export function smolError(code: ErrorCode, message: string, options: SmolErrorOptions = {}): SmolError {
  return isClassed(code) ? new ERROR_CLASSES[code](message, options) : new SmolError(code, message, options);
}

/** An error another process sent (`toJSON()`'s shape); an unknown code becomes INTERNAL. */
export function fromWire(body: { code?: unknown; message?: unknown; hint?: unknown; details?: unknown }): SmolError {
  const code = isErrorCode(body.code) ? body.code : "INTERNAL";
  const message = typeof body.message === "string" && body.message !== "" ? body.message : `failed with ${String(body.code)}`;
  return smolError(code, message, {
    ...(typeof body.hint === "string" ? { hint: body.hint } : {}),
    ...(typeof body.details === "object" && body.details !== null ? { details: body.details as Record<string, unknown> } : {}),
  });
}

/** Bytes a non-root user may still write on the file system holding `path` (its nearest existing ancestor). */
export function freeBytes(path: string): number | undefined {
  for (let at = path; ; at = dirname(at)) {
    try {
      const fs = statfsSync(at);
      return fs.bavail * fs.bsize;
    } catch {
      if (dirname(at) === at) return undefined;
    }
  }
}

function mib(bytes: number): string {
  return bytes < 1024 * 1024 ? `${bytes} bytes` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * The host's file system ran out of space writing `path`: says where, how much is free and, when
 * known, how much the write needed.
 */
export function diskFullError(path: string, options: { neededBytes?: number; action?: string; cause?: unknown } = {}): SmolError {
  const free = freeBytes(path);
  const room = [free === undefined ? undefined : `${mib(free)} free`, options.neededBytes === undefined ? undefined : `${mib(options.neededBytes)} needed`]
    .filter(Boolean).join(", ");
  return new SmolError("HOST_DISK_FULL", `${options.action ?? `Cannot write "${path}"`}: the host file system is full${room ? ` (${room})` : ""}`, {
    hint: `free space on the file system holding "${path}" (or point SMOLVM_HOME at a bigger one), then try again; nothing was lost`,
    details: { path, ...(free === undefined ? {} : { freeBytes: free }), ...(options.neededBytes === undefined ? {} : { neededBytes: options.neededBytes }) },
    ...(options.cause === undefined ? {} : { cause: options.cause }),
  });
}

/** Wraps anything thrown that is not a SmolError, keeping the original as the cause. */
export function toSmolError(error: unknown): SmolError {
  if (error instanceof SmolError) return error;
  const errno = error as NodeJS.ErrnoException | undefined;
  if (errno?.code === "ENOSPC" || errno?.code === "EDQUOT") return diskFullError(errno.path ?? dirname(paths.stateDb()), { cause: error });
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
