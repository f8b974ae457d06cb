/** Reclaiming space and state: cleanup, prune. */
import type { Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";

export function registerMaintenance(program: Command): void {
  program
    .command("cleanup")
    .description("remove sandboxes marked as running whose processes have died, and what they held (never a live one; `delete --all` deletes everything)")
    .option("--all", "every such sandbox (the default; accepted for scripts written for other sandbox tools)")
    .option("--dry-run", "only report what would be removed")
    .option("--json", "print JSON")
    .action(
      action("cleanup", async (out, options) => {
        const { cleanup } = await import("../lib/index.ts");
        const report = await cleanup({ dryRun: options.dryRun === true });
        const verb = report.dryRun ? "would remove" : "removed";
        out.result(report, () => {
          const lines = report.sandboxes.map((name) => `${verb} sandbox ${name}`);
          lines.push(...report.strayDirs.map((dir) => `${verb} stray directory ${dir}`));
          lines.push(...report.strayProcesses.map((pid) => `${report.dryRun ? "would kill" : "killed"} stray process ${pid}`));
          return lines.length > 0 ? lines.join("\n") : "Nothing to clean up.";
        });
      }),
    );

  program
    .command("prune")
    .description("remove cached kernels and images that no sandbox and no current recipe uses")
    .option("--dry-run", "only report what would be removed")
    .option("--json", "print JSON")
    .action(
      action("prune", async (out, options) => {
        const { prune } = await import("../lib/index.ts");
        const report = await prune({ dryRun: options.dryRun === true });
        const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
        out.result(report, () =>
          report.removed.length === 0
            ? "Nothing to prune."
            : [...report.removed.map((e) => `${report.dryRun ? "would remove" : "removed"} ${e.kind} ${e.path} (${mib(e.bytes)})`),
              `${report.dryRun ? "would free" : "freed"} ${mib(report.bytesFreed)}`].join("\n"),
        );
      }),
    );
}
