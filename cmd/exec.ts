/** Running things in a sandbox: run (ephemeral), exec, shell. */
import { Argument, type Command } from "@commander-js/extra-typings";
import type { SmolVM } from "../lib/index.ts";
import { action } from "./action.ts";
import { commChannelFrom, commChannelOption, envPair, integer, sandboxConfigFrom, withSandboxOptions } from "./options.ts";
import { progressReporter } from "./progress.ts";
import { execIn, streamCommand } from "./streams.ts";
import { exitStatus } from "./terminal.ts";

export function registerExec(program: Command): void {
  withSandboxOptions(
    program
      .command("run")
      .description("run one command in a fresh sandbox, then delete it; exits with the command's status")
      .addArgument(new Argument("<command...>", "the command and its arguments (after --); one word with shell syntax, e.g. 'ls | wc -l', runs through sh")),
  )
    .option("--timeout <seconds>", "kill the command after this long", integer("--timeout"))
    .option("-e, --env <NAME=VALUE>", "set a variable for the command (repeatable)", envPair)
    .addOption(commChannelOption())
    .action(
      action("run", async (_out, command, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const progress = progressReporter(false);
        const vm = await SmolVM.create({ ...sandboxConfigFrom(options), ...commChannelFrom(options), onProgress: progress.onProgress }).finally(progress.done);
        await progress.notice(vm.accel, vm.notices);
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
    .addArgument(new Argument("<command...>", "the command and its arguments (after --); one word with shell syntax, e.g. 'ls | wc -l', runs through sh"))
    .option("--timeout <seconds>", "kill the command (and its children) after this long", integer("--timeout"))
    .option("-e, --env <NAME=VALUE>", "set a variable for the command (repeatable)", envPair)
    .option("--cwd <dir>", "working directory in the guest (default /root)")
    .addOption(commChannelOption())
    .action(
      action("exec", async (_out, name, command, options) => {
        process.exitCode = await execIn(name, command, {
          ...commChannelFrom(options),
          ...(options.timeout === undefined ? {} : { timeoutMs: options.timeout * 1000 }),
          ...(options.env === undefined ? {} : { env: options.env }),
          ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
        });
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
