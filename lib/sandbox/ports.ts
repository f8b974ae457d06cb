/**
 * Port forwards from the host into a sandbox: a listener on 127.0.0.1 held by the sandbox's
 * supervisor (so it outlives the call that made it and dies with the sandbox), each connection
 * carried by an agent `forward` stream. This module holds the checks shared by the SDK, the CLI
 * and the supervisor; the listeners themselves are in lib/supervisor/forwards.ts.
 */
import { InvalidInputError } from "../errors.ts";

/** One forward as the supervisor reports it. */
export interface PortForwardInfo {
  /** The port on the host; always bound to `address`. */
  hostPort: number;
  guestPort: number;
  /** Always 127.0.0.1: a forward is never reachable from other machines. */
  address: string;
  /** Connections open through it right now. */
  connections: number;
  createdAt: number;
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

/** Parses `GUEST` or `HOST:GUEST` (the CLI's form). Without HOST a free host port is chosen. */
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
