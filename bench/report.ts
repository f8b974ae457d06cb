/**
 * What `smolvm bench` measures and the shape of its report: the phase catalogue (one entry per
 * thing timed, floors included), and the zod schema of the JSON document, which the tests and
 * any consumer of `smolvm bench --json` can validate against. Pure.
 *
 * Every phase is always present in a report, in catalogue order: a phase that could not be
 * measured has no samples and says why in `unavailable`, so a missing number is never silent.
 */
import { z } from "../lib/zod.ts";
import { summarize, type Stats } from "./stats.ts";

export type Unit = "ms" | "MB/s" | "MiB";
/** `phase`: something smolvm does; `floor`: the least the same machine can do, measured alike. */
export type PhaseKind = "phase" | "floor";
export type Path = "sdk" | "agent" | "ssh" | "sftp" | "scp" | "cli" | "qemu" | "guest" | "virtio-serial" | "host" | "network";

export interface PhaseDef {
  id: string;
  label: string;
  unit: Unit;
  kind: PhaseKind;
  /** Which road the measurement takes. */
  path: Path;
}

function def(id: string, label: string, unit: Unit, kind: PhaseKind, path: Path): PhaseDef {
  return { id, label, unit, kind, path };
}

/** Every phase, in the order reports list them. */
export const PHASES: readonly PhaseDef[] = [
  def("create", "create (SDK call until the agent answers)", "ms", "phase", "sdk"),
  def("launch", "launch (start a stopped sandbox)", "ms", "phase", "sdk"),
  def("first-command.agent", "first command after create, agent (connect + exec true)", "ms", "phase", "agent"),
  def("create-to-first-command.agent", "create -> first command result, agent", "ms", "phase", "agent"),
  def("first-command.ssh", "first command after create, SSH (connect + auth + exec true)", "ms", "phase", "ssh"),
  def("create-to-first-command.ssh", "create -> first command result, SSH", "ms", "phase", "ssh"),
  def("warm-command.agent", "warm command, agent (exec true)", "ms", "phase", "agent"),
  def("warm-command.ssh", "warm command, SSH (exec true)", "ms", "phase", "ssh"),
  def("warm-command.cli", "warm command, CLI (`smolvm exec` process)", "ms", "phase", "cli"),
  def("cli.help", "`smolvm --help` process, start to exit", "ms", "phase", "cli"),
  def("upload.agent", "upload, agent writeFile", "MB/s", "phase", "agent"),
  def("download.agent", "download, agent readFile", "MB/s", "phase", "agent"),
  def("upload.sftp", "upload, SFTP", "MB/s", "phase", "sftp"),
  def("download.sftp", "download, SFTP", "MB/s", "phase", "sftp"),
  def("upload.scp", "upload, system scp", "MB/s", "phase", "scp"),
  def("download.scp", "download, system scp", "MB/s", "phase", "scp"),
  def("file.upload.dir", "upload of a 2,000-file tree, SDK uploadDir (tar stream)", "MB/s", "phase", "agent"),
  def("snapshot.create", "snapshot of a fresh sandbox (SDK vm.snapshot(), until stored and listed)", "ms", "phase", "sdk"),
  def("snapshot.pause", "snapshot: how long the guest was stopped for it", "ms", "phase", "sdk"),
  def("snapshot.size", "snapshot: stored size, all files (zstd state + compressed disk layer)", "MiB", "phase", "host"),
  def("create.from-snapshot", "create from a snapshot (SDK create({ fromSnapshot }) until it answers)", "ms", "phase", "sdk"),
  def("fork", "fork (SDK vm.fork(): snapshot + create, until the new sandbox answers)", "ms", "phase", "sdk"),
  def("create-to-first-command.warm", "create -> first command result, restored from the image's warm template", "ms", "phase", "agent"),
  def("preset.start.cached", "claude start, image cached (startAgent until `claude --version` answers), restored from its warm template", "ms", "phase", "sdk"),
  def("preset.start.cold", "claude start, image cached, booted (startAgent with warm: false until `claude --version` answers)", "ms", "phase", "sdk"),
  def("preset.warm", "making the claude image's warm template (warmImage: boot, grow, run the agent once, snapshot, delete)", "ms", "phase", "sdk"),
  def("stop", "stop (caller-visible)", "ms", "phase", "sdk"),
  def("stop.freed", "stop, until VMM and supervisor are gone", "ms", "phase", "sdk"),
  def("delete", "delete a running sandbox (caller-visible)", "ms", "phase", "sdk"),
  def("delete.freed", "delete, until processes, directory and row are gone", "ms", "phase", "sdk"),
  def("sandboxes.sequential", "N sandboxes one after another (create + first command each)", "ms", "phase", "sdk"),
  def("sandboxes.concurrent", "N sandboxes at once (create + first command each)", "ms", "phase", "sdk"),
  def("image.pull", "image pull: download, verify and unpack the kernel and image from a loopback mirror", "ms", "phase", "host"),
  def("create.published", "create from published images (SDK call until the agent answers)", "ms", "phase", "sdk"),
  def("create.local", "create from local builds (SDK call until the agent answers)", "ms", "phase", "sdk"),
  def("memory.qemu", "host memory per sandbox: QEMU RSS", "MiB", "phase", "host"),
  def("memory.supervisor", "host memory per sandbox: supervisor RSS", "MiB", "phase", "host"),
  def("memory.qemu.private", "host memory per sandbox: QEMU private (not shared with other processes)", "MiB", "phase", "host"),
  def("memory.supervisor.private", "host memory per sandbox: supervisor private (not shared with other processes)", "MiB", "phase", "host"),
  def("net.download.user", "download from the test network's internet, guest on the user network (curl)", "MB/s", "phase", "network"),
  def("net.download.tap", "download from the test network's internet, guest on a TAP interface (curl)", "MB/s", "phase", "network"),
  def("net.create.user", "create with --network user, in the test network", "ms", "phase", "network"),
  def("net.create.tap", "create with --network tap, in the test network", "ms", "phase", "network"),
  def("net.create.none", "create with --network none, in the test network", "ms", "phase", "network"),
  def("floor.qemu", "floor: QEMU start + QMP quit", "ms", "floor", "qemu"),
  def("floor.boot", "floor: boot to an init that prints a line", "ms", "floor", "qemu"),
  def("floor.ping", "floor: agent ping round trip", "ms", "floor", "agent"),
  def("floor.fork-exec", "floor: fork/exec of true, timed in the guest", "ms", "floor", "guest"),
  def("floor.channel-upload", "floor: raw virtio-serial, host -> guest", "MB/s", "floor", "virtio-serial"),
  def("floor.channel-download", "floor: raw virtio-serial, guest -> host", "MB/s", "floor", "virtio-serial"),
  def("floor.dir-upload", "floor: the same tree's tar stream into tar in the guest over raw virtio-serial", "MB/s", "floor", "virtio-serial"),
  def("floor.runtime", "floor: an empty program on the same runtime, in the same form", "ms", "floor", "cli"),
  def("floor.curl", "floor: curl downloading the same files from the same mirror", "ms", "floor", "host"),
  def("floor.zstd", "floor: the zstd program unpacking the same files", "ms", "floor", "host"),
  def("floor.net.download", "floor: the same download from the host's own namespace (curl)", "MB/s", "floor", "host"),
];

export const PHASE_IDS: readonly string[] = PHASES.map((p) => p.id);

const statsSchema = z.object({
  n: z.int().check(z.positive()),
  min: z.number(),
  mean: z.number(),
  p50: z.number(),
  p90: z.number(),
  p99: z.number(),
  max: z.number(),
});

export const phaseResultSchema = z.object({
  id: z.string(),
  label: z.string(),
  unit: z.enum(["ms", "MB/s", "MiB"]),
  kind: z.enum(["phase", "floor"]),
  path: z.string(),
  /** Every sample, in the order taken. */
  samples: z.array(z.number()),
  stats: z.nullable(statsSchema),
  /** Why there are no samples ("unavailable: ..."), or null. */
  unavailable: z.nullable(z.string()),
  /** Facts about how it was measured, and totals (e.g. wall time of N concurrent creates). */
  notes: z.array(z.string()),
  extra: z.record(z.string(), z.union([z.number(), z.string()])),
});
export type PhaseResult = z.infer<typeof phaseResultSchema>;

export const ratioSchema = z.object({
  id: z.string(),
  label: z.string(),
  /** value = p50(numerator) / sum of p50(denominator). */
  numerator: z.string(),
  denominator: z.array(z.string()),
  value: z.nullable(z.number()),
  /**
   * The median of per-pair ratios, where each numerator sample was measured right next to a
   * floor sample (see `pairs`): robust to load that drifts during the run. null without pairs.
   */
  paired: z.nullable(z.object({ value: z.number(), n: z.number() })),
});
export type Ratio = z.infer<typeof ratioSchema>;

/** Samples taken side by side for a ratio: [numerator, denominator] per pair. */
export const pairsSchema = z.object({ ratio: z.string(), pairs: z.array(z.tuple([z.number(), z.number()])) });
export type Pairs = z.infer<typeof pairsSchema>;

export const targetSchema = z.object({
  id: z.string(),
  label: z.string(),
  /** What the value is: a ratio ("x") or a duration ("ms"). */
  unit: z.enum(["x", "ms"]),
  comparison: z.enum(["<=", ">="]),
  limit: z.number(),
  /** The phases the value is computed from. */
  inputs: z.array(z.string()),
  value: z.nullable(z.number()),
  /** How the value was had: the paired median, the ratio of medians, or a sum of medians. */
  basis: z.enum(["paired", "p50", "sum", "difference"]),
  /** null: not measurable in this run (see why). */
  met: z.nullable(z.boolean()),
  why: z.nullable(z.string()),
});
export type Target = z.infer<typeof targetSchema>;

export const machineSchema = z.object({
  cpuModel: z.string(),
  cores: z.number(),
  memoryMiB: z.number(),
  hostKernel: z.string(),
  os: z.string(),
  qemuVersion: z.string(),
  accel: z.string(),
  accelReason: z.string(),
  runtime: z.string(),
  smolvmVersion: z.string(),
  guestKernel: z.string(),
  image: z.string(),
  loadAverage: z.object({ start: z.array(z.number()), end: z.array(z.number()) }),
});
export type Machine = z.infer<typeof machineSchema>;

export const spanSchema = z.object({ name: z.string(), ms: z.nullable(z.number()), note: z.string() });
export type Span = z.infer<typeof spanSchema>;

export const benchReportSchema = z.object({
  schema: z.literal(1),
  startedAt: z.string(),
  durationMs: z.number(),
  options: z.object({
    vms: z.number(), runs: z.number(), image: z.string(), transferMiB: z.number(), floorRuns: z.number(),
    /** Absent in reports of earlier versions, which ran on QEMU. */
    backend: z.optional(z.enum(["qemu", "firecracker"])),
  }),
  machine: machineSchema,
  phases: z.array(phaseResultSchema),
  ratios: z.array(ratioSchema),
  pairs: z.array(pairsSchema),
  targets: z.array(targetSchema),
  /** Where the time of the slow phases goes, from timestamps the run collected. */
  profile: z.object({
    createBreakdown: z.array(spanSchema),
    warmCommandBreakdown: z.array(spanSchema),
    /** Whether the floors' QEMU argv equals a real sandbox's, paths aside. */
    floorFlags: z.object({ match: z.nullable(z.boolean()), differences: z.array(z.string()) }),
  }),
  warnings: z.array(z.string()),
});
export type BenchReport = z.infer<typeof benchReportSchema>;

/** A phase's result from its samples, or marked unavailable with the reason. */
export function phaseResult(
  id: string,
  samples: readonly number[],
  options: { unavailable?: string; notes?: string[]; extra?: Record<string, number | string> } = {},
): PhaseResult {
  const phase = PHASES.find((p) => p.id === id);
  if (phase === undefined) throw new RangeError(`unknown benchmark phase "${id}"`);
  const stats: Stats | null = summarize(samples);
  const unavailable = options.unavailable ?? (stats === null ? "unavailable: not measured in this run" : null);
  return {
    ...phase,
    samples: [...samples],
    stats,
    unavailable: unavailable === null || unavailable.startsWith("unavailable:") ? unavailable : `unavailable: ${unavailable}`,
    notes: options.notes ?? [],
    extra: options.extra ?? {},
  };
}

/** The p50 of a phase in a list of results, or undefined when it has none. */
export function p50Of(phases: readonly PhaseResult[], id: string): number | undefined {
  return phases.find((p) => p.id === id)?.stats?.p50;
}
