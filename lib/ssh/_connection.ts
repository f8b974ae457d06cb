/**
 * ssh2 connections to sandboxes: one per sandbox per process, shared by every `SshChannel` of
 * that sandbox and ended when the last one closes; a connection that dropped is replaced on
 * the next use. ssh2 is imported on first use (~85 ms). `setNoDelay(true)` matters: without it
 * every exec waits ~100 ms on Nagle.
 */
import { connect as tcpConnect, type Socket } from "node:net";
import type { Client, ClientChannel, PseudoTtyOptions, SFTPWrapper } from "ssh2";
import { SmolError } from "../errors.ts";
import type { SandboxRecord } from "../state/record.ts";
import { ensureUserKey, knownHostsPath, readPinnedKeys } from "./keys.ts";
import { channelUnavailable, type SshEndpoint } from "./state.ts";

const HANDSHAKE_TIMEOUT_MS = 20_000;
const KEEPALIVE_MS = 15_000;

let ssh2Module: Promise<typeof import("ssh2")> | undefined;
const loadSsh2 = () => (ssh2Module ??= import("ssh2"));

/** One authenticated ssh2 connection to one sandbox. */
export class SshConnection {
  closed = false;
  private sftpSession: Promise<SFTPWrapper> | undefined;

  private constructor(
    readonly vm: SandboxRecord,
    private readonly client: Client,
    /** Milliseconds from the TCP connect to an authenticated session. */
    readonly connectMs: number,
  ) {
    client.on("close", () => (this.closed = true));
    client.on("error", () => (this.closed = true));
  }

  /**
   * Connects and authenticates. The caller has waited for the sandbox's sshd to be set up: an
   * early connect to a slirp forward can stall for seconds.
   */
  static async open(vm: SandboxRecord, endpoint: SshEndpoint): Promise<SshConnection> {
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
    // ssh2 can emit more than one error as a connection fails (a handshake timeout, then the
    // connection lost before its handshake): past the first, which fails the open, they are
    // nobody's concern, and unheard they would be thrown at the process.
    client.on("error", () => {});
    let mismatch = false;
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error & { level?: string }) => {
        socket.destroy();
        client.end();
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
export const users = new Map<string, number>();

export async function pooled(vm: SandboxRecord, endpoint: SshEndpoint): Promise<SshConnection> {
  const vmId = vm.id;
  const current = pool.get(vmId);
  if (current !== undefined) {
    const connection = await current.catch(() => undefined);
    if (connection !== undefined && !connection.closed) return connection;
    if (pool.get(vmId) === current) pool.delete(vmId);
    const again = pool.get(vmId);
    if (again !== undefined) return again;
  }
  const opening = SshConnection.open(vm, endpoint);
  pool.set(vmId, opening);
  opening.catch(() => {
    if (pool.get(vmId) === opening) pool.delete(vmId);
  });
  return opening;
}

export function release(vmId: string): void {
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
