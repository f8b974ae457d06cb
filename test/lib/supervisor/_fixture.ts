/**
 * Sandboxes for the supervisor's tests: a real row in the test's state store whose "VM" is the
 * native test-mode agent (test/helpers/agent-backend.ts), and a supervisor run in this process
 * (or, where a test must kill it, in a child process of its own).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { AgentClient } from "../../../lib/agent/client.ts";
import type { Backend } from "../../../lib/backends/types.ts";
import { parseSandboxConfig, type SandboxConfigInput } from "../../../lib/config.ts";
import { sandboxFiles } from "../../../lib/sandbox/layout.ts";
import { SUPERVISE_COMMAND } from "../../../lib/sandbox/processes.ts";
import { connectSupervisor } from "../../../lib/sandbox/supervisor-client.ts";
import { withStore } from "../../../lib/state/sandboxes.ts";
import type { SandboxRecord } from "../../../lib/state/record.ts";
import { runSupervisor } from "../../../lib/supervisor/main.ts";
import type { LivenessOptions } from "../../../lib/supervisor/liveness.ts";
import type { AgentBackendOptions } from "../../helpers/agent-backend.ts";

/** A sandbox row as create makes it (no network: nothing to allocate, no SSH set-up to run). */
export function sandboxRow(config: SandboxConfigInput = {}): SandboxRecord {
  const vm = withStore((store) => store.create({
    config: parseSandboxConfig({ image: "base", kernelPath: "/nonexistent/vmlinux", rootfsPath: "/nonexistent/rootfs.ext4", network: "none", accel: "tcg", bootTimeoutMs: 10_000, ...config }),
    backend: "qemu",
    allocate: {},
  }));
  mkdirSync(sandboxFiles(vm.id).dir, { recursive: true, mode: 0o700 });
  return vm;
}

export function record(id: string): SandboxRecord | undefined {
  return withStore((store) => store.find(id));
}

/**
 * Runs the sandbox's supervisor in this process: resolves once it listens, with `done`, which
 * resolves when it has nothing left to supervise.
 */
export async function superviseHere(vm: SandboxRecord, backend: Backend, options: { liveness?: LivenessOptions } = {}): Promise<{ done: Promise<void> }> {
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const done = runSupervisor(vm.id, { backend, onListening: listening, ...(options.liveness === undefined ? {} : { runtime: { liveness: options.liveness } }) });
  await Promise.race([ready, done]);
  return { done };
}

/**
 * A supervisor in a child process of its own, for a test that kills it or measures it, with the
 * options of _supervise-with-agent.ts. Resolves once it listens.
 */
export async function superviseInChild(vm: SandboxRecord, options: { hostile?: AgentBackendOptions["hostile"]; liveness?: LivenessOptions } = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(import.meta.dirname, "_supervise-with-agent.ts"), SUPERVISE_COMMAND, vm.id, JSON.stringify(options)], {
    stdio: ["ignore", "inherit", "inherit", "pipe"],
    env: { ...process.env, SMOLVM_SUPERVISOR_READY_FD: "3" },
  });
  await new Promise<void>((resolve, reject) => {
    child.stdio[3]!.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`the supervisor exited (${code}) before it listened`)));
  });
  return child;
}

/** A client of the sandbox's supervisor (HELLO answered: ready). */
export function client(vm: SandboxRecord, timeoutMs = 15_000): Promise<AgentClient> {
  return connectSupervisor(vm, { timeoutMs, respawn: false });
}
