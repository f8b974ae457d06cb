/** Sandbox lifecycle: create, start, stop, delete, info, logs. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { accelOption, backendOption, commChannelFrom, commChannelOption, integer, sandboxConfigFrom, withSandboxOptions } from "./options.ts";
import { table } from "./output.ts";
import { progressReporter } from "./progress.ts";

export function registerSandbox(program: Command): void {
  withSandboxOptions(program.command("create").description("create a sandbox and wait until it is ready"))
    .option("--name <name>", "a unique name (lowercase letters, digits, dashes); generated when absent")
    .option("--from-snapshot <snapshot>", "restore this snapshot instead of booting (it decides image, memory, CPUs, disk)")
    .option("--warm", "restore the image's warm template when it fits, making it on first use (default SMOLVM_WARM)")
    .option("--no-warm", "always boot, even when a warm template fits")
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("create", async (out, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const progress = progressReporter(options.json === true);
        const started = Date.now();
        const vm = await SmolVM.create({
          ...sandboxConfigFrom(options),
          ...commChannelFrom(options),
          ...(options.name === undefined ? {} : { name: options.name }),
          ...(options.fromSnapshot === undefined ? {} : { fromSnapshot: options.fromSnapshot }),
          ...(options.warm === undefined ? {} : { warm: options.warm }),
          onProgress: progress.onProgress,
        }).finally(progress.done);
        await progress.notice(vm.accel, vm.notices);
        const info = await vm.info();
        vm.close();
        out.result({ ...info, createdFrom: vm.createdFrom, createMs: Date.now() - started }, () => `${info.name}`);
      }),
    );

  program
    .command("start")
    .description("boot a stopped sandbox")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addOption(accelOption())
    .addOption(backendOption())
    .option("--json", "print JSON")
    .action(
      action("start", async (out, name, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name);
        await vm.start({
          ...(options.accel === undefined ? {} : { accel: options.accel }),
          ...(options.backend === undefined ? {} : { backend: options.backend }),
        });
        vm.close();
        if (options.json !== true) await progressReporter(false).notice(vm.accel);
        const info = await vm.info();
        out.result(info, () => `started ${info.name}`);
      }),
    );

  program
    .command("stop")
    .description("power a sandbox off, keeping its disk")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("--json", "print JSON")
    .action(
      action("stop", async (out, name, _options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name);
        await vm.stop();
        const info = await vm.info();
        out.result(info, () => `stopped ${info.name}`);
      }),
    );

  program
    .command("delete")
    .alias("rm")
    .description("delete sandboxes and everything they hold")
    .addArgument(new Argument("[sandboxes...]", "names or ids"))
    .option("--all", "delete every sandbox")
    .option("-f, --force", "do not ask (with --all on a terminal), and return only once every process and file of each is gone")
    .option("--json", "print JSON")
    .action(
      action("delete", async (out, names, options) => {
        const { InvalidInputError, SmolVM } = await import("../lib/index.ts");
        let targets = names;
        if (options.all === true) {
          if (names.length > 0) throw new InvalidInputError("Cannot combine --all with sandbox names", { hint: "use one or the other" });
          targets = (await SmolVM.list()).map((vm) => vm.id);
          if (targets.length > 0 && process.stdin.isTTY && options.force !== true && options.json !== true) {
            const confirmed = await confirm(`Delete all ${targets.length} sandboxes? [y/N] `);
            if (!confirmed) throw new InvalidInputError("Nothing deleted", { hint: "pass --force to skip the question" });
          }
        } else if (names.length === 0) {
          throw new InvalidInputError("Cannot delete: no sandbox named", { hint: "name one or more sandboxes, or pass --all" });
        }
        // Look every name up first, so a typo deletes nothing.
        const vms = await Promise.all(targets.map((target) => SmolVM.fromId(target)));
        for (const vm of vms) await vm.delete({ force: options.force === true });
        const deleted = vms.map((vm) => ({ id: vm.id, name: vm.name }));
        out.result(deleted, () => deleted.map((vm) => `deleted ${vm.name}`).join("\n") || "no sandboxes");
      }),
    );

  program
    .command("info")
    .description("show a sandbox's status, processes, resources and files")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("info", async (out, name, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        const info = { ...(await vm.info()), ...(await vm.probeChannel().then(({ channel, reason }) => ({ channel, channelReason: reason }))) };
        out.result(info, () => {
          const rows: [string, string][] = [
            ["name", info.name], ["id", info.id], ["status", info.status], ["image", info.image],
            ["backend", `${info.backend ?? "-"}${info.jailer ? " (jailed)" : ""}`], ["cpus", String(info.vcpus)], ["memory", `${info.memoryMiB} MiB`],
            ["disk", info.diskMode], ["network", info.guestIp === null ? info.network : `${info.network} (guest ${info.guestIp})`],
            ["egress", info.network === "none" ? "-" : `${info.allowHosts.join(", ") || "nothing"}${info.denyHosts.length === 0 ? "" : `; never: ${info.denyHosts.join(", ")}`}`],
            ["ssh", info.network === "tap" && info.guestIp !== null ? `${info.guestIp}:22` : info.sshPort === null ? "-" : `127.0.0.1:${info.sshPort}`],
            ["channel", `${info.channel ?? "none"} (${info.channelReason})`],
            ["ssh key", info.sshKeyPath], ["known_hosts", info.sshKnownHostsPath],
            ["supervisor", info.supervisorPid === null ? "-" : `pid ${info.supervisorPid}`],
            ["vmm", info.vmmPid === null ? "-" : `pid ${info.vmmPid}`],
            ["created", new Date(info.createdAt).toISOString()], ["console", info.consoleLog],
          ];
          if (info.lastError !== null) rows.push(["last error", `${info.lastError.message} (${info.lastError.code})`]);
          return table(["FIELD", "VALUE"], rows.map(([k, v]) => [k, v]));
        });
      }),
    );

  program
    .command("logs")
    .description("show a sandbox's console output")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("-n, --tail <lines>", "only the last N lines", integer("--tail"))
    .option("-f, --follow", "keep printing new output until the sandbox stops")
    .action(
      action("logs", async (_out, name, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name);
        for await (const chunk of vm.logs({ ...(options.tail === undefined ? {} : { tail: options.tail }), follow: options.follow === true })) {
          process.stdout.write(chunk);
        }
      }),
    );
}

async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
