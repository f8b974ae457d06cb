/** Host-to-sandbox port forwards on 127.0.0.1: `smolvm port expose|close|list`. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { commChannelFrom, commChannelOption } from "./options.ts";
import { table } from "./output.ts";

export function registerPort(program: Command): void {
  const port = program.command("port").description("forward ports on this host's 127.0.0.1 into a sandbox");

  port
    .command("expose")
    .description("forward 127.0.0.1:HOST to GUEST in the sandbox until closed or the sandbox stops (no HOST: a free port)")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<ports>", "[HOST:]GUEST, e.g. 8080 or 9000:8080"))
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("port expose", async (out, name, spec, options) => {
        const { parsePortSpec, SmolVM } = await import("../lib/index.ts");
        const { hostPort, guestPort } = parsePortSpec(spec);
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        try {
          const forward = await vm.ports.expose(guestPort, { hostPort });
          const { close: _close, [Symbol.asyncDispose]: _dispose, ...info } = forward;
          out.result({ sandbox: vm.name, ...info }, () => `${info.address}:${info.hostPort} -> ${vm.name}:${info.guestPort}`);
          if (forward.heldBy === "process") {
            // An SSH tunnel lives in this process: keep it until interrupted.
            process.stderr.write("forwarding over SSH from this process; Ctrl-C stops it\n");
            await new Promise<void>((resolve) => {
              process.once("SIGINT", resolve);
              process.once("SIGTERM", resolve);
            });
            await forward.close();
          }
        } finally {
          // The supervisor holds an agent forward: this process only has to let go of its channel.
          vm.close();
        }
      }),
    );

  port
    .command("close")
    .description("stop forwarding a host port and end its connections")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<host-port>", "the host port of the forward"))
    .option("--json", "print JSON")
    .action(
      action("port close", async (out, name, hostPort, _options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const port = /^\d+$/.test(hostPort) ? Number(hostPort) : Number.NaN;
        const vm = await SmolVM.fromId(name);
        await vm.ports.close(port);
        out.result({ sandbox: vm.name, hostPort: port }, () => `closed 127.0.0.1:${port}`);
      }),
    );

  port
    .command("list")
    .description("list a sandbox's port forwards")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("--json", "print JSON")
    .action(
      action("port list", async (out, name, _options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name);
        const ports = await vm.ports.list();
        out.result(ports, () =>
          ports.length === 0
            ? `No ports forwarded into ${vm.name}.`
            : table(["HOST", "GUEST", "CONNECTIONS"], ports.map((p) => [`${p.address}:${p.hostPort}`, String(p.guestPort), String(p.connections)])),
        );
      }),
    );
}
