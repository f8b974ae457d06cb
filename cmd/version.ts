import type { Command } from "@commander-js/extra-typings";
import { versionInfo } from "../lib/version.ts";
import { action } from "./action.ts";

export function registerVersion(program: Command): void {
  program
    .command("version")
    .description("print version, runtime and build target")
    .option("--json", "print JSON")
    .action(
      action("version", (out) => {
        const info = versionInfo();
        out.result(info, () => `smolvm ${info.version}\nruntime: ${info.runtime}\ntarget:  ${info.target} (${info.platform}-${info.arch})`);
      }),
    );
}
