/**
 * A backend whose "VM" is the host-native guest agent in test mode (test/helpers/agent.ts): it
 * implements the backend contract (lib/backends/types.ts) with a real process and a real agent,
 * so the supervisor's modules run end to end in milliseconds, without QEMU. Pausing is SIGSTOP
 * (nothing in the "VM" runs, as with a paused vCPU), stopping through the VMM is SIGTERM, and the
 * agent's own shutdown ends the process as a guest's poweroff ends QEMU.
 *
 * `bootDelayMs` starts the agent that much later than the process (a guest still booting);
 * `noAgent` runs a process that never answers (a guest whose agent never comes up).
 */
import { spawn } from "node:child_process";
import { copyFileSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { AgentTransport, Backend, LaunchSpec, Vmm, VmmExit, VmmStatus, VmmTicket } from "../../lib/backends/types.ts";
import { BackendUnavailableError, NotRunningError } from "../../lib/errors.ts";
import { pidAlive } from "../../lib/host/pids.ts";
import { pollUntil } from "../../lib/util/poll.ts";
import { buildNativeAgent } from "./agent.ts";
import type { HostileMode } from "./hostile-agent.ts";

export interface AgentBackendOptions {
  bootDelayMs?: number;
  noAgent?: boolean;
  /** Run the hostile agent (hostile-agent.ts) in this mode instead of the native one. */
  hostile?: { mode: HostileMode; delayMs?: number };
}

const HOSTILE_AGENT = join(import.meta.dirname, "hostile-agent.ts");

class AgentVmm implements Vmm {
  constructor(readonly ticket: VmmTicket, readonly exited: Promise<VmmExit>) {}

  get pid(): number {
    return this.ticket.pid;
  }

  openAgent(): Promise<AgentTransport> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.ticket.agentSocketPath);
      socket.once("connect", () => resolve({ socket, resync: false }));
      socket.once("error", (error) => reject(new NotRunningError(`no agent socket: ${error.message}`)));
    });
  }

  async describe(): Promise<VmmStatus> {
    const stat = readFileSync(`/proc/${this.pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "T" ? { state: "paused", detail: "stopped" } : { state: "running", detail: state };
  }

  /** Resolves once the process is stopped, as QEMU's `stop` does once the vCPUs are. */
  async pause(): Promise<void> {
    process.kill(this.pid, "SIGSTOP");
    await pollUntil(async () => (await this.describe()).state === "paused", { timeoutMs: 5_000, intervalMs: 1, what: "the agent to stop" });
  }

  async resume(): Promise<void> {
    process.kill(this.pid, "SIGCONT");
    await pollUntil(async () => (await this.describe()).state === "running", { timeoutMs: 5_000, intervalMs: 1, what: "the agent to continue" });
  }

  async stop(): Promise<void> {
    process.kill(this.pid, "SIGCONT");
    process.kill(this.pid, "SIGTERM");
  }

  kill(): void {
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }

  /** The test "VM" has no machine state to save: it records that it was asked, and when. */
  async saveState(dir: string): Promise<void> {
    if ((await this.describe()).state !== "paused") throw new BackendUnavailableError("saveState needs a paused VM");
    writeFileSync(join(dir, "vmstate"), `agent pid ${this.pid} saved at ${Date.now()}\n`);
  }

  async release(): Promise<void> {}
}

function exitOf(pid: number): Promise<VmmExit> {
  return pollUntil(() => !pidAlive(pid), { timeoutMs: Number.MAX_SAFE_INTEGER, intervalMs: 10, what: `pid ${pid} to exit` })
    .then(() => ({ code: null, signal: null }));
}

export function agentBackend(options: AgentBackendOptions = {}): Backend & { launched: number[] } {
  const launched: number[] = [];
  return {
    name: "qemu",
    launched,
    probe: async () => ({ ok: true, accel: "tcg", accelReason: "the test-agent backend", version: "test" }),
    prepareDisk: async (request) => ({ path: request.imagePath, format: "raw", readOnly: false, created: false }),
    async launch(spec: LaunchSpec): Promise<Vmm> {
      const hostile = options.hostile;
      const agent = hostile === undefined ? await buildNativeAgent() : process.execPath;
      const script = options.noAgent
        ? "exec sleep 3600"
        : hostile !== undefined
        ? `exec "$0" "${HOSTILE_AGENT}" --listen "unix:$1" --mode ${hostile.mode} --delay-ms ${hostile.delayMs ?? 4000}`
        : `sleep ${(options.bootDelayMs ?? 0) / 1000}; exec "$0" --listen "unix:$1"`;
      const child = spawn("/bin/sh", ["-c", script, agent, spec.agentSocketPath], { detached: true, stdio: "ignore" });
      child.unref();
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", () => resolve());
        child.once("error", reject);
      });
      launched.push(child.pid!);
      const exited = new Promise<VmmExit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
      const ticket: VmmTicket = {
        pid: child.pid!,
        controlSocketPath: spec.controlSocketPath,
        agentSocketPath: spec.agentSocketPath,
        accel: spec.accel ?? "tcg",
        accelReason: spec.accelReason ?? "the test-agent backend",
      };
      return new AgentVmm(ticket, exited);
    },
    restore: async () => {
      throw new BackendUnavailableError("the test-agent backend keeps no machine state");
    },
    async attach(ticket: VmmTicket): Promise<Vmm> {
      if (!pidAlive(ticket.pid)) throw new NotRunningError(`pid ${ticket.pid} is gone`);
      return new AgentVmm(ticket, exitOf(ticket.pid));
    },
    snapshots: {
      build: async () => ({ version: "test-agent", fingerprint: "test-agent" }),
      captureDisk: async (disk, dir) => copyFileSync(disk.path, join(dir, "disk.capture")),
      packDisk: async (dir) => {
        renameSync(join(dir, "disk.capture"), join(dir, "disk.layer"));
        return "disk.layer";
      },
    },
  };
}
