/** `smolvm ssh`: the system OpenSSH client into a sandbox, with smolvm's key and pinned host key. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { action } from "./action.ts";

export function registerSsh(program: Command): void {
  program
    .command("ssh")
    .description("log in to a sandbox with the system ssh client (or run COMMAND); exits with its status")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("[command...]", "a command to run instead of a login shell (after --)"))
    .option("--print", "print the ssh command line (key, pinned known_hosts, port) instead of running it")
    .option("--json", "with --print: print it as JSON")
    .action(
      action("ssh", async (out, name, command, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name);
        const ssh = await vm.sshCommand(command);
        if (options.print === true) {
          const { commandLine, argv, host, port, user, keyPath, knownHostsPath } = ssh;
          out.result({ command: commandLine, argv, host, port, user, keyPath, knownHostsPath }, () => commandLine);
          return;
        }
        process.exitCode = await runAttached(ssh.argv);
      }),
    );
}

/** Runs the system `ssh` with the terminal attached; resolves to its exit status. */
async function runAttached(argv: string[]): Promise<number> {
  const { HostDependencyMissingError } = await import("../lib/index.ts");
  // Ctrl-C belongs to the remote side while ssh runs: ssh sees it, smolvm must not die of it.
  const ignore = () => {};
  process.on("SIGINT", ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: "inherit" });
      child.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "ENOENT"
          ? new HostDependencyMissingError("Cannot run `smolvm ssh`: the OpenSSH client (ssh) is not installed", {
            hint: "install it (`apt-get install openssh-client`), or use `smolvm shell`, which needs no SSH",
          })
          : error),
      );
      child.once("exit", (code, signal) =>
        resolve(code ?? 128 + ((constants.signals as Record<string, number>)[signal ?? "SIGKILL"] ?? 9)),
      );
    });
  } finally {
    process.off("SIGINT", ignore);
  }
}
