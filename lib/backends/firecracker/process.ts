/**
 * The firecracker (or jailer) process: finding the binary, its version, whether it can run here,
 * starting it detached with the guest's serial console on its stdout, and waiting for its API.
 *
 * Whether KVM works is not decided here: a `/dev/kvm` that opens is no proof (nested hosts expose
 * one that cannot run a guest), so the caller passes the verdict of the proof it ran
 * (kvm-probe.ts's `provenKvm`); by default only a verdict that proof already left for this host
 * boot counts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BackendUnavailableError, NotRunningError, SmolError, TimeoutError } from "../../errors.ts";
import { runHost, which } from "../../host/process.ts";
import { hostArch, qemuProgram } from "../accel.ts";
import { cachedKvmVerdict, kvmDeviceProblem, type KvmVerdict } from "../kvm-probe.ts";
import type { FirecrackerApi } from "./api.ts";

export const FIRECRACKER_PROGRAM = "firecracker";
export const JAILER_PROGRAM = "jailer";

/** Whether KVM can run a guest here: kvm-probe.ts's verdict, however it was reached. */
export type KvmCheck = () => KvmVerdict | Promise<KvmVerdict>;

export type FirecrackerProbe =
  | { ok: true; binary: string; version: string }
  | { ok: false; reason: string; hint: string };

export interface CanRunOptions {
  /** The binary to use; default `firecracker` on PATH. */
  binary?: string;
  /** Default: `defaultKvmCheck` (the device opens and a proof earlier this host boot said yes). */
  kvm?: KvmCheck;
  platform?: NodeJS.Platform;
  /** The host's architecture in guest terms; undefined for one Firecracker does not support. */
  arch?: "x86_64" | "aarch64" | undefined;
  which?: (program: string) => string | undefined;
}

const INSTALL_HINT = "install it with `smolvm setup --firecracker` (into smolvm's bin directory), or put a Firecracker release's binary on PATH as `firecracker`";

/** Whether Firecracker can run a guest here, and if not, why not. */
export async function canRunHere(options: CanRunOptions = {}): Promise<FirecrackerProbe> {
  const platform = options.platform ?? process.platform;
  if (platform !== "linux") {
    return { ok: false, reason: `Firecracker runs on Linux only, not on ${platform}`, hint: "use the QEMU backend" };
  }
  const arch = "arch" in options ? options.arch : hostArch();
  if (arch === undefined) {
    return { ok: false, reason: `Firecracker supports x86_64 and aarch64 hosts, not ${process.arch}`, hint: "use the QEMU backend" };
  }
  const binary = options.binary ?? (options.which ?? which)(FIRECRACKER_PROGRAM);
  if (binary === undefined) {
    return { ok: false, reason: `"${FIRECRACKER_PROGRAM}" is not on PATH`, hint: INSTALL_HINT };
  }
  let version: string;
  try {
    version = await firecrackerVersion(binary);
  } catch (error) {
    return { ok: false, reason: (error as SmolError).message, hint: (error as SmolError).hint ?? INSTALL_HINT };
  }
  const kvm = await (options.kvm ?? defaultKvmCheck(arch))();
  if (!kvm.usable) {
    return { ok: false, reason: `KVM cannot run a guest here: ${kvm.reason}`, hint: "Firecracker needs working KVM; use the QEMU backend (software emulation) instead" };
  }
  return { ok: true, binary, version };
}

/**
 * The KVM verdict available without booting anything: the device must open, and the proof
 * (kvm-probe.ts, run by the first QEMU sandbox or `smolvm doctor`) must have seen a guest run
 * under it earlier this host boot.
 */
export function defaultKvmCheck(arch: "x86_64" | "aarch64"): KvmCheck {
  return () => {
    const problem = kvmDeviceProblem();
    if (problem !== undefined) return { usable: false, reason: problem };
    const qemu = which(qemuProgram(arch));
    const proven = qemu === undefined ? undefined : cachedKvmVerdict(arch, qemu);
    return proven ?? {
      usable: false,
      reason: "no guest has been seen to run under KVM on this host since it booted (`smolvm doctor` runs the proof)",
    };
  };
}

/** The version in `firecracker --version` output (`Firecracker v1.17.0`), without the `v`. */
export function parseFirecrackerVersion(output: string): string | undefined {
  return /\bFirecracker v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)/.exec(output)?.[1];
}

/** Runs `<binary> --version`. */
export async function firecrackerVersion(binary: string): Promise<string> {
  const result = await runHost(binary, ["--version"], { timeoutMs: 10_000 });
  const version = parseFirecrackerVersion(result.stdout);
  if (result.code !== 0 || version === undefined) {
    throw new BackendUnavailableError(`Cannot use the Firecracker backend: "${binary} --version" did not report a version`, {
      hint: INSTALL_HINT,
      details: { binary, code: result.code, stdout: result.stdout.slice(0, 300), stderr: result.stderr.slice(-300) },
    });
  }
  return version;
}

export interface FirecrackerProcess {
  pid: number;
  /** Resolves when the process ends. */
  exited: Promise<{ code: number | null; signal: string | null }>;
  /** Signals the process (SIGKILL by default); a process already gone is not an error. */
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnOptions {
  /** The firecracker or jailer binary. */
  binary: string;
  argv: readonly string[];
  /** Firecracker's stdout is the guest's serial console: appended here. */
  serialLogPath?: string;
  /** Its stderr (a bad flag, a panic) is appended here. */
  vmmLogPath?: string;
}

/**
 * Starts the binary in its own process group, detached and unreferenced: the VMM outlives the
 * process that started it (a CLI call hands it to the supervisor). Resolves once the process exists.
 */
export async function spawnFirecracker(options: SpawnOptions): Promise<FirecrackerProcess> {
  const fds: number[] = [];
  const open = async (path: string | undefined) => {
    if (path === undefined) return "ignore" as const;
    await mkdir(dirname(path), { recursive: true });
    const fd = openSync(path, "a");
    fds.push(fd);
    return fd;
  };
  let child: ChildProcess;
  try {
    const stdout = await open(options.serialLogPath);
    const stderr = options.vmmLogPath === options.serialLogPath ? stdout : await open(options.vmmLogPath);
    child = spawn(options.binary, [...options.argv], { detached: true, stdio: ["ignore", stdout, stderr] });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", (error) => reject(new BackendUnavailableError(`Cannot start Firecracker ("${options.binary}"): ${error.message}`, {
      cause: error,
      hint: INSTALL_HINT,
    })));
  });
  child.unref();
  const pid = child.pid!;
  return {
    pid,
    exited,
    kill(signal: NodeJS.Signals = "SIGKILL") {
      try {
        process.kill(pid, signal);
      } catch { /* already gone */ }
    },
  };
}

/**
 * Waits until Firecracker answers on its API socket (it creates the socket early in start-up).
 * Rejects at the deadline, or as soon as `exited` settles.
 */
export async function waitForApi(api: FirecrackerApi, options: { timeoutMs?: number; exited?: Promise<unknown> } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  options.exited?.then(() => { gone = true; }, () => { gone = true; });
  let last: unknown;
  while (true) {
    if (gone) throw new NotRunningError(`Cannot reach Firecracker's API at "${api.socketPath}": Firecracker exited`);
    try {
      await api.describeInstance();
      return;
    } catch (error) {
      if (!(error instanceof NotRunningError)) throw error;
      last = error;
    }
    if (Date.now() >= deadline) {
      throw new TimeoutError(`Cannot reach Firecracker's API at "${api.socketPath}": no answer after ${timeoutMs} ms`, {
        cause: last,
        hint: "see the sandbox's vmm.log for Firecracker's own words",
      });
    }
    await sleep(5);
  }
}
