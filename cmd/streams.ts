/**
 * A command's output streamed to this terminal and its status passed on: the body of `exec` and
 * `run`. Free of commander, so the plain `smolvm exec NAME -- CMD...` that agents run in loops
 * can come here without the command tree being built (cli.ts).
 */
import { fstatSync, statSync } from "node:fs";
import type { CommChannel, ExecResult, OutputCallback, SmolVM } from "../lib/index.ts";
import { isTerminal } from "./stdio.ts";
import { exitStatus } from "./terminal.ts";

export interface StreamOptions {
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
}

/** `smolvm exec`: runs `words` in sandbox `name`; resolves to the status to exit with. */
export async function execIn(name: string, words: string[], options: StreamOptions & { commChannel?: CommChannel } = {}): Promise<number> {
  const { SmolVM } = await import("../lib/index.ts");
  const { commChannel, ...stream } = options;
  const vm = await SmolVM.fromId(name, commChannel === undefined ? {} : { commChannel });
  try {
    return await streamCommand(vm, words, stream);
  } finally {
    vm.close();
  }
}

/** A word the shell would take as it is: no space, quote, glob, redirection or expansion. */
const PLAIN_WORD = /^[\w./:@%+,=-]+$/;

/**
 * One word with shell syntax runs through the shell (so `exec vm -- 'ls | wc -l'` works); a plain
 * word (`true`, `/usr/bin/env`) and several words run as they are, without a shell in between
 * (one fork and exec less in the guest: ~20 ms for `true` on debian under emulation).
 */
export function commandOf(words: string[]): string | string[] {
  return words.length === 1 && !PLAIN_WORD.test(words[0]!) ? words[0]! : words;
}

export async function streamCommand(vm: SmolVM, words: string[], options: StreamOptions): Promise<number> {
  const forwardStdin = stdinWorthForwarding();
  const proc = await vm.commands.exec(commandOf(words), {
    ...options,
    stdin: forwardStdin,
    onStdout: writerTo(() => process.stdout),
    onStderr: writerTo(() => process.stderr),
  });
  if (forwardStdin && proc.stdin !== null) process.stdin.pipe(proc.stdin);
  const result = await proc.wait();
  if (forwardStdin) {
    process.stdin.unpipe();
    process.stdin.destroy();
  }
  // Through the stream, behind whatever of the command's own stderr is still queued there.
  if (result.timedOut) {
    process.stderr.write(`smolvm: ${timeoutNote(result, (options.timeoutMs ?? 0) / 1000)}\n`);
    return TIMED_OUT;
  }
  return exitStatus(result);
}

/** The status of a command its timeout ended, as timeout(1) reports it. */
export const TIMED_OUT = 124;

/** What happened to a command whose timeout passed, truly: it may have exited by itself before. */
function timeoutNote(result: ExecResult, seconds: number): string {
  if (result.hostDeadline === true) {
    return `command timed out after ${seconds} s; the guest did not report its end within 3 s more, so smolvm had its agent kill the process group and stopped waiting`;
  }
  if (result.exitCode !== null) {
    return `command exited with status ${result.exitCode}, but processes it left behind kept its output open; they were killed when its ${seconds} s timeout passed`;
  }
  return `command timed out after ${seconds} s and was killed, with its whole process group`;
}

/**
 * Forward stdin only when it is a pipe or a file: a terminal would make `exec` wait for Ctrl-D,
 * and /dev/null (what many tools give a child) says nothing the guest's own stdin would not.
 * Skipping it also spares building `process.stdin`.
 */
function stdinWorthForwarding(): boolean {
  if (isTerminal(0)) return false;
  try {
    const stdin = fstatSync(0);
    return !(stdin.isCharacterDevice() && stdin.rdev === statSync("/dev/null").rdev);
  } catch {
    return false; // no fd 0 at all
  }
}

/**
 * The command's output written here as it comes, the command held while the terminal or pipe
 * is full. Built on the first piece: `process.stdout`/`stderr` cost ~20 ms each, so a silent
 * command never pays for them. A reader that went away (`| head`) gets nothing more.
 */
function writerTo(target: () => NodeJS.WritableStream): OutputCallback {
  let sink: NodeJS.WritableStream | undefined;
  let broken = false;
  return (chunk) => {
    if (broken) return;
    if (sink === undefined) {
      sink = target();
      sink.on("error", () => (broken = true));
    }
    if (sink.write(chunk)) return;
    const full = sink;
    return new Promise<void>((resolve) => {
      const go = () => {
        full.off("drain", go);
        full.off("error", go);
        resolve();
      };
      full.on("drain", go);
      full.on("error", go);
    });
  };
}
