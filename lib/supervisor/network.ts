/**
 * The supervisor's part of its sandbox's network, for the VM's whole life: it connects the
 * network once the VMM runs (lib/network's connectNetwork: pasta, or nothing to do when a crashed
 * supervisor's VMM is served already), serves the sandbox's DNS and applies policy changes
 * (lib/network/service.ts), carries the SSH port through the agent when the sandbox has no
 * network, and removes everything once the VMM has ended. lib/network owns the objects; this is
 * the one place the runtime reaches them from.
 */
import type { AgentClient } from "../agent/client.ts";
import { AlreadyExistsError, InvalidInputError } from "../errors.ts";
import { logEvent } from "../log.ts";
import { connectNetwork, policyLists, reclaimNetwork } from "../network/index.ts";
import { startNetworkService, type NetworkService, type PolicyChange } from "../network/service.ts";
import { sandboxNetworkOf } from "../sandbox/launch.ts";
import type { NetworkPolicy } from "../sandbox/network.ts";
import type { SandboxFiles } from "../sandbox/layout.ts";
import type { SandboxRecord } from "../state/record.ts";
import { PortForwards } from "./forwards.ts";

export interface NetworkOwnerOptions {
  /** Moves the sandbox to a new SSH port when its own was found taken (by another program); returns it. */
  reallocateSshPort(taken: number): number;
}

export class SupervisedNetwork {
  private sshForward: PortForwards | undefined;
  private closed: Promise<void> | undefined;

  private constructor(
    private vm: SandboxRecord,
    private readonly files: SandboxFiles,
    private readonly service: NetworkService | undefined,
    private readonly options: NetworkOwnerOptions,
  ) {}

  /**
   * Connects the network of the running VMM `vmmPid` and starts serving it. Resolves with the
   * record as it now is (its SSH port may have moved). On failure nothing of it is left running
   * but what `end` removes.
   */
  static async start(vm: SandboxRecord, files: SandboxFiles, vmmPid: number, options: NetworkOwnerOptions): Promise<SupervisedNetwork> {
    const sandbox = sandboxNetworkOf(vm);
    if (sandbox.mode === "none") return new SupervisedNetwork(vm, files, undefined, options);
    const { sshPort } = await connectNetwork(sandbox, vmmPid, { onSshPortTaken: (port) => options.reallocateSshPort(port) });
    const service = await startNetworkService({ ...sandbox, sshPort }, vmmPid, {
      log: (message) => logEvent("warn", `supervisor: ${message}`, { vm: vm.id }),
    });
    return new SupervisedNetwork({ ...vm, sshPort }, files, service, options);
  }

  /** The record with the network's allocations as they are now. */
  get record(): SandboxRecord {
    return this.vm;
  }

  /**
   * Without a network device the SSH channel's port is a forward through the agent, like `port
   * expose`, on the sandbox's SSH port (moved when another program holds it).
   */
  async carrySsh(connect: () => Promise<AgentClient>): Promise<void> {
    if (this.vm.config.network !== "none" || this.vm.sshPort === null) return;
    const forward = (this.sshForward = new PortForwards(connect, `${this.files.dir}/ssh-forward.json`, this.vm));
    for (let attempt = 1; ; attempt++) {
      try {
        await forward.expose({ hostPort: this.vm.sshPort!, guestPort: 22 });
        return;
      } catch (error) {
        if (attempt >= 5 || !(error instanceof AlreadyExistsError)) {
          logEvent("warn", `supervisor: no SSH forward: ${(error as Error).message}`, { vm: this.vm.id });
          return;
        }
        this.vm = { ...this.vm, sshPort: this.options.reallocateSshPort(this.vm.sshPort!) };
      }
    }
  }

  /** Applies a change to the egress policy (firewall first: a change that cannot be applied changes nothing). */
  async update(change: PolicyChange): Promise<NetworkPolicy> {
    if (this.service === undefined) {
      throw new InvalidInputError(`Cannot change the network policy of sandbox "${this.vm.name}": it has no network`, { hint: "create it with --network user or --network tap" });
    }
    return policyLists(await this.service.update(change));
  }

  /** Ends the forward that carries SSH (the sandbox is stopping). */
  stopSsh(): void {
    this.sshForward?.closeAll();
  }

  /**
   * Ends serving the network and removes everything it holds on the host, once the VMM has
   * ended. Said in the log, never thrown: `cleanup` finds and removes what is left.
   */
  end(): Promise<void> {
    return (this.closed ??= endNetwork(this.vm, this.files, this));
  }

  /** The responder's and the forward's share of the end. */
  async closeServing(): Promise<void> {
    this.stopSsh();
    await this.service?.close().catch(() => {});
  }
}

/** Removes a sandbox's network from the host after its VMM ended, whether or not it was ever connected. */
export async function endNetwork(vm: SandboxRecord, files: SandboxFiles, network?: SupervisedNetwork): Promise<void> {
  await network?.closeServing();
  await reclaimNetwork({ id: vm.id, dir: files.dir, mode: vm.config.network }).catch((error: Error) =>
    logEvent("error", `supervisor: cannot remove the network of sandbox "${vm.name}": ${error.message}`, { vm: vm.id }));
}
