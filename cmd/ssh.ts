/** `smolvm ssh`: the system OpenSSH client into a sandbox, with smolvm's key and pinned host key. */
import { Argument, type Command } from "@commander-js/extra-typings";
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
        const { sshArgs, runOpenSsh } = await import("../lib/ssh/openssh.ts");
        const { args, port, keyPath, knownHosts } = await sshArgs(name, command);
        if (options.print === true) {
          const { shQuote } = await import("../lib/ssh/command.ts");
          const line = ["ssh", ...args].map(shQuote).join(" ");
          out.result({ command: line, argv: ["ssh", ...args], host: "127.0.0.1", port, user: "root", keyPath, knownHostsPath: knownHosts }, () => line);
          return;
        }
        process.exitCode = await runOpenSsh(args);
      }),
    );
}
