/**
 * The one contract every VMM backend implements (QEMU now, Firecracker next), and the only way
 * the rest of smolvm starts, controls or ends a VM.
 *
 * A backend prepares a sandbox's root disk, launches the VMM as a detached process, and hands
 * back a `Vmm`: the running VM with its control API (QMP, or Firecracker's REST API) and its
 * agent channel. The process that launched a VMM may hand it to another (a create launches it so
 * the guest boots while the supervisor starts; a supervisor that died leaves it to the next
 * one): `vmm.ticket` says what the next owner needs, `release()` lets go of the control API, and
 * `attach(ticket)` takes it over. Everything here speaks for the VMM only: shutting the guest
 * down politely is the agent's job (the supervisor asks it), not the backend's.
 */
import type { Duplex } from "node:stream";
import type { DiskMode } from "../config.ts";
import type { Accel, GuestArch } from "./accel.ts";

export type BackendName = "qemu" | "firecracker";

export type BackendProbe =
  | { ok: true; accel: Accel; /** Why this accelerator (shown once when it is tcg). */ accelReason: string; version: string }
  | { ok: false; reason: string; hint?: string };

export interface DiskRequest {
  /** The image's ext4 file (raw). Never written to in isolated mode. */
  imagePath: string;
  /** The sandbox's own directory; an isolated disk is created in it. */
  vmDir: string;
  mode: DiskMode;
  /** Virtual size of an isolated disk; default the image's size. */
  sizeMiB?: number;
  /**
   * A snapshot's disk layer (what `packDisk` stored) to start the new isolated disk from, instead
   * of an empty one; the sandbox gets its own copy, so the snapshot may be removed later.
   */
  layer?: string;
}

export interface PreparedDisk {
  path: string;
  format: "qcow2" | "raw";
  readOnly: boolean;
  /** Whether prepareDisk created it now (false: an existing one was kept, as after stop/start). */
  created: boolean;
}

/** A host port forwarded into the guest by the VMM's own user-mode network. */
export interface HostForward {
  protocol?: "tcp" | "udp";
  /** The host address the forward listens on. Default 127.0.0.1: never reachable from outside. */
  hostAddress?: string;
  hostPort: number;
  guestPort: number;
}

/**
 * The guest's network, as the VMM is to wire it. `user`: the VMM's own NAT (QEMU's slirp), with
 * host forwards; `tap`: a TAP device set up beforehand (its name and the guest's MAC); `none`.
 * New modes are added here and mapped by each backend (QEMU: lib/backends/qemu/args.ts).
 */
export type LaunchNetwork =
  | { mode: "none" }
  | { mode: "user"; hostForwards?: readonly HostForward[]; mac?: string }
  | { mode: "tap"; ifname: string; mac?: string };

export interface LaunchSpec {
  arch: GuestArch;
  /**
   * The VM's name on this host: the sandbox id (letters, digits, dashes). Firecracker's `--id`;
   * default the name of the control socket's directory.
   */
  id?: string;
  /** The guest's vsock context id (the state store allocates it); Firecracker's vsock device needs one. Default 3. */
  guestCid?: number;
  /** Default: the backend's choice for this host (see `probe`). */
  accel?: Accel;
  /** Why `accel` was chosen, carried into the ticket (the once-only emulation notice says it). */
  accelReason?: string;
  vcpus: number;
  memoryMiB: number;
  kernelPath: string;
  /** The complete kernel command line (lib/kernel builds it, TSC options included under tcg). */
  cmdline: string;
  disk: PreparedDisk;
  network: LaunchNetwork;
  /**
   * A command the VMM is started through, which execs it in the end, so the VMM keeps its pid
   * (the user network's wrapper: a namespace of its own, its rules loaded first). A backend that
   * cannot start through one refuses the spec.
   */
  launchPrefix?: readonly string[];
  /** Where the guest agent's channel listens (QEMU: the virtio-serial chardev; Firecracker: the vsock UDS). */
  agentSocketPath: string;
  /** The VMM's control API socket (QEMU: QMP; Firecracker: its REST API). */
  controlSocketPath: string;
  /** The guest's serial console is appended here. */
  serialLogPath: string;
  /** The VMM's own stdout/stderr are appended here (its error on a bad flag or kernel path). */
  vmmLogPath?: string;
  pidFile?: string;
  /** Keep the vCPUs stopped until `resume()`. */
  startPaused?: boolean;
  /**
   * Confine the VMM with its jailer (Firecracker's: a chroot, a user of its own, a mount
   * namespace). Only Firecracker has one; `launchVmm` refuses it for other backends.
   */
  jailed?: boolean;
  /**
   * Called with the VMM's pid the moment its process exists, before the launch can fail or be
   * interrupted on its way to a working control API: whoever launches records it there and
   * then, so a launcher killed mid-launch never leaves a VMM nobody can find.
   */
  onProcess?: (pid: number) => void;
}

/** The VMM paused the guest by itself because a write to its disk failed on the host. */
export interface DiskError {
  /** The host file system is full (ENOSPC); otherwise another I/O error (`reason`). */
  noSpace: boolean;
  reason: string;
}

/** The VMM build a snapshot was made with: a restore needs the same one. */
export interface VmmBuild {
  /** What the VMM says it is (QEMU: the first line of `-version`). */
  version: string;
  /** Cheap to compute (the binary's path, size and mtime): equal means the same binary, not asked again. */
  fingerprint: string;
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

/**
 * What a process needs to take over a running VMM: written by its launcher, read by the next
 * owner, which knows its backend already (the sandbox's record names it).
 */
export interface VmmTicket {
  pid: number;
  controlSocketPath: string;
  agentSocketPath: string;
  accel: Accel;
  accelReason: string;
  /**
   * A jailed VMM: the host path of the directory it sees as `/` (paths in its API are inside it)
   * and the user and group it runs as (what it writes must be theirs).
   */
  jail?: VmmJail;
}

export interface VmmJail {
  chroot: string;
  uid: number;
  gid: number;
}

/** A byte stream to the guest agent, and whether the host side must resync before its HELLO. */
export interface AgentTransport {
  socket: Duplex;
  /**
   * True where the channel outlives a host connection (a virtio-serial port), so an earlier host
   * may have left half a frame in it: the handshake pads and hunts (PROTOCOL.md, "Reconnecting").
   */
  resync: boolean;
}

export interface SaveStateOptions {
  timeoutMs?: number;
  /** Default `full`. */
  type?: "full" | "diff";
}

/** A running VMM owned by this process. */
export interface Vmm {
  readonly pid: number;
  /** Resolves when the VMM process ends (for an attached one, noticed through its API and pid). */
  readonly exited: Promise<VmmExit>;
  /** What the next owner needs; see `release()`. */
  readonly ticket: VmmTicket;
  /**
   * Opens the guest agent's channel. Connecting succeeds once the VMM is up; the agent answers
   * the HELLO once the guest has booted.
   */
  openAgent(options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<AgentTransport>;
  describe(): Promise<VmmStatus>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Ends the VMM now through its API (no guest shutdown); resolves once it has accepted. */
  stop(): Promise<void>;
  /** SIGKILL, for a VMM that does not answer. */
  kill(): void;
  /**
   * Writes the paused machine's state (not its disk) into `dir`, for `Backend.restore`: one file
   * or several; guest memory kept apart from the device state goes in a file named `memory` (a
   * snapshot stores each file compressed and records it as `memory` or `state` by that name). A
   * `diff` save writes only the guest memory changed since this VMM's last save or restore, merged
   * over a copy of that state's memory, so `dir` is complete on its own (Firecracker); a backend
   * without dirty-page tracking (QEMU) writes a full state either way. A resume() while it still
   * writes ends it, leaving the file incomplete.
   */
  saveState(dir: string, options?: SaveStateOptions): Promise<void>;
  /** Host port forwards on the VMM's user-mode network, where the VMM has them (QEMU). */
  readonly hostForwards?: {
    add(forward: HostForward): Promise<void>;
    remove(forward: Omit<HostForward, "guestPort">): Promise<void>;
  };
  /** Lets go of the control API without ending the VMM, so another process can `attach`. */
  release(): Promise<void>;
  /**
   * Calls `listener` when the VMM pauses the guest because its disk could not be written (QEMU's
   * BLOCK_IO_ERROR with the stop action): the guest is frozen until `resume()` after the host
   * has room again. Returns the unsubscribe. Absent where the VMM does not say.
   */
  onDiskError?(listener: (error: DiskError) => void): () => void;
  /**
   * Files besides the console log that the VMM appends to for as long as it runs, at a rate the
   * guest can drive (Firecracker's log and metrics); the supervisor bounds them as it does the
   * console log. Absent where there are none (QEMU's stderr is its launch errors only).
   */
  readonly logFiles?: readonly string[];
}

export interface Backend {
  readonly name: BackendName;
  /** Whether this host can run a guest of `arch` with this backend, and how. */
  probe(arch: GuestArch, kernelPath: string): Promise<BackendProbe>;
  prepareDisk(request: DiskRequest): Promise<PreparedDisk>;
  /** Starts the VMM and resolves once its control API answers; a failure leaves nothing behind. */
  launch(spec: LaunchSpec, options?: { timeoutMs?: number }): Promise<Vmm>;
  /**
   * Starts the VMM from state `saveState` wrote into `dir` (same devices as `spec`) and resolves
   * once the state is in: the VM is paused, and `resume()` runs it from where it was saved. A
   * file may be there zstd-compressed as `NAME.zst` instead (a stored snapshot); the backend reads
   * it as it can (QEMU streams it through zstd), never writing into `dir`.
   */
  restore(spec: LaunchSpec, dir: string, options?: { timeoutMs?: number }): Promise<Vmm>;
  /** Takes over a VMM another process launched (its `ticket`). */
  attach(ticket: VmmTicket, options?: { timeoutMs?: number }): Promise<Vmm>;
  /** Snapshots (docs/snapshots.md); absent: this backend cannot take or restore them yet. */
  readonly snapshots?: BackendSnapshots;
}

/** What a backend adds for snapshots, beside `Vmm.saveState` and `Backend.restore`. */
export interface BackendSnapshots {
  /** The VMM build a guest of `arch` runs with here; `known` itself when its fingerprint still holds. */
  build(arch: GuestArch, known?: VmmBuild): Promise<VmmBuild>;
  /**
   * While the VM is stopped (after saveState): copies what the guest wrote over its image (an
   * isolated disk) into `dir`. Keep it quick: the VM waits.
   */
  captureDisk(disk: PreparedDisk, dir: string): Promise<void>;
  /**
   * Turns captureDisk's copy in `dir` into the stored disk layer over `imagePath` (compressed,
   * the copy removed), with the VM running again; resolves to the layer's file name in `dir`.
   */
  packDisk(dir: string, imagePath: string): Promise<string>;
}
