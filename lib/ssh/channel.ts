/**
 * The SSH channel: commands, files (SFTP), the managed env file and TCP streams over the
 * sandbox's shared ssh2 connection (_connection.ts), as root with the host's smolvm key and
 * the host key pinned from `vms/<id>/known_hosts`.
 */
import type { Duplex, Readable } from "node:stream";
import type { SFTPWrapper } from "ssh2";
import { collect, runSpec } from "../agent/collect.ts";
import type { AgentRunOptions, AgentRunResult, AgentWriteOptions, CallOptions, ExecHandle, ExecSpec, FileStream } from "../agent/types.ts";
import { listenAndRelay } from "../channels/expose.ts";
import type { Channel, ChannelEnv, LocalExposure } from "../channels/types.ts";
import { checkEnvName, checkEnvVars } from "../config.ts";
import { ChannelUnavailableError, InvalidInputError, SmolError, TimeoutError } from "../errors.ts";
import type { SandboxRecord } from "../state/record.ts";
import { pooled, release, users, type SshConnection } from "./_connection.ts";
import { SshExecProcess } from "./_exec.ts";
import { sftpError, sftpReadFile, sftpWriteFile } from "./_sftp.ts";
import { remoteCommand } from "./command.ts";
import { ENV_FILE, ENV_MAX_BYTES, parseEnv, serializeEnv } from "./envfile.ts";
import type { SshEndpoint } from "./state.ts";

export { SshConnection } from "./_connection.ts";

/** Per-sandbox queue for read-modify-write of the env file within this process. */
const envLocks = new Map<string, Promise<unknown>>();

function serialized<T>(vmId: string, body: () => Promise<T>): Promise<T> {
  const previous = envLocks.get(vmId) ?? Promise.resolve();
  const next = previous.catch(() => {}).then(body);
  envLocks.set(vmId, next);
  void next.finally(() => envLocks.get(vmId) === next && envLocks.delete(vmId)).catch(() => {});
  return next;
}

export class SshChannel implements Channel {
  readonly kind = "ssh" as const;
  readonly env: ChannelEnv;
  private closed = false;

  private constructor(readonly vm: SandboxRecord, private readonly endpoint: SshEndpoint) {
    this.env = {
      list: () => this.readEnv(),
      set: (vars) => {
        checkEnvVars(vars);
        return this.updateEnv((current) => ({ ...current, ...vars }));
      },
      unset: (names) => {
        names.forEach(checkEnvName);
        return this.updateEnv((current) => Object.fromEntries(Object.entries(current).filter(([name]) => !names.includes(name))));
      },
    };
  }

  /**
   * Opens (or joins) the sandbox's SSH connection to `endpoint`, once its sshd is ready; fails
   * with CHANNEL_UNAVAILABLE and the reason.
   */
  static async open(vm: SandboxRecord, endpoint: SshEndpoint): Promise<SshChannel> {
    users.set(vm.id, (users.get(vm.id) ?? 0) + 1);
    const channel = new SshChannel(vm, endpoint);
    try {
      await pooled(vm, endpoint);
    } catch (error) {
      await channel.close();
      throw error;
    }
    return channel;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The shared connection (a new one if the last dropped). */
  connection(): Promise<SshConnection> {
    if (this.closed) return Promise.reject(new ChannelUnavailableError(`The SSH channel to sandbox "${this.vm.name}" was closed by the client`));
    return pooled(this.vm, this.endpoint);
  }

  /**
   * Opens something on the shared connection (a session, SFTP, a forward). When the connection
   * turns out to have dropped unnoticed, it is replaced and the open tried once more: nothing
   * had started on the old one.
   */
  private async opening<T>(open: (connection: SshConnection) => Promise<T>): Promise<{ connection: SshConnection; value: T }> {
    const first = await this.connection();
    try {
      return { connection: first, value: await open(first) };
    } catch (error) {
      if (!first.closed) throw error;
      const second = await this.connection();
      return { connection: second, value: await open(second) };
    }
  }

  private sftp(): Promise<SFTPWrapper> {
    return this.opening((connection) => connection.sftp()).then((opened) => opened.value);
  }

  async exec(spec: ExecSpec): Promise<ExecHandle> {
    if ((spec.argv === undefined) === (spec.shell === undefined)) {
      throw new InvalidInputError("Invalid exec request: give exactly one of argv and shell");
    }
    if (spec.argv !== undefined && (spec.argv.length === 0 || spec.argv.some((word) => word.includes("\0")))) {
      throw new InvalidInputError("Invalid exec request: argv must be non-empty, without NUL bytes");
    }
    if (spec.env !== undefined) checkEnvVars(spec.env);
    spec.signal?.throwIfAborted();
    const pty = spec.pty === true ? {} : spec.pty || undefined;
    const command = remoteCommand({
      ...(spec.argv === undefined ? {} : { argv: spec.argv }),
      ...(spec.shell === undefined ? {} : { shell: spec.shell }),
      ...(spec.env === undefined ? {} : { env: spec.env }),
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      stdin: spec.stdin === true || pty !== undefined,
    });
    const { connection, value: channel } = await this.opening((c) =>
      c.exec(command, pty && { rows: pty.rows ?? 24, cols: pty.cols ?? 80, term: pty.term ?? "xterm-256color" }),
    );
    const proc = new SshExecProcess(channel, {
      stdin: spec.stdin === true,
      pty: pty !== undefined,
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
      ...(spec.signal === undefined ? {} : { signal: spec.signal }),
      sendSignal: (pgid, signal) => this.signalGroup(pgid, signal),
      lost: (why) => connection.lost(why),
      ...(spec.onStdout === undefined ? {} : { onStdout: spec.onStdout }),
      ...(spec.onStderr === undefined ? {} : { onStderr: spec.onStderr }),
    });
    await proc.started.promise;
    return proc;
  }

  async run(command: string | string[], options: AgentRunOptions = {}): Promise<AgentRunResult<string>> {
    return collect(await this.exec(runSpec(command, options)), options);
  }

  async writeFile(path: string, data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>, options: AgentWriteOptions = {}): Promise<{ size: number }> {
    return withDeadline(options, `Cannot write "${path}"`, async (signal) =>
      sftpWriteFile(await this.sftp(), path, data, {
        ...(options.mode === undefined ? {} : { mode: options.mode }),
        mkdirParents: options.mkdirParents === true,
        signal,
      }),
    );
  }

  async readFile(path: string, options: CallOptions = {}): Promise<FileStream> {
    return withDeadline(options, `Cannot read "${path}"`, async () => sftpReadFile(await this.sftp(), path));
  }

  async connect(guestPort: number, options: CallOptions & { host?: string } = {}): Promise<Duplex> {
    return withDeadline(options, `Cannot connect to port ${guestPort} in the guest`, async () =>
      (await this.opening((c) => c.forwardOut(options.host ?? "127.0.0.1", guestPort))).value,
    );
  }

  exposeLocal(guestPort: number, hostPort = 0): Promise<LocalExposure> {
    return listenAndRelay(guestPort, hostPort, () => this.connect(guestPort, { timeoutMs: 10_000 }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    release(this.vm.id);
  }

  private async signalGroup(pgid: number, signal: string): Promise<void> {
    const connection = await this.connection();
    const channel = await connection.exec(`kill -${signal} -- -${pgid} 2>/dev/null; exit 0`);
    channel.resume();
    channel.stderr.resume();
    channel.end();
    await new Promise((resolve) => channel.once("close", resolve));
  }

  private async readEnv(): Promise<Record<string, string>> {
    const sftp = await this.sftp();
    let handle: FileStream;
    try {
      handle = await sftpReadFile(sftp, ENV_FILE);
    } catch (error) {
      if (error instanceof SmolError && error.code === "NOT_FOUND") return {};
      throw error;
    }
    // The file is the guest's to change: read no more of it than a managed env can be.
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of handle.stream) {
      size += (chunk as Buffer).length;
      if (size > ENV_MAX_BYTES) {
        handle.stream.destroy();
        throw new SmolError("RESOURCE_EXHAUSTED", `Cannot read the managed env of sandbox "${this.vm.name}": ${ENV_FILE} is larger than ${ENV_MAX_BYTES} bytes`, {
          hint: `something in the sandbox rewrote it; remove it there (\`rm ${ENV_FILE}\`) and set the variables again`,
        });
      }
      chunks.push(chunk as Buffer);
    }
    return parseEnv(Buffer.concat(chunks).toString("utf8"));
  }

  private updateEnv(change: (current: Record<string, string>) => Record<string, string>): Promise<Record<string, string>> {
    return serialized(this.vm.id, async () => {
      const next = change(await this.readEnv());
      const text = serializeEnv(next);
      if (Buffer.byteLength(text) > ENV_MAX_BYTES) {
        throw new SmolError("RESOURCE_EXHAUSTED", `Cannot set the variables: the managed env would exceed ${ENV_MAX_BYTES} bytes`);
      }
      const sftp = await this.sftp();
      await sftpWriteFile(sftp, ENV_FILE, text, { mode: 0o644, mkdirParents: true }).catch((error: unknown) => {
        throw sftpError(error, `Cannot write "${ENV_FILE}"`);
      });
      return Object.fromEntries(Object.entries(next).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    });
  }
}

/** Runs `body` under the call's timeout and abort signal (the agent channel's CallOptions). */
async function withDeadline<T>(options: CallOptions, what: string, body: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
  options.signal?.throwIfAborted();
  if (options.timeoutMs === undefined && options.signal === undefined) return body(undefined);
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = new Promise<never>((_, reject) => {
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        const error = new TimeoutError(`${what}: no answer over SSH within ${options.timeoutMs} ms`);
        controller.abort(error);
        reject(error);
      }, options.timeoutMs);
    }
    options.signal?.addEventListener("abort", () => {
      controller.abort(options.signal!.reason);
      reject(options.signal!.reason);
    }, { once: true });
  });
  stop.catch(() => {});
  try {
    return await Promise.race([body(controller.signal), stop]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}
