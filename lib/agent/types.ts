/** The option and result types of AgentClient, and the running-command handle every channel returns. */
import type { Readable, Writable } from "node:stream";
import type { AgentErrorPayload } from "./messages.ts";

/** The byte stream a session runs over (a node socket or pipe satisfies it as it is). */
export type { ByteStream } from "../host/unix-socket.ts";

export interface AgentConnectOptions<Client = unknown> {
  /** How long to wait for the HELLO answer (default 10 000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Echoed by the agent; random by default. */
  nonce?: string;
  /** Send the resync pad first: for a virtio port whose previous host may have died mid-frame. */
  resync?: boolean;
  /** Ask a PID-1 agent to set its clock (ms since the epoch) while answering HELLO. */
  timeMs?: number;
  /** Connection-level complaints of the agent (a bad CONTROL, an unknown frame type). */
  onAgentError?: (error: AgentErrorPayload) => void;
  /**
   * Called once the HELLO is written, before its answer: operations it starts on the client are
   * sent right behind the HELLO (pipelined), and fail with the HELLO's refusal if it is refused.
   * Only operations that send nothing before they start (an exec without stdin).
   */
  first?: (client: Client) => void;
  /**
   * The peer is a sandbox's supervisor, which checks every request against its schema before the
   * agent sees it and every answer of the agent before passing it on (lib/supervisor/relay.ts):
   * this client skips those checks of its own (a new process that runs one command then builds
   * none of their schemas). A client of an agent itself checks everything.
   */
  supervised?: boolean;
}

/** Per-call limits. `timeoutMs` covers the whole operation, transfer included. */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A pseudo-terminal for a command: its size and TERM. */
export interface PtyOptions {
  rows?: number;
  cols?: number;
  term?: string;
}

/** One command as the channels run it (the SDK's `exec` options plus the command itself). */
export interface ExecSpec {
  /** Program and arguments; argv[0] is looked up on PATH. Exactly one of argv and shell. */
  argv?: string[];
  /** A command line for /bin/sh -c. */
  shell?: string;
  /** Added to the base and managed environment; wins over both. */
  env?: Record<string, string>;
  /** Default /root (or / when missing). */
  cwd?: string;
  /** Give the command a stdin pipe (otherwise /dev/null). */
  stdin?: boolean;
  /**
   * The agent kills the whole process group after this long; the result says timedOut. The host
   * enforces it too: 3 s later it stops waiting (`hostDeadline` in the result).
   */
  timeoutMs?: number;
  /** Run on a pseudo-terminal. */
  pty?: boolean | PtyOptions;
  /** Aborting kills the process group and rejects wait() with the signal's reason. */
  signal?: AbortSignal;
  /** The command's stdout as it comes, instead of in `handle.stdout` (OutputCallback). */
  onStdout?: OutputCallback;
  /** Its stderr as it comes, instead of in `handle.stderr`. */
  onStderr?: OutputCallback;
}

/**
 * Takes a command's output piece by piece, in order (`exec` with `onStdout`/`onStderr`): the
 * handle's stream for it then ends empty, and `wait()` resolves once the last piece was taken.
 * A returned promise holds that stream's further output (and, past the credit window, the
 * command) until it settles; a throw or rejection discards the rest of it and rejects `wait()`.
 */
export type OutputCallback = (chunk: Buffer) => void | Promise<void>;

/** How a command ended. */
export interface ExecResult {
  /** The exit status, or null when the process was killed by a signal. */
  exitCode: number | null;
  /** The killing signal's name without "SIG" ("KILL", "TERM"), or null. */
  signal: string | null;
  /** The process group was killed because `timeoutMs` passed. */
  timedOut: boolean;
  /**
   * The host's own deadline (the timeout plus a grace of 3 s) passed before the guest reported
   * the end: smolvm asked the agent to kill the process group and stopped waiting, without its
   * confirmation. Absent when the guest ended the command itself.
   */
  hostDeadline?: boolean;
  durationMs: number;
}

/** A running command. Read stdout and stderr (or resume() them): unread output stalls it. */
export interface ExecHandle {
  readonly pid: number;
  readonly stdout: Readable;
  /** Empty for a PTY exec: the terminal merges both into stdout. */
  readonly stderr: Readable;
  /** Present when the exec was started with `stdin: true` or a PTY. */
  readonly stdin: Writable | null;
  /** Sends a signal to the command's process group ("TERM", "SIGINT", 9...). */
  signal(signal: string | number): void;
  /** SIGKILL to the whole process group; wait() then reports signal "KILL". */
  kill(): void;
  /** Resizes the PTY (PTY execs only). */
  resize(rows: number, cols: number): void;
  wait(): Promise<ExecResult>;
}

export interface AgentRunOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Fed to the command's stdin, which is then closed. */
  stdin?: string | Uint8Array | Readable;
  timeoutMs?: number;
  signal?: AbortSignal;
  pty?: ExecSpec["pty"];
  /**
   * The most output (stdout and stderr together) to collect; past it the command is killed and
   * the call fails with RESOURCE_EXHAUSTED. Default 256 MiB.
   */
  maxOutputBytes?: number;
  /** "utf8" (default) gives strings; "buffer" gives Buffers. */
  encoding?: "utf8" | "buffer";
}

export interface AgentRunResult<T extends string | Buffer = string> extends ExecResult {
  stdout: T;
  stderr: T;
}

export interface AgentWriteOptions extends CallOptions {
  /** Permission bits, applied exactly (default 0o644). */
  mode?: number;
  /** Create missing parent directories (mode 0755). */
  mkdirParents?: boolean;
}

/** A guest file opened for reading: its size and permission bits, and its bytes as a stream. */
export interface FileStream {
  size: number;
  mode: number;
  stream: Readable;
}

export interface AgentPing {
  rttMs: number;
  timeMs: number;
  bootTimeMs: number;
}

/** What a restored guest is told to become (AgentClient.identity). */
export interface AgentIdentity {
  /** Default: now. */
  timeMs?: number;
  /** Host randomness for the guest's RNG, 16 to 4096 bytes; default 64 fresh bytes. */
  seed?: Uint8Array;
  hostname?: string;
  /** eth0's address as ADDR/PREFIX; with it eth0 is taken down and configured again. */
  ip?: string;
  gw?: string;
  dns?: string;
}

export interface AgentEnv {
  /** Sets managed variables; resolves to the whole managed set afterwards. */
  set(vars: Record<string, string>, options?: CallOptions): Promise<Record<string, string>>;
  unset(names: string[], options?: CallOptions): Promise<Record<string, string>>;
  list(options?: CallOptions): Promise<Record<string, string>>;
}
