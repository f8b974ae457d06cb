import type { Command } from "@commander-js/extra-typings";
import { HostDependencyMissingError } from "../lib/errors.ts";
import { action } from "./action.ts";
import { paint } from "./output.ts";

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description("check this host: acceleration, QEMU, Firecracker, networking tools, disk, caches")
    .option("--strict", "treat warnings as failures (non-zero exit)")
    .option("--repair", "rebuild a damaged state store (moved aside, not deleted) and give back the rows of sandbox directories it lost")
    .option("--json", "print JSON")
    .action(
      action("doctor", async (out, options) => {
        if (options.repair === true) {
          const { repairStore } = await import("../lib/index.ts");
          const report = await repairStore();
          out.result(report, () => [
            report.damage === null ? "The state store is sound." : `The state store was damaged (${report.damage}); it was moved to ${report.movedAside} and rebuilt.`,
            ...report.restored.map((vm) => `restored sandbox ${vm.name} (${vm.id}): ${vm.status}${vm.reallocated.length > 0 ? `; new ${vm.reallocated.join(", ")} (the old one is another sandbox's now)` : ""}`),
            ...report.skipped.map((skip) => `skipped ${skip.dir}: ${skip.reason}`),
            report.restored.length === 0 && report.skipped.length === 0 ? `No sandbox was missing from the store (${report.unchanged} in it).` : "",
          ].filter(Boolean).join("\n"));
          return;
        }
        const { checkHost } = await import("../lib/index.ts");
        const { facts, diagnosis } = await checkHost();
        const failing = diagnosis.checks.filter((c) => c.status === "fail" || (options.strict === true && c.status === "warn"));
        if (failing.length > 0 && options.json === true) {
          // The report is still the useful part: put it in the error's details.
          throw new HostDependencyMissingError(`Host check failed: ${failing.map((c) => c.id).join(", ")}`, {
            hint: failing[0]?.hint ?? "see the checks in details",
            details: { ...diagnosis, facts },
          });
        }
        out.result({ ...diagnosis, facts }, () => {
          const mark = { ok: paint("ok  ", "green"), warn: paint("warn", "yellow"), fail: paint("FAIL", "red") };
          const lines = [diagnosis.headline, `backend: ${diagnosis.backend}   accel: ${diagnosis.accel}   channel: ${diagnosis.channel}`, ""];
          for (const check of diagnosis.checks) {
            lines.push(`${mark[check.status]}  ${check.id.padEnd(12)} ${check.summary}`);
            if (check.hint !== undefined && check.status !== "ok") lines.push(`${" ".repeat(19)}${paint(`-> ${check.hint}`, "dim")}`);
          }
          return lines.join("\n");
        });
        if (failing.length > 0) {
          throw new HostDependencyMissingError(`${failing.length} check(s) ${options.strict === true ? "did not pass (--strict)" : "failed"}: ${failing.map((c) => c.id).join(", ")}`, {
            hint: failing[0]?.hint ?? "fix the checks marked above",
          });
        }
      }),
    );
}
