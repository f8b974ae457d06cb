/**
 * The Firecracker backend: the building blocks of this folder behind the one backend contract
 * (lib/backends/types.ts), so the supervisor, the launch recipe and the bench run a sandbox on
 * Firecracker exactly as they do on QEMU.
 *
 * What differs from QEMU, and where it shows:
 * - KVM only: a spec asking for another accelerator is refused (launch-spec.ts).
 * - Raw disks only: an isolated sandbox gets its own sparse copy of the image (disk.ts).
 * - No user-mode network and so no host forwards through the VMM: `hostForwards` is absent, and
 *   port forwards go through the agent, as they do on QEMU.
 * - The agent's channel is hybrid vsock (vsock.ts); a connection is refused until the guest
 *   listens, so `openAgent` retries until its deadline.
 * - Stopping: the guest kernel has no i8042 driver, so Firecracker's SendCtrlAltDel reaches
 *   nobody. The supervisor asks the agent to shut down (it syncs and reboots with `reboot=t`,
 *   which ends Firecracker); `stop()` is then SIGTERM, which Firecracker does not handle, so it
 *   ends at once, with every guest write already in the host's page cache.
 */
import { chown, mkdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { BackendUnavailableError, InvalidInputError, NotRunningError } from "../../errors.ts";
import { pidAlive } from "../../host/pids.ts";
import { runHostChecked, which } from "../../host/process.ts";
import { pollUntil } from "../../util/poll.ts";
import { hostArch, qemuProgram, type GuestArch } from "../accel.ts";
import { provenKvm } from "../kvm-probe.ts";
import type {
  AgentTransport, Backend, BackendProbe, DiskRequest, LaunchSpec, PreparedDisk, SaveStateOptions, Vmm, VmmExit, VmmJail, VmmStatus, VmmTicket,
} from "../types.ts";
import { FirecrackerApi } from "./api.ts";
import { prepareFirecrackerDisk } from "./disk.ts";
import { FIRECRACKER_FILES, firecrackerVmSpec, snapshotFilesIn } from "./launch-spec.ts";
import { JAIL_PATHS } from "./jailer.ts";
import { findVmmProgram } from "./locate.ts";
import { AGENT_VSOCK_PORT, type FirecrackerVmSpec, type SnapshotFiles } from "./plan.ts";
import { sandboxJail } from "./sandbox-jail.ts";
import { canRunHere, defaultKvmCheck, FIRECRACKER_PROGRAM, type KvmCheck } from "./process.ts";
import { attachFirecracker, bootFirecracker, cleanupFirecracker, type FirecrackerLaunchOptions, restoreFirecracker, type RunningFirecracker } from "./vmm.ts";
import { waitForVsock } from "./vsock.ts";

/** Why a Firecracker sandbox runs on KVM: it has no other accelerator. */
export const FIRECRACKER_ACCEL_REASON = "Firecracker runs guests on KVM only";

export interface FirecrackerBackendOptions {
  /** The firecracker binary; default `firecracker` on PATH, else in smolvm's bin directory. */
  binary?: string;
  /** The jailer binary, for a spec that asks for it (`jailed`); default found as `binary` is. */
  jailerBinary?: string;
  /**
   * Record dirty guest pages from boot, so a `diff` save is possible at any time. Default true:
   * the cost is a write-protect fault on a page's first write after each save.
   */
  trackDirtyPages?: boolean;
  /** Whether KVM runs a guest here (probe only); default the proof kvm-probe.ts makes with QEMU. */
  kvm?: (arch: GuestArch, kernelPath: string) => KvmCheck;
}

function statusOf(state: string): VmmStatus {
  if (state === "Running") return { state: "running", detail: state };
  if (state === "Paused") return { state: "paused", detail: state };
  return { state: "other", detail: state };
}

/** A Firecracker process this process did not start: its end is noticed by its pid. */
function exitOfPid(pid: number): Promise<VmmExit> {
  return pollUntil(() => !pidAlive(pid), { timeoutMs: Number.MAX_SAFE_INTEGER, intervalMs: 20, what: `Firecracker (pid ${pid}) to exit` })
    .then(() => ({ code: null, signal: null }));
}

export class FirecrackerVmm implements Vmm {
  /** The directory of this VMM's last saved or restored state: what a diff save builds on. */
  private base: string | undefined;

  /** Set once `release()` handed the VMM over: what it leaves behind is then its new owner's to remove. */
  private handedOver = false;
  readonly exited: Promise<VmmExit>;

  constructor(
    readonly ticket: VmmTicket,
    private readonly api: FirecrackerApi,
    exited: Promise<VmmExit>,
    base?: string,
    /** What this process removes once the VMM has exited, while it owns it. */
    cleanup?: () => Promise<void>,
  ) {
    this.base = base;
    this.exited = cleanup === undefined ? exited : exited.then(async (exit) => {
      if (!this.handedOver) await cleanup();
      return exit;
    });
  }

  get pid(): number {
    return this.ticket.pid;
  }

  /** Firecracker's log and metrics sit beside its API socket (in the jail too: launch-spec.ts, jailer.ts). */
  get logFiles(): readonly string[] {
    const dir = dirname(this.ticket.controlSocketPath);
    return [join(dir, FIRECRACKER_FILES.log), join(dir, FIRECRACKER_FILES.metrics)];
  }

  async openAgent(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<AgentTransport> {
    const aborted = options.signal === undefined
      ? undefined
      : new Promise<void>((resolve) => {
        if (options.signal!.aborted) resolve();
        options.signal!.addEventListener("abort", () => resolve(), { once: true });
      });
    const socket = await waitForVsock(this.ticket.agentSocketPath, AGENT_VSOCK_PORT, {
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      exited: aborted === undefined ? this.exited : Promise.race([this.exited, aborted]),
    });
    // A vsock connection is new each time: nothing of an earlier host is left in it.
    return { socket, resync: false };
  }

  async describe(): Promise<VmmStatus> {
    try {
      return statusOf((await this.api.describeInstance()).state);
    } catch (error) {
      if (error instanceof NotRunningError && !pidAlive(this.pid)) return { state: "shutdown", detail: "exited" };
      throw error;
    }
  }

  pause(): Promise<void> {
    return this.api.pause();
  }

  resume(): Promise<void> {
    return this.api.resume();
  }

  async stop(): Promise<void> {
    this.signal("SIGTERM");
  }

  kill(): void {
    this.signal("SIGKILL");
  }

  private signal(signal: NodeJS.Signals): void {
    try {
      process.kill(this.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /**
   * A full save writes all guest memory. A diff save copies the memory of the last saved or
   * restored state into `dir` first (sparse, a reflink where the filesystem has them), and
   * Firecracker writes the pages dirtied since then over it: `dir` holds a complete state. A
   * jailed Firecracker can write only inside its jail: the state is written there, as the jail's
   * user, and moved out to `dir`.
   */
  async saveState(dir: string, options: SaveStateOptions = {}): Promise<void> {
    const type = options.type ?? "full";
    if (type === "diff" && this.base === undefined) {
      throw new InvalidInputError("Cannot save a diff state of the Firecracker VM: it has no earlier saved or restored state to build on", {
        hint: "save a full state first; later saves can be diffs against it",
      });
    }
    const files = snapshotFilesIn(dir);
    const jail = this.ticket.jail;
    const written = jail === undefined ? files : inJail(jail, { statePath: JAIL_PATHS.snapshotState, memPath: JAIL_PATHS.snapshotMemory });
    await mkdir(dir, { recursive: true });
    if (jail !== undefined) {
      await mkdir(dirname(written.statePath), { recursive: true });
      await chown(dirname(written.statePath), jail.uid, jail.gid);
    }
    const clear = async () => {
      for (const file of new Set([files.statePath, files.memPath, written.statePath, written.memPath])) await rm(file, { force: true });
    };
    try {
      if (type === "diff") {
        const baseMemory = snapshotFilesIn(this.base!).memPath;
        if (baseMemory !== written.memPath) {
          await runHostChecked("cp", ["--reflink=auto", "--sparse=always", "--", baseMemory, written.memPath], {
            action: `Cannot copy the saved memory in "${this.base}" to build a diff state on`,
            timeoutMs: 120_000,
          });
        }
        if (jail !== undefined) await chown(written.memPath, jail.uid, jail.gid);
      }
      await this.api.createSnapshot(
        jail === undefined
          ? { snapshot_path: files.statePath, mem_file_path: files.memPath, snapshot_type: type === "diff" ? "Diff" : "Full" }
          : { snapshot_path: JAIL_PATHS.snapshotState, mem_file_path: JAIL_PATHS.snapshotMemory, snapshot_type: type === "diff" ? "Diff" : "Full" },
        options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs },
      );
      if (jail !== undefined) {
        await moveOut(written.statePath, files.statePath);
        await moveOut(written.memPath, files.memPath);
      }
    } catch (error) {
      // Half a state is no state: nothing in `dir` (or the jail) may pass for a saved VM.
      await clear();
      throw error;
    }
    this.base = dir;
  }

  async release(): Promise<void> {
    // Every API request is its own connection: nothing is held between calls. The new owner
    // (a supervisor that attaches) removes the sockets and the jail once Firecracker ends; two
    // processes removing the same directory race each other.
    this.handedOver = true;
  }
}

/** The host's paths for files a jailed Firecracker sees at `files` (absolute inside its jail). */
function inJail(jail: VmmJail, files: SnapshotFiles): SnapshotFiles {
  return { statePath: join(jail.chroot, files.statePath), memPath: join(jail.chroot, files.memPath) };
}

/** Moves a file out of the jail; a copy where `to` is on another filesystem. */
async function moveOut(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
    await runHostChecked("cp", ["--reflink=auto", "--sparse=always", "--", from, to], { action: `Cannot move the saved state "${from}" to "${to}"`, timeoutMs: 120_000 });
    await rm(from, { force: true });
  }
}

export class FirecrackerBackend implements Backend {
  readonly name = "firecracker" as const;

  constructor(private readonly options: FirecrackerBackendOptions = {}) {}

  async probe(arch: GuestArch, kernelPath: string): Promise<BackendProbe> {
    if (arch !== hostArch()) {
      return { ok: false, reason: `Firecracker runs guests of the host's architecture only, not ${arch}`, hint: "use the QEMU backend" };
    }
    const found = await canRunHere({
      ...(this.options.binary === undefined ? {} : { binary: this.options.binary }),
      which: findVmmProgram,
      kvm: this.options.kvm?.(arch, kernelPath) ?? provedByQemu(arch, kernelPath),
    });
    if (!found.ok) return found;
    return { ok: true, accel: "kvm", accelReason: FIRECRACKER_ACCEL_REASON, version: found.version };
  }

  prepareDisk(request: DiskRequest): Promise<PreparedDisk> {
    return prepareFirecrackerDisk(request);
  }

  async launch(spec: LaunchSpec, options: { timeoutMs?: number } = {}): Promise<Vmm> {
    const running = await bootFirecracker(this.vmSpec(spec), this.launchOptions(spec, options));
    return this.vmmOf(spec, running);
  }

  async restore(spec: LaunchSpec, dir: string, options: { timeoutMs?: number } = {}): Promise<Vmm> {
    const running = await restoreFirecracker(this.vmSpec(spec), {
      snapshot: snapshotFilesIn(dir),
      // Resumed by the caller once it is ready for the guest (the contract: paused).
      resume: false,
      trackDirtyPages: this.options.trackDirtyPages ?? true,
      // The sandbox's socket, wherever the saved VM had it.
      overrideVsockPath: true,
      ...(spec.network.mode === "tap" ? { tapOverride: spec.network.ifname } : {}),
    }, this.launchOptions(spec, options));
    return this.vmmOf(spec, running, dir);
  }

  async attach(ticket: VmmTicket, options: { timeoutMs?: number } = {}): Promise<Vmm> {
    const api = await attachFirecracker(ticket.controlSocketPath, {
      logPath: join(dirname(ticket.controlSocketPath), FIRECRACKER_FILES.log),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    });
    return new FirecrackerVmm(ticket, api, exitOfPid(ticket.pid).then(async (exit) => {
      for (const socket of [ticket.controlSocketPath, ticket.agentSocketPath]) await rm(socket, { force: true });
      // The jail's instance directory (jailer.ts): what the jailer made goes with its Firecracker.
      if (ticket.jail !== undefined) await rm(dirname(ticket.jail.chroot), { recursive: true, force: true });
      return exit;
    }));
  }

  /** The binary this backend runs, refusing clearly when there is none. */
  binary(): string {
    const binary = this.options.binary ?? findVmmProgram(FIRECRACKER_PROGRAM);
    if (binary === undefined) {
      throw new BackendUnavailableError(`Cannot use the Firecracker backend: "${FIRECRACKER_PROGRAM}" is not on PATH`, {
        hint: "install it with `smolvm setup --firecracker`, or use the QEMU backend (--backend qemu)",
      });
    }
    return binary;
  }

  private vmSpec(spec: LaunchSpec): FirecrackerVmSpec {
    const vmDir = dirname(spec.controlSocketPath);
    return firecrackerVmSpec({ ...spec, accel: spec.accel ?? "kvm" }, {
      id: spec.id ?? basename(vmDir),
      guestCid: spec.guestCid ?? 3,
      vmDir,
      trackDirtyPages: this.options.trackDirtyPages ?? true,
    });
  }

  private launchOptions(spec: LaunchSpec, options: { timeoutMs?: number }): FirecrackerLaunchOptions {
    const binary = this.binary();
    return {
      binary,
      ...(spec.jailed === true
        ? {
          jailer: sandboxJail({
            vmDir: dirname(spec.controlSocketPath),
            guestCid: spec.guestCid ?? 3,
            firecrackerBinary: binary,
            ...(this.options.jailerBinary === undefined ? {} : { jailerBinary: this.options.jailerBinary }),
          }),
        }
        : {}),
      serialLogPath: spec.serialLogPath,
      ...(spec.vmmLogPath === undefined ? {} : { vmmLogPath: spec.vmmLogPath }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(spec.onProcess === undefined ? {} : { onProcess: spec.onProcess }),
    };
  }

  private vmmOf(spec: LaunchSpec, running: RunningFirecracker, base?: string): FirecrackerVmm {
    const ticket: VmmTicket = {
      pid: running.pid,
      controlSocketPath: running.plan.apiSocketPath,
      agentSocketPath: running.plan.vsockSocketPath,
      accel: "kvm",
      accelReason: spec.accelReason ?? FIRECRACKER_ACCEL_REASON,
      ...(running.plan.jail === undefined ? {} : { jail: { chroot: running.plan.jail.chrootDir, uid: running.plan.jail.uid, gid: running.plan.jail.gid } }),
    };
    return new FirecrackerVmm(ticket, running.api, running.exited, base, () => cleanupFirecracker(running.plan));
  }
}

/**
 * KVM proven by booting our kernel under it with QEMU (kvm-probe.ts, cached per host boot); with
 * no QEMU installed, only a proof made earlier counts.
 */
function provedByQemu(arch: GuestArch, kernelPath: string): KvmCheck {
  return () => {
    const qemu = which(qemuProgram(arch));
    return qemu === undefined ? defaultKvmCheck(arch)() : provenKvm({ arch, qemuBinary: qemu, kernelPath });
  };
}

export const firecrackerBackend: Backend = new FirecrackerBackend();
