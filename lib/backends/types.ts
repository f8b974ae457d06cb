/**
 * The contract between the supervisor and a VMM backend (QEMU now, Firecracker later).
 *
 * A backend prepares a sandbox's root disk, launches the VMM as a detached child, and gives a
 * control handle over the VMM's own API socket (QMP, or Firecracker's REST API). The control
 * handle can also be had for a VMM some earlier supervisor launched (`attach`): the sockets accept
 * a reconnect, so a supervisor that died loses nothing.
 */
import type { DiskMode } from "../config.ts";
import type { Accel, GuestArch } from "./accel.ts";
import type { HostForward, QemuNetwork } from "./qemu-args.ts";

export type BackendName = "qemu" | "firecracker";

export type BackendProbe =
  | { ok: true; accel: Accel; /** Why this accelerator (shown once when it is tcg). */ accelReason: string; version: string }
  | { ok: false; reason: string; hint?: string };

export interface DiskRequest {
  /** The image's ext4 file (raw). Never written to in isolated mode. */
  imagePath: string;
  /** The sandbox's own directory; an isolated overlay is created in it. */
  vmDir: string;
  mode: DiskMode;
  /** Virtual size of an isolated overlay; default the image's size. */
  sizeMiB?: number;
}

export interface PreparedDisk {
  path: string;
  format: "qcow2" | "raw";
  readOnly: boolean;
  /** Whether prepareDisk created it now (false: an existing overlay was kept, as after stop/start). */
  created: boolean;
}

export type LaunchNetwork = QemuNetwork;

export interface LaunchSpec {
  arch: GuestArch;
  /** Default: the backend's choice for this host (see `probe`). */
  accel?: Accel;
  vcpus: number;
  memoryMiB: number;
  kernelPath: string;
  /** The complete kernel command line (lib/kernel builds it, TSC options included under tcg). */
  cmdline: string;
  disk: PreparedDisk;
  network: LaunchNetwork;
  /** Where the guest agent's channel listens (QEMU: the virtio-serial chardev socket). */
  agentSocketPath: string;
  /** The VMM's control API socket (QEMU: QMP; Firecracker: its REST API). */
  controlSocketPath: string;
  /** The guest's serial console is appended here. */
  serialLogPath: string;
  /** The VMM's own stdout/stderr are appended here (its error on a bad flag or kernel path). */
  vmmLogPath?: string;
  pidFile?: string;
  /** Restore the machine state saved by `VmmControl.saveState` instead of booting. Starts paused. */
  restoreFrom?: string;
  /** Keep the vCPUs stopped until `resume()`. */
  startPaused?: boolean;
}

export interface VmmExit {
  code: number | null;
  signal: string | null;
}

/** `paused` covers a VM stopped on request, one waiting for an incoming restore, and one just saved. */
export type VmRunState = "running" | "paused" | "shutdown" | "error" | "other";

export interface VmmStatus {
  state: VmRunState;
  /** The VMM's own word for it (`running`, `inmigrate`, `postmigrate`, `guest-panicked`, ...). */
  detail: string;
}

/** Controls over a running VMM through its API socket. */
export interface VmmControl {
  status(): Promise<VmmStatus>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Ends the VMM now, without a guest shutdown. */
  quit(): Promise<void>;
  addPortForward(forward: HostForward): Promise<void>;
  removePortForward(forward: Omit<HostForward, "guestPort">): Promise<void>;
  /** Writes the paused machine's state (not its disk) to `file`. */
  saveState(file: string, options?: { timeoutMs?: number }): Promise<void>;
  /** Called for VMM events: `STOP`, `RESUME`, `SHUTDOWN`, `RESET`, ... Returns the unsubscriber. */
  onEvent(listener: (event: { name: string; data?: Record<string, unknown> }) => void): () => void;
  /** Resolves when the API connection is gone (usually: the VMM exited). */
  readonly disconnected: Promise<void>;
  /** Hangs up the API connection; the VMM keeps running. */
  close(): Promise<void>;
}

/** A VMM this process launched. */
export interface LaunchedVmm {
  pid: number;
  /** Resolves when the VMM process ends. */
  exited: Promise<VmmExit>;
  control: VmmControl;
  /** Signals the VMM process (SIGKILL by default). */
  kill(signal?: NodeJS.Signals): void;
}

export interface Backend {
  readonly name: BackendName;
  /** Whether this host can run a guest of `arch` with this backend, and how. */
  probe(arch: GuestArch, kernelPath: string): Promise<BackendProbe>;
  prepareDisk(request: DiskRequest): Promise<PreparedDisk>;
  /** Starts the VMM and resolves once its control API answers. */
  launch(spec: LaunchSpec, options?: { timeoutMs?: number }): Promise<LaunchedVmm>;
  /** Connects to a VMM launched earlier (possibly by another process). */
  attach(controlSocketPath: string, options?: { timeoutMs?: number }): Promise<VmmControl>;
}
