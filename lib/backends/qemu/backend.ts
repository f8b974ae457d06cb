/**
 * The QEMU backend: microvm on x86_64, virt on aarch64; kvm, hvf or tcg as the host allows.
 *
 * The command line is built without effects in args.ts, the disk in disk.ts, the process in
 * process.ts; this module carries out a launch (and cleans up after a failed one) and attaches.
 */
import { existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { BackendUnavailableError, CommandFailedError, NotFoundError, type SmolError } from "../../errors.ts";
import { which } from "../../host/process.ts";
import { pollUntil, within } from "../../util/poll.ts";
import { tailOf } from "../../util/tail.ts";
import { type Accel, accelFor, type GuestArch, qemuBinary, qemuVersion } from "../accel.ts";
import { firstErrorLine } from "../kvm-probe.ts";
import type { Backend, BackendProbe, BackendSnapshots, DiskRequest, LaunchSpec, PreparedDisk, Vmm, VmmBuild, VmmExit, VmmTicket } from "../types.ts";
import { incomingFromCompressedFile, incomingFromFile, type QemuSpec } from "./args.ts";
import { captureQemuDisk, packQemuDisk, prepareQemuDisk } from "./disk.ts";
import { launchQemu } from "./process.ts";
import { QmpClient } from "./qmp.ts";
import { exitOfAttached, QemuVmm, STATE_FILE } from "./vmm.ts";

/** The QEMU argv spec of a backend launch spec: what `launch` runs, and what the bench compares. */
export function qemuSpecFor(spec: LaunchSpec, accel: Accel, restoreFrom?: { incoming: string }): QemuSpec {
  return {
    arch: spec.arch,
    accel,
    vcpus: spec.vcpus,
    memoryMiB: spec.memoryMiB,
    kernelPath: spec.kernelPath,
    cmdline: spec.cmdline,
    disk: spec.disk,
    network: spec.network,
    agentSocketPath: spec.agentSocketPath,
    qmpSocketPath: spec.controlSocketPath,
    serialLogPath: spec.serialLogPath,
    ...(spec.pidFile === undefined ? {} : { pidFile: spec.pidFile }),
    // A restore stays paused after the state is in, until resume(): the caller decides when.
    ...(spec.startPaused || restoreFrom !== undefined ? { startPaused: true } : {}),
    ...(restoreFrom === undefined ? {} : { incoming: restoreFrom.incoming }),
  };
}

export class QemuBackend implements Backend {
  readonly name = "qemu" as const;

  async probe(arch: GuestArch, kernelPath: string): Promise<BackendProbe> {
    let binary: string;
    try {
      binary = qemuBinary(arch);
    } catch (error) {
      return { ok: false, reason: (error as SmolError).message, hint: (error as SmolError).hint };
    }
    if (!which("qemu-img")) {
      return { ok: false, reason: '"qemu-img" is not installed', hint: "run `smolvm setup` (package qemu-utils)" };
    }
    try {
      const version = await qemuVersion(binary);
      const accel = await accelFor({ guestArch: arch, kernelPath });
      return { ok: true, accel: accel.accel, accelReason: accel.reason, version: version.text };
    } catch (error) {
      return { ok: false, reason: (error as SmolError).message, hint: (error as SmolError).hint };
    }
  }

  prepareDisk(request: DiskRequest): Promise<PreparedDisk> {
    return prepareQemuDisk(request);
  }

  launch(spec: LaunchSpec, options: { timeoutMs?: number } = {}): Promise<Vmm> {
    return this.start(spec, undefined, options);
  }

  async restore(spec: LaunchSpec, dir: string, options: { timeoutMs?: number } = {}): Promise<Vmm> {
    const vmm = await this.start(spec, { incoming: incomingOf(dir) }, options);
    // QEMU answers on QMP while it still reads the state ("inmigrate"), and a resume then is
    // lost: the restore is done once the state is in. QEMU announces it on no channel we hold,
    // so its status is polled.
    try {
      await pollUntil(async () => (await vmm.describe()).detail !== "inmigrate", {
        timeoutMs: options.timeoutMs ?? 60_000,
        intervalMs: 5,
        what: `QEMU to read the saved state in "${dir}"`,
      });
    } catch (error) {
      vmm.kill();
      await vmm.exited;
      throw error;
    }
    return vmm;
  }

  async attach(ticket: VmmTicket, options: { timeoutMs?: number } = {}): Promise<Vmm> {
    const qmp = await QmpClient.connect(ticket.controlSocketPath, { timeoutMs: options.timeoutMs ?? 5_000 });
    return new QemuVmm(ticket, qmp, exitOfAttached(ticket.pid, qmp));
  }

  readonly snapshots: BackendSnapshots = {
    async build(arch: GuestArch, known?: VmmBuild): Promise<VmmBuild> {
      const binary = qemuBinary(arch);
      const stats = statSync(binary);
      const fingerprint = `${binary}:${stats.size}:${Math.round(stats.mtimeMs)}`;
      if (known?.fingerprint === fingerprint) return known;
      return { version: (await qemuVersion(binary)).text, fingerprint };
    },
    captureDisk: captureQemuDisk,
    packDisk: packQemuDisk,
  };

  private async start(spec: LaunchSpec, restoreFrom: { incoming: string } | undefined, options: { timeoutMs?: number }): Promise<Vmm> {
    const chosen = spec.accel === undefined
      ? await accelFor({ guestArch: spec.arch, kernelPath: spec.kernelPath })
      : { accel: spec.accel, reason: spec.accelReason ?? "chosen by the caller" };
    // Sockets left by an earlier QEMU would answer nothing; QEMU recreates them.
    for (const socket of [spec.controlSocketPath, spec.agentSocketPath]) rmSync(socket, { force: true });
    const qemu = await launchQemu(qemuSpecFor(spec, chosen.accel, restoreFrom), {
      ...(spec.vmmLogPath === undefined ? {} : { logFile: spec.vmmLogPath }),
      ...(spec.onProcess === undefined ? {} : { onProcess: spec.onProcess }),
      ...(spec.launchPrefix === undefined ? {} : { prefix: spec.launchPrefix }),
    });

    const timeoutMs = options.timeoutMs ?? 10_000;
    const early = qemu.exited.then((exit) => ({ exit }));
    let outcome: { qmp: QmpClient } | { exit: VmmExit } | { error: unknown };
    try {
      outcome = await Promise.race([
        QmpClient.connect(spec.controlSocketPath, { timeoutMs }).then((qmp) => ({ qmp }), (error) => ({ error })),
        early,
      ]);
    } catch (error) {
      outcome = { error };
    }
    if ("qmp" in outcome) {
      const ticket: VmmTicket = {
        pid: qemu.pid,
        controlSocketPath: spec.controlSocketPath,
        agentSocketPath: spec.agentSocketPath,
        accel: chosen.accel,
        accelReason: chosen.reason,
      };
      return new QemuVmm(ticket, outcome.qmp, qemu.exited);
    }
    if ("error" in outcome) {
      // QEMU often hangs up the monitor as it dies: prefer its exit status and words.
      const exit = await within(qemu.exited, 1_000);
      if (exit) outcome = { exit };
    }
    qemu.kill("SIGKILL");
    await qemu.exited;
    for (const socket of [spec.controlSocketPath, spec.agentSocketPath]) rmSync(socket, { force: true });
    const output = tailOf(spec.vmmLogPath, 30);
    if ("exit" in outcome) {
      const how = outcome.exit.signal ? `was killed by ${outcome.exit.signal}` : `exited with status ${outcome.exit.code}`;
      const line = firstErrorLine(output);
      throw new CommandFailedError(`Cannot start QEMU: it ${how}${line === undefined ? "" : `: ${line}`}`, {
        ...(spec.vmmLogPath ? { hint: `see "${spec.vmmLogPath}"` } : {}),
        details: { exit: outcome.exit, vmmLogPath: spec.vmmLogPath, output },
      });
    }
    throw outcome.error;
  }
}

/**
 * Where a restore reads the migration stream: the plain file saveState wrote, or a stored
 * snapshot's compressed one, which zstd decompresses into QEMU as it reads (~20 ms of CPU for a
 * 512 MiB guest's 30 MB, beside QEMU's own start) without a temporary copy.
 */
function incomingOf(dir: string): string {
  const plain = join(dir, STATE_FILE);
  if (existsSync(plain)) return incomingFromFile(plain);
  const compressed = `${plain}.zst`;
  if (!existsSync(compressed)) {
    throw new NotFoundError(`Cannot restore from "${dir}": it holds no saved state (${STATE_FILE} or ${STATE_FILE}.zst)`);
  }
  if (!which("zstd")) {
    throw new BackendUnavailableError(`Cannot restore from "${dir}": "zstd" is not installed`, { hint: "run `smolvm setup`, or install the zstd package" });
  }
  return incomingFromCompressedFile(compressed);
}

export const qemuBackend: Backend = new QemuBackend();
