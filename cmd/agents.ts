/** Coding agents in a sandbox: `smolvm claude|codex|pi|openclaw|hermes start|attach|sync`. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { PRESETS, type SmolVM, type StartedAgent } from "../lib/index.ts";
import { action } from "./action.ts";
import { commChannelFrom, commChannelOption, diskSize, integer } from "./options.ts";
import { progressReporter } from "./progress.ts";
import { isTerminal, printErr } from "./stdio.ts";
import { attachTerminal, DETACH_KEY_NAME } from "./terminal.ts";

/** `--workdir DIR`, `--no-workdir` (commander gives false; its typing does not say so), or the default. */
function workdirOption(value: unknown): string | null | undefined {
  if (value === false) return null;
  return typeof value === "string" ? value : undefined;
}

function afterDetach(name: string, agent: string, persistent: boolean): string {
  return [
    `detached from ${name}; the sandbox keeps running${persistent ? " and so does the agent" : " (the agent process ended: the image has no tmux)"}.`,
    `  smolvm ${agent} attach ${name}   come back`,
    `  smolvm ${agent} sync ${name}     copy /workspace back to the working directory`,
    `  smolvm delete ${name}${" ".repeat(agent.length + 6)}when done`,
  ].join("\n");
}

async function attach(vm: SmolVM, agent: string): Promise<number> {
  const { openAgentSession } = await import("../lib/index.ts");
  const rows = process.stdout.rows || 24;
  const cols = process.stdout.columns || 80;
  const { handle, persistent } = await openAgentSession(vm, { rows, cols, term: process.env.TERM ?? "xterm-256color", expected: agent });
  printErr(`attached to ${vm.name} (${DETACH_KEY_NAME} detaches)`);
  const outcome = await attachTerminal(handle);
  if (outcome.detached) {
    printErr(`\r\n${afterDetach(vm.name, agent, persistent)}`);
    return 0;
  }
  return outcome.status ?? 0;
}

function describeStart(started: StartedAgent, agent: string): string {
  const how = started.installedAtBoot ? `installed at boot on the ${started.image} image` : `${started.image} image${started.createdFrom === "warm" ? ", restored from its warm template" : ""}`;
  const lines = [`${started.vm.name}: ${agent} ready (${how})`];
  if (started.workspace) {
    lines.push(`  /workspace: ${started.workspace.files} files, ${(started.workspace.bytes / 2 ** 20).toFixed(1)} MiB from ${started.workdir} (${started.workspace.selection === "git" ? "Git's view" : "minus the default ignores"})`);
  }
  if (started.forwardedKeys.length > 0) lines.push(`  credentials: ${started.forwardedKeys.join(", ")} from the environment`);
  if (started.copiedConfig.length > 0) lines.push(`  configuration: ~/${started.copiedConfig.join(", ~/")}`);
  lines.push(`  smolvm ${agent} attach ${started.vm.name}, smolvm exec ${started.vm.name} -- ..., smolvm ${agent} sync ${started.vm.name}`);
  return lines.join("\n");
}

function registerAgent(program: Command, preset: (typeof PRESETS)[number]): void {
  const agent = program.command(preset.id).description(`${preset.title} in a sandbox, with the working directory in /workspace`);
  for (const alias of preset.aliases) agent.alias(alias);

  agent
    .command("start")
    .description(`start a sandbox with ${preset.title}, your credentials for it and a copy of the working directory, then attach`)
    .option("--name <name>", "sandbox name (generated when absent); an existing one is attached to again")
    .option("--memory <mib>", "memory in MiB", integer("--memory"), 2048)
    .option("--disk-size <size>", "root disk size, e.g. 8G or 20G", diskSize, 8192)
    .option("--workdir <dir>", "the directory copied to /workspace (default: the current directory)")
    .option("--no-workdir", "start with an empty /workspace")
    .option("--attach", "attach after start (the default on a terminal)")
    .option("--no-attach", "start and return")
    .option("--install-timeout <seconds>", "give up on an install at boot after this long", integer("--install-timeout"), 600)
    .option("--install-at-boot", "install the agent in the sandbox even when its image is at hand (its pinned version, fetched now)")
    .option("-y, --yes", "copy a working directory even when it is large")
    .option("--no-warm", "always boot: neither restore nor make the image's warm template (default: SMOLVM_WARM, else warm)")
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action(`${preset.id} start`, async (out, options) => {
        const { NotFoundError, SmolVM } = await import("../lib/index.ts");
        const wantsAttach = options.attach ?? (options.json !== true && isTerminal(0) && isTerminal(1));
        if (options.name !== undefined) {
          const existing = await SmolVM.fromId(options.name, commChannelFrom(options)).catch((error: unknown) => {
            if (error instanceof NotFoundError) return undefined;
            throw error;
          });
          if (existing !== undefined) {
            const { agentOf } = await import("../lib/index.ts");
            await agentOf(existing, preset.id);
            await existing.start();
            out.note(`${existing.name} exists: attaching to it again`);
            if (wantsAttach) process.exitCode = await attach(existing, preset.id);
            else out.result({ sandbox: existing.name, existing: true }, () => `${existing.name} is running`);
            existing.close();
            return;
          }
        }
        const { startAgent } = await import("../lib/index.ts");
        const progress = progressReporter(options.json === true);
        const started = await startAgent(preset.id, {
          ...(options.name === undefined ? {} : { name: options.name }),
          memoryMiB: options.memory,
          diskSizeMiB: options.diskSize,
          // --no-workdir sets it to false (commander's typing does not say so).
          workdir: workdirOption(options.workdir),
          installTimeoutMs: options.installTimeout * 1000,
          ...(options.installAtBoot === true ? { installAtBoot: true } : {}),
          ...(options.warm === false ? { warm: false } : {}),
          confirmLargeWorkspace: options.yes === true,
          ...commChannelFrom(options),
          onProgress: progress.onProgress,
        }).finally(progress.done);
        if (!started.credentials) out.warn(`no credentials for ${preset.title} found on this host: ${started.loginHint}`);
        for (const path of started.workspace?.skipped ?? []) out.warn(`not copied (not a file, directory or symlink): ${path}`);
        if (wantsAttach) {
          process.exitCode = await attach(started.vm, preset.id);
        } else {
          const { vm, ...data } = started;
          out.result({ sandbox: vm.name, ...data }, () => describeStart(started, preset.id));
        }
        started.vm.close();
      }),
    );

  agent
    .command("attach")
    .description(`attach to ${preset.title} in a sandbox (${DETACH_KEY_NAME} detaches; the sandbox keeps running)`)
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addOption(commChannelOption())
    .action(
      action(`${preset.id} attach`, async (_out, name, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        try {
          await vm.start();
          process.exitCode = await attach(vm, preset.id);
        } finally {
          vm.close();
        }
      }),
    );

  agent
    .command("sync")
    .description("copy /workspace back into the working directory it came from (what Git shows there; nothing is deleted)")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("--to <dir>", "copy into this directory instead")
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action(`${preset.id} sync`, async (out, name, options) => {
        const { SmolVM, syncWorkspace } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        try {
          const result = await syncWorkspace(vm, options.to === undefined ? {} : { to: options.to });
          out.result({ sandbox: vm.name, ...result }, () => {
            const lines = [`synced /workspace of ${vm.name} to ${result.path} (${result.files} files, ${result.bytes} bytes)`];
            for (const skipped of result.skipped) lines.push(`  skipped ${skipped.path}: ${skipped.reason}`);
            return lines.join("\n");
          });
        } finally {
          vm.close();
        }
      }),
    );
}

export function registerAgents(program: Command): void {
  for (const preset of PRESETS) registerAgent(program, preset);
}
