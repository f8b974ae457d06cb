/**
 * A running QEMU as the backend contract's `Vmm`: QMP for control, the virtio-serial chardev
 * socket for the agent. QMP serves one client at a time, so `release()` hangs up for the next
 * owner, who attaches with the ticket.
 */
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { NotRunningError } from "../../errors.ts";
import { pidAlive } from "../../host/pids.ts";
import { pollUntil } from "../../util/poll.ts";
import type { AgentTransport, DiskError, HostForward, Vmm, VmmExit, VmmStatus, VmmTicket } from "../types.ts";
import { type QmpClient, type QmpStatus } from "./qmp.ts";

/** The file `saveState` writes inside its directory (QEMU's migration stream). */
export const STATE_FILE = "vmstate";

function runState(status: QmpStatus): VmmStatus {
  const detail = status.status;
  if (status.running || detail === "running") return { state: "running", detail };
  if (["paused", "inmigrate", "postmigrate", "prelaunch", "suspended", "save-vm", "restore-vm", "finish-migrate",
    "debug", "colo"].includes(detail)) {
    return { state: "paused", detail };
  }
  if (detail === "shutdown") return { state: "shutdown", detail };
  if (["internal-error", "io-error", "guest-panicked", "watchdog"].includes(detail)) return { state: "error", detail };
  return { state: "other", detail };
}

/**
 * When a QEMU that is not our child ends: the monitor hangs up at once when QEMU exits, the pid
 * check is the backstop (it cannot give the exit status).
 */
export function exitOfAttached(pid: number, qmp: QmpClient): Promise<VmmExit> {
  const gone = () => !pidAlive(pid);
  const forever = { timeoutMs: Number.MAX_SAFE_INTEGER, what: `QEMU (pid ${pid}) to exit` };
  return Promise.race([
    qmp.whenClosed.then(() => pollUntil(gone, { ...forever, intervalMs: 2 })),
    pollUntil(gone, { ...forever, intervalMs: 50 }),
  ]).then(() => ({ code: null, signal: null }));
}

export class QemuVmm implements Vmm {
  readonly hostForwards: NonNullable<Vmm["hostForwards"]>;

  constructor(
    readonly ticket: VmmTicket,
    private readonly qmp: QmpClient,
    readonly exited: Promise<VmmExit>,
  ) {
    this.hostForwards = {
      add: (forward: HostForward) => this.qmp.addHostForward(forward),
      remove: (forward) => this.qmp.removeHostForward(forward),
    };
  }

  get pid(): number {
    return this.ticket.pid;
  }

  openAgent(): Promise<AgentTransport> {
    // QEMU made the chardev socket before its monitor answered, so it is there to connect to.
    return new Promise((resolve, reject) => {
      const socket: Socket = connect(this.ticket.agentSocketPath);
      socket.once("connect", () => {
        socket.removeListener("error", reject);
        socket.setNoDelay?.(true);
        resolve({ socket, resync: true });
      });
      socket.once("error", (error) =>
        reject(new NotRunningError(`Cannot reach the guest agent's port of QEMU (pid ${this.pid}): ${error.message}`, { cause: error })),
      );
    });
  }

  async describe(): Promise<VmmStatus> {
    return runState(await this.qmp.queryStatus());
  }

  pause(): Promise<void> {
    return this.qmp.stop();
  }

  async resume(): Promise<void> {
    await this.qmp.cancelMigration();
    await this.qmp.cont();
  }

  stop(): Promise<void> {
    return this.qmp.quit();
  }

  kill(): void {
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }

  async saveState(dir: string, options: { timeoutMs?: number } = {}): Promise<void> {
    await this.qmp.migrateToFile(join(dir, STATE_FILE), options);
  }

  release(): Promise<void> {
    return this.qmp.close();
  }

  onDiskError(listener: (error: DiskError) => void): () => void {
    return this.qmp.onEvent((event) => {
      // A write the guest asked for failed and QEMU's werror policy (enospc: the default for
      // virtio-blk) stopped the VM; a read error is reported to the guest instead.
      if (event.event !== "BLOCK_IO_ERROR" || event.data?.action !== "stop") return;
      listener({ noSpace: event.data.nospace === true, reason: typeof event.data.reason === "string" ? event.data.reason : "I/O error" });
    });
  }
}
