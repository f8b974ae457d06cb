/**
 * `SmolVM`: one sandbox, from any process. The CLI is a thin client of this class.
 *
 * Its operations are grouped by noun, as users of sandbox SDKs expect: `vm.commands` (run,
 * exec), `vm.files` (write, read, readStream, upload, download), `vm.env` (set, unset, list),
 * `vm.ports` (expose, close, list), `vm.network` (update). The handle itself carries the sandbox's own verbs: info,
 * pause, resume, stop, start, delete, close.
 *
 * ```ts
 * await using vm = await SmolVM.create({ image: "base" });
 * const { stdout } = await vm.commands.run("uname -a");
 * ```
 */
import type { AgentClient } from "./agent/client.ts";
import type { SupervisorOp, SupervisorRequest, SupervisorResult } from "./agent/supervisor-messages.ts";
import type { AccelInfo } from "./backends/accel.ts";
import type { ChannelKind, CommChannel } from "./channels/types.ts";
import type { SandboxConfigInput } from "./config.ts";
import type { PrepareProgress } from "./sandbox/artifacts.ts";
import { Commands } from "./sandbox/commands.ts";
import { EnvVars } from "./sandbox/env.ts";
import { Filesystem } from "./sandbox/files.ts";
import { sandboxFiles } from "./sandbox/layout.ts";
import { Network, networkInfoOf, type SandboxNetworkInfo } from "./sandbox/network.ts";
import { HeldChannel } from "./sandbox/held-channel.ts";
import { Ports } from "./sandbox/ports.ts";
import { assertMay, isLive, readSandbox, summarize, type SandboxSummary } from "./sandbox/status.ts";
import { runningFromMirror } from "./state/mirror.ts";
import type { SandboxRecord } from "./state/record.ts";
import type { Booted, BackendInfo, DeleteOptions, StartOptions } from "./sandbox/lifecycle.ts";
import type { LogsOptions } from "./sandbox/logs.ts";
import type { SnapshotInfo } from "./snapshots/store.ts";
import type { CreatedFrom } from "./snapshots/warm.ts";

/** A snapshot writes the guest's memory: minutes for a large, busy one under emulation. */
const SNAPSHOT_TIMEOUT_MS = 10 * 60_000;

export interface CreateSandboxOptions extends SandboxConfigInput {
  /**
   * The control channel: `vsock` (the guest agent), `ssh`, or `auto` (the agent when it answers,
   * else SSH; the default). An explicit `ssh` or `vsock` is stored with the sandbox and used by
   * every later handle that does not ask otherwise; with `ssh`, create waits until sshd is ready.
   */
  commChannel?: CommChannel;
  /** Kernel and image preparation (a first run may build them) and boot progress. */
  onProgress?: (progress: PrepareProgress) => void;
  /**
   * Restore this snapshot (`vm.snapshot()`, `smolvm snapshot create`) instead of booting: the new
   * sandbox has the snapshot's files, env and processes, and its own name, hostname, SSH host
   * key, port, clock, RNG and boot id. The snapshot decides the image, memory, CPUs, disk and
   * network, so those options are refused beside it.
   */
  fromSnapshot?: string;
  /**
   * Warm creates: `true` restores the image's warm template when it fits (and makes it on first
   * use); `false` always boots. Default: SMOLVM_WARM (1 or 0), else use a template if one exists.
   */
  warm?: boolean;
  /** Run in order in a fresh sandbox before a `warm: true` create makes it its image's template. */
  prepareTemplate?: string[][];
}

/** Options of `vm.snapshot()`. */
export interface SnapshotOptions {
  /** Default: `<sandbox>-<UTC date and time>`. */
  name?: string;
}

/** Options of `vm.fork()`. */
export interface ForkOptions {
  /** The new sandbox's name; generated when absent. */
  name?: string;
  /** Managed env of the new sandbox, set on top of what the original had. */
  env?: Record<string, string>;
}


export interface AttachOptions {
  /** The control channel for this handle (default: the sandbox's own choice, else auto). */
  commChannel?: CommChannel;
}

/** A sandbox in detail: what `list` shows, plus its processes, resources and files. */
export interface SandboxInfo extends SandboxSummary, SandboxNetworkInfo {
  supervisorPid: number | null;
  vmmPid: number | null;
  diskMode: string;
  /** Whether its Firecracker runs under the jailer. */
  jailer: boolean;
  /** The host port of the SSH forward on 127.0.0.1 (user networking, or through the agent without a network); TAP: SSH reaches `guestIp`. */
  sshPort: number | null;
  kernelPath: string | undefined;
  rootfsPath: string | undefined;
  consoleLog: string;
  dir: string;
  /** For `ssh -i KEY -o UserKnownHostsFile=KNOWN_HOSTS -p PORT root@127.0.0.1`. */
  sshKeyPath: string;
  sshKnownHostsPath: string;
}

/** The channel a command would take now (`null`: none answers), and why. */
export interface ChannelReport {
  channel: ChannelKind | null;
  reason: string;
}

/** The system OpenSSH client's command line into a sandbox (`smolvm ssh`). */
export interface SshCommand {
  /** `ssh` and its arguments, ready to spawn. */
  argv: string[];
  /** The same, quoted for a POSIX shell. */
  commandLine: string;
  host: string;
  port: number;
  user: string;
  keyPath: string;
  knownHostsPath: string;
}

export class SmolVM {
  /** Running programs: `run` collects the output, `exec` streams it. */
  readonly commands: Commands;
  /** Guest files: `write`, `read`, `readStream`, and copies from and to this host, `upload`, `download`. */
  readonly files: Filesystem;
  /** The managed environment every command (and login) sees: `set`, `unset`, `list`. */
  readonly env: EnvVars;
  /** Host ports on 127.0.0.1 forwarded into the sandbox: `expose`, `close`, `list`. */
  readonly ports: Ports;
  /** Where the sandbox may connect: `update` allows and denies hosts, at once while it runs. */
  readonly network: Network;

  private readonly held: HeldChannel;
  private accelInfo: AccelInfo | undefined;
  private createNotices: readonly string[] = [];
  private backendInfo: BackendInfo | undefined;

  private constructor(
    private record: SandboxRecord,
    private readonly commChannel: CommChannel | undefined,
    /** The session a create or start learned readiness on, kept as the first connection. */
    ready: AgentClient | undefined,
    /** How a handle that created the sandbox made it. */
    private readonly from?: CreatedFrom,
  ) {
    this.held = new HeldChannel(() => ({ record: this.record, commChannel: this.commChannel }), ready);
    const connection = () => this.held.get();
    this.commands = new Commands(connection, (spec) => this.held.openWith(spec));
    this.files = new Filesystem(connection);
    this.env = new EnvVars(connection);
    this.ports = new Ports({
      channel: connection,
      supervisor: (op, request, what) => this.supervisor(op, request, what),
      isLive: () => isLive((this.record = readSandbox(this.record.id)).status),
    });
    this.network = new Network({ id: () => this.record.id, supervisor: (op, request, what) => this.supervisor(op, request, what) });
    if (ready?.hello.supervisor !== undefined) this.accelInfo = { accel: ready.hello.supervisor.accel, reason: ready.hello.supervisor.accelReason };
  }

  /** The sandbox's stable id, e.g. `SmolVM.fromId(vm.id)` from another process. */
  get id(): string {
    return this.record.id;
  }

  /** The sandbox's unique name, e.g. `smolvm exec ${vm.name} -- ls` on the command line. */
  get name(): string {
    return this.record.name;
  }

  /**
   * The accelerator the sandbox's VM runs with and why, when this handle booted it (create or
   * start); `tcg` is software emulation, several times slower than `kvm` or `hvf`.
   */
  get accel(): AccelInfo | undefined {
    return this.accelInfo;
  }

  /**
   * What the caller should be told about how `create` made the sandbox, beyond the accelerator:
   * on macOS, that it has no network (the default there; `smolvm doctor` says why); on Linux,
   * that the default put it on QEMU rather than Firecracker, and why.
   */
  get notices(): readonly string[] {
    return this.createNotices;
  }

  /**
   * The backend this handle's create chose for the sandbox and why (`fellBack`: the platform
   * default passed over Firecracker, for the reason given). The record's `backend` says it for any handle.
   */
  get backend(): BackendInfo | undefined {
    return this.backendInfo;
  }

  /**
   * How this handle's create made the sandbox: booted, restored from a snapshot, or restored from
   * its image's warm template; undefined on a handle that did not create it.
   */
  get createdFrom(): CreatedFrom | undefined {
    return this.from;
  }

  /**
   * Creates a sandbox and waits until it answers commands. Builds the kernel and image on
   * first use (with `onProgress`). Its `env` is set before create returns.
   *
   * ```ts
   * const vm = await SmolVM.create({ name: "dev", image: "debian", memoryMiB: 1024, env: { MODE: "dev" } });
   * ```
   */
  static async create(options: CreateSandboxOptions = {}): Promise<SmolVM> {
    const { onProgress, commChannel, fromSnapshot, warm, prepareTemplate, ...input } = options;
    const config = commChannel === undefined ? input : { ...input, channel: commChannel };
    if (fromSnapshot !== undefined) {
      const { createNamedSnapshot } = await import("./snapshots/restore.ts");
      const booted = await createNamedSnapshot(fromSnapshot, config);
      return SmolVM.made(booted, commChannel, { kind: "snapshot", name: fromSnapshot });
    }
    const { createSandboxWarm } = await import("./snapshots/warm.ts");
    const booted = await createSandboxWarm(config, { ...(onProgress === undefined ? {} : { onProgress }), ...(warm === undefined ? {} : { warm }), ...(prepareTemplate ? { prepareTemplate } : {}) });
    return SmolVM.made(booted, commChannel, booted.from);
  }

  /** The handle of a sandbox this process just made, with what its caller is to be told. */
  private static made(booted: Booted, commChannel: CommChannel | undefined, from: CreatedFrom): SmolVM {
    const vm = new SmolVM(booted.record, commChannel, booted.session, from);
    vm.createNotices = booted.notices;
    vm.backendInfo = booted.backend;
    return vm;
  }

  /**
   * Attaches to an existing sandbox by id or name.
   *
   * ```ts
   * const vm = await SmolVM.fromId("dev");
   * ```
   */
  static async fromId(idOrName: string, options: AttachOptions = {}): Promise<SmolVM> {
    // A running sandbox is found by its mirror, without opening the store: its supervisor answers
    // for it (lib/state/mirror.ts).
    return new SmolVM(runningFromMirror(idOrName) ?? readSandbox(idOrName), options.commChannel, undefined);
  }

  /** Every sandbox in the state store, e.g. `(await SmolVM.list()).map((s) => s.name)`. */
  static async list(): Promise<SandboxSummary[]> {
    return (await import("./sandbox/status.ts")).listSandboxes();
  }

  /**
   * Status, processes, resources and files of this sandbox, from its record (nothing in the
   * sandbox is asked; `probeChannel()` does that).
   *
   * ```ts
   * const { status, memoryMiB } = await vm.info();
   * ```
   */
  async info(): Promise<SandboxInfo> {
    const vm = (this.record = readSandbox(this.record.id));
    const files = sandboxFiles(vm.id);
    const keys = await import("./ssh/keys.ts");
    return {
      ...summarize(vm),
      supervisorPid: vm.supervisorPid,
      vmmPid: vm.vmmPid,
      diskMode: vm.config.diskMode,
      ...await networkInfoOf(vm),
      jailer: vm.config.jailer === true,
      sshPort: vm.sshPort,
      kernelPath: vm.config.kernelPath,
      rootfsPath: vm.config.rootfsPath,
      consoleLog: files.consoleLog,
      dir: files.dir,
      sshKeyPath: keys.userKeyPath(),
      sshKnownHostsPath: keys.knownHostsPath(vm.id),
    };
  }

  /**
   * The channel a command would take now and why: the agent is asked for a HELLO; SSH is judged
   * by its set-up, without connecting.
   *
   * ```ts
   * const { channel, reason } = await vm.probeChannel(); // "agent", "auto: the agent answered in 3 ms"
   * ```
   */
  async probeChannel(): Promise<ChannelReport> {
    const { probeChannel } = await import("./sandbox/connection.ts");
    return probeChannel((this.record = readSandbox(this.record.id)), this.commChannel);
  }

  /**
   * The system OpenSSH client's command line into this sandbox, once its sshd is ready, with
   * smolvm's key and the sandbox's pinned host key (for `ssh`, `scp`, `sftp`).
   *
   * ```ts
   * const { argv } = await vm.sshCommand(["uname", "-a"]);
   * ```
   */
  async sshCommand(command: string[] = []): Promise<SshCommand> {
    const [{ sshEndpointWhenReady }, { sshArgs }, { shQuote }] = await Promise.all([
      import("./sandbox/connection.ts"), import("./ssh/openssh.ts"), import("./ssh/command.ts"),
    ]);
    const vm = (this.record = readSandbox(this.record.id));
    const endpoint = await sshEndpointWhenReady(vm);
    const { args, keyPath, knownHosts } = await sshArgs(vm, endpoint, command);
    const argv = ["ssh", ...args];
    return { argv, commandLine: argv.map(shQuote).join(" "), host: endpoint.host, port: endpoint.port, user: "root", keyPath, knownHostsPath: knownHosts };
  }

  /**
   * The guest's console output: the whole log or its last `tail` lines, and with `follow`
   * whatever it prints next, until the sandbox's VM ends.
   *
   * ```ts
   * for await (const chunk of vm.logs({ tail: 20 })) process.stdout.write(chunk);
   * ```
   */
  async *logs(options: LogsOptions = {}): AsyncGenerator<string> {
    const { consoleLog } = await import("./sandbox/logs.ts");
    yield* consoleLog((this.record = readSandbox(this.record.id)), options);
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
    const vm = (this.record = readSandbox(this.record.id));
    assertMay(vm, { kind: "control", what: "pause" });
    if (vm.status !== "paused") {
      this.held.release();
      await this.supervisor("supervisor.pause", {}, "pause");
    }
    this.record = readSandbox(vm.id);
  }

  /**
   * Continues a paused sandbox exactly where it stopped.
   *
   * ```ts
   * await vm.resume();
   * ```
   */
  async resume(): Promise<void> {
    const vm = (this.record = readSandbox(this.record.id));
    assertMay(vm, { kind: "control", what: "resume" });
    if (vm.status === "paused") await this.supervisor("supervisor.resume", {}, "resume");
    this.record = readSandbox(vm.id);
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
    this.held.release();
    this.record = await (await import("./sandbox/lifecycle.ts")).stopSandbox(this.record.id);
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
    const started = await (await import("./sandbox/lifecycle.ts")).startSandbox(this.record.id, options);
    this.record = started.record;
    if ("session" in started) {
      this.held.release(started.session);
      this.accelInfo = started.accel;
    }
  }

  /**
   * Deletes the sandbox and everything it holds (processes, disk, forwards), whatever state it is
   * in. Returns once its VM is killed and its name free, the files going behind; with `force`,
   * once every process and file is gone (or fails naming what is left).
   *
   * ```ts
   * await vm.delete();
   * ```
   */
  async delete(options: DeleteOptions = {}): Promise<void> {
    this.held.release();
    await (await import("./sandbox/lifecycle.ts")).deleteSandbox(this.record.id, options);
  }

  /**
   * Saves the running (or paused) sandbox as a named snapshot: its memory, devices and disk,
   * compressed under the smolvm home. The guest stops for the moment it takes (~0.1 s for a
   * fresh 512 MiB sandbox here) and runs on; a paused one stays paused. A stopped sandbox has no
   * memory to save and is refused.
   *
   * ```ts
   * const snap = await vm.snapshot({ name: "clean" });
   * const copy = await SmolVM.create({ fromSnapshot: snap.name });
   * ```
   */
  async snapshot(options: SnapshotOptions = {}): Promise<SnapshotInfo> {
    const vm = (this.record = readSandbox(this.record.id));
    const [{ saveSnapshot }, { summarizeSnapshot }] = await Promise.all([import("./snapshots/save.ts"), import("./snapshots/store.ts")]);
    const stored = await saveSnapshot(vm, {
      ...(options.name === undefined ? {} : { name: options.name }),
      ask: (dir) => this.supervisor("supervisor.snapshot", { dir }, "snapshot", SNAPSHOT_TIMEOUT_MS),
    });
    return summarizeSnapshot(stored);
  }

  /**
   * A new sandbox that starts as a copy of this one, now: files, env and processes; its own
   * name, hostname, SSH host key, port, clock, RNG and boot id. This one runs on.
   *
   * ```ts
   * const twin = await vm.fork({ name: "try-b" });
   * ```
   */
  async fork(options: ForkOptions = {}): Promise<SmolVM> {
    const vm = (this.record = readSandbox(this.record.id));
    const { forkSandbox } = await import("./snapshots/restore.ts");
    const booted = await forkSandbox(vm, options, (dir) => this.supervisor("supervisor.snapshot", { dir }, "fork", SNAPSHOT_TIMEOUT_MS));
    return SmolVM.made(booted, this.commChannel, { kind: "fork", sandbox: vm.name });
  }

  /**
   * Detaches from the sandbox, which keeps running (and keeps its port forwards).
   *
   * ```ts
   * const vm = await SmolVM.fromId("dev");
   * try { await vm.commands.run("make"); } finally { vm.close(); }
   * ```
   */
  close(): void {
    this.held.release();
  }

  /**
   * Deletes the sandbox at the end of an `await using` scope.
   *
   * ```ts
   * { await using vm = await SmolVM.create({ image: "base" }); await vm.commands.run("true"); } // gone here
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.delete();
  }

  /**
   * A `supervisor.*` operation, on the agent channel's session when there is one, else on a
   * session of its own (a supervisor that died is replaced first when the VM still runs).
   */
  private async supervisor<Op extends SupervisorOp>(op: Op, request: SupervisorRequest<Op>, what: string, timeoutMs?: number): Promise<SupervisorResult<Op>> {
    const options = timeoutMs === undefined ? {} : { timeoutMs };
    const open = this.held.agentSession();
    if (open !== undefined) return open.supervisor(op, request, options);
    const vm = (this.record = readSandbox(this.record.id));
    assertMay(vm, { kind: "control", what });
    const { connectSupervisor } = await import("./sandbox/supervisor-client.ts");
    const session = await connectSupervisor(vm, { timeoutMs: 10_000 });
    try {
      return await session.supervisor(op, request, options);
    } finally {
      await session.close();
    }
  }

}
