/**
 * The host against a hostile guest agent (test/helpers/hostile-agent.ts as the "VM"), with the
 * supervisor in a process of its own so its memory can be read from /proc: for each attack, the
 * supervisor's resident memory stays within a fixed budget of what it used before the attack,
 * the caller gets a clear error within its deadline, and the sandbox is deleted with nothing
 * left (no process naming its directory, no directory, no row).
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import type { AgentClient } from "../../../lib/agent/client.ts";
import { deleteSandbox } from "../../../lib/sandbox/lifecycle.ts";
import { sandboxFiles } from "../../../lib/sandbox/layout.ts";
import { pidAlive } from "../../../lib/host/pids.ts";
import { pollUntil } from "../../../lib/util/poll.ts";
import type { HostileMode } from "../../helpers/hostile-agent.ts";
import { processesMatching } from "../../helpers/agent.ts";
import { client, record, sandboxRow, superviseInChild } from "./_fixture.ts";

/** What an attack may add to the supervisor's resident memory. */
const BUDGET_BYTES = 48 * 1024 * 1024;
/** A short liveness watch, so a silent agent is judged within a test's patience. */
const LIVENESS = { quietMs: 500, hungMs: 3_000, busyHungMs: 3_000 };

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match![1]) * 1024;
}

/** The highest RSS of `pid` until stopped, sampled every 10 ms. */
function watchPeak(pid: number): { stop(): number } {
  let peak = rssBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      // It exited: its last sample stands.
    }
  }, 10);
  return { stop: () => (clearInterval(timer), peak) };
}

const measured: Record<string, { baselineMiB: number; peakMiB: number }> = {};
const supervisors: ChildProcess[] = [];
afterAll(() => {
  console.log(`supervisor RSS under attack (MiB): ${JSON.stringify(measured)}`);
  // A failed test must not leave its supervisor (and so the test run) behind.
  for (const child of supervisors) if (child.exitCode === null) child.kill("SIGKILL");
});

/** Records the attack's peak against its baseline and checks it against the budget. */
function account(mode: string, run: { baseline: number }, peak: number): void {
  measured[mode] = { baselineMiB: Math.round(run.baseline / 2 ** 16) / 16, peakMiB: Math.round(peak / 2 ** 16) / 16 };
  expect(peak - run.baseline).toBeLessThan(BUDGET_BYTES);
}

interface Attack {
  supervisor: ChildProcess;
  vm: ReturnType<typeof sandboxRow>;
  session: AgentClient;
  baseline: number;
}

async function attack(mode: HostileMode, options: { delayMs?: number; liveness?: typeof LIVENESS } = {}): Promise<Attack> {
  const vm = sandboxRow();
  const hostile = { mode, ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs }) };
  const supervisor = await superviseInChild(vm, { hostile, liveness: options.liveness ?? LIVENESS });
  supervisors.push(supervisor);
  const baseline = rssBytes(supervisor.pid!);
  return { supervisor, vm, session: await client(vm), baseline };
}

/**
 * The supervisor of an attack that starts with the agent's first words (before any client has
 * its HELLO answered): the caller's session may be refused already.
 */
async function attackAtOnce(mode: HostileMode): Promise<Omit<Attack, "session"> & { session: AgentClient | Error }> {
  const vm = sandboxRow();
  const supervisor = await superviseInChild(vm, { hostile: { mode }, liveness: LIVENESS });
  supervisors.push(supervisor);
  const baseline = rssBytes(supervisor.pid!);
  return { supervisor, vm, session: await client(vm).catch((error: Error) => error), baseline };
}

/** Deletes the sandbox and proves nothing of it is left. */
async function deleteAndCheck({ supervisor, vm, session }: Omit<Attack, "session"> & { session: AgentClient | Error }): Promise<void> {
  if (!(session instanceof Error)) await session.close();
  await deleteSandbox(vm.id);
  await pollUntil(() => !pidAlive(supervisor.pid!), { timeoutMs: 10_000, what: "the supervisor to exit" });
  await pollUntil(() => processesMatching(sandboxFiles(vm.id).dir).length === 0, { timeoutMs: 10_000, what: "the sandbox's processes to end" });
  expect(existsSync(sandboxFiles(vm.id).dir)).toBe(false);
  expect(record(vm.id)).toBeUndefined();
}

/** Runs `echo hi` with a deadline; resolves with the outcome and how long it took. */
async function runWithin(session: AgentClient, timeoutMs?: number): Promise<{ error?: Error & { code?: string }; stdout?: string; ms: number }> {
  const t0 = Date.now();
  try {
    const result = await session.run(["echo", "hi"], timeoutMs === undefined ? {} : { timeoutMs });
    return { stdout: result.stdout, ms: Date.now() - t0 };
  } catch (error) {
    return { error: error as Error & { code?: string }, ms: Date.now() - t0 };
  }
}

describe("a guest agent that breaks the protocol is cut off, and the supervisor's memory stays bounded", () => {
  const cases: Array<{ mode: HostileMode; violation: RegExp }> = [
    { mode: "flood", violation: /sent \d+ bytes beyond its credit on stream \d+/ },
    { mode: "flood-idle", violation: /sent a frame of type 0x10 on stream \d+, which it never opened|on stream \d+ that is not open/ },
    { mode: "events", violation: /more than 16 events on stream \d+/ },
    { mode: "oversized", violation: /payload of 16777216 bytes exceeds 65536/ },
    { mode: "wrong-channel", violation: /data on channel 0 of stream \d+, which only the host writes/ },
  ];
  for (const { mode, violation } of cases) {
    test(`${mode}: the caller is told within its deadline, the sandbox is ended and says why`, async () => {
      const t0 = Date.now();
      const run = await attackAtOnce(mode);
      const peak = watchPeak(run.supervisor.pid!);
      const outcome = run.session instanceof Error ? { error: run.session as Error & { code?: string }, ms: Date.now() - t0 } : await runWithin(run.session, 5_000);
      // Long enough for unbounded growth to show, had the supervisor kept what was sent.
      await Bun.sleep(1_000);
      account(mode, run, peak.stop());
      expect(outcome.ms).toBeLessThan(5_000);
      expect(outcome.error?.code).toBe("AGENT_UNAVAILABLE");
      expect(outcome.error?.message).toMatch(/its guest agent broke the protocol/);
      expect(outcome.error?.message).toMatch(violation);
      await pollUntil(() => record(run.vm.id)?.status === "failed", { timeoutMs: 5_000, what: "the record to say failed" });
      expect(record(run.vm.id)?.lastError?.message).toMatch(violation);
      await deleteAndCheck(run);
    });
  }
});

describe("a guest agent that answers wrongly, late or never", () => {
  test("mistyped: an exec RESULT of the wrong field types is a clear error, and the sandbox goes on", async () => {
    const run = await attack("mistyped");
    const peak = watchPeak(run.supervisor.pid!);
    const outcome = await runWithin(run.session, 5_000);
    expect(outcome.error?.code).toBe("AGENT_UNAVAILABLE");
    expect(outcome.error?.message).toMatch(/exec RESULT is not valid \(exitCode: /);
    expect(outcome.ms).toBeLessThan(5_000);
    // A sound answer on the same session still comes through.
    expect(await run.session.env.list()).toEqual({});
    account("mistyped", run, peak.stop());
    await deleteAndCheck(run);
  });

  test("silent: a command with a timeout ends at the timeout plus the host's grace, as a TimeoutError", async () => {
    // A patient liveness watch: the command's own deadline is what ends it here.
    const run = await attack("silent", { liveness: { ...LIVENESS, hungMs: 60_000 } });
    const peak = watchPeak(run.supervisor.pid!);
    const outcome = await runWithin(run.session, 1_000);
    account("silent, with a timeout", run, peak.stop());
    expect(outcome.error?.code).toBe("TIMEOUT");
    expect(outcome.error?.message).toBe("The guest agent did not start the command within its 1 s timeout");
    // 1 s + 3 s of grace, and some slack for a loaded host; never unbounded.
    expect(outcome.ms).toBeGreaterThanOrEqual(4_000);
    expect(outcome.ms).toBeLessThan(6_000);
    await deleteAndCheck(run);
  });

  test("silent: a command without a timeout is given up on once the agent misses a ping while its VM idles", async () => {
    const run = await attack("silent");
    const peak = watchPeak(run.supervisor.pid!);
    const outcome = await runWithin(run.session);
    account("silent", run, peak.stop());
    expect(outcome.error?.code).toBe("AGENT_UNAVAILABLE");
    expect(outcome.error?.message).toMatch(/^The guest agent of sandbox "[^"]+" has not answered for \d+ s, a ping included, although its VM runs$/);
    expect(outcome.ms).toBeLessThan(LIVENESS.quietMs + LIVENESS.hungMs + 3_000);
    await deleteAndCheck(run);
  });

  test("slow: an agent that answers late but answers is busy, not dead: the commands succeed", async () => {
    const run = await attack("slow", { delayMs: 2_000 });
    const peak = watchPeak(run.supervisor.pid!);
    const results = await Promise.all([runWithin(run.session), runWithin(run.session, 10_000)]);
    account("slow", run, peak.stop());
    for (const outcome of results) {
      expect(outcome.error).toBeUndefined();
      expect(outcome.stdout).toBe("echo hi\n");
    }
    await deleteAndCheck(run);
  });
});
