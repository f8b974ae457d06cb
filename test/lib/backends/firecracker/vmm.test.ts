/**
 * Launching Firecracker end to end on the host side, with a stand-in binary in place of the VMM:
 * a real child process serving the spec-checking fake API, whose vsock device relays to the real
 * native agent. What runs for real: the plan, the files and jail staging, the spawn, the API calls
 * (each checked against the spec), the vsock handshake and an exec in the agent; what is faked:
 * only the VMM and its guest.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FirecrackerApiError } from "../../../../lib/backends/firecracker/api.ts";
import { snapshotFilesIn } from "../../../../lib/backends/firecracker/launch-spec.ts";
import { AGENT_VSOCK_PORT, type FirecrackerVmSpec } from "../../../../lib/backends/firecracker/plan.ts";
import {
  bootFirecracker, cleanupFirecracker, firecrackerStatus, restoreFirecracker, type RunningFirecracker, saveSnapshot,
} from "../../../../lib/backends/firecracker/vmm.ts";
import { waitForVsock } from "../../../../lib/backends/firecracker/vsock.ts";
import { pidAlive } from "../../../../lib/host/pids.ts";
import { processesMatching, runOnce, type TestAgent, withTestAgent } from "../../../helpers/agent.ts";
import { type FakeReport, readFakeReport, writeFakeFirecracker } from "../../../helpers/fake-firecracker-bin.ts";
import { rejection } from "../../../helpers/rejection.ts";

let agent: TestAgent;
let dir: string;
let running: RunningFirecracker[];

withTestAgent((started) => {
  agent = started;
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-fc-vmm-"));
  running = [];
  writeFileSync(join(dir, "vmlinux"), "kernel");
  writeFileSync(join(dir, "disk.ext4"), "disk");
});

afterEach(async () => {
  for (const vmm of running) {
    vmm.kill();
    await vmm.exited;
    await cleanupFirecracker(vmm.plan);
  }
  rmSync(dir, { recursive: true, force: true });
});

function vmSpec(overrides: Partial<FirecrackerVmSpec> = {}): FirecrackerVmSpec {
  return {
    id: "0123456789ab",
    vcpus: 1,
    memoryMiB: 256,
    kernelPath: join(dir, "vmlinux"),
    cmdline: "console=ttyS0 quiet",
    rootDisk: { path: join(dir, "disk.ext4") },
    network: { mode: "none" },
    vsock: { guestCid: 3, udsPath: join(dir, "agent.sock") },
    apiSocketPath: join(dir, "api.sock"),
    logPath: join(dir, "firecracker.log"),
    metricsPath: join(dir, "firecracker.metrics"),
    ...overrides,
  };
}

function report(): FakeReport {
  return readFakeReport(join(dir, "report.json"));
}

async function execOverVsock(vmm: RunningFirecracker, command: string): Promise<string> {
  return runOnce(await waitForVsock(vmm.plan.vsockSocketPath, AGENT_VSOCK_PORT, { timeoutMs: 10_000, exited: vmm.exited }), command);
}

describe("bootFirecracker", () => {
  test("boots through the API, serves the agent over vsock, pauses, snapshots, and restores into a new process", async () => {
    const binary = writeFakeFirecracker(dir, { report: join(dir, "report.json"), agentSocket: agent.socketPath });
    const options = { binary, serialLogPath: join(dir, "console.log"), vmmLogPath: join(dir, "vmm.log") };
    const vmm = await bootFirecracker(vmSpec({ trackDirtyPages: true }), options);
    running.push(vmm);
    expect(pidAlive(vmm.pid)).toBe(true);
    let seen = report();
    expect(seen.argv).toEqual(["--api-sock", join(dir, "api.sock"), "--id", "0123456789ab"]);
    expect(seen.violations).toEqual([]);
    expect(seen.responseViolations).toEqual([]);
    expect(seen.state).toBe("Running");
    expect(readFileSync(join(dir, "console.log"), "utf8")).toContain("fake guest: running");
    for (const file of ["firecracker.log", "firecracker.metrics"]) expect(existsSync(join(dir, file))).toBe(true);

    expect(await execOverVsock(vmm, "echo booted")).toBe("booted\n");
    expect(await firecrackerStatus(vmm.api)).toEqual({ state: "running", detail: "Running" });
    await vmm.api.pause();
    expect(await firecrackerStatus(vmm.api)).toEqual({ state: "paused", detail: "Paused" });
    const snapshot = snapshotFilesIn(join(dir, "snap"));
    await saveSnapshot(vmm, snapshot, { type: "Full" });
    await saveSnapshot(vmm, snapshotFilesIn(join(dir, "snap-diff")), { type: "Diff" });
    expect(existsSync(snapshot.statePath) && existsSync(snapshot.memPath)).toBe(true);
    vmm.kill();
    await vmm.exited;
    await cleanupFirecracker(vmm.plan);
    expect(existsSync(join(dir, "api.sock")) || existsSync(join(dir, "agent.sock"))).toBe(false);

    const restored = await restoreFirecracker(vmSpec(), { snapshot }, options);
    running.push(restored);
    seen = report();
    expect(seen.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(["GET / 200", "PUT /logger 204", "PUT /metrics 204", "PUT /snapshot/load 204"]);
    expect(await firecrackerStatus(restored.api)).toEqual({ state: "paused", detail: "Paused" });
    await restored.api.resume();
    expect(await execOverVsock(restored, "echo restored")).toBe("restored\n");
    expect(report().violations).toEqual([]);
  });

  test("a request Firecracker refuses stops the launch: its fault message verbatim, the process gone, the sockets removed", async () => {
    const binary = writeFakeFirecracker(dir, { report: join(dir, "report.json") });
    const error = await rejection(bootFirecracker(vmSpec({ kernelPath: join(dir, "missing-vmlinux") }), { binary }), FirecrackerApiError);
    expect(error.faultMessage).toBe(`Cannot open the kernel image: ${join(dir, "missing-vmlinux")}`);
    expect(error.hint).toContain(join(dir, "firecracker.log"));
    expect(processesMatching(join(dir, "api.sock"))).toEqual([]);
    expect(existsSync(join(dir, "api.sock"))).toBe(false);
  });

  test("a Firecracker that exits at start-up is reported with the last lines of its stderr", async () => {
    const binary = writeFakeFirecracker(dir, { exitEarly: "Error: KVM_CREATE_VM: Invalid argument" });
    const error = await rejection(bootFirecracker(vmSpec(), { binary, vmmLogPath: join(dir, "vmm.log") }));
    expect(error.code).toBe("COMMAND_FAILED");
    expect(error.message).toBe("Cannot start Firecracker: it exited with status 1: Error: KVM_CREATE_VM: Invalid argument");
    expect(error.hint).toContain(join(dir, "vmm.log"));
  });
});

describe("under the jailer", () => {
  test("stages the files into the jail, speaks jail paths, serves vsock from inside it, and cleanup removes the jail", async () => {
    const jailerBinary = writeFakeFirecracker(dir, { mode: "jailer", report: join(dir, "report.json"), agentSocket: agent.socketPath });
    const uid = process.getuid!();
    const gid = process.getgid!();
    // The jailer copies the binary it is given into the jail: it must exist.
    const firecrackerBinary = writeFakeFirecracker(dir);
    const jailer = { jailerBinary, firecrackerBinary, uid, gid, chrootBaseDir: join(dir, "jail") };
    const vmm = await bootFirecracker(vmSpec(), { binary: firecrackerBinary, jailer });
    running.push(vmm);
    const chroot = join(dir, "jail", "firecracker", "0123456789ab", "root");
    expect(vmm.plan.apiSocketPath).toBe(join(chroot, "api.sock"));
    const seen = report();
    expect(seen.violations).toEqual([]);
    // What the jailer exec'd: Firecracker with the jail's id and the arguments after `--`.
    expect(seen.argv).toEqual(["--id", "0123456789ab", "--start-time-us", "0", "--start-time-cpu-us", "0", "--parent-cpu-time-us", "0", "--api-sock", "/api.sock"]);
    expect(existsSync(join(chroot, "firecracker")) && existsSync(join(chroot, "dev", "kvm"))).toBe(true);
    const bodies = Object.fromEntries(seen.requests.map((r) => [r.path, r.body]));
    expect(bodies["/boot-source"]).toMatchObject({ kernel_image_path: "/vmlinux" });
    expect(bodies["/drives/rootfs"]).toMatchObject({ path_on_host: "/rootfs.ext4" });
    // Hard links: the jail's disk is the sandbox's disk, not a copy.
    expect(statSync(join(chroot, "rootfs.ext4")).ino).toBe(statSync(join(dir, "disk.ext4")).ino);
    expect(statSync(join(chroot, "rootfs.ext4")).uid).toBe(uid);
    expect(await execOverVsock(vmm, "echo jailed")).toBe("jailed\n");

    await vmm.api.pause();
    const snapshot = snapshotFilesIn(join(dir, "snap"));
    await saveSnapshot(vmm, snapshot);
    expect(existsSync(snapshot.statePath) && existsSync(snapshot.memPath)).toBe(true);
    expect(existsSync(join(chroot, "snapshot", "vmstate"))).toBe(false);

    vmm.kill();
    await vmm.exited;
    await cleanupFirecracker(vmm.plan);
    expect(existsSync(join(dir, "jail", "firecracker", "0123456789ab"))).toBe(false);
    expect(existsSync(join(dir, "disk.ext4"))).toBe(true);
  });
});
