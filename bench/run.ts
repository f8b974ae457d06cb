/**
 * `smolvm bench`: one run that measures every phase of a sandbox's life and, on the same
 * machine with the same kernel, image and QEMU flags, the floors those phases are judged by.
 *
 * Order: floors first (QEMU start + quit, floor boots, the raw channel), then one sandbox
 * through its whole life (create, first command, ping, warm commands, fork/exec floor, CLI, SSH,
 * files, stop, launch, delete), snapshots, forks and warm creates, then N sandboxes one after
 * another and N at once. Every sandbox
 * the run creates is deleted at the end, also on failure or Ctrl-C (the abort signal).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { firecrackerBackend } from "../lib/backends/firecracker/backend.ts";
import { qemuBackend } from "../lib/backends/qemu/backend.ts";
import { precheckBackend } from "../lib/backends/select.ts";
import type { CreateSandboxOptions } from "../lib/smolvm.ts";
import { DEFAULT_IMAGE, parseSandboxConfig } from "../lib/config.ts";
import { BackendUnavailableError, CommandFailedError, InvalidInputError } from "../lib/errors.ts";
import { ensureFloorImage, ensureImage, FLOOR_READY_PREFIX } from "../lib/images/index.ts";
import { hostGuestArch } from "../lib/kernel/arch.ts";
import { ensureKernel } from "../lib/kernel/build.ts";
import type { SmolVM } from "../lib/smolvm.ts";
import { Collector } from "./_collect.ts";
import { firstSshCommand, measureTransfers, measureWarm } from "./_running.ts";
import { createAndFirstCommand, sandboxMemory, timedDelete, timedStart, timedStop, type CreatedSandbox } from "./_sandbox.ts";
import { floorArgv, floorBoot, floorSpec, qemuStartQuit, rawChannel, rawChannelInit, type FloorVm } from "./floors.ts";
import { dirFloorInit } from "./presets.ts";
import { measureDirUpload, measurePresetStart } from "./_presets.ts";
import { measureSnapshots } from "./_snapshots.ts";
import { describeMachine, loadAverage } from "./machine.ts";
import { compareArgv, createSpans, normalizeArgv, warmSpans, type CreateTiming } from "./profile.ts";
import { p50Of, type BenchReport } from "./report.ts";
import { computeRatios, evaluateTargets } from "./targets.ts";

export interface BenchOptions {
  /** Sandboxes in the sequential and in the concurrent phase. */
  vms: number;
  /** Samples of each warm-command and ping phase (at least 200 for a report worth quoting). */
  runs: number;
  image: string;
  /** Size of each file transfer (and of the raw channel floor's stream). */
  transferMiB: number;
  /**
   * The backend the sandboxes run on. The floors are QEMU boots of the same kernel and image on
   * the same accelerator either way. Firecracker sandboxes have no network (no SSH phases), and
   * the preset phase, whose sandboxes need one, is not run on it.
   */
  backend: "qemu" | "firecracker";
  /** Samples of each boot-sized floor. */
  floorRuns: number;
  signal?: AbortSignal;
  /** What the run is doing now, with a fraction of that step when known. */
  onProgress?: (step: string, fraction?: number) => void;
  /** Per-phase lines for -v. */
  log?: (line: string) => void;
}

export const BENCH_DEFAULTS: Omit<BenchOptions, "signal" | "onProgress" | "log"> = {
  vms: 2,
  runs: 200,
  image: DEFAULT_IMAGE,
  transferMiB: 16,
  floorRuns: 5,
  backend: "qemu",
};

const BOOT_TIMEOUT_MS = 60_000;

function checkOptions(o: BenchOptions): void {
  const bad = (what: string, hint: string) => new InvalidInputError(`Cannot run the benchmark: ${what}`, { hint });
  if (!Number.isInteger(o.vms) || o.vms < 1 || o.vms > 32) throw bad(`--vms must be 1 to 32, got ${o.vms}`, "e.g. --vms 2");
  if (!Number.isInteger(o.runs) || o.runs < 1 || o.runs > 100_000) throw bad(`--runs must be 1 to 100000, got ${o.runs}`, "e.g. --runs 200");
  if (!Number.isInteger(o.transferMiB) || o.transferMiB < 1 || o.transferMiB > 256) throw bad(`the transfer size must be 1 to 256 MiB, got ${o.transferMiB}`, "e.g. 16");
  if (!Number.isInteger(o.floorRuns) || o.floorRuns < 1 || o.floorRuns > 100) throw bad(`floor runs must be 1 to 100, got ${o.floorRuns}`, "e.g. 5");
}

export async function runBench(input: Partial<BenchOptions> = {}): Promise<BenchReport> {
  const o: BenchOptions = { ...BENCH_DEFAULTS, ...input };
  checkOptions(o);
  // Refused before minutes of kernel and image builds where it plainly cannot run.
  if (o.backend === "firecracker") precheckBackend({ choice: "firecracker", network: "none" });
  const sandbox: Partial<CreateSandboxOptions> = o.backend === "firecracker" ? { backend: "firecracker", network: "none" } : {};
  const log = o.log ?? (() => {});
  const step = (text: string, fraction?: number) => o.onProgress?.(text, fraction);
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const loadStart = loadAverage();
  const c = new Collector(log, o.signal);
  const live = new Set<SmolVM>();
  const scratch = await mkdtemp(join(tmpdir(), "smolvm-bench-"));
  const tag = randomBytes(2).toString("hex");
  const timings: CreateTiming[] = [];
  let floorFlags: BenchReport["profile"]["floorFlags"] = { match: null, differences: [] };
  let facts: { agentDurations: number[]; cliStartupMs: number[] } = { agentDurations: [], cliStartupMs: [] };

  try {
    step("preparing the kernel and images");
    const arch = hostGuestArch();
    // A first run may build these (minutes); later runs find them cached.
    const kernelPath = await ensureKernel(arch, { onProgress: (p) => step(`kernel: ${p.message}`, p.fraction) });
    const image = await ensureImage(o.image, { arch, onProgress: (p) => step(`image ${o.image}: ${p.message}`, p.fraction) });
    const floorImage = await ensureFloorImage({ arch });
    const probe = await qemuBackend.probe(arch, kernelPath);
    if (!probe.ok) throw new BackendUnavailableError(`Cannot run the benchmark: ${probe.reason}`, { hint: probe.hint ?? "run `smolvm doctor`" });
    if (o.backend === "firecracker") {
      const fc = await firecrackerBackend.probe(arch, kernelPath);
      if (!fc.ok) {
        throw new BackendUnavailableError(`Cannot run the benchmark on the firecracker backend: ${fc.reason}`, {
          hint: `${fc.hint ?? "run `smolvm doctor`"}; without --backend the benchmark runs on QEMU`,
        });
      }
    }
    const config = parseSandboxConfig({ image: o.image });
    const floorVm: FloorVm = { arch, accel: probe.accel, vcpus: config.vcpus, memoryMiB: config.memoryMiB, kernelPath };
    const machine = await describeMachine({ arch, kernelPath, imagePath: image.path, image: o.image });

    // ---- floors. Boot floors are also taken right before every create below, so that the
    // create / boot ratio compares samples from the same stretch of a drifting machine load.
    log("floors");
    let bootSpecArgv: { argv: string[]; dir: string } | undefined;
    const track = (vm: SmolVM) => live.add(vm);
    let floorBoots = 0;
    const floorGuestMs: number[] = [];
    const floorBoot1 = async (): Promise<number | undefined> => {
      let ms: number | undefined;
      await c.attempt(["floor.boot"], async () => {
        const dir = join(scratch, `boot-${floorBoots++}`);
        const spec = await floorSpec(floorVm, dir, floorImage.path, { path: floorImage.init });
        bootSpecArgv ??= { argv: floorArgv(spec), dir };
        const boot = await floorBoot(spec, FLOOR_READY_PREFIX, BOOT_TIMEOUT_MS);
        c.add("floor.boot", boot.ms);
        if (boot.guestMs !== undefined) floorGuestMs.push(boot.guestMs);
        ms = boot.ms;
        await rm(dir, { recursive: true, force: true });
      });
      return ms;
    };
    /** A floor boot, then a create; the two are a pair for the create / boot ratios. */
    const pairedCreate = async (name: string): Promise<CreatedSandbox> => {
      const floorMs = await floorBoot1();
      const made = await createAndFirstCommand({ image: o.image, name, track, sandbox });
      if (floorMs !== undefined) {
        c.pair("create/boot-floor", made.createMs, floorMs);
        c.pair("create-to-first-command/boot-floor", made.toFirstCommandMs, floorMs);
      }
      return made;
    };
    for (let i = 0; i < o.floorRuns; i++) {
      o.signal?.throwIfAborted();
      step("floors: QEMU start + quit, floor boot", i / o.floorRuns);
      await c.attempt(["floor.qemu"], async () => {
        c.add("floor.qemu", await qemuStartQuit(await floorSpec(floorVm, join(scratch, `qemu-${i}`), floorImage.path)));
      });
      await floorBoot1();
    }
    c.report("floor.qemu");
    c.report("floor.boot");
    const bytes = o.transferMiB * 2 ** 20;
    let rawRuns = 0;
    const rawChannel1 = async (): Promise<{ uploadMBps: number; downloadMBps: number } | undefined> => {
      let result: { uploadMBps: number; downloadMBps: number } | undefined;
      await c.attempt(["floor.channel-upload", "floor.channel-download"], async () => {
        step("floors: raw virtio-serial channel");
        const dir = join(scratch, `raw-${rawRuns++}`);
        result = await rawChannel(await floorSpec(floorVm, dir, image.path, rawChannelInit(bytes)), bytes, BOOT_TIMEOUT_MS + 120_000);
        c.add("floor.channel-upload", result.uploadMBps);
        c.add("floor.channel-download", result.downloadMBps);
        await rm(dir, { recursive: true, force: true });
      });
      return result;
    };
    await rawChannel1();

    // ---- one sandbox through its whole life
    o.signal?.throwIfAborted();
    log("one sandbox, start to end");
    step("creating a sandbox");
    const main = await pairedCreate(`bench-${tag}-main`);
    recordCreate(c, main, timings);
    await recordMemory(c, main.vm);
    floorFlags = o.backend === "firecracker"
      ? { match: null, differences: ["not compared: the sandboxes run on Firecracker, the floors on QEMU"] }
      : compareFlags(main.vm, bootSpecArgv, await main.vm.info());

    const on = running(o, scratch, step);
    const ssh = await firstSshCommand(main.vm, c, { ...on, calledAt: main.timing.calledAt, returnedAt: main.timing.returnedAt });
    const { connectSupervisor } = await import("../lib/sandbox/supervisor-client.ts");
    const client = await connectSupervisor(main.vm, { timeoutMs: 10_000 });
    try {
      facts = await measureWarm(main.vm, client, ssh, c, on);
      await measureTransfers(main.vm, client, ssh, c, { ...on, besideAgent: rawChannel1 });
    } finally {
      await ssh?.close();
      await client.close();
    }
    for (const id of ["floor.channel-upload", "floor.channel-download"]) {
      c.note(id, `${rawRuns} boots of image ${o.image} with /bin/sh streaming ${o.transferMiB} MiB through the agent's virtio-serial port (dd, 32 KiB blocks): one at the start, one right after each agent transfer (the sandbox idle meanwhile)`);
      c.report(id);
    }
    await measureDirUpload(c, main.vm, { scratch, step, floor: (tar) => floorSpec(floorVm, join(scratch, `dir-floor-${randomBytes(3).toString("hex")}`), image.path, dirFloorInit(tar.length)) });
    await lifeEnd(c, main.vm, live, step, true);
    if (o.backend === "firecracker") c.unavailable(["preset.start.cached", "preset.start.cold", "preset.warm"], "unavailable: preset sandboxes need a network, which Firecracker sandboxes do not have yet");
    else await measurePresetStart(c, { tag, live, step, floorBoot: floorBoot1 });
    if (o.backend === "firecracker") {
      c.unavailable(["snapshot.create", "snapshot.pause", "snapshot.size", "create.from-snapshot", "fork", "create-to-first-command.warm"], "unavailable: smolvm's snapshots are not wired to the Firecracker backend yet");
    } else {
      log("snapshots, forks and warm creates");
      await measureSnapshots(c, { image: o.image, tag, live, step, floorBoot: floorBoot1 });
    }

    // ---- N sandboxes, one after another, then all at once
    const sandboxes = `${o.vms} sandbox${o.vms === 1 ? "" : "es"}`;
    log(`${sandboxes} one after another`);
    const sequential: CreatedSandbox[] = [];
    for (let i = 0; i < o.vms; i++) {
      o.signal?.throwIfAborted();
      step(`${sandboxes} one after another`, i / o.vms);
      const made = await pairedCreate(`bench-${tag}-s${i + 1}`);
      sequential.push(made);
      recordCreate(c, made, timings);
      c.add("sandboxes.sequential", made.toFirstCommandMs);
      await recordMemory(c, made.vm);
    }
    c.extra("sandboxes.sequential", "sandboxes", o.vms);
    c.extra("sandboxes.sequential", "totalMs", sequential.reduce((sum, s) => sum + s.toFirstCommandMs, 0));
    c.report("sandboxes.sequential");
    for (const made of sequential) await lifeEnd(c, made.vm, live, step, true);

    log(`${sandboxes} at once`);
    step(`${sandboxes} at once`);
    const wallStart = performance.now();
    const concurrent = await Promise.all(
      Array.from({ length: o.vms }, (_, i) => createAndFirstCommand({ image: o.image, name: `bench-${tag}-c${i + 1}`, track, sandbox })),
    );
    c.extra("sandboxes.concurrent", "sandboxes", o.vms);
    c.extra("sandboxes.concurrent", "wallMs", performance.now() - wallStart);
    for (const made of concurrent) {
      c.add("sandboxes.concurrent", made.toFirstCommandMs);
      await recordMemory(c, made.vm);
    }
    c.report("sandboxes.concurrent");
    for (const made of concurrent) await lifeEnd(c, made.vm, live, step, false);

    // ---- published images: pull against curl + zstd, create from them against local builds
    log("published images");
    const { measurePublished } = await import("./published.ts");
    await measurePublished(c, {
      image: o.image,
      pulls: o.floorRuns,
      creates: o.vms,
      scratch: join(scratch, "published"),
      tag,
      step,
      track,
      untrack: (vm) => live.delete(vm),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });

    // ---- network modes, in a test network of the run's own (root only)
    log("network modes");
    const { measureNetwork } = await import("./net.ts");
    await measureNetwork(c, {
      image: o.image, runs: Math.max(3, Math.min(o.floorRuns, 10)), downloadMiB: Math.max(16, o.transferMiB), scratchDir: scratch, tag, step,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });

    c.note("create", `SDK create() of the first sandbox and of each sequential one, on ${o.backend === "firecracker" ? "Firecracker (the floors: QEMU)" : "QEMU"}`);
    c.note("floor.boot", `${o.floorRuns} at the start, then one right before each of those creates (the pairs)`);
    const phases = c.phases();
    const report: BenchReport = {
      schema: 1,
      startedAt,
      durationMs: Date.now() - started,
      options: { vms: o.vms, runs: o.runs, image: o.image, transferMiB: o.transferMiB, floorRuns: o.floorRuns, backend: o.backend },
      machine: { ...machine, loadAverage: { start: loadStart, end: loadAverage() } },
      phases,
      ratios: computeRatios(phases, c.pairs()),
      pairs: c.pairs(),
      targets: evaluateTargets(phases, c.pairs()),
      profile: {
        createBreakdown: createSpans(timings, { bootFloorMs: p50Of(phases, "floor.boot"), floorGuestMs: median(floorGuestMs) }),
        warmCommandBreakdown: warmSpans({
          hostP50: p50Of(phases, "warm-command.agent"),
          agentDurations: facts.agentDurations,
          pingP50: p50Of(phases, "floor.ping"),
          guestForkExecMs: p50Of(phases, "floor.fork-exec"),
          cliP50: p50Of(phases, "warm-command.cli"),
          cliStartupP50: median(facts.cliStartupMs),
        }),
        floorFlags,
      },
      warnings: c.warnings,
    };
    return report;
  } catch (error) {
    if (o.signal?.aborted) {
      throw new CommandFailedError("The benchmark was interrupted", { hint: "every sandbox it created is deleted; run it again for numbers" });
    }
    throw error;
  } finally {
    for (const vm of live) await vm.delete().catch(() => {});
    await rm(scratch, { recursive: true, force: true });
  }
}

function running(o: BenchOptions, scratchDir: string, step: (text: string, fraction?: number) => void) {
  return { runs: o.runs, transferMiB: o.transferMiB, scratchDir, step, ...(o.signal === undefined ? {} : { signal: o.signal }) };
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function recordCreate(c: Collector, made: CreatedSandbox, timings: CreateTiming[]): void {
  c.add("create", made.createMs);
  c.add("first-command.agent", made.firstCommandMs);
  c.add("create-to-first-command.agent", made.toFirstCommandMs);
  timings.push(made.timing);
  c.report("create-to-first-command.agent");
}

async function recordMemory(c: Collector, vm: SmolVM): Promise<void> {
  const memory = await sandboxMemory(vm);
  if (memory.qemu !== undefined) c.add("memory.qemu", memory.qemu);
  if (memory.supervisor !== undefined) c.add("memory.supervisor", memory.supervisor);
  if (memory.qemuPrivate !== undefined) c.add("memory.qemu.private", memory.qemuPrivate);
  if (memory.supervisorPrivate !== undefined) c.add("memory.supervisor.private", memory.supervisorPrivate);
}

/** Stop (and launch again, when `cycle`), then delete; every step timed. */
async function lifeEnd(c: Collector, vm: SmolVM, live: Set<SmolVM>, step: (text: string) => void, cycle: boolean): Promise<void> {
  if (cycle) {
    step(`stopping and starting ${vm.name}`);
    const stopped = await timedStop(vm);
    c.add("stop", stopped.stopMs);
    c.add("stop.freed", stopped.freedMs);
    c.add("launch", await timedStart(vm));
  }
  step(`deleting ${vm.name}`);
  const deleted = await timedDelete(vm);
  live.delete(vm);
  c.add("delete", deleted.deleteMs);
  c.add("delete.freed", deleted.freedMs);
}

function compareFlags(
  vm: SmolVM,
  floor: { argv: string[]; dir: string } | undefined,
  info: { vmmPid: number | null; dir: string },
): BenchReport["profile"]["floorFlags"] {
  if (floor === undefined || info.vmmPid === null) return { match: null, differences: ["not compared: no floor boot or no QEMU pid"] };
  try {
    const sandboxArgv = readFileSync(`/proc/${info.vmmPid}/cmdline`, "utf8").split("\0").filter((a) => a !== "").slice(1);
    const differences = compareArgv(normalizeArgv(floor.argv, floor.dir), normalizeArgv(sandboxArgv, info.dir));
    return { match: differences.length === 0, differences };
  } catch (error) {
    return { match: null, differences: [`not compared: cannot read the QEMU command line of "${vm.name}": ${(error as Error).message}`] };
  }
}
