/**
 * A client for Firecracker's REST API over its Unix socket.
 *
 * Every request has a deadline and reads at most `maxResponseBytes` of the answer: the VMM runs
 * outside the guest, but a confused or replaced process on that socket must not hang or bloat the
 * supervisor. A refusal (any non-2xx answer) is a FirecrackerApiError whose message carries
 * Firecracker's `fault_message` verbatim, since that text is usually the only precise account of
 * what was wrong ("Invalid TAP device name", "The requested operation is not supported after
 * starting the microVM").
 *
 * Firecracker's API is plain HTTP/1.1; each request here uses a fresh connection that is closed
 * after the answer, so nothing is left open between calls and nothing keeps a process alive.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { CommandFailedError, NotRunningError, SmolError, TimeoutError } from "../../errors.ts";
import { type ApiCall, apiCalls } from "./api-calls.ts";
import type {
  ActionType, ApiFault, BootSource, Drive, EntropyDevice, FirecrackerVersion, InstanceInfo, Logger,
  MachineConfiguration, Metrics, NetworkInterface, SnapshotCreateParams, SnapshotLoadParams, Vsock,
} from "./api-types.ts";

/** Default deadline of one request. Snapshot calls get SNAPSHOT_TIMEOUT_MS: they write or map all guest memory. */
export const REQUEST_TIMEOUT_MS = 10_000;
export const SNAPSHOT_TIMEOUT_MS = 120_000;
/** Firecracker's answers are small JSON documents; /vm/config, the largest, is a few KiB. */
export const MAX_RESPONSE_BYTES = 256 * 1024;
/** A fault message longer than this is cut (and says so): it is shown to a person. */
const MAX_FAULT_CHARS = 4096;

/** Firecracker answered a request with an error status. */
export class FirecrackerApiError extends CommandFailedError {
  readonly status: number;
  /** Firecracker's own words (`fault_message`), or the raw body when it had none. */
  readonly faultMessage: string;
  readonly method: string;
  readonly path: string;

  constructor(call: ApiCall, status: number, faultMessage: string, logPath?: string) {
    super(`Cannot ${call.purpose}: Firecracker refused ${call.method} ${call.path} (${status}): ${faultMessage}`, {
      hint: logPath === undefined
        ? "Firecracker's message above says what it did not accept; its log has the details"
        : `Firecracker's message above says what it did not accept; its log is "${logPath}"`,
      details: { method: call.method, path: call.path, status, faultMessage },
    });
    this.status = status;
    this.faultMessage = faultMessage;
    this.method = call.method;
    this.path = call.path;
  }
}

export interface FirecrackerApiOptions {
  /** Default REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Default MAX_RESPONSE_BYTES. */
  maxResponseBytes?: number;
  /** Firecracker's log file, named in the hint of an API error. */
  logPath?: string;
}

export interface SendOptions {
  timeoutMs?: number;
}

export class FirecrackerApi {
  readonly socketPath: string;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #logPath: string | undefined;

  constructor(socketPath: string, options: FirecrackerApiOptions = {}) {
    this.socketPath = socketPath;
    this.#timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    this.#maxResponseBytes = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
    this.#logPath = options.logPath;
  }

  /** Sends one request; resolves with the parsed JSON answer (undefined for an empty 2xx). */
  async send<T = unknown>(call: ApiCall, options: SendOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const { status, body } = await this.#exchange(call, timeoutMs);
    if (status < 200 || status > 299) {
      throw new FirecrackerApiError(call, status, faultOf(body), this.#logPath);
    }
    if (body.length === 0) return undefined as T;
    try {
      return JSON.parse(body) as T;
    } catch {
      throw new CommandFailedError(`Cannot ${call.purpose}: Firecracker answered ${call.method} ${call.path} with invalid JSON`, {
        details: { method: call.method, path: call.path, status, body: body.slice(0, 200) },
      });
    }
  }

  /** Sends the calls one after another, stopping at the first failure. */
  async sendAll(calls: readonly ApiCall[], options: SendOptions = {}): Promise<void> {
    for (const call of calls) await this.send(call, options);
  }

  // ------------------------------------------------------------------- operations

  async describeInstance(): Promise<InstanceInfo> {
    return this.send<InstanceInfo>(apiCalls.describeInstance());
  }

  async version(): Promise<string> {
    return (await this.send<FirecrackerVersion>(apiCalls.version())).firecracker_version;
  }

  async putMachineConfig(body: MachineConfiguration): Promise<void> {
    return this.send(apiCalls.machineConfig(body));
  }

  async getMachineConfig(): Promise<MachineConfiguration> {
    return this.send<MachineConfiguration>(apiCalls.getMachineConfig());
  }

  async putBootSource(body: BootSource): Promise<void> {
    return this.send(apiCalls.bootSource(body));
  }

  async putDrive(body: Drive): Promise<void> {
    return this.send(apiCalls.drive(body));
  }

  async putNetworkInterface(body: NetworkInterface): Promise<void> {
    return this.send(apiCalls.networkInterface(body));
  }

  async putVsock(body: Vsock): Promise<void> {
    return this.send(apiCalls.vsock(body));
  }

  async putEntropy(body: EntropyDevice = {}): Promise<void> {
    return this.send(apiCalls.entropy(body));
  }

  async putLogger(body: Logger): Promise<void> {
    return this.send(apiCalls.logger(body));
  }

  async putMetrics(body: Metrics): Promise<void> {
    return this.send(apiCalls.metrics(body));
  }

  async action(type: ActionType): Promise<void> {
    return this.send(apiCalls.action(type));
  }

  async startInstance(): Promise<void> {
    return this.action("InstanceStart");
  }

  /** x86_64 only, and only heard by a guest kernel with the i8042 keyboard controller driver. */
  async sendCtrlAltDel(): Promise<void> {
    return this.action("SendCtrlAltDel");
  }

  async flushMetrics(): Promise<void> {
    return this.action("FlushMetrics");
  }

  async pause(): Promise<void> {
    return this.send(apiCalls.pause());
  }

  async resume(): Promise<void> {
    return this.send(apiCalls.resume());
  }

  /** The VM must be paused. Diff snapshots need `track_dirty_pages` in the machine config (or the load). */
  async createSnapshot(body: SnapshotCreateParams, options: SendOptions = {}): Promise<void> {
    return this.send(apiCalls.createSnapshot(body), { timeoutMs: options.timeoutMs ?? SNAPSHOT_TIMEOUT_MS });
  }

  /** Only on a fresh process, before anything but the logger and metrics is configured. */
  async loadSnapshot(body: SnapshotLoadParams, options: SendOptions = {}): Promise<void> {
    return this.send(apiCalls.loadSnapshot(body), { timeoutMs: options.timeoutMs ?? SNAPSHOT_TIMEOUT_MS });
  }

  async vmConfig(): Promise<Record<string, unknown>> {
    return this.send<Record<string, unknown>>(apiCalls.vmConfig());
  }

  // ------------------------------------------------------------------- transport

  #exchange(call: ApiCall, timeoutMs: number): Promise<{ status: number; body: string }> {
    const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body), "utf8");
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | undefined, value?: { status: number; body: string }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) {
          request.destroy();
          reject(error);
        } else {
          resolve(value!);
        }
      };
      const request = httpRequest({
        socketPath: this.socketPath,
        method: call.method,
        path: call.path,
        agent: false,
        headers: {
          Accept: "application/json",
          Connection: "close",
          ...(payload === undefined ? {} : { "Content-Type": "application/json", "Content-Length": payload.length }),
        },
      });
      const timer = setTimeout(() => finish(new TimeoutError(
        `Cannot ${call.purpose}: Firecracker did not answer ${call.method} ${call.path} within ${timeoutMs} ms`,
        { hint: "Firecracker may be stuck; see its log", details: { method: call.method, path: call.path, socketPath: this.socketPath } },
      )), timeoutMs);
      request.on("error", (error: NodeJS.ErrnoException) => finish(this.#transportError(call, error)));
      request.on("response", (response: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.#maxResponseBytes) {
            finish(new CommandFailedError(`Cannot ${call.purpose}: Firecracker's answer to ${call.method} ${call.path} exceeds ${this.#maxResponseBytes} bytes`,
              { hint: "something other than Firecracker may be listening on its API socket", details: { socketPath: this.socketPath } }));
            return;
          }
          chunks.push(chunk);
        });
        response.on("end", () => finish(undefined, { status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        response.on("error", (error: NodeJS.ErrnoException) => finish(this.#transportError(call, error)));
      });
      request.end(payload);
    });
  }

  #transportError(call: ApiCall, error: NodeJS.ErrnoException): SmolError {
    const why = error.code === "ENOENT"
      ? `its API socket "${this.socketPath}" does not exist`
      : error.code === "ECONNREFUSED"
        ? `nothing accepts connections on its API socket "${this.socketPath}"`
        : `the connection to its API socket failed (${error.code ?? error.message})`;
    return new NotRunningError(`Cannot ${call.purpose}: Firecracker is not reachable: ${why}`, {
      cause: error,
      hint: "Firecracker may have exited; see the sandbox's vmm.log and firecracker.log",
      details: { method: call.method, path: call.path, socketPath: this.socketPath, code: error.code },
    });
  }
}

/** The fault message of an error answer: `fault_message` when the body has one, else the body itself. */
export function faultOf(body: string): string {
  let text = body.trim();
  try {
    const parsed = JSON.parse(body) as ApiFault;
    if (parsed && typeof parsed.fault_message === "string") text = parsed.fault_message;
  } catch { /* not JSON: show it as it came */ }
  if (text === "") return "(no message)";
  return text.length > MAX_FAULT_CHARS ? `${text.slice(0, MAX_FAULT_CHARS)}... (cut at ${MAX_FAULT_CHARS} characters)` : text;
}
