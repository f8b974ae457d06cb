/**
 * Where the time of a create and of a warm command goes, from timestamps a run collects anyway:
 * process start times from /proc, the supervisor's "sandbox ready" log line, the agent's own
 * boot clock and exec durations. Also the check that the floors ran QEMU with a sandbox's flags.
 * Pure: the effects that gather the inputs live in the runner.
 */
import type { Span } from "./report.ts";
import { percentile } from "./stats.ts";

/** The timestamps of one create, epoch ms (process starts are known to ~10 ms). */
export interface CreateTiming {
  calledAt: number;
  supervisorStartedAt?: number;
  qemuStartedAt?: number;
  /** When the supervisor logged "sandbox ready" (it had the agent's HELLO and wrote the row). */
  readyLoggedAt?: number;
  /** The guest's CLOCK_BOOTTIME when the agent answered HELLO. */
  agentBootTimeMs?: number;
  returnedAt: number;
  /** The first command after create (connect + HELLO + exec true). */
  firstCommandMs?: number;
  /** The agent's own fork -> exit time of that first command (a cold guest: page cache, translation cache). */
  firstCommandGuestMs?: number;
}

/** The "sandbox ready" event of one sandbox in the smolvm log text, if there. */
export function findReadyEvent(logText: string, vmId: string): { at: number; bootTimeMs?: number } | undefined {
  for (const line of logText.split("\n")) {
    if (!line.includes("sandbox ready") || !line.includes(vmId)) continue;
    try {
      const event = JSON.parse(line) as { time?: string; message?: string; vm?: string; bootTimeMs?: number };
      if (event.message !== "sandbox ready" || event.vm !== vmId || event.time === undefined) continue;
      return { at: Date.parse(event.time), ...(typeof event.bootTimeMs === "number" ? { bootTimeMs: event.bootTimeMs } : {}) };
    } catch {
      // Not a JSON line.
    }
  }
  return undefined;
}

function medianOf(values: Array<number | undefined>): number | null {
  const known = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  return known.length === 0 ? null : percentile(known, 50);
}

function gap(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : b - a;
}

/**
 * Median spans over all creates of a run, with the boot floor beside them for comparison:
 * `bootFloorMs` host-visible, `floorGuestMs` the floor guest's own clock when its init ran.
 */
export function createSpans(timings: readonly CreateTiming[], floor: { bootFloorMs?: number | undefined; floorGuestMs?: number | undefined } = {}): Span[] {
  const spans: Span[] = [
    {
      name: "caller: config, artifacts, state row, spawn supervisor",
      ms: medianOf(timings.map((t) => gap(t.calledAt, t.supervisorStartedAt))),
      note: "create() called -> supervisor process exists (/proc start time, 10 ms ticks)",
    },
    {
      name: "supervisor start-up until QEMU is spawned",
      ms: medianOf(timings.map((t) => gap(t.supervisorStartedAt, t.qemuStartedAt))),
      note: "runtime start, module loading, QEMU probe, disk overlay",
    },
    {
      name: "QEMU start -> agent HELLO recorded",
      ms: medianOf(timings.map((t) => gap(t.qemuStartedAt, t.readyLoggedAt))),
      note: "QEMU set-up, kernel boot, agent init, HELLO, state row update",
    },
    {
      name: "  of which guest clock at HELLO (agent bootTimeMs)",
      ms: medianOf(timings.map((t) => t.agentBootTimeMs)),
      note: "guest CLOCK_BOOTTIME: kernel start -> agent answers",
    },
    {
      name: "ready recorded -> create() returns",
      ms: medianOf(timings.map((t) => gap(t.readyLoggedAt, t.returnedAt))),
      note: "the caller polls the state row every 5 ms",
    },
    {
      name: "create() total",
      ms: medianOf(timings.map((t) => t.returnedAt - t.calledAt)),
      note: "caller-visible",
    },
    {
      name: "first command (connect + HELLO + exec true)",
      ms: medianOf(timings.map((t) => t.firstCommandMs)),
      note: "after create() returned",
    },
    {
      name: "  of which the guest's fork -> exit (agent-measured)",
      ms: medianOf(timings.map((t) => t.firstCommandGuestMs)),
      note: "the first exec in a fresh guest runs cold",
    },
    {
      name: "boot floor (spawn -> init prints)",
      ms: floor.bootFloorMs ?? null,
      note: "same kernel, disk setup and QEMU flags; no agent, no supervisor",
    },
    {
      name: "  of which guest clock when the floor init ran",
      ms: floor.floorGuestMs ?? null,
      note: "compare with the agent's bootTimeMs above: the agent's own start-up",
    },
  ];
  return spans;
}

export interface WarmInputs {
  hostP50: number | undefined;
  /** The agent's own fork -> exit durations (whole ms). */
  agentDurations: readonly number[];
  pingP50: number | undefined;
  guestForkExecMs: number | undefined;
  cliP50: number | undefined;
  cliStartupP50: number | undefined;
}

export function warmSpans(w: WarmInputs): Span[] {
  const agentP50 = medianOf([...w.agentDurations]);
  const rest = w.hostP50 === undefined || agentP50 === null || w.pingP50 === undefined ? null : w.hostP50 - agentP50 - w.pingP50;
  return [
    { name: "warm command, host-visible (SDK run true)", ms: w.hostP50 ?? null, note: "p50" },
    { name: "  agent-measured: fork -> exit of the command", ms: agentP50, note: "p50 of the exec result's durationMs (whole ms)" },
    { name: "  round trip host -> supervisor -> agent -> host", ms: w.pingP50 ?? null, note: "p50 of ping on the same path" },
    { name: "  rest: exec set-up, stream frames, result", ms: rest, note: "host-visible - agent-measured - ping" },
    { name: "guest fork/exec of true (shell loop)", ms: w.guestForkExecMs ?? null, note: "what the agent's fork -> exit could be" },
    { name: "CLI: `smolvm exec NAME -- true`, new process", ms: w.cliP50 ?? null, note: "p50" },
    { name: "  of which CLI start-up (`smolvm --version`)", ms: w.cliStartupP50 ?? null, note: "runtime start + module loading" },
  ];
}

/** Replaces run-specific paths and names in a QEMU argv so two sandboxes' argvs compare equal. */
export function normalizeArgv(argv: readonly string[], dir: string): string[] {
  const out: string[] = [];
  for (const arg of argv) {
    let a = arg.split(dir).join("<dir>");
    a = a.replace(/,hostfwd=[^,]*/g, "");
    a = a.replace(/\binit=\S+/g, "init=<init>").replace(/\bsmolvm\.hostname=\S+/g, "smolvm.hostname=<name>");
    a = a.replace(/ SMOLVM_RAW=.*$/, "");
    a = a.replace(/\/images\/[^/]+\//g, "/images/<image>/");
    out.push(a);
  }
  return out;
}

/**
 * What differs between the floors' QEMU argv and a sandbox's, once both are normalized: the
 * arguments only one side has, prefixed with the side.
 */
export function compareArgv(floor: readonly string[], sandbox: readonly string[]): string[] {
  const count = (list: readonly string[]) => list.reduce((m, a) => m.set(a, (m.get(a) ?? 0) + 1), new Map<string, number>());
  const f = count(floor);
  const s = count(sandbox);
  const diffs: string[] = [];
  for (const [arg, n] of f) if ((s.get(arg) ?? 0) < n) diffs.push(`floor only: ${arg}`);
  for (const [arg, n] of s) if ((f.get(arg) ?? 0) < n) diffs.push(`sandbox only: ${arg}`);
  return diffs;
}
