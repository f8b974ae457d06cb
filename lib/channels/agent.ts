/**
 * The agent channel: a thin adapter over an `AgentClient` connected through the sandbox's
 * supervisor (virtio-serial on QEMU, vsock on Firecracker).
 */
import type { Duplex, Readable } from "node:stream";
import type { AgentClient } from "../agent/client.ts";
import type { AgentRunOptions, AgentRunResult, AgentWriteOptions, CallOptions, ExecHandle, ExecSpec, FileStream } from "../agent/types.ts";
import type { Channel, ChannelEnv, LocalExposure } from "./types.ts";

export class AgentChannel implements Channel {
  readonly kind = "agent" as const;
  readonly env: ChannelEnv;

  constructor(readonly client: AgentClient) {
    this.env = client.env;
  }

  get isClosed(): boolean {
    return this.client.isClosed;
  }

  exec(spec: ExecSpec): Promise<ExecHandle> {
    return this.client.exec(spec);
  }

  run(command: string | string[], options: AgentRunOptions = {}): Promise<AgentRunResult<string>> {
    return this.client.run(command, { ...options, encoding: "utf8" }) as Promise<AgentRunResult<string>>;
  }

  writeFile(path: string, data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>, options: AgentWriteOptions = {}): Promise<{ size: number }> {
    return this.client.writeFile(path, data, options);
  }

  readFile(path: string, options: CallOptions = {}): Promise<FileStream> {
    return this.client.readFile(path, options);
  }

  connect(guestPort: number, options: CallOptions & { host?: string } = {}): Promise<Duplex> {
    return this.client.forward(guestPort, options);
  }

  exposeLocal(guestPort: number, hostPort = 0): Promise<LocalExposure> {
    return import("./expose.ts").then(({ listenAndRelay }) => listenAndRelay(guestPort, hostPort, () => this.client.forward(guestPort, { timeoutMs: 10_000 })));
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
