/**
 * A stand-in for Firecracker's API server, for hosts that cannot run Firecracker: an HTTP server on
 * a Unix socket that checks every request's method, path and body against the operations and
 * definitions of firecracker-api.yaml (parsed at start, see swagger.ts) and answers with the
 * statuses and bodies the spec defines for them: 204 or 200 with a body of the spec's schema, and
 * 400 with `{"fault_message": ...}` for what the spec or the VM's state refuses.
 *
 * Every request that breaks the contract is also recorded in `violations`, so a test that drives a
 * whole lifecycle fails on any of them even when the client swallowed the 400. Every answer the
 * fake gives is checked against the spec too (`responseViolations`): the fake cannot drift from the
 * contract without a test noticing.
 *
 * The state rules (pre-boot-only resources, pause before snapshot, snapshot load only on a fresh
 * process, dirty-page tracking for Diff snapshots) follow Firecracker's documented behaviour; the
 * fault texts are this fake's own.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Operation, SwaggerSpec } from "./swagger.ts";
import { startVsockShim, type VsockShim } from "./vsock-shim.ts";

export const SPEC_PATH = fileURLToPath(new URL("../../lib/backends/firecracker/firecracker-api.yaml", import.meta.url));

let cachedSpec: SwaggerSpec | undefined;
export function firecrackerSpec(): SwaggerSpec {
  cachedSpec ??= SwaggerSpec.load(SPEC_PATH);
  return cachedSpec;
}

export type InstanceState = "Not started" | "Running" | "Paused";
type Body = Record<string, unknown>;

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  status: number;
}

export interface FakeFirecrackerOptions {
  socketPath: string;
  id?: string;
  /** Guest vsock port -> Unix socket: once started, the vsock device's uds_path relays to these. */
  vsockPorts?: Record<number, string>;
  /** Called on InstanceStart and on a snapshot load that resumes (the guest "runs"). */
  onRun?: () => void;
  /** Called whenever the instance's state changes (start, pause, resume, load), after the change. */
  onState?: (state: InstanceState) => void | Promise<void>;
  /** Called after every request, e.g. to report to a test in another process. */
  onRequest?: (fake: FakeFirecracker) => void;
  /** Resolve the paths in request bodies under this directory, as a jailed Firecracker does. */
  root?: string;
}

export interface InjectedFault {
  method: string;
  path: string;
  status?: number;
  message: string;
}

const PRE_BOOT_ONLY = new Set([
  "put /machine-config", "patch /machine-config", "put /boot-source", "put /drives/{drive_id}",
  "put /network-interfaces/{iface_id}", "put /vsock", "put /entropy", "put /logger", "put /metrics",
  "put /snapshot/load",
]);
const BODY_LIMIT = 64 * 1024;

export class FakeFirecracker {
  readonly requests: RecordedRequest[] = [];
  /** Requests that broke the spec: `PUT /drives/rootfs: body.path_on_host: expected string, got integer`. */
  readonly violations: string[] = [];
  /** Answers of this fake that the spec would not allow (a bug in the fake). */
  readonly responseViolations: string[] = [];
  readonly spec = firecrackerSpec();
  state: InstanceState = "Not started";
  machine: Body = { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false };
  bootSource: Body | undefined;
  readonly drives = new Map<string, Body>();
  readonly interfaces = new Map<string, Body>();
  vsock: Body | undefined;
  logger: Body | undefined;
  metrics: Body | undefined;
  entropy: Body | undefined;
  vsockShim: VsockShim | undefined;
  readonly #server: Server;
  readonly #faults: InjectedFault[] = [];

  private constructor(readonly options: FakeFirecrackerOptions) {
    this.#server = createServer((request, response) => this.#onRequest(request, response));
  }

  static async start(options: FakeFirecrackerOptions): Promise<FakeFirecracker> {
    rmSync(options.socketPath, { force: true });
    const fake = new FakeFirecracker(options);
    await new Promise<void>((resolve, reject) => {
      fake.#server.once("error", reject);
      fake.#server.listen(options.socketPath, () => resolve());
    });
    return fake;
  }

  /** The host's path for a path Firecracker was given (inside its root when jailed). */
  hostPath(path: unknown): string {
    return this.options.root === undefined ? String(path) : join(this.options.root, String(path));
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  /** The next request to `method path` is answered with this fault (after its own validation). */
  injectFault(fault: InjectedFault): void {
    this.#faults.push(fault);
  }

  async close(): Promise<void> {
    await this.vsockShim?.close();
    this.#server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.options.socketPath, { force: true });
  }

  #onRequest(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= BODY_LIMIT) chunks.push(chunk);
    });
    request.on("end", () => {
      void this.#handle(request.method ?? "", request.url ?? "", size > BODY_LIMIT ? null : Buffer.concat(chunks).toString("utf8"))
        .then(({ status, body, operation }) => {
          // Reported before answering: a client in another process reads the report on the answer.
          this.options.onRequest?.(this);
          this.#answer(response, request, status, body, operation);
        });
    });
  }

  async #handle(method: string, path: string, raw: string | null): Promise<{ status: number; body?: unknown; operation?: Operation }> {
    const record = (status: number, body: unknown) => this.requests.push({ method, path, body, status });
    const operation = this.spec.operation(method, path);
    if (!operation) {
      this.violations.push(`${method} ${path}: no such operation in the spec`);
      record(400, undefined);
      return { status: 400, body: { fault_message: `Invalid request method and/or path: ${method} ${path}` } };
    }
    let body: unknown;
    if (raw === null) {
      this.violations.push(`${method} ${path}: body over ${BODY_LIMIT} bytes`);
      record(400, undefined);
      return { status: 400, body: { fault_message: "Request body too large" }, operation };
    }
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch {
        this.violations.push(`${method} ${path}: body is not JSON`);
        record(400, raw);
        return { status: 400, body: { fault_message: "The request body is not valid JSON" }, operation };
      }
    }
    record(0, body);
    const finish = (status: number, answer?: unknown) => {
      this.requests[this.requests.length - 1]!.status = status;
      return { status, body: answer, operation };
    };
    const issues = this.spec.validateRequest(operation, body);
    if (issues.length > 0) {
      const text = issues.map((i) => `${i.at}: ${i.problem}`).join("; ");
      this.violations.push(`${method} ${path}: ${text}`);
      return finish(400, { fault_message: `Invalid request: ${text}` });
    }
    const fault = this.#faults.findIndex((f) => f.method === method && f.path === path);
    if (fault >= 0) {
      const [injected] = this.#faults.splice(fault, 1);
      return finish(injected!.status ?? 400, { fault_message: injected!.message });
    }
    const refusal = await this.#apply(operation, body as Body | undefined);
    if (refusal !== undefined) return finish(400, { fault_message: refusal });
    const status = this.spec.successStatus(operation);
    return finish(status, status === 200 ? this.#read(operation) : undefined);
  }

  #answer(response: ServerResponse, request: IncomingMessage, status: number, body: unknown, operation?: Operation): void {
    if (operation) {
      const defined = this.spec.response(operation, status);
      if (!defined) {
        this.responseViolations.push(`${request.method} ${request.url}: status ${status} is not in the spec`);
      } else if (defined.schema) {
        const issues = this.spec.validate(defined.schema as Body, body, "response");
        if (issues.length > 0) this.responseViolations.push(`${request.method} ${request.url}: ${issues.map((i) => `${i.at}: ${i.problem}`).join("; ")}`);
      } else if (body !== undefined) {
        this.responseViolations.push(`${request.method} ${request.url}: status ${status} has no body in the spec`);
      }
    }
    const text = body === undefined ? "" : JSON.stringify(body);
    response.writeHead(status, text === "" ? {} : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    response.end(text);
  }

  /** Applies a valid request to the VM's state; returns a fault message when the state refuses it. */
  async #apply(operation: Operation, body: Body | undefined): Promise<string | undefined> {
    const key = `${operation.method} ${operation.template}`;
    if (PRE_BOOT_ONLY.has(key) && this.state !== "Not started") {
      return "The requested operation is not supported after starting the microVM.";
    }
    switch (key) {
      case "get /":
      case "get /version":
      case "get /machine-config":
      case "get /vm/config":
        return undefined;
      case "put /machine-config":
        this.machine = { smt: false, track_dirty_pages: false, ...body };
        return undefined;
      case "patch /machine-config":
        this.machine = { ...this.machine, ...body };
        return undefined;
      case "put /boot-source":
        if (!existsSync(this.hostPath(body!.kernel_image_path))) return `Cannot open the kernel image: ${String(body!.kernel_image_path)}`;
        this.bootSource = body;
        return undefined;
      case "put /drives/{drive_id}":
        if (body!.drive_id !== operation.pathParams.drive_id) return "The id from the path does not match the id from the body!";
        if (body!.path_on_host !== undefined && !existsSync(this.hostPath(body!.path_on_host))) return `Unable to open the block device backing file: ${String(body!.path_on_host)}`;
        this.drives.set(String(body!.drive_id), body!);
        return undefined;
      case "put /network-interfaces/{iface_id}":
        if (body!.iface_id !== operation.pathParams.iface_id) return "The id from the path does not match the id from the body!";
        this.interfaces.set(String(body!.iface_id), body!);
        return undefined;
      case "put /vsock":
        this.vsock = body;
        return undefined;
      case "put /entropy":
        this.entropy = body;
        return undefined;
      case "put /logger":
        return this.#outputFile(body!.log_path, (b) => (this.logger = b), body!);
      case "put /metrics":
        if (this.metrics) return "Reinitialization of metrics not allowed.";
        return this.#outputFile(body!.metrics_path, (b) => (this.metrics = b), body!);
      case "put /actions":
        return this.#action(String(body!.action_type));
      case "patch /vm":
        if (this.state === "Not started") return "The requested operation is not supported before starting the microVM.";
        this.state = body!.state === "Paused" ? "Paused" : "Running";
        await this.options.onState?.(this.state);
        return undefined;
      case "put /snapshot/create":
        return this.#createSnapshot(body!);
      case "put /snapshot/load":
        return this.#loadSnapshot(body!);
      default:
        return `This fake does not model ${key}`;
    }
  }

  #outputFile(path: unknown, set: (body: Body) => void, body: Body): string | undefined {
    // Firecracker opens log and metrics destinations (named pipes or files) but does not create them.
    if (typeof path === "string" && !existsSync(this.hostPath(path))) return `Failed to open target file: ${path}: No such file or directory`;
    set(body);
    return undefined;
  }

  async #action(type: string): Promise<string | undefined> {
    if (type === "FlushMetrics") return undefined;
    if (type === "SendCtrlAltDel") {
      return this.state === "Not started" ? "The requested operation is not supported before starting the microVM." : undefined;
    }
    if (this.state !== "Not started") return "The requested operation is not supported after starting the microVM.";
    if (!this.bootSource) return "Cannot start microvm without kernel configuration.";
    await this.#run("Running");
    return undefined;
  }

  async #run(state: InstanceState): Promise<void> {
    this.state = state;
    if (this.vsock && this.options.vsockPorts && !this.vsockShim) {
      this.vsockShim = await startVsockShim({ udsPath: this.hostPath(this.vsock.uds_path), ports: this.options.vsockPorts });
    }
    await this.options.onState?.(state);
    if (state === "Running") this.options.onRun?.();
  }

  #createSnapshot(body: Body): string | undefined {
    if (this.state !== "Paused") return "Cannot create a snapshot: the microVM is not paused.";
    if (body.snapshot_type === "Diff" && !this.machine.track_dirty_pages) {
      return "Diff snapshots are not allowed on microVMs with dirty page tracking disabled.";
    }
    const saved = { machine: this.machine, bootSource: this.bootSource, drives: [...this.drives.values()], interfaces: [...this.interfaces.values()], vsock: this.vsock, type: body.snapshot_type ?? "Full" };
    writeFileSync(this.hostPath(body.snapshot_path), JSON.stringify(saved));
    writeFileSync(this.hostPath(body.mem_file_path), `memory of ${String(this.machine.mem_size_mib)} MiB`);
    return undefined;
  }

  async #loadSnapshot(body: Body): Promise<string | undefined> {
    if (this.bootSource || this.drives.size > 0 || this.interfaces.size > 0 || this.vsock || this.entropy) {
      return "Loading a microVM snapshot not allowed after configuring boot-specific resources.";
    }
    const backend = body.mem_backend as Body | undefined;
    if ((backend === undefined) === (body.mem_file_path === undefined)) {
      return "Exactly one of mem_backend and mem_file_path must be given.";
    }
    const memory = String(backend?.backend_path ?? body.mem_file_path);
    if (!existsSync(this.hostPath(memory))) return `Cannot open the memory file: ${memory}`;
    let saved: Body;
    try {
      saved = JSON.parse(readFileSync(this.hostPath(body.snapshot_path), "utf8")) as Body;
    } catch (error) {
      return `Cannot load the microVM state: ${(error as Error).message}`;
    }
    this.machine = { ...(saved.machine as Body), ...(body.track_dirty_pages === undefined ? {} : { track_dirty_pages: body.track_dirty_pages }) };
    this.bootSource = saved.bootSource as Body | undefined;
    for (const drive of saved.drives as Body[]) this.drives.set(String(drive.drive_id), drive);
    for (const iface of saved.interfaces as Body[]) this.interfaces.set(String(iface.iface_id), iface);
    for (const override of (body.network_overrides ?? []) as Body[]) {
      const iface = this.interfaces.get(String(override.iface_id));
      if (!iface) return `Invalid network override: no interface "${String(override.iface_id)}" in the snapshot`;
      iface.host_dev_name = override.host_dev_name;
    }
    this.vsock = saved.vsock as Body | undefined;
    const vsockOverride = body.vsock_override as Body | undefined;
    if (vsockOverride) {
      if (!this.vsock) return "Invalid vsock override: the snapshot has no vsock device";
      this.vsock = { ...this.vsock, uds_path: vsockOverride.uds_path };
    }
    await this.#run(body.resume_vm ? "Running" : "Paused");
    return undefined;
  }

  #read(operation: Operation): unknown {
    switch (operation.template) {
      case "/":
        return { app_name: "Firecracker", id: this.options.id ?? "anonymous-instance", state: this.state, vmm_version: this.spec.version };
      case "/version":
        return { firecracker_version: this.spec.version };
      case "/machine-config":
        return this.machine;
      case "/vm/config":
        return {
          "machine-config": this.machine,
          ...(this.bootSource ? { "boot-source": this.bootSource } : {}),
          drives: [...this.drives.values()],
          "network-interfaces": [...this.interfaces.values()],
          ...(this.vsock ? { vsock: this.vsock } : {}),
          ...(this.logger ? { logger: this.logger } : {}),
          ...(this.metrics ? { metrics: this.metrics } : {}),
          ...(this.entropy ? { entropy: this.entropy } : {}),
        };
      default:
        return {};
    }
  }
}
