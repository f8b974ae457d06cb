/**
 * The whole lifecycle through the FirecrackerBackend, as the supervisor drives it, against the
 * stand-in firecracker binary: a real child process whose API checks every request against the
 * spec (firecracker-api.yaml) and whose "guest" is the native agent, booted by InstanceStart,
 * stopped by a pause, ended by its own shutdown. What runs for real: the backend, the plan, the
 * process, the API calls, hybrid vsock and the agent protocol; faked: only the VMM and its guest.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient } from "../../../../lib/agent/client.ts";
import { FirecrackerApiError } from "../../../../lib/backends/firecracker/api.ts";
import { FirecrackerBackend } from "../../../../lib/backends/firecracker/backend.ts";
import { snapshotFilesIn } from "../../../../lib/backends/firecracker/launch-spec.ts";
import { JAIL_ID_BASE } from "../../../../lib/backends/firecracker/sandbox-jail.ts";
import type { LaunchSpec, Vmm } from "../../../../lib/backends/types.ts";
import { InvalidInputError } from "../../../../lib/errors.ts";
import { pidAlive } from "../../../../lib/host/pids.ts";
import { buildNativeAgent, processesMatching, runOnce, waitUntil } from "../../../helpers/agent.ts";
import { type FakeReport, readFakeReport, writeFakeFirecracker } from "../../../helpers/fake-firecracker-bin.ts";
import { rejection } from "../../../helpers/rejection.ts";

let nativeAgent: string;
let dir: string;
let vmDir: string;
let started: Vmm[];

beforeAll(async () => {
  nativeAgent = await buildNativeAgent();
}, 300_000);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-fc-backend-"));
  // A sandbox's directory, named by its id as in vms/<id>/.
  vmDir = join(dir, "0123456789ab");
  mkdirSync(vmDir);
  started = [];
  writeFileSync(join(dir, "vmlinux"), "kernel");
  writeFileSync(join(dir, "image.ext4"), Buffer.alloc(64 * 1024, 1));
});

afterEach(async () => {
  for (const vmm of started) {
    vmm.kill();
    await vmm.exited;
  }
  // Whatever a test did: every request kept to the spec, and nothing of the VM is left running.
  if (existsSync(join(dir, "report.json"))) {
    expect(report().violations).toEqual([]);
    expect(report().responseViolations).toEqual([]);
  }
  // A SIGKILLed stand-in's guest is ended by its watcher within a poll (50 ms).
  await waitUntil(() => processesMatching(vmDir).length === 0, 2_000);
  expect(processesMatching(vmDir)).toEqual([]);
  rmSync(dir, { recursive: true, force: true });
});

function report(): FakeReport {
  return readFakeReport(join(dir, "report.json"));
}

function backend(options: Parameters<typeof writeFakeFirecracker>[1] = {}): FirecrackerBackend {
  const binary = writeFakeFirecracker(dir, { report: join(dir, "report.json"), guestAgent: nativeAgent, ...options });
  return new FirecrackerBackend({ binary, kvm: () => () => ({ usable: true }) });
}

async function launchSpec(fc: FirecrackerBackend): Promise<LaunchSpec> {
  const disk = await fc.prepareDisk({ imagePath: join(dir, "image.ext4"), vmDir, mode: "isolated" });
  return {
    arch: "x86_64",
    id: "0123456789ab",
    guestCid: 7,
    vcpus: 1,
    memoryMiB: 256,
    kernelPath: join(dir, "vmlinux"),
    cmdline: "console=ttyS0 reboot=t panic=-1 quiet",
    disk,
    network: { mode: "none" },
    agentSocketPath: join(vmDir, "agent.sock"),
    controlSocketPath: join(vmDir, "qmp.sock"),
    serialLogPath: join(vmDir, "console.log"),
    vmmLogPath: join(vmDir, "vmm.log"),
  };
}

async function run(vmm: Vmm, command: string): Promise<string> {
  return runOnce((await vmm.openAgent({ timeoutMs: 10_000 })).socket, command);
}

describe("FirecrackerBackend", () => {
  test("probe reports the binary's version on KVM, and the reason when KVM cannot run a guest", async () => {
    const binary = writeFakeFirecracker(dir);
    expect(await new FirecrackerBackend({ binary, kvm: () => () => ({ usable: true }) }).probe("x86_64", "/k"))
      .toEqual({ ok: true, accel: "kvm", accelReason: "Firecracker runs guests on KVM only", version: "1.17.0-dev" });
    const refused = await new FirecrackerBackend({ binary, kvm: () => () => ({ usable: false, reason: "failed to set MSR 0x10a" }) }).probe("x86_64", "/k");
    expect(refused).toEqual({ ok: false, reason: "KVM cannot run a guest here: failed to set MSR 0x10a", hint: expect.stringContaining("QEMU") });
    expect((await new FirecrackerBackend({ binary }).probe("aarch64", "/k")).ok).toBe(false);
  });

  test("prepareDisk gives an isolated sandbox its own raw copy, kept across starts", async () => {
    const fc = backend();
    const disk = await fc.prepareDisk({ imagePath: join(dir, "image.ext4"), vmDir, mode: "isolated", sizeMiB: 1 });
    expect(disk).toEqual({ path: join(vmDir, "disk.ext4"), format: "raw", readOnly: false, created: true });
    expect(statSync(disk.path).size).toBe(1024 * 1024);
    expect((await fc.prepareDisk({ imagePath: join(dir, "image.ext4"), vmDir, mode: "isolated" })).created).toBe(false);
  });

  test("launch, the agent over vsock, describe, pause and resume, stop after the guest's shutdown", async () => {
    const fc = backend();
    // The pid is handed over as soon as the process exists, before its API answers (a launcher
    // killed mid-launch leaves a VMM its record names).
    const seenPids: Array<{ pid: number; apiUp: boolean }> = [];
    const spec = await launchSpec(fc);
    const vmm = await fc.launch({ ...spec, onProcess: (pid) => seenPids.push({ pid, apiUp: existsSync(join(dir, "report.json")) }) });
    started.push(vmm);
    expect(seenPids).toEqual([{ pid: vmm.pid, apiUp: false }]);
    expect(vmm.ticket).toEqual({
      pid: vmm.pid, controlSocketPath: join(vmDir, "qmp.sock"), agentSocketPath: join(vmDir, "agent.sock"),
      accel: "kvm", accelReason: "Firecracker runs guests on KVM only",
    });
    expect(vmm.hostForwards).toBeUndefined();
    const seen = report();
    expect(seen.argv).toEqual(["--api-sock", join(vmDir, "qmp.sock"), "--id", "0123456789ab"]);
    const byPath = new Map(seen.requests.map((r) => [`${r.method} ${r.path}`, r.body]));
    expect(byPath.get("PUT /vsock")).toEqual({ guest_cid: 7, uds_path: join(vmDir, "agent.sock") });
    expect(byPath.get("PUT /machine-config")).toEqual({ vcpu_count: 1, mem_size_mib: 256, smt: false, track_dirty_pages: true });
    expect(byPath.get("PUT /drives/rootfs")).toMatchObject({ path_on_host: join(vmDir, "disk.ext4"), is_root_device: true });
    expect(await run(vmm, "echo booted")).toBe("booted\n");
    expect(await vmm.describe()).toEqual({ state: "running", detail: "Running" });

    await vmm.pause();
    expect(await vmm.describe()).toEqual({ state: "paused", detail: "Paused" });
    await vmm.resume();
    expect(await run(vmm, "echo resumed")).toBe("resumed\n");

    // The supervisor's stop: the agent shuts the guest down, which ends Firecracker.
    const { socket } = await vmm.openAgent({ timeoutMs: 10_000 });
    const client = await AgentClient.connect(socket);
    await client.shutdown().catch(() => {});
    expect(await vmm.exited).toBeDefined();
    expect(pidAlive(vmm.pid)).toBe(false);
    expect(existsSync(join(vmDir, "qmp.sock")) || existsSync(join(vmDir, "agent.sock"))).toBe(false);
  });

  test("stop() ends a Firecracker whose guest did not power off", async () => {
    const fc = backend();
    const vmm = await fc.launch(await launchSpec(fc));
    started.push(vmm);
    await vmm.stop();
    await vmm.exited;
    expect(pidAlive(vmm.pid)).toBe(false);
  });

  test("saveState full and diff, each complete on its own; restore is paused until resumed", async () => {
    const fc = backend();
    const spec = await launchSpec(fc);
    const vmm = await fc.launch(spec);
    started.push(vmm);
    await vmm.pause();
    await rejection(vmm.saveState(join(vmDir, "diff-first"), { type: "diff" }), InvalidInputError);
    await vmm.saveState(join(vmDir, "full"));
    await vmm.resume();
    await vmm.pause();
    await vmm.saveState(join(vmDir, "diff"), { type: "diff" });
    const creates = report().requests.filter((r) => r.path === "/snapshot/create");
    expect(creates.map((r) => [r.body.snapshot_type, r.status])).toEqual([["Full", 204], ["Diff", 204]]);
    expect(creates[1]!.body.mem_file_path).toBe(snapshotFilesIn(join(vmDir, "diff")).memPath);
    for (const save of ["full", "diff"]) {
      const files = snapshotFilesIn(join(vmDir, save));
      expect(existsSync(files.statePath) && existsSync(files.memPath)).toBe(true);
    }
    vmm.kill();
    await vmm.exited;

    const restored = await fc.restore(spec, join(vmDir, "diff"));
    started.push(restored);
    expect(report().requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(["GET / 200", "PUT /logger 204", "PUT /metrics 204", "PUT /snapshot/load 204"]);
    expect(report().requests[3]!.body).toMatchObject({ resume_vm: false, track_dirty_pages: true, vsock_override: { uds_path: join(vmDir, "agent.sock") } });
    expect(await restored.describe()).toEqual({ state: "paused", detail: "Paused" });
    // A restored VM builds its next diff on the state it came from.
    await restored.saveState(join(vmDir, "diff-2"), { type: "diff" });
    await restored.resume();
    expect(await run(restored, "echo restored")).toBe("restored\n");
  });

  test("attach takes over a running Firecracker from its ticket", async () => {
    const fc = backend();
    const launched = await fc.launch(await launchSpec(fc));
    started.push(launched);
    await launched.release();
    const attached = await fc.attach(launched.ticket);
    expect(await attached.describe()).toEqual({ state: "running", detail: "Running" });
    expect(await run(attached, "echo attached")).toBe("attached\n");
    attached.kill();
    await attached.exited;
    expect(pidAlive(launched.pid)).toBe(false);
    expect(existsSync(join(vmDir, "qmp.sock")) || existsSync(join(vmDir, "agent.sock"))).toBe(false);
  });

  test("once released, the launching process leaves what Firecracker leaves behind to the VMM's new owner", async () => {
    const fc = backend();
    const launched = await fc.launch(await launchSpec(fc));
    started.push(launched);
    await launched.release();
    // Its new owner (a supervisor) would remove these; two processes removing one directory race.
    process.kill(launched.pid, "SIGKILL");
    await launched.exited;
    expect(existsSync(join(vmDir, "qmp.sock"))).toBe(true);
  });

  test("a refusal the spec defines reaches the caller with Firecracker's fault message verbatim, leaving nothing behind", async () => {
    const message = 'Unable to open the block device backing file: "disk.ext4" (Permission denied, os error 13)';
    const fc = backend({ faults: [{ method: "PUT", path: "/drives/rootfs", message }] });
    const error = await rejection(fc.launch(await launchSpec(fc)), FirecrackerApiError);
    expect(error.faultMessage).toBe(message);
    expect(error.message).toEndWith(`Firecracker refused PUT /drives/rootfs (400): ${message}`);
    expect(existsSync(join(vmDir, "qmp.sock")) || existsSync(join(vmDir, "agent.sock"))).toBe(false);
  });

  test("jailed: the jail in the sandbox's directory, a user of its own, saves moved out of the jail, restore staged into it, the jail gone with the VMM", async () => {
    const binary = writeFakeFirecracker(dir, { report: join(dir, "report.json"), guestAgent: nativeAgent });
    const jailerBinary = writeFakeFirecracker(dir, { mode: "jailer", report: join(dir, "report.json"), guestAgent: nativeAgent });
    const fc = new FirecrackerBackend({ binary, jailerBinary, kvm: () => () => ({ usable: true }) });
    const spec = { ...(await launchSpec(fc)), jailed: true };
    const instance = join(vmDir, "jail", "firecracker", "0123456789ab");
    const chroot = join(instance, "root");
    const jailUser = JAIL_ID_BASE + 7;
    const vmm = await fc.launch(spec);
    started.push(vmm);
    expect(vmm.ticket).toMatchObject({
      controlSocketPath: join(chroot, "api.sock"), agentSocketPath: join(chroot, "vsock.sock"), jail: { chroot, uid: jailUser, gid: jailUser },
    });
    expect(vmm.logFiles).toEqual([join(chroot, "firecracker.log"), join(chroot, "firecracker.metrics")]);
    const byPath = new Map(report().requests.map((r) => [`${r.method} ${r.path}`, r.body]));
    expect(byPath.get("PUT /vsock")).toEqual({ guest_cid: 7, uds_path: "/vsock.sock" });
    expect(byPath.get("PUT /drives/rootfs")).toMatchObject({ path_on_host: "/rootfs.ext4" });
    // The sandbox's own disk, handed to the jail's user; the jail made for that user too.
    expect(statSync(join(chroot, "rootfs.ext4")).ino).toBe(statSync(join(vmDir, "disk.ext4")).ino);
    expect(statSync(join(vmDir, "disk.ext4")).uid).toBe(jailUser);
    expect(statSync(chroot).uid).toBe(jailUser);
    expect(await run(vmm, "echo jailed")).toBe("jailed\n");

    await vmm.pause();
    await vmm.saveState(join(vmDir, "full"));
    await vmm.resume();
    await vmm.pause();
    await vmm.saveState(join(vmDir, "diff"), { type: "diff" });
    const creates = report().requests.filter((r) => r.path === "/snapshot/create");
    expect(creates.map((r) => [r.body.snapshot_path, r.body.mem_file_path, r.body.snapshot_type, r.status])).toEqual([
      ["/snapshot/vmstate", "/snapshot/memory", "Full", 204], ["/snapshot/vmstate", "/snapshot/memory", "Diff", 204],
    ]);
    for (const save of ["full", "diff"]) {
      const files = snapshotFilesIn(join(vmDir, save));
      expect(existsSync(files.statePath) && existsSync(files.memPath)).toBe(true);
    }
    expect(existsSync(join(chroot, "snapshot", "vmstate")) || existsSync(join(chroot, "snapshot", "memory"))).toBe(false);
    vmm.kill();
    await vmm.exited;
    expect(existsSync(instance)).toBe(false);
    expect(existsSync(join(vmDir, "disk.ext4"))).toBe(true);

    const restored = await fc.restore(spec, join(vmDir, "diff"));
    started.push(restored);
    expect(report().requests.at(-1)).toMatchObject({
      path: "/snapshot/load", status: 204,
      body: { snapshot_path: "/snapshot/vmstate", mem_backend: { backend_path: "/snapshot/memory" }, vsock_override: { uds_path: "/vsock.sock" } },
    });
    await restored.resume();
    expect(await run(restored, "echo restored")).toBe("restored\n");
  });

  test("a launch that asks for what Firecracker lacks is refused by name before anything starts", async () => {
    const fc = backend();
    const spec = await launchSpec(fc);
    await expect(fc.launch({ ...spec, accel: "tcg" })).rejects.toThrow("Cannot use the Firecracker backend with tcg");
    await expect(fc.launch({ ...spec, network: { mode: "user" } })).rejects.toThrow("Firecracker has none");
    expect(existsSync(join(dir, "report.json"))).toBe(false);
  });
});
