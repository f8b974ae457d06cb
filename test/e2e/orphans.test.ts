/**
 * No orphan, ever: `smolvm create` killed with SIGKILL at any point, then `smolvm cleanup`,
 * leaves no QEMU, no supervisor, no listening port, no file and no row of it. The points are a
 * sweep of delays after the create starts, and each phase boundary as it is seen from outside
 * (its directory, its row, its VMM process, the VMM's ticket, its supervisor, its readiness): the
 * create is frozen with SIGSTOP the moment the phase shows, then killed. Nothing in smolvm is told.
 */
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { listeningTcpPorts } from "../../lib/host/ports.ts";
import { paths } from "../../lib/paths.ts";
import { launcherFile } from "../../lib/sandbox/launcher.ts";
import { sandboxFiles } from "../../lib/sandbox/layout.ts";
import { sandboxProcesses } from "../../lib/sandbox/processes.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import type { SandboxRecord } from "../../lib/state/record.ts";
import { envelope, repoRoot, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, waitUntil } from "../helpers/vm.ts";

setDefaultTimeout(300_000);

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

function rows(): SandboxRecord[] {
  const store = StateStore.open();
  try {
    return store.list();
  } finally {
    store.close();
  }
}

function dirs(): string[] {
  return existsSync(paths.sandboxesDir()) ? readdirSync(paths.sandboxesDir()) : [];
}

function startCreate(): ChildProcess {
  return spawn(process.execPath, [join(repoRoot, "main.ts"), "create", "--image", "base", "--json"], {
    env: { ...process.env, NO_COLOR: "1" },
    stdio: "ignore",
  });
}

/** Kills the create; false when it had finished already (then there was nothing to abandon). */
async function kill(create: ChildProcess): Promise<boolean> {
  if (create.exitCode !== null || create.signalCode !== null) return false;
  const exited = new Promise((resolve) => create.once("exit", resolve));
  create.kill("SIGKILL");
  await exited;
  return create.exitCode === null;
}

/**
 * Whether a process of this test's home listens on `port`: other homes on this host (other test
 * runs) allocate from the same pool, and may take a port ours let go.
 */
function ourListener(port: number): boolean {
  const listeners = spawnSync("ss", ["-H", "-ltnp", `sport = :${port}`], { encoding: "utf8" }).stdout;
  return [...listeners.matchAll(/pid=(\d+)/g)].some(([, pid]) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(paths.sandboxesDir());
    } catch {
      return false;
    }
  });
}

/** Everything a sandbox seen in this test could have left: processes, listening ports, files, rows. */
function leftovers(ids: Set<string>, ports: Set<number>): { processes: number[]; ports: number[]; dirs: string[]; rows: string[] } {
  const listening = listeningTcpPorts();
  return {
    processes: [...ids].flatMap((id) => sandboxProcesses(id).map((p) => p.pid)),
    ports: [...ports].filter((port) => listening.has(port) && ourListener(port)),
    dirs: dirs(),
    rows: rows().map((vm) => vm.name),
  };
}

/** Polls what a create has made so far, remembering every id and port it showed. */
function watcher() {
  const ids = new Set<string>();
  const ports = new Set<number>();
  return {
    ids,
    ports,
    look(): { dir: boolean; row: SandboxRecord | undefined } {
      for (const id of dirs()) ids.add(id);
      const row = rows()[0];
      if (row !== undefined) {
        ids.add(row.id);
        if (row.sshPort !== null) ports.add(row.sshPort);
      }
      return { dir: dirs().length > 0, row };
    },
  };
}

async function cleanupLeavesNothing(watch: ReturnType<typeof watcher>): Promise<void> {
  const result = await runCli(["cleanup", "--json"]);
  expect(result.code).toBe(0);
  expect(envelope(result).data.kept).toEqual([]);
  expect(leftovers(watch.ids, watch.ports)).toEqual({ processes: [], ports: [], dirs: [], rows: [] });
}

/**
 * Freezes the create, kills it, then looks. "answered" when it had its answer first (it removes
 * its launcher record once it has it, so a running row without one is a sandbox someone made),
 * "finished" when it had exited already, else "abandoned". Nothing is read between the freeze
 * and the kill: a create frozen inside a write holds the state store's lock until it dies.
 */
async function killCreate(create: ChildProcess, watch: ReturnType<typeof watcher>): Promise<"finished" | "answered" | "abandoned"> {
  create.kill("SIGSTOP");
  if (!(await kill(create))) return "finished";
  const { row } = watch.look();
  return row?.status === "running" && !existsSync(launcherFile(sandboxFiles(row.id))) ? "answered" : "abandoned";
}

/** A sandbox someone made is listed running, and delete --force leaves nothing of it. */
async function deleteLeavesNothing(watch: ReturnType<typeof watcher>): Promise<void> {
  expect(envelope(await runCli(["list", "--json"])).data.map((vm: { status: string }) => vm.status)).toEqual(["running"]);
  expect((await runCli(["delete", "--all", "--force"])).code).toBe(0);
  expect(leftovers(watch.ids, watch.ports)).toEqual({ processes: [], ports: [], dirs: [], rows: [] });
}

describe("kill -9 of create, then cleanup", () => {
  // One test's leftovers must not fail the next.
  afterEach(async () => {
    await runCli(["delete", "--all", "--force"]);
  });

  test("at delays from 0 to 1.2 s after it starts", async () => {
    for (const delayMs of [0, 100, 200, 300, 450, 600, 800, 1_000, 1_200]) {
      const watch = watcher();
      const create = startCreate();
      const end = Date.now() + delayMs;
      while (Date.now() < end) {
        watch.look();
        await Bun.sleep(5);
      }
      const outcome = await killCreate(create, watch);
      if (outcome !== "abandoned") {
        await deleteLeavesNothing(watch);
        continue;
      }
      watch.look();
      await cleanupLeavesNothing(watch);
    }
  });

  const PHASES: Array<[string, (seen: { dir: boolean; row: SandboxRecord | undefined }) => boolean]> = [
    ["its directory exists", (seen) => seen.dir],
    ["its row exists", (seen) => seen.row !== undefined],
    ["its VMM process exists", (seen) => seen.row !== undefined && sandboxProcesses(seen.row.id).some((p) => p.role === "vmm")],
    ["its VMM's ticket is written", (seen) => seen.row !== undefined && existsSync(sandboxFiles(seen.row.id).vmmTicket)],
    ["its supervisor runs", (seen) => seen.row !== undefined && sandboxProcesses(seen.row.id).some((p) => p.role === "supervisor")],
    ["it is ready", (seen) => seen.row?.status === "running"],
  ];
  for (const [phase, reached] of PHASES) {
    test(`frozen (SIGSTOP) the moment ${phase}`, async () => {
      const watch = watcher();
      const create = startCreate();
      const deadline = Date.now() + 60_000;
      while (!reached(watch.look())) {
        if (Date.now() > deadline) throw new Error(`the create never reached "${phase}"`);
        await Bun.sleep(2);
      }
      const outcome = await killCreate(create, watch);
      expect(outcome).not.toBe("finished");
      if (outcome === "answered") {
        // Only "ready" can be seen that late: on a loaded host the poll above saw it after the
        // create had its answer.
        expect(phase).toBe("it is ready");
        await deleteLeavesNothing(watch);
        return;
      }
      if (phase === "its VMM process exists") {
        // Until cleanup, the abandoned create says what it is (unless its supervisor undid it first).
        const listed = envelope(await runCli(["list", "--all", "--json"])).data;
        for (const vm of listed) {
          expect(vm.status).toBe("failed");
          expect(vm.lastError.message).toMatch(/^its create was interrupted: the process that ran it \(pid \d+\) exited before the sandbox was ready/);
        }
      }
      await cleanupLeavesNothing(watch);
    });
  }
});

describe("stop when its supervisor is gone", () => {
  test("a supervisor killed with SIGKILL: stop takes a new one over and the guest still shuts down cleanly, in seconds", async () => {
    expect((await runCli(["create", "--name", "orphaned", "--image", "base"])).code).toBe(0);
    expect((await runCli(["exec", "orphaned", "--", "sh", "-c", "echo kept > /root/note"])).code).toBe(0);
    const vm = rows().find((row) => row.name === "orphaned")!;
    process.kill(vm.supervisorPid!, "SIGKILL");
    const t0 = Date.now();
    const stop = await runCli(["stop", "orphaned"]);
    expect(stop.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    // The supervisor answers the stop first and makes the disk durable after (shutdown.ts):
    // its process goes a moment later.
    await waitUntil(() => sandboxProcesses(vm.id).length === 0, 5_000, "the new supervisor to exit after the stop");
    expect((await runCli(["start", "orphaned"])).code).toBe(0);
    expect((await runCli(["exec", "orphaned", "--", "cat", "/root/note"])).stdout).toBe("kept\n");
  });

  test("a stop killed half-way, then another stop: done in seconds, nothing left running", async () => {
    const stopping = spawn(process.execPath, [join(repoRoot, "main.ts"), "stop", "orphaned"], { stdio: "ignore" });
    await Bun.sleep(50);
    await kill(stopping);
    const t0 = Date.now();
    const again = await runCli(["stop", "orphaned"]);
    expect(again.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const vm = rows().find((row) => row.name === "orphaned")!;
    expect(vm.status).toBe("stopped");
    await waitUntil(() => sandboxProcesses(vm.id).length === 0, 5_000, "the supervisor to exit after the stop");
    expect((await runCli(["delete", "--force", "orphaned"])).code).toBe(0);
  });
});
