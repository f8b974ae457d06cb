/** The public option and result types of AgentClient. */
import type { Readable } from "node:stream";
import type { ExecResult } from "./_exec.ts";
import type { AgentErrorPayload } from "./messages.ts";

export interface ConnectOptions {
  /** How long to wait for the agent's HELLO (default 10 000 ms). */
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
}

/** Per-call limits. `timeoutMs` covers the whole operation, transfer included. */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

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
  /** The agent kills the whole process group after this long; the result says timedOut. */
  timeoutMs?: number;
  /** Run on a pseudo-terminal. */
  pty?: boolean | { rows?: number; cols?: number; term?: string };
  /** Aborting kills the process group and rejects wait() with the signal's reason. */
  signal?: AbortSignal;
}

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Fed to the command's stdin, which is then closed. */
  stdin?: string | Uint8Array | Readable;
  timeoutMs?: number;
  signal?: AbortSignal;
  pty?: ExecSpec["pty"];
  /** "utf8" (default) gives strings; "buffer" gives Buffers. */
  encoding?: "utf8" | "buffer";
}

export interface RunResult<T extends string | Buffer = string> extends ExecResult {
  stdout: T;
  stderr: T;
}

export interface WriteFileOptions extends CallOptions {
  /** Permission bits, applied exactly (default 0o644). */
  mode?: number;
  /** Create missing parent directories (mode 0755). */
  mkdirParents?: boolean;
}

export interface ReadFileHandle {
  size: number;
  mode: number;
  stream: Readable;
}

export interface PingResultInfo {
  rttMs: number;
  timeMs: number;
  bootTimeMs: number;
}

export interface AgentEnv {
  /** Sets managed variables; resolves to the whole managed set afterwards. */
  set(vars: Record<string, string>, options?: CallOptions): Promise<Record<string, string>>;
  unset(names: string[], options?: CallOptions): Promise<Record<string, string>>;
  list(options?: CallOptions): Promise<Record<string, string>>;
}
