/**
 * cleanup's rules (lib/sandbox/cleanup.ts) on fabricated leftovers: rows, directories, disks,
 * launcher records and stand-in VMM processes (a process whose arguments name the sandbox's
 * agent socket is one of its own, as QEMU's do).
 */
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { pidAlive } from "../../../lib/host/pids.ts";
import { paths } from "../../../lib/paths.ts";
import { cleanup } from "../../../lib/sandbox/cleanup.ts";
import { launcherFile } from "../../../lib/sandbox/launcher.ts";
import { sandboxFiles } from "../../../lib/sandbox/layout.ts";
import { withStore, type SandboxPatch } from "../../../lib/state/sandboxes.ts";
import type { SandboxRecord } from "../../../lib/state/record.ts";
import { waitUntil } from "../../helpers/agent.ts";
import { scratchDir } from "../../helpers/scratch.ts";

const standIns: ChildProcess[] = [];
afterAll(() => {
  for (const child of standIns) child.kill("SIGKILL");
});

beforeEach(() => {
  process.env.SMOLVM_HOME = scratchDir("smolvm-cleanup-");
});

function sandbox(name: string, patch: SandboxPatch, options: { disk?: boolean; diskMode?: "isolated" | "shared"; backend?: "qemu" | "firecracker" } = {}): SandboxRecord {
  return withStore((store) => {
    const backend = options.backend ?? "qemu";
    const vm = store.create({ config: parseSandboxConfig({ name, image: "base", diskMode: options.diskMode ?? "isolated" }), backend, allocate: { cid: backend === "firecracker" } });
    mkdirSync(sandboxFiles(vm.id).dir, { recursive: true });
    if (options.disk !== false) writeFileSync(backend === "firecracker" ? sandboxFiles(vm.id).rawDisk : sandboxFiles(vm.id).overlay, "a disk");
    writeFileSync(sandboxFiles(vm.id).agentSocket, "");
    return store.update(vm.id, patch);
  });
}

/** A process that counts as the sandbox's VMM: its arguments name the sandbox's agent socket. */
function standInVmm(id: string): number {
  // One process (no shell forking a child) that runs until killed, the socket among its arguments.
  writeFileSync(sandboxFiles(id).agentSocket, "");
  const child = spawn("tail", ["-f", "/dev/null", sandboxFiles(id).agentSocket], { stdio: "ignore", detached: true });
  standIns.push(child);
  return child.pid!;
}

/**
 * A process that counts as the sandbox's Firecracker: as Firecracker's own, its arguments name
 * the API socket (`--api-sock <control socket>`), not the agent's.
 */
function standInFirecracker(id: string): number {
  // tail follows /dev/null and only complains about the names after `--`; it runs until killed.
  writeFileSync(sandboxFiles(id).controlSocket, "");
  const child = spawn("tail", ["-f", "/dev/null", "--", "--api-sock", sandboxFiles(id).controlSocket], { stdio: "ignore", detached: true });
  standIns.push(child);
  return child.pid!;
}

/** A launcher record whose process is gone (our own pid, but not its start time). */
function abandonedLauncher(id: string, purpose: "create" | "start"): void {
  writeFileSync(launcherFile(sandboxFiles(id)), JSON.stringify({ pid: process.pid, startTicks: 1, purpose }));
}

const rows = () => withStore((store) => store.list());

describe("cleanup", () => {
  test("removes an abandoned create whole, its VMM included, and says so", async () => {
    const vm = sandbox("half-made", { status: "creating" });
    const vmm = standInVmm(vm.id);
    abandonedLauncher(vm.id, "create");
    const report = await cleanup();
    expect(report).toMatchObject({ sandboxes: ["half-made"], kept: [], strayProcesses: [vmm] });
    expect(pidAlive(vmm)).toBe(false);
    expect(existsSync(sandboxFiles(vm.id).dir)).toBe(false);
    expect(rows()).toEqual([]);
  });

  test("keeps a crashed sandbox's disk and row, reclaims the rest; named, removes it whole", async () => {
    const vm = sandbox("crashed", { status: "running", supervisorPid: 999_999, vmmPid: 999_998 });
    const report = await cleanup();
    expect(report.sandboxes).toEqual([]);
    expect(report.kept).toEqual([{ name: "crashed", id: vm.id, reason: "it is failed and its directory holds its disk; `smolvm cleanup crashed` removes it" }]);
    expect(existsSync(sandboxFiles(vm.id).overlay)).toBe(true);
    expect(existsSync(sandboxFiles(vm.id).agentSocket)).toBe(false);
    expect(rows()[0]).toMatchObject({ name: "crashed", status: "failed" });

    const named = await cleanup({ names: ["crashed"] });
    expect(named.sandboxes).toEqual(["crashed"]);
    expect(existsSync(sandboxFiles(vm.id).dir)).toBe(false);
    expect(rows()).toEqual([]);
  });

  test("removes a dead sandbox whose directory holds no disk of its own (a shared-disk one)", async () => {
    sandbox("shared-dead", { status: "failed" }, { disk: false, diskMode: "shared" });
    expect((await cleanup()).sandboxes).toEqual(["shared-dead"]);
    expect(rows()).toEqual([]);
  });

  test("leaves stopped and live sandboxes alone, and finishes an interrupted delete", async () => {
    const stopped = sandbox("parked", { status: "stopped" });
    const live = sandbox("alive", { status: "running" });
    withStore((store) => store.update(live.id, { vmmPid: standInVmm(live.id) }));
    const deleting = sandbox("half-deleted", { status: "deleting" });
    const report = await cleanup();
    expect(report.sandboxes).toEqual(["half-deleted"]);
    expect(report.kept).toEqual([]);
    expect(rows().map((vm) => vm.name).sort()).toEqual(["alive", "parked"]);
    expect(existsSync(sandboxFiles(stopped.id).overlay) && existsSync(sandboxFiles(live.id).overlay)).toBe(true);
    expect(existsSync(sandboxFiles(deleting.id).dir)).toBe(false);
  });

  test("a directory without a row: its processes end; without a disk it goes, with one it stays until named", async () => {
    mkdirSync(join(paths.sandboxesDir(), "0000000000aa"), { recursive: true });
    const orphanVmm = standInVmm("0000000000aa");
    mkdirSync(join(paths.sandboxesDir(), "0000000000bb"), { recursive: true });
    writeFileSync(sandboxFiles("0000000000bb").overlay, "someone's data");
    const report = await cleanup();
    expect(report.strayDirs).toEqual([join(paths.sandboxesDir(), "0000000000aa")]);
    expect(report.strayProcesses).toEqual([orphanVmm]);
    await waitUntil(() => !pidAlive(orphanVmm), 5_000);
    expect(report.kept).toEqual([{ name: "0000000000bb", id: "0000000000bb", reason: expect.stringContaining("`smolvm doctor --repair` restores its row") }]);
    expect(existsSync(sandboxFiles("0000000000bb").overlay)).toBe(true);
    expect((await cleanup({ names: ["0000000000bb"] })).sandboxes).toEqual(["0000000000bb"]);
    expect(existsSync(sandboxFiles("0000000000bb").dir)).toBe(false);
  });

  test("a Firecracker sandbox: its VMM is found by its API socket and ended; its raw disk is kept like an overlay until named", async () => {
    const vm = sandbox("fc-crashed", { status: "running", supervisorPid: 999_999, vmmPid: 999_998 }, { backend: "firecracker" });
    const vmm = standInFirecracker(vm.id);
    // Its supervisor is gone and the row's pids name nobody: nothing runs the sandbox but this VMM.
    withStore((store) => store.update(vm.id, { status: "failed" }));
    const report = await cleanup();
    expect(report.strayProcesses).toEqual([vmm]);
    expect(pidAlive(vmm)).toBe(false);
    expect(report.kept).toEqual([{ name: "fc-crashed", id: vm.id, reason: "it is failed and its directory holds its disk; `smolvm cleanup fc-crashed` removes it" }]);
    expect(existsSync(sandboxFiles(vm.id).rawDisk)).toBe(true);

    // Without its row, the directory's raw disk keeps it too.
    withStore((store) => store.delete(vm.id));
    expect((await cleanup()).kept).toEqual([{ name: vm.id, id: vm.id, reason: expect.stringContaining("holds a disk") }]);
    expect(existsSync(sandboxFiles(vm.id).rawDisk)).toBe(true);
    expect((await cleanup({ names: [vm.id] })).sandboxes).toEqual([vm.id]);
    expect(existsSync(sandboxFiles(vm.id).dir)).toBe(false);
  });

  test("a jailed Firecracker, whose arguments name no path of the sandbox's, is found by its --id", async () => {
    const id = "0000000000cc";
    mkdirSync(join(paths.sandboxesDir(), id), { recursive: true });
    // What the jailer execs: Firecracker with the jail's id and paths inside the jail only.
    const child = spawn("tail", ["-f", "/dev/null", "--", "--id", id, "--start-time-us", "0", "--api-sock", "/api.sock"], { stdio: "ignore", detached: true });
    standIns.push(child);
    // Another sandbox's, and a process that names the id without being a Firecracker, are not its.
    const other = spawn("tail", ["-f", "/dev/null", "--", "--id", "0000000000dd", "--api-sock", "/api.sock"], { stdio: "ignore", detached: true });
    const namesIt = spawn("tail", ["-f", "/dev/null", "--", "--id", id], { stdio: "ignore", detached: true });
    standIns.push(other, namesIt);
    // Until each has exec'd tail, its arguments are the forking process's.
    await waitUntil(() => [child, other, namesIt].every((p) => readFileSync(`/proc/${p.pid}/cmdline`, "utf8").startsWith("tail\0")), 2_000);
    const report = await cleanup();
    expect(report.strayProcesses).toEqual([child.pid!]);
    expect(pidAlive(child.pid!)).toBe(false);
    expect(pidAlive(other.pid!) && pidAlive(namesIt.pid!)).toBe(true);
  });

  test("a name that is nothing is NOT_FOUND, and nothing is removed", async () => {
    sandbox("keep-me", { status: "stopped" });
    await expect(cleanup({ names: ["keep-me", "nope"] })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(rows().map((vm) => vm.name)).toEqual(["keep-me"]);
  });

  test("a name link that leads to no sandbox of its name goes; a sandbox's own link and its removal's stay true", async () => {
    const kept = sandbox("kept", { status: "stopped" });
    sandbox("gone", { status: "failed" }, { disk: false });
    // Left by a crash between a row's removal and its link's, and one pointing at another sandbox.
    symlinkSync(join("..", "vms", "0000000000cc"), join(paths.namesDir(), "ghost"));
    symlinkSync(join("..", "vms", kept.id), join(paths.namesDir(), "imposter"));
    expect((await cleanup({ dryRun: true })).strayNames.sort()).toEqual([join(paths.namesDir(), "ghost"), join(paths.namesDir(), "imposter")]);
    expect(lstatSync(join(paths.namesDir(), "ghost")).isSymbolicLink()).toBe(true);
    const report = await cleanup();
    expect(report.sandboxes).toEqual(["gone"]);
    expect(report.strayNames.sort()).toEqual([join(paths.namesDir(), "ghost"), join(paths.namesDir(), "imposter")]);
    expect(readdirSync(paths.namesDir())).toEqual(["kept"]);
    expect(readlinkSync(join(paths.namesDir(), "kept"))).toBe(join("..", "vms", kept.id));
  });

  test("--dry-run says the same and does nothing", async () => {
    const vm = sandbox("half-made", { status: "creating" });
    const vmm = standInVmm(vm.id);
    abandonedLauncher(vm.id, "create");
    const report = await cleanup({ dryRun: true });
    expect(report).toMatchObject({ sandboxes: ["half-made"], strayProcesses: [vmm], dryRun: true });
    expect(pidAlive(vmm)).toBe(true);
    expect(existsSync(sandboxFiles(vm.id).dir)).toBe(true);
  });
});
