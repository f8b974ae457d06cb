/**
 * The SSH channel: ssh2 (loaded on first use; it costs ~85 ms to import) to the guest's sshd
 * through the sandbox's loopback forward, as root with the host's smolvm key, the host key
 * pinned from `vms/<id>/known_hosts`.
 *
 * One connection per sandbox per process, shared by every `SshChannel` handle of that sandbox
 * and ended when the last handle closes; a connection that dropped is replaced on the next
 * operation. `setNoDelay(true)` matters: without it every exec waits ~100 ms on Nagle.
 */
import { connect as tcpConnect, type Socket } from "node:net";
import type { Duplex, Readable } from "node:stream";
import type { Client, ClientChannel, PseudoTtyOptions, SFTPWrapper } from "ssh2";
import { ENV_KEY_PATTERN } from "../config.ts";
import { InvalidInputError, SmolError, TimeoutError } from "../errors.ts";
import type { CallOptions, ExecSpec, ReadFileHandle, RunOptions, RunResult, WriteFileOptions } from "../agent/types.ts";
import type { ExecHandle } from "../agent/_exec.ts";
import type { VmRecord } from "../state/vms.ts";
import { ENV_FILE, ENV_MAX_BYTES, parseEnv, serializeEnv } from "./_envfile.ts";
import { remoteCommand } from "./_ssh-command.ts";
import { collect, SshExecProcess } from "./_ssh-exec.ts";
import { sftpError, sftpReadFile, sftpWriteFile } from "./_sftp.ts";
import { listenAndRelay } from "./expose.ts";
import { ensureUserKey, knownHostsPath, readPinnedKeys } from "./keys.ts";
import { channelUnavailable, waitForSsh } from "./ssh-state.ts";
import type { Channel, ChannelEnv, ExposeOptions, LocalExposure } from "./types.ts";

const HANDSHAKE_TIMEOUT_MS = 20_000;
const KEEPALIVE_MS = 15_000;

let ssh2Module: Promise<typeof import("ssh2")> | undefined;
const loadSsh2 = () => (ssh2Module ??= import("ssh2"));

/** One authenticated ssh2 connection to one sandbox. */
export class SshConnection {
  closed = false;
  private sftpSession: Promise<SFTPWrapper> | undefined;

  private constructor(
    readonly vm: VmRecord,
    private readonly client: Client,
    /** Milliseconds from the TCP connect to an authenticated session. */
    readonly connectMs: number,
  ) {
    client.on("close", () => (this.closed = true));
    client.on("error", () => (this.closed = true));
  }

  /** Waits for the sandbox's sshd to be set up, then connects and authenticates. */
  static async open(vmId: string, options: { readyTimeoutMs?: number } = {}): Promise<SshConnection> {
    const { vm, endpoint } = await waitForSsh(vmId, options.readyTimeoutMs === undefined ? {} : { timeoutMs: options.readyTimeoutMs });
    const pinned = readPinnedKeys(vm.id, endpoint.host, endpoint.port);
    if (pinned.length === 0) {
      throw channelUnavailable(vm, `no host key is pinned for it in ${knownHostsPath(vm.id)}`, `restart it (\`smolvm stop ${vm.name}\`, \`smolvm start ${vm.name}\`) so smolvm injects and pins a new one`);
    }
    const [{ Client }, user] = await Promise.all([loadSsh2(), ensureUserKey()]);
    const t0 = performance.now();
    const socket = await openTcp(endpoint.host, endpoint.port).catch((error: Error) => {
      throw channelUnavailable(vm, `cannot connect to ${endpoint.host}:${endpoint.port}: ${error.message}`, undefined, error);
    });
    const client = new Client();
    let mismatch = false;
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error & { level?: string }) => {
        socket.destroy();
        if (mismatch) {
          reject(channelUnavailable(vm, `the host key it presented does not match the one pinned in ${knownHostsPath(vm.id)}; refusing to connect`,
            `if the sandbox's keys were changed inside it, restart it to have smolvm inject its key again: \`smolvm stop ${vm.name}\`, \`smolvm start ${vm.name}\``, error));
        } else if (error.level === "client-authentication") {
          reject(channelUnavailable(vm, "its sshd refused the smolvm key", `restart it to inject the key again: \`smolvm stop ${vm.name}\`, \`smolvm start ${vm.name}\``, error));
        } else {
          reject(channelUnavailable(vm, error.message, undefined, error));
        }
      };
      client.once("ready", () => {
        client.removeListener("error", fail);
        resolve();
      });
      client.once("error", fail);
      client.connect({
        sock: socket,
        username: "root",
        privateKey: user.privateKey,
        hostVerifier: (key: Buffer) => {
          const ok = pinned.some((pin) => pin.equals(key));
          if (!ok) mismatch = true;
          return ok;
        },
        algorithms: { serverHostKey: ["ssh-ed25519"] },
        readyTimeout: HANDSHAKE_TIMEOUT_MS,
        keepaliveInterval: KEEPALIVE_MS,
        keepaliveCountMax: 3,
      });
    });
    client.on("error", () => {}); // after ready: the close handler marks the connection dead
    return new SshConnection(vm, client, performance.now() - t0);
  }

  exec(command: string, pty?: PseudoTtyOptions): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      const done = (error: Error | undefined, channel: ClientChannel) => (error ? reject(this.lostOr(error)) : resolve(channel));
      if (pty === undefined) this.client.exec(command, done);
      else this.client.exec(command, { pty }, done);
    });
  }

  sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= new Promise<SFTPWrapper>((resolve, reject) =>
      this.client.sftp((error, sftp) => {
        if (error) {
          this.sftpSession = undefined;
          reject(this.lostOr(error));
          return;
        }
        sftp.on("close", () => (this.sftpSession = undefined));
        resolve(sftp);
      }),
    );
    return this.sftpSession;
  }

  forwardOut(host: string, port: number): Promise<ClientChannel> {
    return new Promise((resolve, reject) =>
      this.client.forwardOut("127.0.0.1", 0, host, port, (error, channel) => {
        if (!error) return resolve(channel);
        if (this.closed) return reject(this.lost("the connection closed"));
        reject(new SmolError("IO_ERROR", `Cannot connect to port ${port} in sandbox "${this.vm.name}": ${error.message}`, {
          hint: "nothing listens on that port inside the sandbox",
          cause: error,
        }));
      }),
    );
  }

  end(): void {
    this.closed = true;
    this.client.end();
  }

  lost(why: string, cause?: unknown): SmolError {
    return channelUnavailable(this.vm, why, "run the command again: smolvm reconnects", cause);
  }

  private lostOr(error: Error): SmolError {
    return this.closed ? this.lost("the connection closed", error) : channelUnavailable(this.vm, error.message, undefined, error);
  }
}

function openTcp(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(new Error("timed out")), HANDSHAKE_TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeListener("error", reject);
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The process-wide connections, one per sandbox, and how many handles use each. */
const pool = new Map<string, Promise<SshConnection>>();
const users = new Map<string, number>();

async function pooled(vmId: string): Promise<SshConnection> {
  const current = pool.get(vmId);
  if (current !== undefined) {
    const connection = await current.catch(() => undefined);
    if (connection !== undefined && !connection.closed) return connection;
    if (pool.get(vmId) === current) pool.delete(vmId);
    const again = pool.get(vmId);
    if (again !== undefined) return again;
  }
  const opening = SshConnection.open(vmId);
  pool.set(vmId, opening);
  opening.catch(() => {
    if (pool.get(vmId) === opening) pool.delete(vmId);
  });
  return opening;
}

function release(vmId: string): void {
  const left = (users.get(vmId) ?? 1) - 1;
  if (left > 0) {
    users.set(vmId, left);
    return;
  }
  users.delete(vmId);
  const current = pool.get(vmId);
  pool.delete(vmId);
  void current?.then((connection) => connection.end(), () => {});
}

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

  private constructor(readonly vm: VmRecord) {
    this.env = {
      list: () => this.readEnv(),
      set: (vars) => {
        for (const [name, value] of Object.entries(vars)) checkEnv(name, value);
        return this.updateEnv((current) => ({ ...current, ...vars }));
      },
      unset: (names) => {
        for (const name of names) checkEnv(name, "");
        return this.updateEnv((current) => Object.fromEntries(Object.entries(current).filter(([name]) => !names.includes(name))));
      },
    };
  }

  /** Opens (or joins) the sandbox's SSH connection; fails with CHANNEL_UNAVAILABLE and the reason. */
  static async open(vm: VmRecord): Promise<SshChannel> {
    users.set(vm.id, (users.get(vm.id) ?? 0) + 1);
    const channel = new SshChannel(vm);
    try {
      await pooled(vm.id);
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
    if (this.closed) return Promise.reject(new SmolError("CHANNEL_UNAVAILABLE", `The SSH channel to sandbox "${this.vm.name}" was closed by the client`));
    return pooled(this.vm.id);
  }

  async exec(spec: ExecSpec): Promise<ExecHandle> {
    if ((spec.argv === undefined) === (spec.shell === undefined)) {
      throw new InvalidInputError("Invalid exec request: give exactly one of argv and shell");
    }
    if (spec.argv !== undefined && (spec.argv.length === 0 || spec.argv.some((word) => word.includes("\0")))) {
      throw new InvalidInputError("Invalid exec request: argv must be non-empty, without NUL bytes");
    }
    for (const [name, value] of Object.entries(spec.env ?? {})) checkEnv(name, value);
    spec.signal?.throwIfAborted();
    const pty = spec.pty === true ? {} : spec.pty || undefined;
    const command = remoteCommand({
      ...(spec.argv === undefined ? {} : { argv: spec.argv }),
      ...(spec.shell === undefined ? {} : { shell: spec.shell }),
      ...(spec.env === undefined ? {} : { env: spec.env }),
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      stdin: spec.stdin === true || pty !== undefined,
    });
    const connection = await this.connection();
    const channel = await connection.exec(command, pty && { rows: pty.rows ?? 24, cols: pty.cols ?? 80, term: pty.term ?? "xterm-256color" });
    const proc = new SshExecProcess(channel, {
      stdin: spec.stdin === true,
      pty: pty !== undefined,
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
      ...(spec.signal === undefined ? {} : { signal: spec.signal }),
      sendSignal: (pgid, signal) => this.signalGroup(pgid, signal),
      lost: (why) => connection.lost(why),
    });
    await proc.started.promise;
    return proc;
  }

  async run(command: string | string[], options: RunOptions = {}): Promise<RunResult<string>> {
    const handle = await this.exec({
      ...(typeof command === "string" ? { shell: command } : { argv: command }),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdin: options.stdin !== undefined,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.pty === undefined ? {} : { pty: options.pty }),
    });
    return collect(handle, options);
  }

  async writeFile(path: string, data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>, options: WriteFileOptions = {}): Promise<{ size: number }> {
    return withDeadline(options, `Cannot write "${path}"`, async (signal) =>
      sftpWriteFile(await (await this.connection()).sftp(), path, data, {
        ...(options.mode === undefined ? {} : { mode: options.mode }),
        mkdirParents: options.mkdirParents === true,
        signal,
      }),
    );
  }

  async readFile(path: string, options: CallOptions = {}): Promise<ReadFileHandle> {
    return withDeadline(options, `Cannot read "${path}"`, async () => sftpReadFile(await (await this.connection()).sftp(), path));
  }

  async connect(guestPort: number, options: CallOptions & { host?: string } = {}): Promise<Duplex> {
    return withDeadline(options, `Cannot connect to port ${guestPort} in the guest`, async () =>
      (await this.connection()).forwardOut(options.host ?? "127.0.0.1", guestPort),
    );
  }

  exposeLocal(guestPort: number, options: ExposeOptions = {}): Promise<LocalExposure> {
    return listenAndRelay(guestPort, options.hostPort ?? 0, () => this.connect(guestPort, { timeoutMs: 10_000 }));
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
    const sftp = await (await this.connection()).sftp();
    let handle: ReadFileHandle;
    try {
      handle = await sftpReadFile(sftp, ENV_FILE);
    } catch (error) {
      if (error instanceof SmolError && error.code === "NOT_FOUND") return {};
      throw error;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of handle.stream) chunks.push(chunk as Buffer);
    return parseEnv(Buffer.concat(chunks).toString("utf8"));
  }

  private updateEnv(change: (current: Record<string, string>) => Record<string, string>): Promise<Record<string, string>> {
    return serialized(this.vm.id, async () => {
      const next = change(await this.readEnv());
      const text = serializeEnv(next);
      if (Buffer.byteLength(text) > ENV_MAX_BYTES) {
        throw new SmolError("RESOURCE_EXHAUSTED", `Cannot set the variables: the managed env would exceed ${ENV_MAX_BYTES} bytes`);
      }
      const sftp = await (await this.connection()).sftp();
      await sftpWriteFile(sftp, ENV_FILE, text, { mode: 0o644, mkdirParents: true }).catch((error: unknown) => {
        throw sftpError(error, `Cannot write "${ENV_FILE}"`);
      });
      return Object.fromEntries(Object.entries(next).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    });
  }
}

function checkEnv(name: string, value: string): void {
  if (!ENV_KEY_PATTERN.test(name)) {
    throw new InvalidInputError(`Invalid variable name "${name}": use letters, digits and underscores, not starting with a digit`);
  }
  if (typeof value !== "string" || value.includes("\0")) throw new InvalidInputError(`Invalid value for "${name}": values cannot contain a NUL byte`);
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
