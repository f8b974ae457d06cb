/**
 * The QEMU backend: disk overlays, launching QEMU detached, and the Backend the supervisor uses.
 *
 * The command line itself is built, without effects, in qemu-args.ts (re-exported here).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, constants as fsConstants, existsSync, openSync, rmSync } from "node:fs";
import { copyFile, mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BackendUnavailableError, CommandFailedError, NotFoundError, NotRunningError, SmolError, TimeoutError } from "../errors.ts";
import { runHostChecked, which } from "../host/process.ts";
import { paths } from "../paths.ts";
import { tailOf } from "../util/tail.ts";
import { type Accel, accelFor, type GuestArch, qemuBinary, qemuVersion } from "./accel.ts";
import { type HostForward, incomingFromFile, qemuArgs, type QemuSpec } from "./qemu-args.ts";
import { firstErrorLine } from "./kvm-probe.ts";
import { QmpClient, type QmpStatus } from "./qmp.ts";
import type {
  Backend, BackendProbe, DiskRequest, LaunchedVmm, LaunchSpec, PreparedDisk, VmmControl, VmmExit, VmmStatus,
} from "./types.ts";

export {
  AGENT_PORT_NAME, escapeOptionValue, hostForwardRule, incomingFromFile, migrateToFileUri, NETDEV_ID, qemuArgs,
  shellQuote,
} from "./qemu-args.ts";
export type { HostForward, QemuDisk, QemuNetwork, QemuSpec } from "./qemu-args.ts";

/** The file name of an isolated sandbox's overlay inside its directory. */
export const OVERLAY_FILE = "disk.qcow2";

/**
 * Creates a qcow2 overlay at `overlayPath` whose reads fall through to `basePath` (left
 * untouched). The base is referenced by absolute path, so the overlay may live anywhere.
 *
 * With `templateDir` (for a base in the image cache, whose directory is replaced whole when the
 * image is rebuilt), the first overlay of each size is made by qemu-img and kept there, and
 * later ones are byte copies of it: an empty overlay is ~200 KB, while spawning qemu-img costs
 * 20-40 ms of every create.
 */
export async function createOverlay(
  basePath: string,
  overlayPath: string,
  options: { baseFormat?: "raw" | "qcow2"; sizeMiB?: number; templateDir?: string } = {},
): Promise<void> {
  const base = resolve(basePath);
  if (!existsSync(base)) {
    throw new NotFoundError(`Cannot create the disk overlay "${overlayPath}": the base image "${base}" does not exist`, {
      hint: "build or download the image first (`smolvm image build NAME`)",
      details: { base, overlayPath },
    });
  }
  const qemuImg = which("qemu-img");
  if (!qemuImg) {
    throw new BackendUnavailableError(`Cannot create the disk overlay "${overlayPath}": "qemu-img" is not installed`, {
      hint: "run `smolvm setup`, or install the qemu-utils package",
    });
  }
  await mkdir(dirname(resolve(overlayPath)), { recursive: true });
  const create = async (path: string) => {
    const args = ["create", "-q", "-f", "qcow2", "-F", options.baseFormat ?? "raw", "-b", base, path];
    if (options.sizeMiB !== undefined) args.push(`${options.sizeMiB}M`);
    await runHostChecked(qemuImg, args, { action: `Cannot create the disk overlay "${overlayPath}"`, timeoutMs: 30_000 });
  };
  if (options.templateDir === undefined) return create(overlayPath);
  const template = join(options.templateDir, `.overlay-${options.sizeMiB ?? "base"}-${options.baseFormat ?? "raw"}.qcow2`);
  if (!existsSync(template)) {
    // Made aside and renamed: concurrent creates each make one, and any of them is right.
    const temp = `${template}.${process.pid}.tmp`;
    try {
      await create(temp);
      await rename(temp, template);
    } finally {
      await rm(temp, { force: true });
    }
  }
  await copyFile(template, overlayPath, fsConstants.COPYFILE_EXCL);
}

export interface QemuProcess {
  pid: number;
  child: ChildProcess;
  /** Resolves when QEMU ends. */
  exited: Promise<VmmExit>;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Starts QEMU for `spec` in its own process group, with its stdout and stderr appended to
 * `logFile` (or discarded), and resolves once the process exists. It does not wait for QEMU to
 * be ready: connect to its QMP socket for that.
 */
export async function launchQemu(
  spec: QemuSpec,
  options: { logFile?: string; binary?: string } = {},
): Promise<QemuProcess> {
  const binary = options.binary ?? qemuBinary(spec.arch);
  const args = qemuArgs(spec);
  let logFd: number | undefined;
  if (options.logFile !== undefined) {
    await mkdir(dirname(resolve(options.logFile)), { recursive: true });
    logFd = openSync(options.logFile, "a");
  }
  let child: ChildProcess;
  try {
    child = spawn(binary, args, {
      detached: true,
      stdio: ["ignore", logFd ?? "ignore", logFd ?? "ignore"],
    });
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }
  const exited = new Promise<VmmExit>((resolveExit) => {
    child.once("exit", (code, signal) => resolveExit({ code, signal }));
  });
  await new Promise<void>((resolveSpawn, reject) => {
    child.once("spawn", () => resolveSpawn());
    child.once("error", (error) => {
      reject(new BackendUnavailableError(`Cannot start QEMU ("${binary}"): ${error.message}`, {
        cause: error,
        hint: "run `smolvm setup` to install QEMU",
      }));
    });
  });
  const pid = child.pid!;
  // QEMU outlives whoever launched it (a CLI call hands it to the supervisor): never let it
  // hold the launcher's event loop open.
  child.unref();
  return {
    pid,
    child,
    exited,
    kill(signal: NodeJS.Signals = "SIGKILL") {
      try {
        process.kill(pid, signal);
      } catch { /* already gone */ }
    },
  };
}

/**
 * Waits until a Unix socket exists at `path`. Rejects at the deadline, or as soon as `exited`
 * (the process expected to create it) settles.
 */
export async function waitForSocket(
  path: string,
  options: { timeoutMs?: number; exited?: Promise<unknown> } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  options.exited?.then(() => { gone = true; }, () => { gone = true; });
  while (true) {
    try {
      if ((await stat(path)).isSocket()) return;
    } catch { /* not yet */ }
    if (gone) throw new NotRunningError(`Cannot reach "${path}": the process that should create it exited`);
    if (Date.now() >= deadline) throw new TimeoutError(`Cannot reach "${path}": no socket after ${timeoutMs} ms`);
    await sleep(5);
  }
}

function runState(status: QmpStatus): VmmStatus {
  const detail = status.status;
  if (status.running || detail === "running") return { state: "running", detail };
  if (["paused", "inmigrate", "postmigrate", "prelaunch", "suspended", "save-vm", "restore-vm", "finish-migrate",
    "debug", "colo"].includes(detail)) {
    return { state: "paused", detail };
  }
  if (detail === "shutdown") return { state: "shutdown", detail };
  if (["internal-error", "io-error", "guest-panicked", "watchdog"].includes(detail)) return { state: "error", detail };
  return { state: "other", detail };
}

/** VmmControl over a QMP connection. */
export function qmpControl(qmp: QmpClient): VmmControl {
  return {
    status: async () => runState(await qmp.queryStatus()),
    pause: () => qmp.stop(),
    resume: () => qmp.cont(),
    quit: () => qmp.quit(),
    addPortForward: (forward: HostForward) => qmp.addHostForward(forward),
    removePortForward: (forward) => qmp.removeHostForward(forward),
    saveState: async (file, options) => {
      await qmp.migrateToFile(file, options);
    },
    onEvent: (listener) => qmp.onEvent((event) => listener({ name: event.event, data: event.data })),
    disconnected: qmp.whenClosed,
    close: () => qmp.close(),
  };
}

/** The QEMU backend: microvm on x86_64, virt on aarch64; kvm, hvf or tcg as the host allows. */
/** The QEMU argv spec of a backend launch spec: what `launch` runs, and what the bench compares. */
export function qemuSpecFor(spec: LaunchSpec, accel: Accel): QemuSpec {
  const restoring = spec.restoreFrom !== undefined;
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
    ...(spec.startPaused || restoring ? { startPaused: true } : {}),
    ...(restoring ? { incoming: incomingFromFile(spec.restoreFrom!) } : {}),
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

  async prepareDisk(request: DiskRequest): Promise<PreparedDisk> {
    if (request.mode === "shared") {
      if (!existsSync(request.imagePath)) {
        throw new NotFoundError(`Cannot attach the disk: the image "${request.imagePath}" does not exist`);
      }
      return { path: resolve(request.imagePath), format: "raw", readOnly: false, created: false };
    }
    const overlay = join(resolve(request.vmDir), OVERLAY_FILE);
    if (existsSync(overlay)) return { path: overlay, format: "qcow2", readOnly: false, created: false };
    const image = resolve(request.imagePath);
    const cached = image.startsWith(`${resolve(paths.imagesDir())}${sep}`);
    await createOverlay(image, overlay, {
      ...(request.sizeMiB === undefined ? {} : { sizeMiB: request.sizeMiB }),
      ...(cached ? { templateDir: dirname(image) } : {}),
    });
    return { path: overlay, format: "qcow2", readOnly: false, created: true };
  }

  async launch(spec: LaunchSpec, options: { timeoutMs?: number } = {}): Promise<LaunchedVmm> {
    const accel: Accel = spec.accel ?? (await accelFor({ guestArch: spec.arch, kernelPath: spec.kernelPath })).accel;
    // Sockets left by an earlier QEMU would answer nothing; QEMU recreates them.
    for (const socket of [spec.controlSocketPath, spec.agentSocketPath]) rmSync(socket, { force: true });
    const qemu = await launchQemu(qemuSpecFor(spec, accel), spec.vmmLogPath === undefined ? {} : { logFile: spec.vmmLogPath });

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
      return { pid: qemu.pid, exited: qemu.exited, control: qmpControl(outcome.qmp), kill: qemu.kill };
    }
    if ("error" in outcome) {
      // QEMU often hangs up the monitor as it dies: prefer its exit status and words.
      const exit = await Promise.race([qemu.exited, sleep(1_000).then(() => undefined)]);
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
        hint: spec.vmmLogPath ? `see "${spec.vmmLogPath}"` : undefined,
        details: { exit: outcome.exit, vmmLogPath: spec.vmmLogPath, output },
      });
    }
    throw outcome.error;
  }

  async attach(controlSocketPath: string, options: { timeoutMs?: number } = {}): Promise<VmmControl> {
    return qmpControl(await QmpClient.connect(controlSocketPath, { timeoutMs: options.timeoutMs ?? 5_000 }));
  }
}

export const qemuBackend: Backend = new QemuBackend();
