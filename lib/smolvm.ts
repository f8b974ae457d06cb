/**
 * `SmolVM`: one sandbox, from any process. The CLI is a thin client of this class.
 *
 * ```ts
 * await using vm = await SmolVM.create({ image: "base" });
 * const { stdout } = await vm.run("uname -a");
 * ```
 */
import type { Readable } from "node:stream";
import type { VmConfigInput } from "./config.ts";
import { InvalidInputError, NotRunningError, SmolError } from "./errors.ts";
import type { ReadFileHandle } from "./agent/types.ts";
import type { Channel, CommChannel } from "./channels/types.ts";
import { requireGuestPath } from "./sandbox/_paths.ts";
import { toCommand } from "./sandbox/_command.ts";
import type { PortForward, SandboxEnv } from "./sandbox/handles.ts";

export type { PortForward, SandboxEnv } from "./sandbox/handles.ts";
import { checkEnvName, checkEnvVars } from "./sandbox/env.ts";
import type { GetFileOptions, PutFileOptions, TransferResult, WriteFileOptions } from "./sandbox/files.ts";
import type { DirTransferResult, DownloadDirOptions, UploadDirOptions } from "./sandbox/dirs.ts";
import { checkGuestPort, checkHostPort, type PortForwardInfo } from "./sandbox/ports.ts";
import { reconcile, summarize, type SandboxSummary } from "./sandboxes.ts";
import { createSandbox, deleteSandbox, requireRunning, startSandbox, stopSandbox, type CreateOptions, type StartOptions } from "./sandbox/lifecycle.ts";
import { withStore } from "./state/vms.ts";
import type { PrepareProgress } from "./sandbox/artifacts.ts";
import { vmFiles } from "./supervisor/layout.ts";
import type { VmRecord } from "./state/vms.ts";

export interface CreateSandboxOptions extends VmConfigInput {
  /**
   * The control channel: `vsock` (the guest agent), `ssh`, or `auto` (the agent when it answers,
   * else SSH; the default). An explicit `ssh` or `vsock` is stored with the sandbox and used by
   * every later handle that does not ask otherwise; with `ssh`, create waits until sshd is ready.
   */
  commChannel?: CommChannel;
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
  /** The channel a command would take now (`null`: none answers), and why. */
  channel: "agent" | "ssh" | null;
  channelReason: string;
  /** For `ssh -i KEY -o UserKnownHostsFile=KNOWN_HOSTS -p PORT root@127.0.0.1`. */
  sshKeyPath: string;
  sshKnownHostsPath: string;
}

export class SmolVM {
  private client: Channel | undefined;

  /**
   * The sandbox's managed environment variables.
   *
   * ```ts
   * await vm.env.set({ GREETING: "hello" });
   * (await vm.run("echo $GREETING")).stdout; // "hello\n"
   * ```
   */
  readonly env: SandboxEnv = {
    set: async (vars) => (await this.connection()).env.set(checkEnvVars(vars)),
    unset: async (names) => {
      if (!Array.isArray(names)) throw new InvalidInputError("Invalid names: expected an array of variable names", { hint: 'e.g. ["API_KEY"]' });
      names.forEach(checkEnvName);
      return (await this.connection()).env.unset(names);
    },
    list: async () => (await this.connection()).env.list(),
  };

  private constructor(
    private record: VmRecord,
    private readonly commChannel?: CommChannel,
  ) {}

  /** The sandbox's stable id, e.g. `SmolVM.fromId(vm.id)` from another process. */
  get id(): string {
    return this.record.id;
  }

  /** The sandbox's unique name, e.g. `smolvm exec ${vm.name} -- ls` on the command line. */
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
    const { onProgress, commChannel, ...input } = config;
    const options: CreateOptions = onProgress === undefined ? {} : { onProgress };
    return new SmolVM(await createSandbox(commChannel === undefined ? input : { ...input, channel: commChannel }, options), commChannel);
  }

  /**
   * Attaches to an existing sandbox by id or name.
   *
   * ```ts
   * const vm = await SmolVM.fromId("dev");
   * ```
   */
  static async fromId(idOrName: string, options: { commChannel?: CommChannel } = {}): Promise<SmolVM> {
    return new SmolVM(withStore((store) => store.getVm(idOrName)), options.commChannel);
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
      ...(await channelFacts(vm, this.commChannel)),
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

  /**
   * Uploads a local file. A guest path ending in `/` means "into this directory" (the file keeps
   * its name); missing parent directories are created unless `mkdirParents: false`; the guest
   * file gets the local file's mode unless `mode` is given. The write is atomic in the guest.
   *
   * ```ts
   * await vm.putFile("./build/app", "/usr/local/bin/");   // -> /usr/local/bin/app, mode kept
   * ```
   */
  async putFile(local: string, guest: string, options: PutFileOptions = {}): Promise<TransferResult> {
    const files = await import("./sandbox/files.ts");
    requireGuestPath(guest);
    return files.putFile(await this.connection(), local, guest, options);
  }

  /**
   * Downloads a guest file. A local path that is a directory (or ends in `/`) receives the file
   * under its guest name; the local file gets the guest file's permission bits and appears
   * atomically.
   *
   * ```ts
   * await vm.getFile("/var/log/app.log", "./logs/");
   * ```
   */
  async getFile(guest: string, local: string, options: GetFileOptions = {}): Promise<TransferResult> {
    const files = await import("./sandbox/files.ts");
    requireGuestPath(guest, { file: true });
    return files.getFile(await this.connection(), guest, local, options);
  }

  /**
   * Uploads a local directory's contents into a guest directory (created or merged), as tar:
   * modes, empty dirs and symlinks kept, links never followed. `select: "workspace"` sends
   * what Git shows (plus `.git`), or skips node_modules and the like outside a Git tree.
   *
   * ```ts
   * await vm.uploadDir("./src", "/srv/app/src");
   * ```
   */
  async uploadDir(local: string, guest: string, options: UploadDirOptions = {}): Promise<DirTransferResult> {
    const dirs = await import("./sandbox/dirs.ts");
    requireGuestPath(guest);
    return dirs.uploadDir(await this.connection(), local, guest, options);
  }

  /**
   * Downloads a guest directory's contents into a local directory (new: whole or not at all;
   * existing: merged file by file). Every entry is checked: nothing lands or is followed outside
   * the target, no devices, no setuid bits; links pointing outside are skipped (`skipped`).
   *
   * ```ts
   * const { files } = await vm.downloadDir("/srv/app/dist", "./dist");
   * ```
   */
  async downloadDir(guest: string, local: string, options: DownloadDirOptions = {}): Promise<DirTransferResult> {
    const dirs = await import("./sandbox/dirs.ts");
    requireGuestPath(guest);
    return dirs.downloadDir(await this.connection(), guest, local, options);
  }

  /**
   * Writes bytes, a string or a stream to a guest file (mode 0o644 unless given; parents
   * created unless `mkdirParents: false`).
   *
   * ```ts
   * await vm.writeFile("/srv/config.json", JSON.stringify(config));
   * await vm.writeFile("/srv/big.bin", createReadStream("big.bin"), { mode: 0o600 });
   * ```
   */
  async writeFile(guest: string, data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>, options: WriteFileOptions = {}): Promise<TransferResult> {
    const { writeGuestFile } = await import("./sandbox/files.ts");
    requireGuestPath(guest, { file: true });
    return writeGuestFile(await this.connection(), guest, data, options);
  }

  /**
   * Reads a whole guest file into memory.
   *
   * ```ts
   * const text = (await vm.readFile("/etc/os-release")).toString("utf8");
   * ```
   */
  async readFile(guest: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Buffer> {
    const { stream } = await this.readFileStream(guest, options);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * Opens a guest file as a stream; resolves with its size and mode once it is open.
   *
   * ```ts
   * const { size, stream } = await vm.readFileStream("/srv/big.bin");
   * stream.pipe(createWriteStream("big.bin"));
   * ```
   */
  async readFileStream(guest: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ReadFileHandle> {
    const { openGuestFile } = await import("./sandbox/files.ts");
    requireGuestPath(guest, { file: true });
    return openGuestFile(await this.connection(), guest, options);
  }

  /**
   * Forwards a port on the host's 127.0.0.1 (a free one unless `hostPort` is given) to a TCP
   * port in the guest, through the agent (no SSH, no guest network setup). The forward lives in
   * the sandbox's supervisor: it outlives this process and ends with the sandbox or `close()`.
   *
   * ```ts
   * const web = await vm.exposeLocal(8080);
   * await fetch(`http://127.0.0.1:${web.hostPort}/`);
   * await web.close();
   * ```
   */
  async exposeLocal(guestPort: number, options: { hostPort?: number } = {}): Promise<PortForward> {
    checkGuestPort(guestPort);
    const hostPort = checkHostPort(options.hostPort ?? 0);
    const channel = await this.connection();
    // Over SSH the tunnel lives in this process; the agent's forwards live in the supervisor.
    if (channel.kind === "ssh") return (await import("./ssh/tunnel.ts")).tunnel(channel, guestPort, hostPort);
    const info = (await this.supervisorOp("expose", { guestPort, hostPort }, "expose a port of")) as PortForwardInfo;
    const close = async () => {
      await this.closePort(info.hostPort).catch((error: unknown) => {
        if (!(error instanceof SmolError) || (error.code !== "NOT_FOUND" && error.code !== "NOT_RUNNING")) throw error;
      });
    };
    return { ...info, close, [Symbol.asyncDispose]: close };
  }

  /**
   * The port forwards of this sandbox (none when it is not running).
   *
   * ```ts
   * for (const p of await vm.ports()) console.log(`127.0.0.1:${p.hostPort} -> ${p.guestPort}`);
   * ```
   */
  async ports(): Promise<PortForwardInfo[]> {
    const vm = withStore((store) => reconcile(store, store.getVm(this.record.id)));
    if (vm.status !== "running" && vm.status !== "paused") return [];
    return ((await this.supervisorOp("ports", {}, "list the ports of")) as { ports: PortForwardInfo[] }).ports;
  }

  /**
   * Closes the forward listening on host port `hostPort` (NotFoundError if there is none).
   *
   * ```ts
   * await vm.closePort(9000);
   * ```
   */
  async closePort(hostPort: number): Promise<void> {
    checkHostPort(hostPort);
    await this.supervisorOp("close", { hostPort }, "close a port of");
  }

  /**
   * Freezes the sandbox: its vCPUs stop, nothing in it runs, memory and open connections are
   * kept. Commands and file operations are refused until `resume()`.
   *
   * ```ts
   * await vm.pause();
   * ```
   */
  async pause(): Promise<void> {
    const vm = requireRunning(this.record.id, "pause");
    if (vm.status !== "paused") {
      this.detach();
      await this.supervisorOp("pause", {}, "pause");
    }
    this.record = withStore((store) => store.getVm(this.record.id));
  }

  /**
   * Continues a paused sandbox exactly where it stopped.
   *
   * ```ts
   * await vm.resume();
   * ```
   */
  async resume(): Promise<void> {
    const vm = requireRunning(this.record.id, "resume");
    if (vm.status === "paused") await this.supervisorOp("resume", {}, "resume");
    this.record = withStore((store) => store.getVm(this.record.id));
  }

  /**
   * Powers the guest off (a paused one too); its disk, files and managed env are kept for
   * `start()`. Port forwards end.
   *
   * ```ts
   * await vm.stop();
   * ```
   */
  async stop(): Promise<void> {
    this.detach();
    this.record = await stopSandbox(this.record.id);
  }

  /**
   * Boots a stopped sandbox again, with the disk and env it had. `accel` overrides the
   * accelerator for this boot only.
   *
   * ```ts
   * await vm.start();
   * ```
   */
  async start(options: StartOptions = {}): Promise<void> {
    this.record = await startSandbox(this.record.id, options);
  }

  /**
   * Deletes the sandbox and everything it holds (processes, disk, forwards). Returns at once;
   * cleanup finishes behind.
   *
   * ```ts
   * await vm.delete();
   * ```
   */
  async delete(): Promise<void> {
    this.detach();
    await deleteSandbox(this.record.id);
  }

  /**
   * Detaches from the sandbox, which keeps running (and keeps its port forwards).
   *
   * ```ts
   * const vm = await SmolVM.fromId("dev");
   * try { await vm.run("make"); } finally { vm.close(); }
   * ```
   */
  close(): void {
    this.detach();
  }

  /**
   * Deletes the sandbox at the end of an `await using` scope.
   *
   * ```ts
   * { await using vm = await SmolVM.create({ image: "base" }); await vm.run("true"); } // gone here
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.delete();
  }

  /** The resolved channel (lib/channels/resolve.ts): explicit, then persisted, then auto. */
  private async connection(): Promise<Channel> {
    if (this.client !== undefined && !this.client.isClosed) return this.client;
    const vm = requireRunning(this.record.id, "reach");
    if (vm.status === "paused") {
      throw new NotRunningError(`Cannot reach sandbox "${vm.name}": it is paused`, { hint: `resume it with \`smolvm resume ${vm.name}\`` });
    }
    const { openChannel } = await import("./channels/resolve.ts");
    this.client = (await openChannel(vm, this.commChannel)).channel;
    return this.client;
  }

  /** A `supervisor.*` operation; starts a new supervisor first if the old one died. */
  private async supervisorOp(op: string, request: Record<string, unknown>, what: string): Promise<unknown> {
    const vm = requireRunning(this.record.id, what);
    const { requestSupervisor, connectSupervisor } = await import("./supervisor/client.ts");
    try {
      return await requestSupervisor(vm.id, { op: `supervisor.${op}`, ...request });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ECONNREFUSED") throw error;
      // The supervisor is gone but the VM may still run: re-attach, then ask again.
      await (await connectSupervisor(vm.id)).close();
      return requestSupervisor(vm.id, { op: `supervisor.${op}`, ...request });
    }
  }

  private detach(): void {
    void this.client?.close();
    this.client = undefined;
  }
}

async function channelFacts(vm: VmRecord, commChannel: CommChannel | undefined) {
  const [{ describeChannel }, keys] = await Promise.all([import("./channels/resolve.ts"), import("./ssh/keys.ts")]);
  const { channel, reason } = await describeChannel(vm, commChannel);
  return { channel, channelReason: reason, sshKeyPath: keys.userKeyPath(), sshKnownHostsPath: keys.knownHostsPath(vm.id) };
}
