/**
 * A sandbox's runtime, owned end to end by its supervisor: the VMM (attached with the ticket
 * its launcher left, or launched here), the agent link and the relay every client's streams go
 * through, the port forwards and the SSH set-up (in-process clients of that relay), its network
 * (network.ts: connected once the VMM runs, served while it runs, removed once it ended), and the
 * record of what happened to it in the state store.
 *
 * Readiness and failure reach clients through their HELLO (client-session.ts): `hello()`
 * resolves once the agent answered, and rejects with the boot's failure, which the session sends
 * as an ERROR. Nobody polls the store for either.
 */
import { rmSync } from "node:fs";
import type { AgentClient } from "../agent/client.ts";
import type { AgentHello } from "../agent/messages.ts";
import type { SshStatus, SupervisorOp } from "../agent/supervisor-messages.ts";
import { PROTOCOL_VIOLATION_HINT } from "../agent/_errors.ts";
import type { Backend, DiskError, Vmm, VmmStatus } from "../backends/types.ts";
import { AgentUnavailableError, NotFoundError, NotRunningError, smolError, toSmolError, type SmolError, type WireError } from "../errors.ts";
import { logEvent } from "../log.ts";
import { ownDisk, type SandboxFiles } from "../sandbox/layout.ts";
import { launchVmm, withNetworkAllocations } from "../sandbox/launch.ts";
import { readLauncher } from "../sandbox/launcher.ts";
import { killSandboxProcesses } from "../sandbox/processes.ts";
import { liveTicket, removeTicket } from "../sandbox/ticket.ts";
import { identityAlive } from "../host/pids.ts";
import type { SandboxPatch } from "../state/sandboxes.ts";
import type { SandboxRecord } from "../state/record.ts";
import { deferred } from "../util/deferred.ts";
import { tailOf } from "../util/tail.ts";
import { connectAgent, type AgentLink } from "./agent-link.ts";
import { capConsoleLog } from "./console-cap.ts";
import type { SessionContext, SupervisorOpHandler } from "./client-session.ts";
import { frozenOnDisk, roomToResume } from "./disk-error.ts";
import { AgentLiveness, verdictError, type LivenessOptions, type Verdict } from "./liveness.ts";
import { PortForwards } from "./forwards.ts";
import { renewIdentity } from "./identity.ts";
import { localClient } from "./local-client.ts";
import { endNetwork, SupervisedNetwork } from "./network.ts";
import { Relay } from "./relay.ts";
import { endVmm, GuestShutdown, syncDiskFile } from "./shutdown.ts";
import { restoredTicket, SnapshotGate, takeOverState, takeSnapshot, thaw } from "./snapshot.ts";
import { SshSetup } from "./ssh-setup.ts";

/** What the runtime needs from the state store: its own row, updated or removed. */
export interface RuntimeRecord {
  /** Updates the row unless it is gone (deleted while we worked). */
  update(patch: SandboxPatch): void;
  remove(): void;
  /** Gives the sandbox a new SSH port when its own was found taken by another program; returns it. */
  reallocateSshPort(taken: number): number;
}

type Phase = "booting" | "ready" | "failed" | "ending";

export interface RuntimeOptions {
  /** How the supervisor judges a silent agent (liveness.ts); tests shorten it. */
  liveness?: LivenessOptions;
}

/** The VMM stopped the guest on a disk error (`io-error`): it waits for room to resume. */
function frozenOnIo(status: VmmStatus): boolean {
  return status.detail === "io-error";
}

export class SandboxRuntime {
  private phase: Phase = "booting";
  private paused = false;
  private vmm: Vmm | undefined;
  private link: AgentLink | undefined;
  private relay: Relay | undefined;
  private forwards: PortForwards | undefined;
  private ssh: SshSetup | undefined;
  private network: SupervisedNetwork | undefined;
  private networkEnded: Promise<void> | undefined;
  private ending: "stop" | "destroy" | undefined;
  private liveness: AgentLiveness | undefined;
  /** Why the guest is frozen: its disk could not be written on the host (disk-error.ts). */
  private frozen: SmolError | undefined;
  /** Why the agent was cut off: it broke the protocol. */
  private cutOff: SmolError | undefined;
  /** Ends the watch that keeps the console log bounded. */
  private stopConsoleCap: (() => void) | undefined;
  /** A stop's shutdown of the guest, once one is asked for. */
  private shutdown: GuestShutdown | undefined;
  /** Resolves when the guest freezes (a stop waiting for the guest to quiesce listens); a new one after each thaw. */
  private frozenSignal = deferred<void>();
  private readonly snapshots = new SnapshotGate();
  private readonly ready = deferred<AgentHello>();
  /** The sessions' view of this runtime. */
  readonly context: SessionContext;

  constructor(
    private vm: SandboxRecord,
    private readonly files: SandboxFiles,
    private readonly backend: Backend,
    private readonly record: RuntimeRecord,
    private readonly options: RuntimeOptions = {},
  ) {
    const self = this;
    this.context = {
      get relay() {
        return self.relay;
      },
      hello: () => this.hello(),
      ops: this.ops(),
    };
  }

  /**
   * Boots (or re-attaches to) the VM, serves until the VMM ends, and records how it ended.
   * Resolves when there is nothing left to supervise.
   */
  async run(): Promise<void> {
    const deadline = Date.now() + this.vm.config.bootTimeoutMs;
    const vmmEnded = new AbortController();
    this.watchLauncher();
    try {
      const vmm = (this.vmm = await this.startOrAttach(deadline));
      if (this.ending === "destroy") vmm.kill(); // its create was abandoned meanwhile
      const caps = [this.files.consoleLog, ...(vmm.logFiles ?? [])].map((file) => capConsoleLog(file));
      this.stopConsoleCap = () => caps.forEach((stop) => stop());
      this.record.update({ vmmPid: vmm.pid, supervisorPid: process.pid });
      void vmm.exited.then(() => vmmEnded.abort());
      vmm.onDiskError?.((error) => this.freeze(error));
      const status = await vmm.describe();
      // A guest frozen on a full disk while no supervisor watched: it goes on only with room.
      if (frozenOnIo(status)) {
        if (!roomToResume(this.disk)) return await this.leaveFrozen(vmm);
        await vmm.resume();
      }
      // A VM paused when its old supervisor died is thawed just long enough to greet its agent;
      // one stopped for a snapshot, or restored, runs (snapshot.ts).
      const pausedNow = status.state === "paused";
      const { restored, wasPaused } = takeOverState(this.files, pausedNow);
      // Connected before the agent is greeted: a HELLO answered means the network is up too.
      this.network = await SupervisedNetwork.start(this.vm, this.files, vmm.pid, { reallocateSshPort: (taken) => this.record.reallocateSshPort(taken) });
      this.vm = this.network.record;
      this.link = await connectAgent(vmm, deadline, vmmEnded.signal, { beforeGreet: () => thaw(vmm, this.files, pausedNow) }).catch((error: unknown) => {
        throw this.bootError(error, vmmEnded.signal.aborted);
      });
      this.serve(this.link);
      // Before anyone is answered: no client may see the snapshot's clock, RNG or name.
      if (restored) await renewIdentity(this.relay!, this.link.hello, this.vm, this.files);
      if (wasPaused) await vmm.pause();
      this.paused = wasPaused;
      this.record.update({ status: wasPaused ? "paused" : "running", lastError: null });
      this.phase = "ready";
      logEvent("info", "sandbox ready", { vm: this.vm.id, bootTimeMs: this.link.hello.bootTimeMs });
      this.ready.resolve(this.link.hello);
      // Forwards an earlier supervisor of this VM left open (only a crash leaves any).
      await this.forwards!.restore();
    } catch (thrown) {
      await this.fail(thrown);
      return;
    }
    await this.vmm.exited;
    await this.ended();
  }

  /**
   * A create whose caller dies before it has its answer is undone (launcher.ts): the caller
   * removes its launcher record once done, so a record whose process is gone means nobody will
   * ever use this sandbox. Watched by looking, since the caller is not this process's child.
   */
  private watchLauncher(): void {
    const launcher = readLauncher(this.files);
    if (launcher?.purpose !== "create") return;
    const timer = setInterval(() => {
      const now = readLauncher(this.files);
      if (now === undefined || now.pid !== launcher.pid) return clearInterval(timer);
      if (identityAlive(now) || this.phase === "ending") return;
      clearInterval(timer);
      logEvent("warn", `supervisor: the create of sandbox "${this.vm.name}" was abandoned (its process ${now.pid} exited): removing it`, { vm: this.vm.id });
      this.end("destroy");
      this.vmm?.kill();
      this.record.remove();
    }, 100);
    timer.unref?.();
  }

  /** The VMM's ticket says one runs already (launched by a create, or left by a dead supervisor). */
  private async startOrAttach(deadline: number): Promise<Vmm> {
    // A restore under way in its creator's process; one whose creator died is undone (watchLauncher).
    const ticket = liveTicket(this.files) ?? await restoredTicket(this.files, deadline, () => this.ending === "destroy");
    if (ticket === "abandoned") throw new NotRunningError(`Cannot supervise sandbox "${this.vm.name}": its restore was abandoned`);
    if (ticket !== undefined) return this.backend.attach(ticket);
    this.vm = withNetworkAllocations(this.vm);
    return launchVmm(this.vm, this.files, this.backend);
  }

  /** The file the guest's disk lives in on the host. */
  private get disk(): string {
    return this.vm.config.diskMode === "shared" ? this.vm.config.rootfsPath! : ownDisk(this.files, this.backend.name);
  }

  private serve(link: AgentLink): void {
    const relay = (this.relay = new Relay(link.socket, {
      window: link.hello.limits.initialWindow,
      onViolation: (what) => this.cutOffAgent(what),
    }));
    link.onFrame((frame) => relay.fromAgent(frame), (error) => this.cutOffAgent((error as Error).message));
    this.liveness = new AgentLiveness(relay, this.vmm!, (verdict) => this.judge(verdict), this.options.liveness);
    this.liveness.start();
    link.socket.on("error", () => {});
    link.socket.on("close", () => relay.failAll("AGENT_UNAVAILABLE", "the guest agent connection closed"));
    const connect = (): Promise<AgentClient> => localClient(this.context);
    this.forwards = new PortForwards(connect, this.files.forwards, this.vm);
    this.ssh = new SshSetup(this.vm, this.vmm!.pid, connect, () => relay.idleMs());
    void this.network?.carrySsh(connect);
  }

  /** The HELLO answer: the agent's own, plus this supervisor's part (its state, the accelerator). */
  private async hello(): Promise<AgentHello> {
    const agent = await this.ready.promise;
    if (this.cutOff !== undefined) throw this.cutOff;
    if (this.phase === "ending") {
      throw new NotRunningError(`Cannot reach sandbox "${this.vm.name}": it is ${this.ending === "destroy" ? "being deleted" : "stopping"}`, {
        hint: this.ending === "destroy" ? "create a new one with `smolvm create`" : `start it again with \`smolvm start ${this.vm.name}\``,
      });
    }
    const ticket = this.vmm!.ticket;
    return {
      ...agent,
      supervisor: {
        pid: process.pid,
        sandbox: this.vm.id,
        state: this.paused || this.frozen !== undefined ? "paused" : "running",
        accel: ticket.accel,
        accelReason: ticket.accelReason,
        checks: true,
        // Said in the HELLO rather than refusing it, so a stop, a resume or a delete still reach it.
        ...(this.frozen === undefined ? {} : { frozen: this.frozen.toJSON() }),
      },
    };
  }

  private ops(): Record<SupervisorOp, SupervisorOpHandler> {
    return {
      "supervisor.status": async () => ({
        sandbox: this.vm.id,
        supervisorPid: process.pid,
        vmmPid: this.vmm!.pid,
        agentConnected: this.link !== undefined && !this.link.socket.destroyed,
        vmm: await this.vmm!.describe(),
      }),
      "supervisor.stop": async () => {
        await this.snapshots.idle();
        // Its last writes wait in the VMM: ending it now would lose them.
        if (this.frozen !== undefined) {
          throw smolError(this.frozen.code, `Cannot stop sandbox "${this.vm.name}" now: ${this.frozen.message.replace(/^Sandbox "[^"]*" is /, "it is ")}`, {
            hint: `${this.frozen.hint ?? ""}, then stop it; \`smolvm delete ${this.vm.name}\` discards it instead`,
          });
        }
        this.end("stop");
        // A paused guest cannot hear the shutdown request.
        if (this.paused) await this.vmm!.resume().catch(() => {});
        const shutdown = (this.shutdown = new GuestShutdown(this.relay!));
        const outcome = this.frozen !== undefined ? "frozen" : await shutdown.quiesce(this.vmm!, this.frozenSignal.promise);
        if (outcome === "frozen") {
          // The guest froze writing its last data: the stop finishes once it can write again.
          void Promise.race([shutdown.answer, this.vmm!.exited.then(() => false)]).then((synced) => this.finishStop(synced));
          throw smolError(this.frozen!.code, `Cannot finish stopping sandbox "${this.vm.name}" yet: ${this.frozen!.message.replace(/^Sandbox "[^"]*" is /, "it is ")}`, {
            hint: `free space there, then \`smolvm resume ${this.vm.name}\`: the guest writes what it has left and the stop completes`,
          });
        }
        void this.finishStop(outcome === "synced");
        return {};
      },
      "supervisor.destroy": async () => {
        this.end("destroy");
        this.forwards?.closeAll();
        this.network?.stopSsh();
        this.vmm!.kill();
        // A TAP sandbox's address goes back to the pool with the row: its interface goes first.
        if (this.vm.config.network === "tap") {
          await this.vmm!.exited;
          await this.endNetwork();
        }
        // The answer means the name is free: a create right after a delete must not find it
        // taken. A port the dying VMM still holds is safe to hand out again (allocation skips
        // ports something listens on); the files go once the VMM has exited, behind the caller.
        this.record.remove();
        return {};
      },
      "supervisor.pause": async () => {
        await this.snapshots.idle();
        if (!this.paused) await this.vmm!.pause();
        this.paused = true;
        this.record.update({ status: "paused" });
        return {};
      },
      "supervisor.resume": async () => {
        await this.snapshots.idle();
        if (this.frozen !== undefined) {
          if (this.frozen.code === "HOST_DISK_FULL" && !roomToResume(this.disk)) throw this.frozen;
          this.frozen = undefined;
          this.frozenSignal = deferred<void>();
          this.paused = true;
        }
        if (this.paused) await this.vmm!.resume();
        this.paused = false;
        this.record.update({ status: "running", lastError: null });
        return {};
      },
      "supervisor.expose": async (request) => {
        if (this.phase === "ending") throw new NotRunningError(`Cannot expose a port of "${this.vm.name}": the sandbox is stopping`);
        return this.forwards!.expose(request as { guestPort: number; hostPort?: number });
      },
      "supervisor.close": async (request) => this.forwards!.close(request.hostPort as number),
      "supervisor.ports": async () => ({ ports: this.forwards!.list() }),
      "supervisor.snapshot": async (request) => {
        if (this.phase !== "ready") throw new NotRunningError(`Cannot snapshot sandbox "${this.vm.name}": it is ${this.phase === "ending" ? "stopping" : "not ready"}`);
        if (this.frozen !== undefined) throw smolError(this.frozen.code, `Cannot snapshot sandbox "${this.vm.name}" now: ${this.frozen.message.replace(/^Sandbox "[^"]*" is /, "it is ")}`, { hint: this.frozen.hint ?? "" });
        return this.snapshots.take(() => takeSnapshot({ vm: this.vm, files: this.files, vmm: this.vmm!, backend: this.backend, dir: request.dir as string, paused: this.paused }));
      },
      "supervisor.ssh": async (request): Promise<SshStatus> =>
        this.ssh!.status(request.wait === true, typeof request.timeoutMs === "number" ? request.timeoutMs : undefined),
      "supervisor.network": async (request) => {
        if (this.phase === "ending") throw new NotRunningError(`Cannot change the network of "${this.vm.name}": the sandbox is stopping`);
        const policy = await this.network!.update({ allow: request.allow as string[] | undefined ?? [], deny: request.deny as string[] | undefined ?? [] });
        this.vm = { ...this.vm, config: { ...this.vm.config, ...policy } };
        this.tryRecord({ config: this.vm.config });
        return policy;
      },
    };
  }

  /** The liveness watch's verdict on a silent agent (liveness.ts): the waiting streams learn why. */
  private judge(verdict: Verdict): void {
    if (verdict.kind === "vmm-paused") {
      if (this.paused || this.frozen !== undefined || this.snapshots.active) return; // paused on purpose (or for a snapshot): its callers wait
      if (frozenOnIo(verdict.status)) return this.freeze({ noSpace: !roomToResume(this.disk), reason: verdict.status.detail });
    }
    if (verdict.kind === "hung") logEvent("warn", "supervisor: the guest agent stopped answering", { vm: this.vm.id, silentMs: Math.round(verdict.silentMs), busy: verdict.busy });
    const why = verdictError(verdict, this.vm.name);
    this.relay?.abandonAll(why.code, why.message, why.hint);
  }

  /**
   * The VMM froze the guest on a disk error: the record says so (paused, with the reason), every
   * waiting stream fails with it, and new sessions are refused with it until a resume finds room.
   */
  private freeze(error: DiskError): void {
    if (this.frozen !== undefined || this.ending === "destroy") return;
    const frozen = (this.frozen = frozenOnDisk(this.vm.name, this.disk, error));
    logEvent("error", `supervisor: ${frozen.message}`, { vm: this.vm.id });
    this.frozenSignal.resolve();
    // The stop's own stream goes on: the stop finishes once the guest thaws.
    this.relay?.abandonAll(frozen.code, frozen.message, frozen.hint, this.shutdown?.owner);
    this.tryRecord({ status: "paused", lastError: { code: frozen.code, message: frozen.message } });
  }

  /**
   * The agent broke the protocol (data beyond its credit, a frame only a host sends, a framing
   * error): nothing more it says is passed on, every stream fails, and the VM is ended, since a
   * guest doing this means harm or is broken beyond use. The record keeps the reason.
   */
  private cutOffAgent(what: string): void {
    if (this.cutOff !== undefined) return;
    const error = (this.cutOff = new AgentUnavailableError(`Sandbox "${this.vm.name}" was stopped: its guest agent broke the protocol (${what})`, {
      hint: PROTOCOL_VIOLATION_HINT,
      details: { violation: what },
    }));
    logEvent("error", `supervisor: ${error.message}`, { vm: this.vm.id });
    this.phase = "ending";
    this.forwards?.closeAll();
    this.relay?.failAll(error.code, error.message, error.hint);
    this.link?.socket.destroy();
    this.tryRecord({ status: "failed", lastError: { code: error.code, message: error.message } });
    this.vmm?.kill();
  }

  /** A record update that must not fail what it reports (the store may be on a full disk). */
  private tryRecord(patch: SandboxPatch): void {
    try {
      this.record.update(patch);
    } catch (error) {
      logEvent("error", `supervisor: cannot record ${JSON.stringify(patch)}: ${(error as Error).message}`, { vm: this.vm.id });
    }
  }

  /** What clients still connected are told as the supervisor hangs up on them. */
  farewell(): WireError {
    if (this.cutOff !== undefined) return this.cutOff.toJSON();
    if (this.frozen !== undefined && this.phase === "failed") return this.frozen.toJSON();
    const name = this.vm.name;
    if (this.ending === "destroy") return { code: "NOT_FOUND", message: `Sandbox "${name}" was deleted` };
    if (this.ending === "stop") return { code: "NOT_RUNNING", message: `Sandbox "${name}" was stopped`, hint: `start it again with \`smolvm start ${name}\`` };
    if (this.phase === "failed") return { code: "NOT_RUNNING", message: `Sandbox "${name}" failed to boot`, hint: `\`smolvm info ${name}\` says why` };
    return { code: "NOT_RUNNING", message: `Sandbox "${name}" stopped: its VM exited unexpectedly`, hint: `\`smolvm logs ${name}\` shows its last console lines; \`smolvm start ${name}\` boots it again` };
  }

  private end(how: "stop" | "destroy"): void {
    this.ending ??= how;
    this.phase = "ending";
  }

  /** The VMM of a stopped guest goes; its forwards with it. */
  private async finishStop(synced: boolean): Promise<void> {
    this.forwards?.closeAll();
    this.network?.stopSsh();
    await endVmm(this.vmm!, synced);
  }

  /** The boot failed: the VM goes, the record says why, and every waiting HELLO gets the reason. */
  private async fail(thrown: unknown): Promise<void> {
    const error = toSmolError(thrown);
    this.phase = "failed";
    this.stopConsoleCap?.();
    logEvent("error", `supervisor: ${error.message}`, { vm: this.vm.id, stack: thrown instanceof Error ? thrown.stack : undefined });
    if (this.vmm !== undefined) {
      this.vmm.kill();
      await this.vmm.exited;
    } else if (this.ending === "destroy") {
      // A restore abandoned before its VM was handed over: that VM is found by what it is.
      await killSandboxProcesses(this.vm.id).catch((error: unknown) => logEvent("error", `supervisor: ${(error as Error).message}`, { vm: this.vm.id }));
    }
    await this.endNetwork();
    removeTicket(this.files);
    if (this.ending === "destroy") {
      rmSync(this.files.dir, { recursive: true, force: true });
      this.record.remove();
    } else {
      this.tryRecord({ status: "failed", lastError: { code: error.code, message: error.message }, vmmPid: null, supervisorPid: null });
    }
    this.ready.reject(error);
  }

  /**
   * Attached to a guest the VMM froze on a full disk while no supervisor watched, and there is
   * still no room: the VM is left as it is (its writes wait in it) for a supervisor started once
   * there is, and whoever asked is told why.
   */
  private async leaveFrozen(vmm: Vmm): Promise<void> {
    const frozen = (this.frozen = frozenOnDisk(this.vm.name, this.disk, { noSpace: true, reason: "no space" }));
    this.phase = "failed";
    this.tryRecord({ status: "paused", lastError: { code: frozen.code, message: frozen.message }, supervisorPid: null });
    this.ready.reject(frozen);
    await vmm.release();
  }

  private bootError(error: unknown, vmmExited: boolean): SmolError {
    const console = tailOf(this.files.consoleLog, 8);
    const vmmLog = tailOf(this.files.vmmLog, 3);
    const seconds = Math.round(this.vm.config.bootTimeoutMs / 1000);
    const why = vmmExited
      ? `the VM exited during boot${vmmLog ? ` (${vmmLog.replaceAll("\n", " | ")})` : ""}`
      : error instanceof Error && error.name === "TimeoutError" ? `the guest agent did not answer within ${seconds} s`
      : (error as Error).message;
    const code = vmmExited ? "BACKEND_UNAVAILABLE" : error instanceof Error && error.name === "TimeoutError" ? "TIMEOUT" : toSmolError(error).code;
    return smolError(code, `${why}${console ? `; last console lines:\n${console}` : "; the console printed nothing"}`, { cause: error });
  }

  /** The VMM is gone: say how in the state store, then let every client go. */
  private async ended(): Promise<void> {
    this.phase = "ending";
    this.liveness?.stop();
    this.stopConsoleCap?.();
    this.forwards?.closeAll();
    this.link?.socket.destroy();
    await this.endNetwork();
    removeTicket(this.files);
    for (const socket of [this.files.agentSocket, this.files.controlSocket]) rmSync(socket, { force: true });
    if (this.ending === "destroy") {
      rmSync(this.files.dir, { recursive: true, force: true });
      this.record.remove();
      return;
    }
    if (this.ending === "stop") {
      this.record.update({ status: "stopped", vmmPid: null, supervisorPid: null });
    } else if (this.cutOff !== undefined) {
      this.tryRecord({ status: "failed", vmmPid: null, supervisorPid: null, lastError: { code: this.cutOff.code, message: this.cutOff.message } });
    } else {
      const tail = tailOf(this.files.consoleLog, 5);
      this.tryRecord({
        status: "failed",
        vmmPid: null,
        supervisorPid: null,
        lastError: { code: "NOT_RUNNING", message: `the VM exited unexpectedly${tail ? `; last console lines:\n${tail}` : ""}` },
      });
    }
  }

  /** Removes the network from the host, once, after the VMM ended (also when it was never connected). */
  private endNetwork(): Promise<void> {
    return (this.networkEnded ??= this.network?.end() ?? endNetwork(this.vm, this.files));
  }

  /** The disk made durable once the VM has stopped, after the caller has its answer (shutdown.ts). */
  async syncDisk(): Promise<void> {
    if (this.ending !== "destroy") await syncDiskFile(this.disk);
  }
}


/** A record that is found by id, for the error when it is not. */
export function missingSandbox(id: string): NotFoundError {
  return new NotFoundError(`Cannot supervise sandbox "${id}": it does not exist`, { hint: "`smolvm list` shows the sandboxes that exist" });
}
