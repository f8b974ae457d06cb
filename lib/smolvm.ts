/**
 * `SmolVM`: one sandbox, from any process. The CLI is a thin client of this class.
 *
 * ```ts
 * await using vm = await SmolVM.create({ image: "base" });
 * const { stdout } = await vm.run("uname -a");
 * ```
 */
import type { VmConfigInput } from "./config.ts";
import { InvalidInputError } from "./errors.ts";
import type { AgentClient } from "./agent/client.ts";
import { reconcile, summarize, type SandboxSummary } from "./sandboxes.ts";
import { createSandbox, deleteSandbox, requireRunning, startSandbox, stopSandbox, withStore, type CreateOptions } from "./sandbox/lifecycle.ts";
import type { PrepareProgress } from "./sandbox/artifacts.ts";
import { vmFiles } from "./supervisor/layout.ts";
import type { VmRecord } from "./state/vms.ts";

export interface CreateSandboxOptions extends VmConfigInput {
  /** Kernel and image preparation (a first run may build them) and boot progress. */
  onProgress?: (progress: PrepareProgress) => void;
}

export interface RunOptions {
  /** Kills the command's whole process group after this many milliseconds. */
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  /** Bytes for the command's stdin (closed after). */
  stdin?: string | Uint8Array;
  signal?: AbortSignal;
}

export interface RunResult {
  exitCode: number | null;
  /** The signal that ended the command (`KILL`, ...), when one did. */
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface SandboxInfo extends SandboxSummary {
  supervisorPid: number | null;
  vmmPid: number | null;
  diskMode: string;
  network: string;
  sshPort: number | null;
  kernelPath: string | undefined;
  rootfsPath: string | undefined;
  consoleLog: string;
  dir: string;
}

export class SmolVM {
  private client: AgentClient | undefined;

  private constructor(private record: VmRecord) {}

  get id(): string {
    return this.record.id;
  }

  get name(): string {
    return this.record.name;
  }

  /**
   * Creates a sandbox and waits until it answers commands. Builds the kernel and image on
   * first use (with `onProgress`).
   *
   * ```ts
   * const vm = await SmolVM.create({ name: "dev", image: "debian", memoryMiB: 1024 });
   * ```
   */
  static async create(config: CreateSandboxOptions = {}): Promise<SmolVM> {
    const { onProgress, ...input } = config;
    const options: CreateOptions = onProgress === undefined ? {} : { onProgress };
    return new SmolVM(await createSandbox(input, options));
  }

  /**
   * Attaches to an existing sandbox by id or name.
   *
   * ```ts
   * const vm = await SmolVM.fromId("dev");
   * ```
   */
  static async fromId(idOrName: string): Promise<SmolVM> {
    return new SmolVM(withStore((store) => store.getVm(idOrName)));
  }

  /** Every sandbox in the state store, e.g. `(await SmolVM.list()).map((s) => s.name)`. */
  static async list(): Promise<SandboxSummary[]> {
    return (await import("./sandboxes.ts")).listSandboxes();
  }

  /**
   * Status, processes, resources and files of this sandbox.
   *
   * ```ts
   * const { status, memoryMiB } = await vm.info();
   * ```
   */
  async info(): Promise<SandboxInfo> {
    this.record = withStore((store) => reconcile(store, store.getVm(this.record.id)));
    const vm = this.record;
    const files = vmFiles(vm.id);
    return {
      ...summarize(vm),
      supervisorPid: vm.supervisorPid,
      vmmPid: vm.vmmPid,
      diskMode: vm.config.diskMode,
      network: vm.config.network,
      sshPort: vm.sshPort,
      kernelPath: vm.config.kernelPath,
      rootfsPath: vm.config.rootfsPath,
      consoleLog: files.consoleLog,
      dir: files.dir,
    };
  }

  /**
   * Runs a command and collects its output. A string runs through `/bin/sh -c`; an array is
   * an argv.
   *
   * ```ts
   * const { exitCode, stdout } = await vm.run(["ls", "-l", "/"]);
   * ```
   */
  async run(command: string | string[], options: RunOptions = {}): Promise<RunResult> {
    toCommand(command);
    const client = await this.connection();
    return client.run(command, options);
  }

  /**
   * Starts a command and returns its live streams (stdin, stdout, stderr) and exit status.
   *
   * ```ts
   * const proc = await vm.exec("tail -f /var/log/app.log");
   * proc.stdout.pipe(process.stdout);
   * ```
   */
  async exec(command: string | string[], options: Omit<RunOptions, "stdin"> & { stdin?: boolean; pty?: { rows: number; cols: number; term?: string } } = {}) {
    const client = await this.connection();
    return client.exec({ ...toCommand(command), ...options });
  }

  /** Powers the guest off; its disk is kept for `start()`. */
  async stop(): Promise<void> {
    this.detach();
    this.record = await stopSandbox(this.record.id);
  }

  /** Boots a stopped sandbox again. */
  async start(): Promise<void> {
    this.record = await startSandbox(this.record.id);
  }

  /** Deletes the sandbox and everything it holds. Returns at once; cleanup finishes behind. */
  async delete(): Promise<void> {
    this.detach();
    await deleteSandbox(this.record.id);
  }

  /** Detaches from the sandbox, which keeps running. */
  close(): void {
    this.detach();
  }

  /** `await using vm = await SmolVM.create()` deletes the sandbox at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.delete();
  }

  private async connection(): Promise<AgentClient> {
    if (this.client !== undefined && !this.client.isClosed) return this.client;
    requireRunning(this.record.id, "reach");
    const { connectSupervisor } = await import("./supervisor/client.ts");
    this.client = await connectSupervisor(this.record.id);
    return this.client;
  }

  private detach(): void {
    void this.client?.close();
    this.client = undefined;
  }
}

function toCommand(command: string | string[]): { argv: string[] } | { shell: string } {
  if (typeof command === "string") {
    if (command.trim() === "") throw new InvalidInputError("Cannot run an empty command", { hint: 'pass a command, e.g. "uname -a"' });
    return { shell: command };
  }
  if (command.length === 0 || command[0] === "") {
    throw new InvalidInputError("Cannot run an empty command", { hint: 'pass a command, e.g. ["uname", "-a"]' });
  }
  return { argv: command };
}
