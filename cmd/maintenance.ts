/** Reclaiming space and state: cleanup, prune. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";

export function registerMaintenance(program: Command): void {
  program
    .command("cleanup")
    .description("reclaim what sandboxes that no longer run still hold (never a live one, never a disk unless the sandbox is named), and unfinished snapshot saves (never a snapshot); with names, remove those sandboxes whole, whatever their state")
    .addArgument(new Argument("[sandboxes...]", "names or ids (also of a directory without a row) to remove whole, disk included"))
    .option("--all", "every such sandbox (the default; accepted for scripts written for other sandbox tools)")
    .option("--dry-run", "only report what would be removed")
    .option("--json", "print JSON")
    .action(
      action("cleanup", async (out, names, options) => {
        const { cleanup } = await import("../lib/index.ts");
        const report = await cleanup({ dryRun: options.dryRun === true, names });
        const verb = report.dryRun ? "would remove" : "removed";
        out.result(report, () => {
          const lines = report.sandboxes.map((name) => `${verb} sandbox ${name}`);
          lines.push(...report.strayDirs.map((dir) => `${verb} stray directory ${dir}`));
          lines.push(...report.strayNames.map((link) => `${verb} stray name link ${link}`));
          lines.push(...report.strayProcesses.map((pid) => `${report.dryRun ? "would kill" : "killed"} stray process ${pid}`));
          lines.push(...report.networks.map((what) => `${verb} ${what}`));
          lines.push(...report.snapshotStaging.map((dir) => `${verb} unfinished snapshot ${dir}`));
          lines.push(...report.kept.map((kept) => `kept ${kept.name}: ${kept.reason}`));
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
