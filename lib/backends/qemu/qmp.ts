/**
 * A QMP (QEMU Machine Protocol) client over QEMU's Unix monitor socket.
 *
 * QEMU serves one client at a time on a `server=on` socket and accepts a new one after the old
 * one hangs up, so a supervisor that dies and restarts simply connects again. Commands are
 * matched to replies by id; asynchronous events (STOP, RESUME, SHUTDOWN, ...) go to listeners.
 *
 * Failures are SmolErrors: a QMP error reply is COMMAND_FAILED (QEMU's error class kept in its details), a
 * connection that goes away is NOT_RUNNING, a deadline is TIMEOUT.
 */
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { CommandFailedError, NotRunningError, smolError, type SmolError, TimeoutError } from "../../errors.ts";
import { openSocket, readGreeting } from "./_qmp-socket.ts";
import { randomHex } from "../../util/random.ts";
import type { HostForward } from "../types.ts";
import { hostForwardRule, migrateToFileUri, NETDEV_ID } from "./args.ts";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package?: string };
  capabilities: string[];
}

/** `query-status`: `running`, `paused`, `inmigrate`, `postmigrate`, `shutdown`, ... */
export interface QmpStatus {
  status: string;
  running: boolean;
}

export interface MigrationInfo {
  status: string;
  "total-time"?: number;
  downtime?: number;
  ram?: { transferred?: number; total?: number; [key: string]: unknown };
  "error-desc"?: string;
  [key: string]: unknown;
}

/**
 * QEMU answered a command with an error: COMMAND_FAILED, or BACKEND_UNAVAILABLE when this QEMU
 * does not know the command. QEMU's own error class is kept in `details.qmpClass`.
 */
export function qmpError(command: string, qmpClass: string, desc: string): SmolError {
  const notKnown = qmpClass === "CommandNotFound";
  return smolError(notKnown ? "BACKEND_UNAVAILABLE" : "COMMAND_FAILED", `QEMU refused "${command}": ${desc}`, {
    ...(notKnown ? { hint: "this QEMU is too old for this operation; upgrade QEMU" } : {}),
    details: { command, qmpClass },
  });
}

export interface QmpConnectOptions {
  /** Deadline for the socket to appear, accept, and greet. Default 5000 ms. */
  timeoutMs?: number;
}

export interface QmpExecuteOptions {
  /** Default 10000 ms. */
  timeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** A migration bandwidth no local disk reaches (QEMU's default is 128 MiB/s). */
const UNTHROTTLED_BYTES_PER_SECOND = 64 * 1024 ** 3;
const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

export class QmpClient {
  readonly socketPath: string;
  readonly greeting: QmpGreeting;
  /** Resolves when the connection is gone, whoever closed it. */
  readonly whenClosed: Promise<void>;

  #socket: Socket;
  #buffer = "";
  /**
   * Ids are this connection's own (`<tag>-<n>`): QEMU can hand a reply to a command of the
   * monitor's previous client to the next one (_qmp-socket.ts), and a plain counter would match it.
   */
  #idTag = randomHex(4);
  #nextId = 1;
  #pending = new Map<string, Pending>();
  #listeners = new Set<(event: QmpEvent) => void>();
  #closed = false;

  private constructor(socketPath: string, socket: Socket, greeting: QmpGreeting, rest: string) {
    this.socketPath = socketPath;
    this.#socket = socket;
    this.greeting = greeting;
    this.whenClosed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => this.#onData(chunk.toString("utf8")));
    socket.on("error", () => { /* 'close' follows and fails what is pending */ });
    socket.on("close", () => this.#onClose());
    if (rest) this.#onData(rest);
    socket.resume();
  }

  /**
   * Connects to the QMP socket at `socketPath`, waiting (up to the deadline) for QEMU to create
   * it, reads the greeting and negotiates capabilities.
   */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let lastError = "";
    while (true) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new TimeoutError(`Cannot connect to QEMU's monitor at "${socketPath}": ${lastError || "timed out"}`, {
          hint: "QEMU may have exited (see the VM's log) or another client may be attached to the monitor",
          details: { socketPath, timeoutMs },
        });
      }
      let socket: Socket;
      try {
        socket = await openSocket(socketPath, remaining);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ECONNREFUSED") {
          lastError = code === "ENOENT" ? "the socket does not exist" : "connection refused";
          await sleep(Math.min(10, Math.max(1, deadline - Date.now())));
          continue;
        }
        throw new NotRunningError(`Cannot connect to QEMU's monitor at "${socketPath}": ${(error as Error).message}`, {
          cause: error,
          details: { socketPath },
        });
      }
      const { greeting, rest } = await readGreeting(socket, socketPath, deadline - Date.now());
      const client = new QmpClient(socketPath, socket, greeting, rest);
      try {
        await client.execute("qmp_capabilities", undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
      } catch (error) {
        client.destroy();
        throw error;
      }
      return client;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs one QMP command and resolves with its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: QmpExecuteOptions = {}): Promise<T> {
    if (this.#closed) {
      return Promise.reject(this.#closedError(command));
    }
    const id = `${this.#idTag}-${this.#nextId++}`;
    const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new TimeoutError(`QEMU did not answer "${command}" within ${timeoutMs} ms`, {
          details: { command, socketPath: this.socketPath },
        }));
      }, timeoutMs);
      this.#pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.#socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Calls `listener` for every event from now on; returns the function that unsubscribes. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the next event named `name` (and matching `predicate`, if given). */
  waitForEvent(
    name: string,
    options: { timeoutMs?: number; predicate?: (event: QmpEvent) => boolean } = {},
  ): Promise<QmpEvent> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        unsubscribe();
        fn();
      };
      const unsubscribe = this.onEvent((event) => {
        if (event.event === name && (options.predicate?.(event) ?? true)) finish(() => resolve(event));
      });
      const timer = setTimeout(() => finish(() => reject(new TimeoutError(
        `QEMU sent no ${name} event within ${timeoutMs} ms`, { details: { socketPath: this.socketPath } },
      ))), timeoutMs);
      this.whenClosed.then(() => finish(() => reject(this.#closedError(`waiting for ${name}`))));
    });
  }

  /** Hangs up. QEMU keeps running and accepts the next client. */
  async close(): Promise<void> {
    if (!this.#closed) this.#socket.end();
    await this.whenClosed;
  }

  /** Hangs up at once without waiting. */
  destroy(): void {
    this.#socket.destroy();
  }

  async queryStatus(): Promise<QmpStatus> {
    const reply = await this.execute<{ status: string; running: boolean }>("query-status");
    return { status: reply.status, running: reply.running };
  }

  /** Pauses the vCPUs. */
  async stop(): Promise<void> {
    await this.execute("stop");
  }

  /** Resumes the vCPUs (also the way out of `-S` and of a finished incoming migration). */
  async cont(): Promise<void> {
    await this.execute("cont");
  }

  /**
   * Ends an outgoing migration that is still running (a snapshot whose owner went away), so a
   * `cont` runs the VM for good; a migration left running would stop it again when it completes.
   */
  async cancelMigration(options: { timeoutMs?: number } = {}): Promise<void> {
    const active = (status: string) => !["none", "completed", "failed", "cancelled"].includes(status);
    if (!active((await this.execute<MigrationInfo>("query-migrate")).status ?? "none")) return;
    await this.execute("migrate_cancel");
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    while (active((await this.execute<MigrationInfo>("query-migrate")).status ?? "none")) {
      if (Date.now() > deadline) throw new TimeoutError("QEMU did not end the running migration");
      await sleep(5);
    }
  }

  async systemReset(): Promise<void> {
    await this.execute("system_reset");
  }

  /** Asks QEMU to exit now (no guest shutdown). Resolves once QEMU has accepted; the process exits right after. */
  async quit(): Promise<void> {
    try {
      await this.execute("quit");
    } catch (error) {
      // QEMU may hang up before its reply reaches us: the quit happened all the same.
      if (error instanceof NotRunningError) return;
      throw error;
    }
  }

  /** Runs a human-monitor (HMP) command line and returns its text output. */
  hmp(commandLine: string, options: QmpExecuteOptions = {}): Promise<string> {
    return this.execute<string>("human-monitor-command", { "command-line": commandLine }, options);
  }

  /** Adds a user-network port forward at run time (`hostfwd_add`). */
  async addHostForward(forward: HostForward, netdev: string = NETDEV_ID): Promise<void> {
    const rule = hostForwardRule(forward);
    const output = (await this.hmp(`hostfwd_add ${netdev} ${rule}`)).trim();
    if (output !== "") {
      throw new CommandFailedError(`Cannot forward ${rule}: ${output}`, {
        hint: `host port ${forward.hostPort} may already be in use`,
        details: { rule, netdev },
      });
    }
  }

  /** Removes a forward added at launch or with addHostForward (`hostfwd_remove`). */
  async removeHostForward(forward: Omit<HostForward, "guestPort">, netdev: string = NETDEV_ID): Promise<void> {
    const rule = hostForwardRule({ ...forward, guestPort: 1 }).replace(/-:1$/, "");
    const output = (await this.hmp(`hostfwd_remove ${netdev} ${rule}`)).trim();
    if (!/removed/.test(output)) {
      throw new CommandFailedError(`Cannot remove the port forward ${rule}: ${output || "QEMU said nothing"}`, {
        details: { rule, netdev },
      });
    }
  }

  /**
   * Writes the VM's device and memory state to `file` (QEMU 7.2 has no `file:` URI, so through
   * `exec:cat`), polling `query-migrate` until it completes. Stop the VM first for a consistent
   * snapshot of its disk too; a migrated VM is left in `postmigrate` (paused) until `cont`.
   */
  async migrateToFile(file: string, options: { timeoutMs?: number; pollMs?: number } = {}): Promise<MigrationInfo> {
    const timeoutMs = options.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    // QEMU throttles a migration to 128 MiB/s by default, meant for a network between hosts; to
    // a local file it only stretches the pause (measured: 210 ms for a 30 MB state, 50-65 ms
    // without the limit).
    await this.execute("migrate-set-parameters", { "max-bandwidth": UNTHROTTLED_BYTES_PER_SECOND });
    await this.execute("migrate", { uri: migrateToFileUri(file) });
    while (true) {
      const info = await this.execute<MigrationInfo>("query-migrate");
      if (info.status === "completed") return info;
      if (info.status === "failed" || info.status === "cancelled") {
        throw new CommandFailedError(`Cannot save the VM state to "${file}": migration ${info.status}` +
          (info["error-desc"] ? `: ${info["error-desc"]}` : ""), { details: { file, info } });
      }
      if (Date.now() > deadline) {
        await this.execute("migrate_cancel").catch(() => {});
        throw new TimeoutError(`Cannot save the VM state to "${file}": not done within ${timeoutMs} ms`, {
          details: { file, info },
        });
      }
      await sleep(options.pollMs ?? 10);
    }
  }

  #onData(text: string): void {
    this.#buffer += text;
    let newline: number;
    while ((newline = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, newline).trim();
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line) this.#onMessage(line);
    }
  }

  #onMessage(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line);
    } catch {
      return; // QEMU only sends JSON; ignore anything else rather than crash the owner
    }
    if (typeof message.event === "string") {
      for (const listener of [...this.#listeners]) {
        try {
          listener(message as unknown as QmpEvent);
        } catch { /* a listener's bug must not break the connection */ }
      }
      return;
    }
    const id = message.id;
    if (typeof id !== "string") return;
    const pending = this.#pending.get(id);
    if (!pending) return; // timed out already
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if ("error" in message) {
      const error = message.error as { class?: string; desc?: string };
      pending.reject(qmpError(pending.command, error.class ?? "GenericError", error.desc ?? "unknown error"));
    } else {
      pending.resolve(message.return);
    }
  }

  #onClose(): void {
    this.#closed = true;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(this.#closedError(pending.command));
    }
    this.#pending.clear();
  }

  #closedError(what: string): NotRunningError {
    return new NotRunningError(`Cannot run "${what}": the connection to QEMU's monitor is closed`, {
      hint: "QEMU may have exited; see the VM's log",
      details: { socketPath: this.socketPath },
    });
  }
}
