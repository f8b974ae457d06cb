/** Running things in a sandbox: run (ephemeral), exec, shell. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { fstatSync, statSync } from "node:fs";
import type { Readable } from "node:stream";
import type { SmolVM } from "../lib/index.ts";
import { action } from "./action.ts";
import { commChannelFrom, commChannelOption, envPair, integer, sandboxConfigFrom, withSandboxOptions } from "./options.ts";
import { progressReporter } from "./progress.ts";
import { isTerminal } from "./stdio.ts";
import { exitStatus } from "./terminal.ts";

export function registerExec(program: Command): void {
  withSandboxOptions(
    program
      .command("run")
      .description("run one command in a fresh sandbox, then delete it; exits with the command's status")
      .addArgument(new Argument("<command...>", "the command and its arguments (after --)")),
  )
    .option("--timeout <seconds>", "kill the command after this long", integer("--timeout"))
    .option("-e, --env <NAME=VALUE>", "set a variable for the command (repeatable)", envPair)
    .addOption(commChannelOption())
    .action(
      action("run", async (_out, command, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const progress = progressReporter(false);
        const vm = await SmolVM.create({ ...sandboxConfigFrom(options), ...commChannelFrom(options), onProgress: progress.onProgress }).finally(progress.done);
        await progress.notice(vm.accel);
        try {
          process.exitCode = await streamCommand(vm, command, {
            ...(options.timeout === undefined ? {} : { timeoutMs: options.timeout * 1000 }),
            ...(options.env === undefined ? {} : { env: options.env }),
          });
        } finally {
          await vm.delete();
        }
      }),
    );

  program
    .command("exec")
    .description("run a command in a sandbox, streaming its output; exits with its status")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<command...>", "the command and its arguments (after --)"))
    .option("--timeout <seconds>", "kill the command (and its children) after this long", integer("--timeout"))
    .option("-e, --env <NAME=VALUE>", "set a variable for the command (repeatable)", envPair)
    .option("--cwd <dir>", "working directory in the guest (default /root)")
    .addOption(commChannelOption())
    .action(
      action("exec", async (_out, name, command, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        try {
          process.exitCode = await streamCommand(vm, command, {
            ...(options.timeout === undefined ? {} : { timeoutMs: options.timeout * 1000 }),
            ...(options.env === undefined ? {} : { env: options.env }),
            ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
          });
        } finally {
          vm.close();
        }
      }),
    );

  program
    .command("shell")
    .description("open an interactive shell in a sandbox")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addOption(commChannelOption())
    .action(
      action("shell", async (_out, name, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        try {
          process.exitCode = await interactiveShell(vm);
        } finally {
          vm.close();
        }
      }),
    );
}

/** argv with one word runs through the shell (so `exec vm -- 'ls | wc -l'` works), else as argv. */
function commandOf(words: string[]): string | string[] {
  return words.length === 1 ? words[0]! : words;
}

async function streamCommand(vm: SmolVM, words: string[], options: { timeoutMs?: number; env?: Record<string, string>; cwd?: string }): Promise<number> {
  const forwardStdin = stdinWorthForwarding();
  const proc = await vm.commands.exec(commandOf(words), { ...options, stdin: forwardStdin });
  pipeOnFirstChunk(proc.stdout, () => process.stdout);
  pipeOnFirstChunk(proc.stderr, () => process.stderr);
  if (forwardStdin && proc.stdin !== null) process.stdin.pipe(proc.stdin);
  const result = await proc.wait();
  if (forwardStdin) {
    process.stdin.unpipe();
    process.stdin.destroy();
  }
  // Through the stream, behind whatever of the command's own stderr is still queued there.
  if (result.timedOut) process.stderr.write(`smolvm: command timed out after ${(options.timeoutMs ?? 0) / 1000} s and was killed\n`);
  return exitStatus(result);
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

/** Building `process.stdout`/`stderr` costs ~20 ms each, so a silent command never pays for it. */
function pipeOnFirstChunk(from: Readable, to: () => NodeJS.WritableStream): void {
  from.once("data", (first: Buffer) => {
    const sink = to();
    sink.write(first);
    from.pipe(sink, { end: false });
  });
}

async function interactiveShell(vm: SmolVM): Promise<number> {
  const stdin = process.stdin;
  // A terminal that reports no size (0x0, as under `script`) gets the classic 80x24.
  const size = () => ({ rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
  const proc = await vm.commands.exec("if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi", {
    stdin: true,
    pty: { ...size(), term: process.env.TERM ?? "xterm-256color" },
  });
  const onResize = () => proc.resize(size().rows, size().cols);
  process.stdout.on("resize", onResize);
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.pipe(proc.stdin!);
  proc.stdout.pipe(process.stdout, { end: false });
  try {
    return exitStatus(await proc.wait());
  } finally {
    process.stdout.off("resize", onResize);
    stdin.unpipe();
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.destroy();
  }
}
