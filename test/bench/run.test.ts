/**
 * One real, small benchmark run through the CLI against the base image (busybox, no sshd): the
 * JSON must hold every phase with its samples, every floor, the machine and a verdict per
 * target. Timings are never asserted: the machine is shared and noisy.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { benchReportSchema, PHASE_IDS, PHASES } from "../../bench/report.ts";
import { paths } from "../../lib/paths.ts";
import { envelope, runCli } from "../helpers/cli.ts";
import { scratchDir } from "../helpers/scratch.ts";
import { cleanupAfterAll, prepareArtifacts } from "../helpers/vm.ts";
import { xmlProblems } from "./_xml.ts";

const RUN_TIMEOUT_MS = 20 * 60_000;

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

const SSH_PHASES = new Set(PHASES.filter((p) => ["ssh", "sftp", "scp"].includes(p.path)).map((p) => p.id));

test("`bench --runs 20 --vms 1 --json` reports every phase with samples, the floors, the machine and the targets", async () => {
  const plot = join(scratchDir("smolvm-bench-"), "plot.svg");
  const result = await runCli(["bench", "--image", "base", "--runs", "20", "--vms", "1", "--json", "--plot", plot], { timeoutMs: RUN_TIMEOUT_MS });
  if (result.code !== 0) throw new Error(`bench failed (${result.code}): ${result.stdout.slice(-2000)}\n${result.stderr.slice(-2000)}`);
  const out = envelope(result);
  expect(out.ok).toBe(true);
  expect(out.command).toBe("bench");
  const report = benchReportSchema.parse(out.data);

  expect(report.phases.map((p) => p.id)).toEqual([...PHASE_IDS]);
  for (const phase of report.phases) {
    if (phase.id.startsWith("preset.") && phase.samples.length === 0) {
      // Measured only with the claude image built (CI builds it; a bare checkout may not have it);
      // the template is made only when the home has none.
      expect(phase.unavailable).toMatch(/^unavailable: (no claude image here|this home has a warm template of the claude image)/);
      continue;
    }
    if (SSH_PHASES.has(phase.id)) {
      // The base image has no sshd: the phase says so instead of carrying a number.
      expect(phase.samples).toEqual([]);
      expect(phase.unavailable).toMatch(/^unavailable: .*(sshd|SSH server)/);
      continue;
    }
    if (phase.path === "network" || phase.id === "floor.net.download") {
      // The test network needs root (namespaces); without it the phases say so.
      if (process.getuid?.() !== 0) {
        expect(phase.unavailable).toMatch(/needs root/);
        continue;
      }
    }
    expect({ id: phase.id, n: phase.samples.length, unavailable: phase.unavailable }).toMatchObject({ id: phase.id, unavailable: null });
    expect(phase.samples.length).toBeGreaterThan(0);
    expect(phase.stats?.n).toBe(phase.samples.length);
  }
  const byId = Object.fromEntries(report.phases.map((p) => [p.id, p]));
  expect(byId["warm-command.agent"]!.samples.length).toBe(20);
  expect(byId["floor.ping"]!.samples.length).toBe(20);
  for (const floor of report.phases.filter((p) => p.kind === "floor" && (p.unavailable === null || !/needs root/.test(p.unavailable)))) {
    expect(floor.samples.length).toBeGreaterThan(0);
  }

  expect(report.options).toMatchObject({ vms: 1, runs: 20, image: "base" });
  expect(report.machine.cores).toBeGreaterThan(0);
  expect(report.machine.qemuVersion).toContain("QEMU");
  expect(report.machine.cpuModel).not.toBe("");
  expect(report.targets.map((t) => t.id)).toEqual([
    "create-to-first-command", "warm-command-floor", "warm-command-vs-ssh", "cli-help", "stop-delete", "cli-exec", "upload-vs-channel",
    "dir-upload-vs-channel", "preset-start", "download-vs-channel", "image-pull", "create-published",
    "net-download-user", "net-download-tap", "warm-create-to-first-command",
  ]);
  for (const target of report.targets) {
    if (target.id === "warm-command-vs-ssh") expect(target.met).toBeNull();
    else if (target.id === "preset-start" && byId["preset.start.cached"]!.samples.length === 0) expect(target.met).toBeNull();
    else expect(typeof target.met).toBe("boolean");
  }
  expect(report.profile.floorFlags.match).toBe(true);
  // Floors measured beside what they judge: a boot before each create, a raw run after each agent transfer.
  const pairs = Object.fromEntries(report.pairs.map((p) => [p.ratio, p.pairs.length]));
  expect(pairs).toMatchObject({
    "create-to-first-command/boot-floor": 2, "upload-agent/channel": 3, "download-agent/channel": 3, "dir-upload/channel": 3,
    "image-pull/curl+zstd": report.options.floorRuns, "create-published/create-local": 1, "create-to-first-command-warm/boot-floor": 3,
  });
  // The network phases (root only, as this suite runs): each guest download beside a host one, each create beside one without a network.
  if (process.getuid?.() === 0) {
    expect(pairs).toMatchObject({ "net-download-user/host": 5, "net-download-tap/host": 5, "net-create-user/none": 3, "net-create-tap/none": 3 });
  }
  expect(report.targets.find((t) => t.id === "create-to-first-command")?.basis).toBe("paired");
  expect(report.targets.find((t) => t.id === "warm-create-to-first-command")?.basis).toBe("paired");

  const svg = readFileSync(plot, "utf8");
  expect(xmlProblems(svg)).toEqual([]);
  expect(svg).toContain('data-phase="floor.boot"');
  expect(svg).toContain('data-phase="warm-command.agent"');

  // Everything the run created is gone: sandboxes, snapshots, the warm template it made.
  expect(envelope(await runCli(["list", "--all", "--json"])).data).toEqual([]);
  expect(envelope(await runCli(["snapshot", "list", "--json"])).data).toEqual([]);
  for (const dir of [paths.snapshotsDir(), paths.warmDir()]) expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  expect(existsSync(paths.sandboxesDir()) ? readdirSync(paths.sandboxesDir()) : []).toEqual([]);
}, RUN_TIMEOUT_MS);
