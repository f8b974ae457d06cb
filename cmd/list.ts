import type { Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { table } from "./output.ts";

export function registerList(program: Command): void {
  program
    .command("list")
    .alias("ls")
    .description("list sandboxes")
    .option("-a, --all", "include sandboxes that are stopped or failed")
    .option("--json", "print JSON")
    .action(
      action("list", async (out, options) => {
        const { listSandboxes } = await import("../lib/index.ts");
        const all = await listSandboxes();
        const shown = options.all ? all : all.filter((vm) => vm.status !== "stopped" && vm.status !== "failed");
        out.result(shown, () => {
          if (shown.length === 0) {
            return all.length === 0 ? "No sandboxes. Create one with `smolvm create`." : "No running sandboxes (`smolvm list --all` shows the rest).";
          }
          return table(
            ["NAME", "ID", "STATUS", "IMAGE", "CPUS", "MEMORY", "CREATED"],
            shown.map((vm) => [
              vm.name,
              vm.id,
              // Why a paused sandbox cannot go on: its VMM froze it on a full host disk.
              vm.status === "paused" && vm.lastError?.code === "HOST_DISK_FULL" ? "paused (host disk full)" : vm.status,
              vm.image,
              String(vm.vcpus),
              `${vm.memoryMiB} MiB`,
              new Date(vm.createdAt).toISOString().replace("T", " ").slice(0, 19),
            ]),
          );
        });
      }),
    );
}
