/**
 * The supervisor's part of snapshots and restores, with the native test-mode agent as the VM
 * (SIGSTOP is its pause; its saveState refuses a VM that is not paused): the stop around a save,
 * a paused sandbox kept paused, the directories it may write into, a VM left stopped by a
 * supervisor that died mid-save, a restored VM handed over by its creator and given its
 * identity before anyone is answered, and a restore whose creator died before handing it over. The real save and restore are proven on QEMU in
 * test/e2e/snapshot.test.ts.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pidAlive, processStat } from "../../../lib/host/pids.ts";
import { paths } from "../../../lib/paths.ts";
import { launcherFile } from "../../../lib/sandbox/launcher.ts";
import { sandboxFiles } from "../../../lib/sandbox/layout.ts";
import { writeTicket } from "../../../lib/sandbox/ticket.ts";
import { pollUntil } from "../../../lib/util/poll.ts";
import { agentBackend } from "../../helpers/agent-backend.ts";
import { buildNativeAgent } from "../../helpers/agent.ts";
import { client, record, sandboxRow, superviseHere } from "./_fixture.ts";

beforeAll(async () => {
  await buildNativeAgent();
}, 300_000);

/** A sandbox whose "disk" is a real file (captureDisk copies it). */
function diskRow() {
  const disk = join(paths.sandboxesDir(), `disk-${Math.random().toString(16).slice(2)}.img`);
  mkdirSync(paths.sandboxesDir(), { recursive: true });
  writeFileSync(disk, "the guest's disk");
  return sandboxRow({ rootfsPath: disk });
}

function target(name: string): string {
  const dir = join(paths.snapshotsDir(), `.partial-${name}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function stopped(pid: number): boolean {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "T";
}

describe("supervisor.snapshot", () => {
  test("stops a running VM for the save, copies its disk, and runs it again", async () => {
    const vm = diskRow();
    const backend = agentBackend();
    const { done } = await superviseHere(vm, backend);
    const session = await client(vm);
    const dir = target("running");
    const taken = await session.supervisor("supervisor.snapshot", { dir });
    expect(taken.accel).toBe("tcg");
    expect(taken.wasPaused).toBe(false);
    expect(taken.pausedMs).toBeGreaterThan(0);
    // The test VM's saveState refuses a VM that runs: the state is there, so it was stopped.
    expect(readdirSync(dir).sort()).toEqual(["disk.capture", "vmstate"]);
    expect(readFileSync(join(dir, "disk.capture"), "utf8")).toBe("the guest's disk");
    expect(stopped(backend.launched[0]!)).toBe(false);
    expect(existsSync(sandboxFiles(vm.id).snapshotMarker)).toBe(false);
    expect(record(vm.id)?.status).toBe("running");
    expect((await session.run(["echo", "on"])).stdout).toBe("on\n");
    await session.supervisor("supervisor.destroy", {});
    await done;
  });

  test("saves a paused sandbox without running it, and one snapshot at a time", async () => {
    const vm = diskRow();
    const backend = agentBackend();
    const { done } = await superviseHere(vm, backend);
    const session = await client(vm);
    await session.supervisor("supervisor.pause", {});
    const [a, b] = await Promise.all([
      session.supervisor("supervisor.snapshot", { dir: target("paused-a") }),
      session.supervisor("supervisor.snapshot", { dir: target("paused-b") }),
    ]);
    expect([a.wasPaused, a.pausedMs, b.wasPaused]).toEqual([true, 0, true]);
    expect(stopped(backend.launched[0]!)).toBe(true);
    expect(record(vm.id)?.status).toBe("paused");
    await session.supervisor("supervisor.destroy", {});
    await done;
  });

  test("writes only into an existing directory under the home's snapshot areas", async () => {
    const vm = diskRow();
    const { done } = await superviseHere(vm, agentBackend());
    const session = await client(vm);
    for (const dir of ["/tmp", join(paths.snapshotsDir(), "..", "vms"), join(paths.snapshotsDir(), "missing"), `${paths.snapshotsDir()}/../snapshots-not`]) {
      await expect(session.supervisor("supervisor.snapshot", { dir })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    }
    expect((await session.run(["true"])).exitCode).toBe(0);
    await session.supervisor("supervisor.destroy", {});
    await done;
  });
});

describe("taking over", () => {
  test("a VM its last supervisor left stopped for a snapshot runs again, or stays paused if it was", async () => {
    for (const wasPaused of [false, true]) {
      const vm = diskRow();
      const backend = agentBackend();
      const files = sandboxFiles(vm.id);
      const vmm = await backend.launch({
        arch: "x86_64", accel: "tcg", vcpus: 1, memoryMiB: 128, kernelPath: "/k", cmdline: "", network: { mode: "none" },
        disk: { path: vm.config.rootfsPath!, format: "raw", readOnly: false, created: false },
        agentSocketPath: files.agentSocket, controlSocketPath: files.controlSocket, serialLogPath: files.consoleLog,
      });
      writeTicket(files, vmm.ticket);
      await pollUntil(() => existsSync(files.agentSocket), { timeoutMs: 10_000, what: "the test agent to listen" });
      await vmm.pause();
      writeFileSync(files.snapshotMarker, JSON.stringify({ wasPaused, supervisorPid: 1 }));
      const { done } = await superviseHere(vm, agentBackend());
      const session = await client(vm);
      expect(record(vm.id)?.status).toBe(wasPaused ? "paused" : "running");
      expect(stopped(vmm.pid)).toBe(wasPaused);
      expect(existsSync(files.snapshotMarker)).toBe(false);
      await session.supervisor("supervisor.destroy", {});
      await done;
    }
  });

  test("a restore under way: the supervisor waits for its creator's ticket, then gives the guest its identity before the HELLO", async () => {
    const vm = diskRow();
    const backend = agentBackend();
    const files = sandboxFiles(vm.id);
    writeFileSync(files.restoreMarker, JSON.stringify({ from: "test", at: Date.now() }));
    const { done } = await superviseHere(vm, agentBackend());
    const hello = client(vm);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(record(vm.id)?.vmmPid).toBeNull(); // it waited, and launched nothing of its own
    const vmm = await backend.launch({
      arch: "x86_64", accel: "tcg", vcpus: 1, memoryMiB: 128, kernelPath: "/k", cmdline: "", network: { mode: "none" },
      disk: { path: vm.config.rootfsPath!, format: "raw", readOnly: false, created: false },
      agentSocketPath: files.agentSocket, controlSocketPath: files.controlSocket, serialLogPath: files.consoleLog,
    });
    await pollUntil(() => existsSync(files.agentSocket), { timeoutMs: 10_000, what: "the test agent to listen" });
    writeTicket(files, vmm.ticket);
    const session = await hello;
    expect(record(vm.id)).toMatchObject({ status: "running", vmmPid: vmm.pid });
    // Identity given (a test agent applies none of it) and the marker gone, before the HELLO.
    expect(existsSync(files.restoreMarker)).toBe(false);
    expect(readFileSync(paths.logFile(), "utf8")).toContain(`"restored guest has its own identity","vm":"${vm.id}"`);
    await session.supervisor("supervisor.destroy", {});
    await done;
  });

  test("a restore abandoned by its creator (marker gone, no ticket): the supervisor boots nothing of its own", async () => {
    const vm = diskRow();
    const backend = agentBackend();
    const files = sandboxFiles(vm.id);
    writeFileSync(files.restoreMarker, "{}");
    const { done } = await superviseHere(vm, backend);
    const hello = client(vm).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 100));
    rmSync(files.restoreMarker);
    expect(await hello).toMatchObject({ code: "NOT_RUNNING", message: expect.stringContaining("its restore was abandoned") });
    await done;
    expect(backend.launched).toEqual([]);
    expect(record(vm.id)?.status).toBe("failed");
  });

  test("a restore whose creator dies before handing it over is undone: the VMM it started, the files and the row", async () => {
    const vm = diskRow();
    const backend = agentBackend();
    const files = sandboxFiles(vm.id);
    const creator = spawn("sleep", ["100"], { stdio: "ignore" });
    writeFileSync(launcherFile(files), JSON.stringify({ pid: creator.pid, startTicks: processStat(creator.pid!)!.startTicks, purpose: "create" }));
    writeFileSync(files.restoreMarker, "{}");
    const { done } = await superviseHere(vm, agentBackend());
    const hello = client(vm).catch((error: unknown) => error);
    // The creator's VMM, started from the snapshot and never handed over (no ticket).
    const vmm = await backend.launch({
      arch: "x86_64", accel: "tcg", vcpus: 1, memoryMiB: 128, kernelPath: "/k", cmdline: "", network: { mode: "none" },
      disk: { path: vm.config.rootfsPath!, format: "raw", readOnly: false, created: false },
      agentSocketPath: files.agentSocket, controlSocketPath: files.controlSocket, serialLogPath: files.consoleLog,
    });
    creator.kill("SIGKILL");
    expect(await hello).toMatchObject({ code: "NOT_RUNNING", message: expect.stringContaining("its restore was abandoned") });
    await done;
    expect(record(vm.id)).toBeUndefined();
    expect(existsSync(files.dir)).toBe(false);
    await pollUntil(() => !pidAlive(vmm.pid), { timeoutMs: 10_000, what: "the restoring VMM to be ended" });
  });
});
