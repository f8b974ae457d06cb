import { describe, expect, test } from "bun:test";
import { benchReportSchema, PHASE_IDS, PHASES, phaseResult } from "../../bench/report.ts";
import { reportFrom } from "./_fixtures.ts";

describe("phase catalogue", () => {
  test("ids are unique and every phase has a floor or a channel counterpart to be judged by", () => {
    expect(new Set(PHASE_IDS).size).toBe(PHASE_IDS.length);
    for (const id of ["floor.qemu", "floor.boot", "floor.ping", "floor.fork-exec", "floor.channel-upload", "floor.channel-download"]) {
      expect(PHASES.find((p) => p.id === id)?.kind).toBe("floor");
    }
    for (const id of ["warm-command.agent", "warm-command.ssh", "upload.sftp", "download.scp", "stop", "delete.freed", "memory.qemu"]) {
      expect(PHASES.find((p) => p.id === id)?.kind).toBe("phase");
    }
  });
});

describe("phaseResult", () => {
  test("keeps every sample in order and summarizes them", () => {
    const r = phaseResult("warm-command.agent", [3, 1, 2]);
    expect(r.samples).toEqual([3, 1, 2]);
    expect(r.stats).toMatchObject({ n: 3, p50: 2 });
    expect(r.unavailable).toBeNull();
    expect(r.unit).toBe("ms");
  });

  test("a phase without samples says it is unavailable, with the given reason prefixed once", () => {
    expect(phaseResult("warm-command.ssh", []).unavailable).toBe("unavailable: not measured in this run");
    expect(phaseResult("warm-command.ssh", [], { unavailable: "no sshd" }).unavailable).toBe("unavailable: no sshd");
    expect(phaseResult("warm-command.ssh", [], { unavailable: "unavailable: no sshd" }).unavailable).toBe("unavailable: no sshd");
  });

  test("an unknown phase id is a programming error", () => {
    expect(() => phaseResult("warm-command.telnet", [1])).toThrow(RangeError);
  });
});

describe("report JSON", () => {
  test("a report survives JSON and validates against the schema, with every phase in catalogue order", () => {
    const parsed = benchReportSchema.parse(JSON.parse(JSON.stringify(reportFrom())));
    expect(parsed.phases.map((p) => p.id)).toEqual([...PHASE_IDS]);
    expect(parsed.machine.accel).toBe("tcg");
    for (const key of ["cpuModel", "cores", "memoryMiB", "hostKernel", "qemuVersion", "accel"]) {
      expect(parsed.machine).toHaveProperty(key);
    }
  });

  test("the schema rejects a report missing its machine description", () => {
    const { machine: _machine, ...rest } = reportFrom();
    expect(benchReportSchema.safeParse(rest).success).toBe(false);
  });
});
