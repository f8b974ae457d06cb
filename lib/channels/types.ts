/**
 * The control-channel contract. A sandbox is reached either through its guest agent (via the
 * supervisor, over virtio-serial or vsock) or over SSH (ssh2 to the guest's sshd); both implement
 * `Channel`, so the SDK and its tests do not care which one carries a command.
 *
 * The method names and shapes follow `AgentClient`: `writeFile`/`readFile` are the channel's
 * put/get of one guest file (streamed; SFTP on SSH), `env` is the managed environment in
 * `/etc/profile.d/smolvm-env.sh`, `connect` opens one TCP stream to a guest port and
 * `exposeLocal` listens on the host's loopback and opens one such stream per connection.
 */
import type { Duplex, Readable } from "node:stream";
import type { AgentEnv, AgentRunOptions, AgentRunResult, AgentWriteOptions, CallOptions, ExecHandle, ExecSpec, FileStream } from "../agent/types.ts";
import type { ChannelChoice } from "../config.ts";

/** What carries the commands: the guest agent, or the guest's sshd. */
export type ChannelKind = "agent" | "ssh";

/**
 * What a caller asks for (`--comm-channel`, `commChannel`; the config's `channel`): `vsock` is the
 * agent channel (the name it has on Firecracker; on QEMU it runs over virtio-serial), `auto`
 * takes the agent when it answers and SSH otherwise.
 */
export type CommChannel = ChannelChoice;

export type ChannelEnv = AgentEnv;

/** A host port on 127.0.0.1 relaying each connection to a guest port. */
export interface LocalExposure {
  readonly host: "127.0.0.1";
  readonly hostPort: number;
  readonly guestPort: number;
  /** Stops listening and ends the open connections. */
  close(): Promise<void>;
}

export interface Channel {
  readonly kind: ChannelKind;
  /** True once the channel is closed or its connection is gone for good. */
  readonly isClosed: boolean;
  /** Starts a command; resolves once it runs (its pid is known). */
  exec(spec: ExecSpec): Promise<ExecHandle>;
  /** Runs a command to completion and collects its output. A string runs through /bin/sh -c. */
  run(command: string | string[], options?: AgentRunOptions): Promise<AgentRunResult<string>>;
  /** Writes a guest file atomically (temporary file + rename) with exact permission bits. */
  writeFile(path: string, data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>, options?: AgentWriteOptions): Promise<{ size: number }>;
  /** Opens a guest file for reading; resolves with its size and permission bits once open. */
  readFile(path: string, options?: CallOptions): Promise<FileStream>;
  /** The managed environment every command (and every login) sees. */
  readonly env: ChannelEnv;
  /** One byte stream to a TCP port inside the guest (on its loopback unless `host` says). */
  connect(guestPort: number, options?: CallOptions & { host?: string }): Promise<Duplex>;
  /** Listens on 127.0.0.1:`hostPort` (a free port when 0 or absent) in this process and relays each connection to `guestPort`. */
  exposeLocal(guestPort: number, hostPort?: number): Promise<LocalExposure>;
  /** Releases this handle; a shared connection ends when its last handle is closed. */
  close(): Promise<void>;
}
