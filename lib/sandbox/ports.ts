/**
 * `vm.ports`: host ports on 127.0.0.1 forwarded into the sandbox. Through the agent, a forward
 * is a listener held by the sandbox's supervisor (lib/supervisor/forwards.ts): it outlives the
 * call that made it and ends with the sandbox. Over SSH there is no supervisor to hold it, so it
 * is a tunnel held by this process.
 */
import type { PortForwardInfo, SupervisorOp, SupervisorRequest, SupervisorResult } from "../agent/supervisor-messages.ts";
import type { Channel } from "../channels/types.ts";
import { InvalidInputError, NotFoundError, NotRunningError } from "../errors.ts";

export type { PortForwardInfo };

export interface ExposeOptions {
  /** The host port to listen on (127.0.0.1 only); a free one when absent or 0. */
  hostPort?: number;
}

/** A host port forwarded into the sandbox by `vm.ports.expose`. */
export interface PortForward extends PortForwardInfo {
  /**
   * `"process"` for a forward held by this process (the SSH channel's tunnels), which ends when
   * the process does; absent for the supervisor's, which outlive it.
   */
  heldBy?: "process";
  /** Stops the forward and ends its connections; does nothing if it is already gone. */
  close(): Promise<void>;
  /** `await using fwd = await vm.ports.expose(8080)` closes the forward at scope end. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** What the ports need from the SDK handle. */
export interface PortsAccess {
  /** The sandbox's open channel. */
  channel(): Promise<Channel>;
  /** A `supervisor.*` operation on the sandbox's supervisor. */
  supervisor<Op extends SupervisorOp>(op: Op, request: SupervisorRequest<Op>, what: string): Promise<SupervisorResult<Op>>;
  /** Whether the sandbox runs (or is paused) right now. */
  isLive(): boolean;
}

export class Ports {
  constructor(private readonly access: PortsAccess) {}

  /**
   * Forwards a port on the host's 127.0.0.1 (a free one unless `hostPort` is given) to a TCP
   * port in the guest, through the agent (no SSH, no guest network setup).
   *
   * ```ts
   * const web = await vm.ports.expose(8080);
   * await fetch(`http://127.0.0.1:${web.hostPort}/`);
   * await web.close();
   * ```
   */
  async expose(guestPort: number, options: ExposeOptions = {}): Promise<PortForward> {
    checkGuestPort(guestPort);
    const hostPort = checkHostPort(options.hostPort ?? 0);
    const channel = await this.access.channel();
    if (channel.kind === "ssh") return tunnel(channel, guestPort, hostPort);
    const info = await this.access.supervisor("supervisor.expose", { guestPort, hostPort }, "expose a port of");
    const close = async () => {
      await this.close(info.hostPort).catch((error: unknown) => {
        if (!(error instanceof NotFoundError) && !(error instanceof NotRunningError)) throw error;
      });
    };
    return { ...info, close, [Symbol.asyncDispose]: close };
  }

  /**
   * Closes the forward listening on host port `hostPort` (NotFoundError if there is none).
   *
   * ```ts
   * await vm.ports.close(9000);
   * ```
   */
  async close(hostPort: number): Promise<void> {
    if (checkHostPort(hostPort) === 0) throw new InvalidInputError("Cannot close host port 0: name the port of a forward", { hint: "`smolvm port list` shows them" });
    await this.access.supervisor("supervisor.close", { hostPort }, "close a port of");
  }

  /**
   * The supervisor's port forwards of this sandbox (none when it is not running).
   *
   * ```ts
   * for (const p of await vm.ports.list()) console.log(`127.0.0.1:${p.hostPort} -> ${p.guestPort}`);
   * ```
   */
  async list(): Promise<PortForwardInfo[]> {
    if (!this.access.isLive()) return [];
    return (await this.access.supervisor("supervisor.ports", {}, "list the ports of")).ports;
  }
}

/** A forward held by this process over a channel with no supervisor to hold it (SSH). */
async function tunnel(channel: Channel, guestPort: number, hostPort: number): Promise<PortForward> {
  const exposure = await channel.exposeLocal(guestPort, hostPort);
  const close = () => exposure.close();
  return {
    hostPort: exposure.hostPort,
    guestPort,
    address: exposure.host,
    connections: 0,
    createdAt: Date.now(),
    heldBy: "process",
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Checks a guest port (1-65535). */
export function checkGuestPort(port: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidInputError(`Invalid guest port ${JSON.stringify(port)}: it must be a whole number from 1 to 65535`, {
      hint: "give the TCP port the service in the sandbox listens on, e.g. 8080",
    });
  }
  return port;
}

/** Checks a host port (1-65535, or 0 for any free one). */
export function checkHostPort(port: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidInputError(`Invalid host port ${JSON.stringify(port)}: it must be a whole number from 1 to 65535 (0 picks a free one)`, {
      hint: "leave the host port out to get a free one",
    });
  }
  return port;
}

/** Parses `GUEST` or `HOST:GUEST`, as the CLI takes them. Without HOST a free host port is chosen. */
export function parsePortSpec(spec: string): { hostPort: number; guestPort: number } {
  const match = /^(?:(\d+):)?(\d+)$/.exec(spec.trim());
  if (match === null) {
    throw new InvalidInputError(`Invalid port "${spec}": expected GUEST or HOST:GUEST`, {
      hint: "e.g. 8080 (any free host port) or 9000:8080 (host 127.0.0.1:9000 to guest 8080)",
    });
  }
  return {
    hostPort: checkHostPort(match[1] === undefined ? 0 : Number(match[1])),
    guestPort: checkGuestPort(Number(match[2])),
  };
}
