/**
 * `vm.commands`: running programs in the sandbox, collected (`run`) or live (`exec`), over
 * whichever channel the sandbox's policy picks (lib/channels/policy.ts).
 */
import type { Channel } from "../channels/types.ts";
import { InvalidInputError } from "../errors.ts";
import type { ExecHandle, ExecResult, ExecSpec, OutputCallback, PtyOptions } from "../agent/types.ts";
import { collect, runSpec } from "../agent/collect.ts";

export interface RunOptions {
  /**
   * Kills the command's whole process group after this many milliseconds (the result says
   * `timedOut`). Enforced in the guest and, 3 s later, by the host, whatever the guest does.
   */
  timeoutMs?: number;
  /** Added to the sandbox's managed environment for this command only. */
  env?: Record<string, string>;
  /** Working directory in the guest (default /root). */
  cwd?: string;
  /** Bytes for the command's stdin (closed after). */
  stdin?: string | Uint8Array;
  signal?: AbortSignal;
  /**
   * `run` only: the most output (stdout and stderr together) it collects; past it the command is
   * killed and `run` fails with RESOURCE_EXHAUSTED. Default 256 MiB; `exec` streams without limit.
   */
  maxOutputBytes?: number;
}

/** A finished command: how it ended and everything it printed. */
export interface RunResult extends ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions extends Omit<RunOptions, "stdin" | "maxOutputBytes"> {
  /** Give the command a stdin pipe (`handle.stdin`); otherwise it reads /dev/null. */
  stdin?: boolean;
  /** Run on a pseudo-terminal of this size (stdout and stderr merge into `handle.stdout`). */
  pty?: PtyOptions;
  /**
   * The command's stdout as it comes, instead of in `handle.stdout` (which then ends empty);
   * `wait()` resolves once the last piece was taken. Return a promise to hold further output
   * until it settles. E.g. `{ onStdout: (chunk) => process.stdout.write(chunk) }`.
   */
  onStdout?: OutputCallback;
  /** Its stderr as it comes, instead of in `handle.stderr`. */
  onStderr?: OutputCallback;
}

export class Commands {
  constructor(
    /** The sandbox's open channel (the SDK handle opens it on first use). */
    private readonly channel: () => Promise<Channel>,
    /** Opens the channel with a command sent behind its HELLO; undefined when it was not (held-channel.ts). */
    private readonly openWith: (spec: ExecSpec) => Promise<ExecHandle | undefined> = async () => undefined,
  ) {}

  /**
   * Runs a command and collects its output. A string runs through `/bin/sh -c`; an array is an
   * argv.
   *
   * ```ts
   * const { exitCode, stdout } = await vm.commands.run(["ls", "-l", "/"]);
   * ```
   */
  async run(command: string | string[], options: RunOptions = {}): Promise<RunResult> {
    commandSpec(command);
    // A handle's first command rides the opening HELLO, as exec's does (one with stdin cannot:
    // openWith declines it).
    const early = await this.openWith(runSpec(command, options));
    if (early !== undefined) return collect(early, options);
    return (await this.channel()).run(command, options);
  }

  /**
   * Starts a command and returns its live streams (stdin, stdout, stderr) and exit status.
   *
   * ```ts
   * const proc = await vm.commands.exec("tail -f /var/log/app.log");
   * proc.stdout.pipe(process.stdout);
   * ```
   */
  async exec(command: string | string[], options: ExecOptions = {}): Promise<ExecHandle> {
    const spec = { ...commandSpec(command), ...options };
    return (await this.openWith(spec)) ?? (await this.channel()).exec(spec);
  }
}

function commandSpec(command: string | string[]): { argv: string[] } | { shell: string } {
  if (typeof command === "string") {
    if (command.trim() === "") throw new InvalidInputError("Cannot run an empty command", { hint: 'pass a command, e.g. "uname -a"' });
    return { shell: command };
  }
  if (!Array.isArray(command) || command.length === 0 || command[0] === "") {
    throw new InvalidInputError("Cannot run an empty command", { hint: 'pass a command, e.g. ["uname", "-a"]' });
  }
  return { argv: command };
}
