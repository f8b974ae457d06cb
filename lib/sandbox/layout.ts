/**
 * The files of one sandbox under `vms/<id>/`. Everything a sandbox holds on disk lives here, so
 * removing the directory (after its processes are gone) reclaims all of it.
 */
import { join } from "node:path";
import { FIRECRACKER_FILES } from "../backends/firecracker/launch-spec.ts";
import type { BackendName } from "../backends/types.ts";
import { paths } from "../paths.ts";

export interface SandboxFiles {
  dir: string;
  /** The isolated-mode copy-on-write disk over the image (QEMU). */
  overlay: string;
  /** The isolated-mode disk of a Firecracker sandbox: its own sparse copy of the image. */
  rawDisk: string;
  /** The agent channel (QEMU's virtio-serial chardev); only the supervisor connects. */
  agentSocket: string;
  /** QMP (or Firecracker's API); only the supervisor connects. */
  controlSocket: string;
  /** Where SDK clients and the CLI reach the supervisor. */
  supervisorSocket: string;
  /** The guest's serial console. */
  consoleLog: string;
  /** QEMU's own stderr: bad flags, a missing kernel. */
  vmmLog: string;
  /** The supervisor's own stdout/stderr. */
  supervisorLog: string;
  /** The open port forwards, so a supervisor that re-attaches after a crash opens them again. */
  forwards: string;
  /** The running VMM's ticket (lib/backends/types.ts): how its next owner attaches to it. */
  vmmTicket: string;
  /**
   * Present from a restore until the guest has its own identity (clock, RNG, hostname, boot id,
   * network): the supervisor that takes the VM over gives it one before it answers anyone.
   */
  restoreMarker: string;
  /** Present while the VM is paused for a snapshot: a supervisor that takes over runs it again. */
  snapshotMarker: string;
}

export function sandboxFiles(id: string): SandboxFiles {
  const dir = paths.sandboxDir(id);
  return {
    dir,
    overlay: join(dir, "disk.qcow2"),
    rawDisk: join(dir, FIRECRACKER_FILES.disk),
    agentSocket: join(dir, "agent.sock"),
    controlSocket: join(dir, "qmp.sock"),
    supervisorSocket: join(dir, "supervisor.sock"),
    consoleLog: join(dir, "console.log"),
    vmmLog: join(dir, "vmm.log"),
    supervisorLog: join(dir, "supervisor.log"),
    forwards: join(dir, "forwards.json"),
    vmmTicket: join(dir, "vmm.json"),
    restoreMarker: join(dir, "restored.json"),
    snapshotMarker: join(dir, "snapshotting.json"),
  };
}

/**
 * The disk an isolated sandbox owns in its directory: QEMU's overlay, or Firecracker's own raw
 * copy of the image (it has no qcow2). A row without a backend predates Firecracker: QEMU.
 */
export function ownDisk(files: SandboxFiles, backend: BackendName | null): string {
  return backend === "firecracker" ? files.rawDisk : files.overlay;
}
