import type { Command } from "@commander-js/extra-typings";

/** The hidden entry of the per-sandbox supervisor process (see lib/supervisor/main.ts). */
export function registerSupervise(program: Command): void {
  program
    .command("__supervise", { hidden: true })
    .argument("<id>")
    .action(async (id) => {
      const { runSupervisor } = await import("../lib/supervisor/main.ts");
      // The supervisor must outlive the terminal it was started from.
      process.on("SIGHUP", () => {});
      process.on("SIGINT", () => {});
      await runSupervisor(id);
      process.exit(0);
    });
}
