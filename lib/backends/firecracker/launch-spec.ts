/**
 * The bridge from the backend-neutral LaunchSpec (lib/backends/types.ts) to Firecracker's own VM
 * description, refusing what Firecracker cannot do with an error that names the backend. This is
 * the only file of the Firecracker backend that reads the shared backend types.
 */
import { join } from "node:path";
import { BackendUnavailableError, InvalidInputError } from "../../errors.ts";
import type { LaunchSpec } from "../types.ts";
import type { FirecrackerVmSpec, SnapshotFiles } from "./plan.ts";

/** File names of a Firecracker sandbox's own files, inside its directory. */
export const FIRECRACKER_FILES = {
  /** The isolated-mode root disk: a sparse copy of the image. */
  disk: "disk.ext4",
  log: "firecracker.log",
  metrics: "firecracker.metrics",
  /** A saved snapshot: state and memory, in a directory of their own. */
  snapshotState: "vmstate",
  snapshotMemory: "memory",
} as const;

/** The two files of a snapshot kept in `dir`. */
export function snapshotFilesIn(dir: string): SnapshotFiles {
  return { statePath: join(dir, FIRECRACKER_FILES.snapshotState), memPath: join(dir, FIRECRACKER_FILES.snapshotMemory) };
}

export interface FirecrackerExtras {
  /** The sandbox id: Firecracker's `--id`. */
  id: string;
  /** The vsock CID allocated to the sandbox. */
  guestCid: number;
  /** The sandbox's directory: Firecracker's log and metrics go there. */
  vmDir: string;
  trackDirtyPages?: boolean;
}

/**
 * Firecracker's description of the VM `spec` asks for. `spec.agentSocketPath` becomes the vsock
 * device's host socket and `spec.controlSocketPath` the API socket; the serial log and the VMM's
 * own log are the spawned process's stdout and stderr (see process.ts). A restore is planned
 * separately (`planRestore`), with `snapshotFilesIn(spec.restoreFrom)`.
 */
export function firecrackerVmSpec(spec: LaunchSpec, extras: FirecrackerExtras): FirecrackerVmSpec {
  if (spec.accel !== undefined && spec.accel !== "kvm") {
    throw new BackendUnavailableError(`Cannot use the Firecracker backend with ${spec.accel}: Firecracker runs guests on KVM only`, {
      hint: "use the QEMU backend where KVM is not available",
    });
  }
  if (spec.disk.format !== "raw") {
    throw new InvalidInputError(`Cannot use the Firecracker backend with a ${spec.disk.format} disk: Firecracker reads raw disk files only`, {
      hint: "prepare the disk with the Firecracker backend's prepareDisk (a sparse copy of the image)",
    });
  }
  if (spec.network.mode === "user") {
    throw new InvalidInputError("Cannot use the Firecracker backend with user-mode networking: Firecracker has none", {
      hint: "give the sandbox a TAP network (needs root or CAP_NET_ADMIN) or none",
    });
  }
  // A launch prefix is user mode's way into its namespace; Firecracker is started by its own
  // process code (and the jailer), never through another command.
  if (spec.launchPrefix !== undefined && spec.launchPrefix.length > 0) {
    throw new InvalidInputError(`Cannot use the Firecracker backend through a launch command (${spec.launchPrefix[0]}): Firecracker is started on its own`, {
      hint: "give the sandbox a TAP network (needs root or CAP_NET_ADMIN) or none",
    });
  }
  return {
    id: extras.id,
    vcpus: spec.vcpus,
    memoryMiB: spec.memoryMiB,
    kernelPath: spec.kernelPath,
    cmdline: spec.cmdline,
    rootDisk: { path: spec.disk.path, readOnly: spec.disk.readOnly },
    network: spec.network.mode === "tap"
      ? { mode: "tap", ifname: spec.network.ifname, ...(spec.network.mac === undefined ? {} : { mac: spec.network.mac }) }
      : { mode: "none" },
    vsock: { guestCid: extras.guestCid, udsPath: spec.agentSocketPath },
    apiSocketPath: spec.controlSocketPath,
    logPath: join(extras.vmDir, FIRECRACKER_FILES.log),
    metricsPath: join(extras.vmDir, FIRECRACKER_FILES.metrics),
    ...(extras.trackDirtyPages === undefined ? {} : { trackDirtyPages: extras.trackDirtyPages }),
    ...(spec.startPaused ? { startPaused: true } : {}),
  };
}
