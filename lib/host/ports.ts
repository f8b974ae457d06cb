/**
 * TCP ports something on this host already listens on. The SSH port pool is per state
 * database, but ports are host-wide: another smolvm home (or any program) may hold one.
 * Reading /proc/net/tcp{,6} is synchronous, so allocation can consult it inside its
 * transaction. Elsewhere (macOS) the set is empty and a clash surfaces as QEMU's error.
 */
import { readFileSync } from "node:fs";

const LISTEN = "0A";
/** A UDP socket's state in /proc/net/udp once bound: "07" (unconnected). */
const UDP_BOUND = "07";

export function listeningTcpPorts(): Set<number> {
  return localPorts(["/proc/net/tcp", "/proc/net/tcp6"], LISTEN);
}

/** UDP ports something on this host has bound. */
export function boundUdpPorts(): Set<number> {
  return localPorts(["/proc/net/udp", "/proc/net/udp6"], UDP_BOUND);
}

function localPorts(tables: readonly string[], state: string): Set<number> {
  const ports = new Set<number>();
  for (const table of tables) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (local === undefined || fields[3] !== state) continue;
      const port = Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
      if (Number.isFinite(port)) ports.add(port);
    }
  }
  return ports;
}
