/**
 * The Firecracker client and launch planner against the API contract: a fake API server that checks
 * every request's method, path and body against the definitions generated from
 * firecracker-api.yaml, and answers as the spec says. The whole lifecycle runs through the real
 * client: configure, start, pause, resume, full and diff snapshots, restore, Ctrl+Alt+Del, and the
 * errors the spec defines, whose fault message must reach the caller verbatim.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ApiCall, apiCalls } from "../../../../lib/backends/firecracker/api-calls.ts";
import { FirecrackerApi, FirecrackerApiError } from "../../../../lib/backends/firecracker/api.ts";
import { type FirecrackerVmSpec, planBoot, planRestore } from "../../../../lib/backends/firecracker/plan.ts";
import { FakeFirecracker, firecrackerSpec } from "../../../helpers/firecracker-fake.ts";
import { rejection } from "../../../helpers/rejection.ts";

let dir: string;
let fakes: FakeFirecracker[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-fc-conf-"));
  fakes = [];
  writeFileSync(join(dir, "vmlinux"), "kernel");
  writeFileSync(join(dir, "disk.ext4"), "disk");
});

afterEach(async () => {
  for (const fake of fakes) {
    // Whatever a test did, no request may have broken the contract, and the fake never answered outside it.
    expect(fake.responseViolations).toEqual([]);
    await fake.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function fake(name = "api.sock"): Promise<{ fake: FakeFirecracker; api: FirecrackerApi }> {
  const started = await FakeFirecracker.start({ socketPath: join(dir, name), id: "0123456789ab" });
  fakes.push(started);
  return { fake: started, api: new FirecrackerApi(started.socketPath) };
}

function vmSpec(overrides: Partial<FirecrackerVmSpec> = {}): FirecrackerVmSpec {
  return {
    id: "0123456789ab",
    vcpus: 2,
    memoryMiB: 512,
    kernelPath: join(dir, "vmlinux"),
    cmdline: "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw rootfstype=ext4 init=/sbin/smolvm-agent quiet",
    rootDisk: { path: join(dir, "disk.ext4") },
    network: { mode: "tap", ifname: "smolvm-tap3", mac: "06:00:ac:10:00:03" },
    vsock: { guestCid: 3, udsPath: join(dir, "vsock.sock") },
    apiSocketPath: join(dir, "api.sock"),
    logPath: join(dir, "firecracker.log"),
    metricsPath: join(dir, "firecracker.metrics"),
    ...overrides,
  };
}

/** Firecracker opens but does not create its log and metrics files; the launcher makes them first. */
function createOutputFiles(spec: FirecrackerVmSpec): void {
  writeFileSync(spec.logPath, "");
  writeFileSync(spec.metricsPath, "");
}

const refusal = (promise: Promise<unknown>) => rejection(promise, FirecrackerApiError);

describe("every request the client can make", () => {
  test("names an operation of the spec", () => {
    const spec = firecrackerSpec();
    const calls: ApiCall[] = [
      apiCalls.describeInstance(), apiCalls.version(), apiCalls.getMachineConfig(), apiCalls.vmConfig(),
      apiCalls.machineConfig({ vcpu_count: 1, mem_size_mib: 128 }), apiCalls.bootSource({ kernel_image_path: "/k" }),
      apiCalls.drive({ drive_id: "rootfs", is_root_device: true }), apiCalls.networkInterface({ iface_id: "eth0", host_dev_name: "tap0" }),
      apiCalls.vsock({ guest_cid: 3, uds_path: "/v" }), apiCalls.entropy(), apiCalls.logger({}), apiCalls.metrics({ metrics_path: "/m" }),
      apiCalls.action("InstanceStart"), apiCalls.action("SendCtrlAltDel"), apiCalls.action("FlushMetrics"),
      apiCalls.pause(), apiCalls.resume(), apiCalls.createSnapshot({ snapshot_path: "/s", mem_file_path: "/m" }),
      apiCalls.loadSnapshot({ snapshot_path: "/s", mem_backend: { backend_type: "File", backend_path: "/m" } }),
    ];
    for (const call of calls) {
      const operation = spec.operation(call.method, call.path);
      expect(operation, `${call.method} ${call.path}`).toBeDefined();
      expect(spec.validateRequest(operation!, call.body), `${call.method} ${call.path}`).toEqual([]);
    }
  });
});

describe("lifecycle", () => {
  test("a boot plan is accepted call by call, in order, and the VM runs", async () => {
    const { fake: server, api } = await fake();
    const spec = vmSpec();
    createOutputFiles(spec);
    const plan = planBoot(spec);
    await api.sendAll(plan.calls);
    expect(server.violations).toEqual([]);
    expect(server.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      "PUT /logger 204", "PUT /metrics 204", "PUT /machine-config 204", "PUT /boot-source 204", "PUT /drives/rootfs 204",
      "PUT /network-interfaces/eth0 204", "PUT /vsock 204", "PUT /entropy 204", "PUT /actions 204",
    ]);
    const info = await api.describeInstance();
    expect(info).toEqual({ app_name: "Firecracker", id: "0123456789ab", state: "Running", vmm_version: "1.17.0-dev" });
    expect(await api.version()).toBe("1.17.0-dev");
    expect(await api.getMachineConfig()).toEqual({ vcpu_count: 2, mem_size_mib: 512, smt: false, track_dirty_pages: false });
    const config = await api.vmConfig();
    expect(config.drives).toEqual([{ drive_id: "rootfs", path_on_host: spec.rootDisk.path, is_root_device: true, is_read_only: false, cache_type: "Unsafe" }]);
  });

  test("pause, resume, full and diff snapshots, Ctrl+Alt+Del and a metrics flush", async () => {
    const { fake: server, api } = await fake();
    const spec = vmSpec({ trackDirtyPages: true, network: { mode: "none" } });
    createOutputFiles(spec);
    await api.sendAll(planBoot(spec).calls);
    await api.pause();
    expect((await api.describeInstance()).state).toBe("Paused");
    await api.createSnapshot({ snapshot_path: join(dir, "full.state"), mem_file_path: join(dir, "full.mem"), snapshot_type: "Full" });
    await api.resume();
    expect((await api.describeInstance()).state).toBe("Running");
    await api.pause();
    await api.createSnapshot({ snapshot_path: join(dir, "diff.state"), mem_file_path: join(dir, "diff.mem"), snapshot_type: "Diff" });
    await api.resume();
    await api.flushMetrics();
    await api.sendCtrlAltDel();
    expect(server.violations).toEqual([]);
    for (const file of ["full.state", "full.mem", "diff.state", "diff.mem"]) expect(existsSync(join(dir, file))).toBe(true);
    expect(server.requests.filter((r) => r.path === "/snapshot/create").map((r) => (r.body as { snapshot_type: string }).snapshot_type))
      .toEqual(["Full", "Diff"]);
  });

  test("a restore plan loads the snapshot into a fresh process, paused until resumed, with its vsock moved", async () => {
    const first = await fake("first.sock");
    const spec = vmSpec();
    createOutputFiles(spec);
    await first.api.sendAll(planBoot(spec).calls);
    await first.api.pause();
    const snapshot = { statePath: join(dir, "vmstate"), memPath: join(dir, "memory") };
    await first.api.createSnapshot({ snapshot_path: snapshot.statePath, mem_file_path: snapshot.memPath });

    const second = await fake("second.sock");
    const moved = vmSpec({ vsock: { guestCid: 3, udsPath: join(dir, "vsock-2.sock") } });
    const plan = planRestore(moved, { snapshot, overrideVsockPath: true, tapOverride: "smolvm-tap9" });
    expect(plan.calls.map((c) => `${c.method} ${c.path}`)).toEqual(["PUT /logger", "PUT /metrics", "PUT /snapshot/load"]);
    await second.api.sendAll(plan.calls);
    expect((await second.api.describeInstance()).state).toBe("Paused");
    await second.api.resume();
    expect((await second.api.describeInstance()).state).toBe("Running");
    expect(second.fake.vsock).toEqual({ guest_cid: 3, uds_path: join(dir, "vsock-2.sock") });
    expect(second.fake.interfaces.get("eth0")?.host_dev_name).toBe("smolvm-tap9");
    expect([...first.fake.violations, ...second.fake.violations]).toEqual([]);
  });
});

describe("errors the spec defines", () => {
  test("a 400's fault message reaches the caller verbatim, with the request and a hint", async () => {
    const { fake: server, api } = await fake();
    const message = 'Invalid TAP device name: "tap:0" (os error 22) — \'quoted\' and "double"';
    server.injectFault({ method: "PUT", path: "/network-interfaces/eth0", message });
    const error = await refusal(api.putNetworkInterface({ iface_id: "eth0", host_dev_name: "tap:0" }));
    expect(error.faultMessage).toBe(message);
    expect(error.status).toBe(400);
    expect(error.code).toBe("COMMAND_FAILED");
    expect(error.message).toBe(`Cannot attach the network interface "eth0" (TAP "tap:0"): Firecracker refused PUT /network-interfaces/eth0 (400): ${message}`);
    expect(error.hint).toContain("log");
    expect(server.violations).toEqual([]);
  });

  test("state refusals: pre-boot-only after start, pause before start, snapshots of a running VM, diff without dirty tracking", async () => {
    const { fake: server, api } = await fake();
    expect((await refusal(api.pause())).faultMessage).toBe("The requested operation is not supported before starting the microVM.");
    expect((await refusal(api.startInstance())).faultMessage).toBe("Cannot start microvm without kernel configuration.");
    const spec = vmSpec({ network: { mode: "none" } });
    createOutputFiles(spec);
    await api.sendAll(planBoot(spec).calls);
    expect((await refusal(api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 128 }))).faultMessage)
      .toBe("The requested operation is not supported after starting the microVM.");
    expect((await refusal(api.startInstance())).faultMessage).toBe("The requested operation is not supported after starting the microVM.");
    const snapshot = { snapshot_path: join(dir, "s"), mem_file_path: join(dir, "m") };
    expect((await refusal(api.createSnapshot(snapshot))).faultMessage).toBe("Cannot create a snapshot: the microVM is not paused.");
    await api.pause();
    expect((await refusal(api.createSnapshot({ ...snapshot, snapshot_type: "Diff" }))).faultMessage)
      .toBe("Diff snapshots are not allowed on microVMs with dirty page tracking disabled.");
    expect((await refusal(api.putMetrics({ metrics_path: spec.metricsPath }))).status).toBe(400);
    expect(server.violations).toEqual([]);
  });

  test("a snapshot load after configuring a device, or of files that do not exist, is refused", async () => {
    const { fake: server, api } = await fake();
    await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 128 });
    await api.putBootSource({ kernel_image_path: join(dir, "vmlinux") });
    const load = { snapshot_path: join(dir, "nope"), mem_backend: { backend_type: "File" as const, backend_path: join(dir, "nope.mem") } };
    expect((await refusal(api.loadSnapshot(load))).faultMessage)
      .toBe("Loading a microVM snapshot not allowed after configuring boot-specific resources.");
    const fresh = await fake("fresh.sock");
    expect((await refusal(fresh.api.loadSnapshot(load))).faultMessage).toBe(`Cannot open the memory file: ${join(dir, "nope.mem")}`);
    expect([...server.violations, ...fresh.fake.violations]).toEqual([]);
  });

  test("a body the spec rejects is refused with the validator's reasons and recorded as a violation", async () => {
    const { fake: server, api } = await fake();
    const bad: ApiCall[] = [
      { method: "PUT", path: "/machine-config", body: { vcpu_count: 1, mem_size_mb: 128 }, purpose: "configure" },
      { method: "PUT", path: "/drives/rootfs", body: { drive_id: "rootfs", path_on_host: "/x" }, purpose: "attach" },
      { method: "PUT", path: "/vsock", body: { guest_cid: 2, uds_path: "/v" }, purpose: "vsock" },
      { method: "PUT", path: "/actions", body: { action_type: "Reboot" }, purpose: "act" },
      { method: "PATCH", path: "/vm", body: { state: "paused" }, purpose: "pause" },
      { method: "PUT", path: "/snapshot/create", body: { snapshot_path: "/s" }, purpose: "snap" },
      { method: "PUT", path: "/no-such-endpoint", body: {}, purpose: "nothing" },
    ];
    for (const call of bad) {
      const error = await refusal(api.send(call));
      expect(error.status).toBe(400);
    }
    expect(server.violations).toEqual([
      "PUT /machine-config: body.mem_size_mib: is required; body.mem_size_mb: is not a property the spec defines",
      "PUT /drives/rootfs: body.is_root_device: is required",
      "PUT /vsock: body.guest_cid: 2 is below the minimum 3",
      'PUT /actions: body.action_type: "Reboot" is not one of "FlushMetrics", "InstanceStart", "SendCtrlAltDel"',
      'PATCH /vm: body.state: "paused" is not one of "Paused", "Resumed"',
      "PUT /snapshot/create: body.mem_file_path: is required",
      "PUT /no-such-endpoint: no such operation in the spec",
    ]);
    // Nothing invalid was applied.
    expect(server.machine.mem_size_mib).toBe(128);
    expect(server.drives.size).toBe(0);
  });
});
