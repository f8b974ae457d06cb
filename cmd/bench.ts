/** `smolvm bench`: phase timings against floors and the SSH channel, measured in one run. */
import { Option, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { integer } from "./options.ts";
import { paint, Progress, table } from "./output.ts";

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description("measure create, commands, files, stop and delete against floors on this machine (a few minutes)")
    .option("--vms <n>", "sandboxes in the sequential and the concurrent phase (default 2)", integer("--vms"))
    .option("--image <name>", "image to benchmark (default: the sandbox default, debian)")
    .option("--runs <n>", "samples per warm-command and ping phase (default 200)", integer("--runs"))
    .option("--transfer-mib <n>", "size of each file transfer (default 16)", integer("--transfer-mib"))
    .addOption(new Option("--backend <backend>", "the sandboxes' backend: qemu (default) or firecracker (refused where it cannot run); the floors are QEMU's").choices(["qemu", "firecracker"] as const))
    .option("--plot <file>", "also write the latency distributions as an SVG")
    .option("-v, --verbose", "print each phase's median as it is measured")
    .option("--json", "print JSON with every sample and the machine description")
    .action(
      action("bench", async (out, options) => {
        const { runBench } = await import("../bench/run.ts");
        const progress = new Progress(options.json === true);
        const verbose = options.verbose === true;
        const abort = new AbortController();
        // The first Ctrl-C lets the run delete what it made; the handler is gone for a second one.
        const onInterrupt = () => {
          process.stderr.write("\nstopping: deleting the benchmark's sandboxes (Ctrl-C again to leave them)\n");
          abort.abort();
        };
        process.once("SIGINT", onInterrupt);
        let report;
        try {
          report = await runBench({
            ...(options.vms === undefined ? {} : { vms: options.vms }),
            ...(options.runs === undefined ? {} : { runs: options.runs }),
            ...(options.image === undefined ? {} : { image: options.image }),
            ...(options.transferMib === undefined ? {} : { transferMiB: options.transferMib }),
            ...(options.backend === undefined ? {} : { backend: options.backend }),
            signal: abort.signal,
            onProgress: (step, fraction) => progress.update(step, fraction),
            ...(verbose ? { log: (line: string) => { progress.done(); process.stderr.write(`${line}\n`); } } : {}),
          });
        } finally {
          progress.done();
          process.off("SIGINT", onInterrupt);
        }
        if (options.plot !== undefined) {
          const { renderSvg } = await import("../bench/svg.ts");
          const { writeFile } = await import("node:fs/promises");
          await writeFile(options.plot, renderSvg(report));
          out.note(`wrote ${options.plot}`);
        }
        for (const warning of report.warnings) out.warn(warning);
        const summary = await import("../bench/summary.ts");
        out.result(report, () => {
          const verdict = (row: string[]) => {
            const last = row[row.length - 1]!;
            const style = last === "met" ? "green" : last === "missed" ? "red" : "dim";
            return [...row.slice(0, -1), paint(last, style)];
          };
          const phases = summary.phaseRows(report);
          const ratios = summary.ratioRows(report);
          const targets = summary.targetRows(report);
          const reasons = summary.reasonLines(report);
          const sections = [
            table(phases.header, phases.rows),
            ...(reasons.length > 0 ? [reasons.join("\n")] : []),
            table(ratios.header, ratios.rows),
            table(targets.header, targets.rows.map(verdict)),
          ];
          if (verbose) {
            const create = summary.spanRows(report.profile.createBreakdown);
            const warm = summary.spanRows(report.profile.warmCommandBreakdown);
            sections.push(`create, where the time goes (medians)\n${table(create.header, create.rows)}`);
            sections.push(`warm command, where the time goes (medians)\n${table(warm.header, warm.rows)}`);
            const flags = report.profile.floorFlags;
            sections.push(`floor QEMU flags vs a sandbox's: ${flags.match === null ? "not compared" : flags.match ? "identical" : "differ"}` +
              (flags.differences.length ? `\n  ${flags.differences.join("\n  ")}` : ""));
          }
          sections.push(paint(summary.machineLine(report), "dim"));
          return sections.join("\n\n");
        });
      }),
    );
}
