/** A synthetic bench report for the pure renderers and checks: no VM, fixed numbers. */
import { PHASES, phaseResult, type BenchReport, type PhaseResult } from "../../bench/report.ts";
import { computeRatios, evaluateTargets } from "../../bench/targets.ts";

/** Samples per phase: a spread around a median, so percentiles differ. */
export function spread(median: number, n = 11): number[] {
  return Array.from({ length: n }, (_, i) => median * (0.8 + (0.4 * i) / Math.max(1, n - 1)));
}

export const HEALTHY: Record<string, number> = {
  create: 1000,
  launch: 950,
  "first-command.agent": 20,
  "create-to-first-command.agent": 1020,
  "first-command.ssh": 150,
  "create-to-first-command.ssh": 1300,
  "warm-command.agent": 5,
  "warm-command.ssh": 60,
  "warm-command.cli": 17,
  "cli.help": 55,
  "upload.agent": 40,
  "download.agent": 50,
  "upload.sftp": 20,
  "download.sftp": 25,
  "upload.scp": 18,
  "download.scp": 22,
  "file.upload.dir": 10,
  "snapshot.create": 700,
  "snapshot.pause": 90,
  "snapshot.size": 5,
  "create.from-snapshot": 450,
  fork: 1000,
  "create-to-first-command.warm": 270,
  "preset.start.cached": 1300,
  "preset.start.cold": 3000,
  "preset.warm": 9000,
  stop: 20,
  "stop.freed": 25,
  delete: 10,
  "delete.freed": 60,
  "sandboxes.sequential": 1050,
  "sandboxes.concurrent": 1500,
  "image.pull": 1200,
  "create.published": 1000,
  "create.local": 1000,
  "memory.qemu": 90,
  "memory.supervisor": 45,
  "memory.qemu.private": 80,
  "memory.supervisor.private": 9,
  "floor.qemu": 100,
  "floor.boot": 950,
  "floor.ping": 0.15,
  "floor.fork-exec": 2,
  "floor.channel-upload": 60,
  "floor.channel-download": 80,
  "floor.dir-upload": 15,
  "floor.runtime": 50,
  "floor.curl": 400,
  "floor.zstd": 600,
  "net.download.user": 40,
  "net.download.tap": 45,
  "floor.net.download": 60,
  "net.create.user": 1050,
  "net.create.tap": 1100,
  "net.create.none": 1000,
};

export function phasesFrom(medians: Record<string, number | string>): PhaseResult[] {
  return PHASES.map((p) => {
    const m = medians[p.id];
    if (typeof m === "string") return phaseResult(p.id, [], { unavailable: m });
    return m === undefined ? phaseResult(p.id, []) : phaseResult(p.id, spread(m));
  });
}

export function reportFrom(medians: Record<string, number | string> = HEALTHY, pairs: BenchReport["pairs"] = []): BenchReport {
  const phases = phasesFrom(medians);
  return {
    schema: 1,
    startedAt: "2026-01-01T00:00:00.000Z",
    durationMs: 120_000,
    options: { vms: 2, runs: 200, image: "debian", transferMiB: 16, floorRuns: 5 },
    machine: {
      cpuModel: "Test CPU <fast> & \"quoted\"",
      cores: 2,
      memoryMiB: 24_000,
      hostKernel: "6.1.0-test",
      os: "Debian GNU/Linux 12 (bookworm)",
      qemuVersion: "QEMU emulator version 7.2.0",
      accel: "tcg",
      accelReason: "no /dev/kvm",
      runtime: "bun-1.4.5",
      smolvmVersion: "0.1.0 (source)",
      guestKernel: "x86_64-test",
      image: "debian (debian-x86_64-test)",
      loadAverage: { start: [1, 1, 1], end: [2, 2, 2] },
    },
    phases,
    ratios: computeRatios(phases, pairs),
    pairs,
    targets: evaluateTargets(phases, pairs),
    profile: { createBreakdown: [], warmCommandBreakdown: [], floorFlags: { match: true, differences: [] } },
    warnings: [],
  };
}
