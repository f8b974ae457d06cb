import { describe, expect, test } from "bun:test";
import { firecrackerVmSpec, snapshotFilesIn } from "../../../../lib/backends/firecracker/launch-spec.ts";
import type { LaunchSpec } from "../../../../lib/backends/types.ts";
import { BackendUnavailableError, InvalidInputError } from "../../../../lib/errors.ts";

const DIR = "/h/.smolvm/vms/0123456789ab";
const launch: LaunchSpec = {
  arch: "x86_64",
  vcpus: 2,
  memoryMiB: 512,
  kernelPath: "/cache/vmlinux",
  cmdline: "console=ttyS0 quiet",
  disk: { path: `${DIR}/disk.ext4`, format: "raw", readOnly: false, created: true },
  network: { mode: "tap", ifname: "smolvm-3", mac: "06:00:00:00:00:03" },
  agentSocketPath: `${DIR}/agent.sock`,
  controlSocketPath: `${DIR}/control.sock`,
  serialLogPath: `${DIR}/console.log`,
};
const extras = { id: "0123456789ab", guestCid: 9, vmDir: DIR };

describe("firecrackerVmSpec", () => {
  test("maps the agent socket to the vsock device and the control socket to the API", () => {
    expect(firecrackerVmSpec(launch, { ...extras, trackDirtyPages: true })).toEqual({
      id: "0123456789ab",
      vcpus: 2,
      memoryMiB: 512,
      kernelPath: "/cache/vmlinux",
      cmdline: "console=ttyS0 quiet",
      rootDisk: { path: `${DIR}/disk.ext4`, readOnly: false },
      network: { mode: "tap", ifname: "smolvm-3", mac: "06:00:00:00:00:03" },
      vsock: { guestCid: 9, udsPath: `${DIR}/agent.sock` },
      apiSocketPath: `${DIR}/control.sock`,
      logPath: `${DIR}/firecracker.log`,
      metricsPath: `${DIR}/firecracker.metrics`,
      trackDirtyPages: true,
    });
    expect(firecrackerVmSpec({ ...launch, network: { mode: "none" }, startPaused: true }, extras)).toMatchObject({ network: { mode: "none" }, startPaused: true });
  });

  test("refuses software emulation, qcow2 disks and user-mode networking, naming Firecracker", () => {
    expect(() => firecrackerVmSpec({ ...launch, accel: "tcg" }, extras)).toThrow(BackendUnavailableError);
    expect(() => firecrackerVmSpec({ ...launch, accel: "tcg" }, extras)).toThrow("Firecracker runs guests on KVM only");
    expect(() => firecrackerVmSpec({ ...launch, disk: { ...launch.disk, format: "qcow2" } }, extras)).toThrow(InvalidInputError);
    const user = () => firecrackerVmSpec({ ...launch, network: { mode: "user" } }, extras);
    expect(user).toThrow("Cannot use the Firecracker backend with user-mode networking: Firecracker has none");
    try {
      user();
    } catch (error) {
      expect((error as InvalidInputError).hint).toContain("TAP network");
    }
    // User mode's way into its namespace is not Firecracker's: refused, not ignored.
    expect(() => firecrackerVmSpec({ ...launch, network: { mode: "none" }, launchPrefix: ["nsenter", "--net"] }, extras))
      .toThrow("Cannot use the Firecracker backend through a launch command (nsenter)");
  });

  test("a snapshot directory holds the state and memory files", () => {
    expect(snapshotFilesIn("/s")).toEqual({ statePath: "/s/vmstate", memPath: "/s/memory" });
  });
});
