/** Freezing and thawing a running sandbox: `smolvm pause|resume`. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";

export function registerPause(program: Command): void {
  program
    .command("pause")
    .description("freeze a running sandbox: nothing in it runs until resume; memory and connections are kept")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("--json", "print JSON")
    .action(
      action("pause", async (out, name, _options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name);
        await vm.pause();
        const info = await vm.info();
        out.result(info, () => `paused ${info.name}`);
      }),
    );

  program
    .command("resume")
    .description("continue a paused sandbox where it stopped")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("--json", "print JSON")
    .action(
      action("resume", async (out, name, _options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name);
        await vm.resume();
        const info = await vm.info();
        out.result(info, () => `resumed ${info.name}`);
      }),
    );
}
