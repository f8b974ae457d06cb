import { describe, expect, test } from "bun:test";
import { machineLine, phaseRows, ratioRows, reasonLines, targetRows, targetVerdict } from "../../bench/summary.ts";
import { HEALTHY, reportFrom } from "./_fixtures.ts";

describe("summary rows", () => {
  test("one row per phase with n, percentiles, unit and the ratio to its floor", () => {
    const { header, rows } = phaseRows(reportFrom());
    expect(header).toEqual(["PHASE", "N", "P50", "P90", "P99", "UNIT", "VS FLOOR"]);
    const create = rows.find((r) => r[0] === "create")!;
    expect(create.slice(0, 3)).toEqual(["create", "11", "1000"]);
    expect(create[6]).toBe("1.05x floor.boot");
    const warm = rows.find((r) => r[0] === "warm-command.agent")!;
    expect(warm[6]).toBe("2.33x floor.ping+floor.fork-exec");
  });

  test("an unavailable phase points to its reason, and each reason is listed once with its phases", () => {
    const report = reportFrom({ ...HEALTHY, "warm-command.ssh": "unavailable: no sshd", "upload.sftp": "unavailable: no sshd", "upload.scp": "unavailable: no scp" });
    const { rows } = phaseRows(report);
    expect(rows.find((r) => r[0] === "warm-command.ssh")).toEqual(["warm-command.ssh", "0", "-", "-", "-", "ms", "unavailable [1]"]);
    expect(rows.find((r) => r[0] === "upload.scp")![6]).toBe("unavailable [2]");
    expect(reasonLines(report)).toEqual(["[1] no sshd (warm-command.ssh, upload.sftp)", "[2] no scp (upload.scp)"]);
  });

  test("targets read met, missed or n/a", () => {
    const { rows } = targetRows(reportFrom({ ...HEALTHY, stop: 200, "warm-command.ssh": "unavailable: no sshd" }));
    expect(rows.map((r) => r[2])).toEqual(["met", "met", "n/a", "met", "missed", "met", "met", "met", "met", "met", "met", "met", "met", "met", "met"]);
    expect(rows[4]![1]).toBe("210 ms");
    expect(rows[2]![1]).toBe("needs warm-command.ssh (unavailable [1])");
    expect(targetVerdict(null)).toBe("n/a");
  });

  test("ratios print with an x; the machine line names cpu, cores, accel and load", () => {
    expect(ratioRows(reportFrom()).rows[0]).toEqual(["create / boot floor", "1.05x", ""]);
    const paired = reportFrom(HEALTHY, [{ ratio: "create/boot-floor", pairs: [[1200, 1000], [1100, 1000], [3000, 1000]] }]);
    expect(ratioRows(paired).rows[0]).toEqual(["create / boot floor", "1.05x", "1.2x (n=3)"]);
    expect(phaseRows(paired).rows.find((r) => r[0] === "create")![6]).toBe("1.2x floor.boot (paired)");
    const line = machineLine(reportFrom());
    expect(line).toContain("2 cores");
    expect(line).toContain("(tcg)");
    expect(line).toContain("load 1.00 1.00 1.00 -> 2.00 2.00 2.00");
  });
});
