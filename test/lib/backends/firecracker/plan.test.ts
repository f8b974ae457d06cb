import { describe, expect, test } from "bun:test";
import { type FirecrackerVmSpec, planBoot, planRestore } from "../../../../lib/backends/firecracker/plan.ts";
import { InvalidInputError } from "../../../../lib/errors.ts";

const DIR = "/home/u/.smolvm/vms/0123456789ab";

function vmSpec(overrides: Partial<FirecrackerVmSpec> = {}): FirecrackerVmSpec {
  return {
    id: "0123456789ab",
    vcpus: 1,
    memoryMiB: 512,
    kernelPath: "/cache/kernels/k1/vmlinux",
    cmdline: "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw quiet",
    rootDisk: { path: `${DIR}/disk.ext4` },
    network: { mode: "none" },
    vsock: { guestCid: 7, udsPath: `${DIR}/agent.sock` },
    apiSocketPath: `${DIR}/firecracker.sock`,
    logPath: `${DIR}/firecracker.log`,
    metricsPath: `${DIR}/firecracker.metrics`,
    ...overrides,
  };
}

const JAILER = {
  jailerBinary: "/usr/local/bin/jailer",
  firecrackerBinary: "/usr/local/bin/firecracker",
  uid: 10_007,
  gid: 10_007,
  chrootBaseDir: `${DIR}/jail`,
};

describe("planBoot", () => {
  test("logger and metrics first, then machine, kernel, root drive, vsock, entropy and start", () => {
    const plan = planBoot(vmSpec());
    expect(plan.program).toBe("firecracker");
    expect(plan.argv).toEqual(["--api-sock", `${DIR}/firecracker.sock`, "--id", "0123456789ab"]);
    expect(plan.outputFiles).toEqual([`${DIR}/firecracker.log`, `${DIR}/firecracker.metrics`]);
    expect(plan.socketsToClear).toEqual([`${DIR}/firecracker.sock`, `${DIR}/agent.sock`]);
    expect(plan.stage).toEqual([]);
    expect(plan.calls.map(({ method, path, body }) => ({ method, path, body }))).toEqual([
      { method: "PUT", path: "/logger", body: { log_path: `${DIR}/firecracker.log`, level: "Warning", show_level: true, show_log_origin: false } },
      { method: "PUT", path: "/metrics", body: { metrics_path: `${DIR}/firecracker.metrics` } },
      { method: "PUT", path: "/machine-config", body: { vcpu_count: 1, mem_size_mib: 512, smt: false, track_dirty_pages: false } },
      { method: "PUT", path: "/boot-source", body: { kernel_image_path: "/cache/kernels/k1/vmlinux", boot_args: "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw quiet" } },
      { method: "PUT", path: "/drives/rootfs", body: { drive_id: "rootfs", path_on_host: `${DIR}/disk.ext4`, is_root_device: true, is_read_only: false, cache_type: "Unsafe" } },
      { method: "PUT", path: "/vsock", body: { guest_cid: 7, uds_path: `${DIR}/agent.sock` } },
      { method: "PUT", path: "/entropy", body: {} },
      { method: "PUT", path: "/actions", body: { action_type: "InstanceStart" } },
    ]);
  });

  test("a TAP network adds eth0 with its MAC; no entropy when asked; start paused ends with a pause", () => {
    const plan = planBoot(vmSpec({
      network: { mode: "tap", ifname: "smolvm-7", mac: "06:00:ac:10:00:07", mtu: 1400 },
      entropy: false,
      startPaused: true,
      trackDirtyPages: true,
      initrdPath: "/cache/initrd.img",
    }));
    const paths = plan.calls.map((c) => `${c.method} ${c.path}`);
    expect(paths).toEqual([
      "PUT /logger", "PUT /metrics", "PUT /machine-config", "PUT /boot-source", "PUT /drives/rootfs",
      "PUT /network-interfaces/eth0", "PUT /vsock", "PUT /actions", "PATCH /vm",
    ]);
    expect(plan.calls[5]!.body).toEqual({ iface_id: "eth0", host_dev_name: "smolvm-7", guest_mac: "06:00:ac:10:00:07", mtu: 1400 });
    expect(plan.calls[2]!.body).toMatchObject({ track_dirty_pages: true });
    expect(plan.calls[3]!.body).toMatchObject({ initrd_path: "/cache/initrd.img" });
    expect(plan.calls[8]!.body).toEqual({ state: "Paused" });
  });

  test("what Firecracker cannot run is refused before anything starts, naming the backend", () => {
    const refused = (overrides: Partial<FirecrackerVmSpec>, text: string) => {
      expect(() => planBoot(vmSpec(overrides))).toThrow(InvalidInputError);
      expect(() => planBoot(vmSpec(overrides))).toThrow(text);
    };
    refused({ vcpus: 33 }, 'Cannot start sandbox "0123456789ab" with the Firecracker backend: 33 vCPUs asked for; Firecracker runs 1 to 32');
    refused({ vcpus: 0 }, "0 vCPUs");
    refused({ memoryMiB: 1.5 }, "memory 1.5 MiB");
    refused({ vsock: { guestCid: 2, udsPath: "/v" } }, "vsock CID 2 is reserved");
    refused({ id: "has/slash" }, "not a valid Firecracker id");
    refused({ network: { mode: "tap", ifname: "a-name-much-too-long" } }, "is not a TAP device name");
    refused({ network: { mode: "tap", ifname: "tap0", mac: "nope" } }, '"nope" is not a MAC address');
    refused({ apiSocketPath: `/${"x".repeat(120)}/api.sock` }, "longer than 107 bytes");
  });
});

describe("planRestore", () => {
  test("only logger, metrics and the load: the devices come from the snapshot", () => {
    const plan = planRestore(vmSpec(), { snapshot: { statePath: `${DIR}/snap/vmstate`, memPath: `${DIR}/snap/memory` } });
    expect(plan.calls.map((c) => c.path)).toEqual(["/logger", "/metrics", "/snapshot/load"]);
    expect(plan.calls[2]!.body).toEqual({
      snapshot_path: `${DIR}/snap/vmstate`,
      mem_backend: { backend_type: "File", backend_path: `${DIR}/snap/memory` },
      resume_vm: false,
    });
  });

  test("a clone overrides its TAP device and vsock socket, and keeps tracking dirty pages when asked", () => {
    const plan = planRestore(vmSpec(), {
      snapshot: { statePath: "/s/vmstate", memPath: "/s/memory" },
      resume: true,
      trackDirtyPages: true,
      tapOverride: "smolvm-9",
      overrideVsockPath: true,
    });
    expect(plan.calls[2]!.body).toEqual({
      snapshot_path: "/s/vmstate",
      mem_backend: { backend_type: "File", backend_path: "/s/memory" },
      resume_vm: true,
      track_dirty_pages: true,
      network_overrides: [{ iface_id: "eth0", host_dev_name: "smolvm-9" }],
      vsock_override: { uds_path: `${DIR}/agent.sock` },
    });
  });
});

describe("with the jailer", () => {
  const chroot = `${DIR}/jail/firecracker/0123456789ab/root`;

  test("Firecracker is given paths inside the jail, and the host sees its sockets under the chroot dir", () => {
    const plan = planBoot(vmSpec(), { jailer: JAILER });
    expect(plan.program).toBe("jailer");
    expect(plan.argv.slice(-3)).toEqual(["--", "--api-sock", "/api.sock"]);
    expect(plan.apiSocketPath).toBe(`${chroot}/api.sock`);
    expect(plan.vsockSocketPath).toBe(`${chroot}/vsock.sock`);
    expect(plan.outputFiles).toEqual([`${chroot}/firecracker.log`, `${chroot}/firecracker.metrics`]);
    expect(plan.socketsToClear).toEqual([`${chroot}/api.sock`, `${chroot}/vsock.sock`]);
    expect(plan.stage).toEqual([
      { hostPath: "/cache/kernels/k1/vmlinux", jailedHostPath: `${chroot}/vmlinux`, ownedByJail: false },
      { hostPath: `${DIR}/disk.ext4`, jailedHostPath: `${chroot}/rootfs.ext4`, ownedByJail: true },
    ]);
    const bodies = Object.fromEntries(plan.calls.map((c) => [c.path, c.body]));
    expect(bodies["/logger"]).toMatchObject({ log_path: "/firecracker.log" });
    expect(bodies["/metrics"]).toEqual({ metrics_path: "/firecracker.metrics" });
    expect(bodies["/boot-source"]).toMatchObject({ kernel_image_path: "/vmlinux" });
    expect(bodies["/drives/rootfs"]).toMatchObject({ path_on_host: "/rootfs.ext4" });
    expect(bodies["/vsock"]).toEqual({ guest_cid: 7, uds_path: "/vsock.sock" });
    expect(plan.jail?.chrootDir).toBe(chroot);
  });

  test("a jailed restore hands the snapshot files to the jail, leaves a read-only shared image alone, and loads by jail paths", () => {
    const plan = planRestore(vmSpec({ rootDisk: { path: "/img.ext4", readOnly: true } }), { snapshot: { statePath: "/s/vmstate", memPath: "/s/memory" } }, { jailer: JAILER });
    expect(plan.stage.map((s) => [s.jailedHostPath.slice(chroot.length), s.ownedByJail])).toEqual([
      ["/vmlinux", false], ["/rootfs.ext4", false], ["/snapshot/vmstate", true], ["/snapshot/memory", true],
    ]);
    expect(plan.calls[2]!.body).toMatchObject({ snapshot_path: "/snapshot/vmstate", mem_backend: { backend_type: "File", backend_path: "/snapshot/memory" } });
  });
});
