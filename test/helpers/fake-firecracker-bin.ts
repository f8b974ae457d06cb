/**
 * Writes an executable `firecracker` (or `jailer`) into a test's directory that runs
 * fake-firecracker-main.ts with this Bun, so process handling is tested on a real child process.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("./fake-firecracker-main.ts", import.meta.url));

export interface FakeBinaryOptions {
  mode?: "firecracker" | "jailer";
  /** Where the fake writes what it received, after every request. */
  report?: string;
  /** The test agent's Unix socket, served on guest vsock port 1024 once the VM runs. */
  agentSocket?: string;
  /** Print this to stderr and exit 1 at once. */
  exitEarly?: string;
  /** The native agent binary to run as the guest once the VM starts (see fake-firecracker-main.ts). */
  guestAgent?: string;
  /** Requests answered with a 400 and this fault message. */
  faults?: Array<{ method: string; path: string; message: string }>;
}

function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export function writeFakeFirecracker(dir: string, options: FakeBinaryOptions = {}): string {
  const name = options.mode === "jailer" ? "jailer" : "firecracker";
  const path = join(dir, name);
  const env = [
    `FAKE_FC_MODE=${quote(options.mode ?? "firecracker")}`,
    ...(options.report === undefined ? [] : [`FAKE_FC_REPORT=${quote(options.report)}`]),
    ...(options.agentSocket === undefined ? [] : [`FAKE_FC_AGENT_SOCKET=${quote(options.agentSocket)}`]),
    ...(options.exitEarly === undefined ? [] : [`FAKE_FC_EXIT_EARLY=${quote(options.exitEarly)}`]),
    ...(options.guestAgent === undefined ? [] : [`FAKE_FC_GUEST_AGENT=${quote(options.guestAgent)}`]),
    ...(options.faults === undefined ? [] : [`FAKE_FC_FAULTS=${quote(JSON.stringify(options.faults))}`]),
  ];
  writeFileSync(path, `#!/bin/sh\nexport ${env.join(" ")}\nexec ${quote(process.execPath)} ${quote(MAIN)} "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}
