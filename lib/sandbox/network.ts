/**
 * A sandbox's network as the SDK shows it (what `info` says) and `vm.network`, which changes its
 * egress policy: at once through its supervisor while it runs (the firewall and the DNS responder
 * together), kept for its next start otherwise. lib/network is loaded by the calls that use it:
 * every CLI command loads the SDK's handle.
 */
import type { SupervisorOp, SupervisorRequest, SupervisorResult } from "../agent/supervisor-messages.ts";
import type { NetworkMode } from "../choices.ts";
import { InvalidInputError } from "../errors.ts";
import { withStore } from "../state/sandboxes.ts";
import type { SandboxRecord } from "../state/record.ts";
import { isLive, readSandbox } from "./status.ts";

/** Where a sandbox may connect: canonical host entries (`internet`, names, `*.domain`, addresses, CIDRs). */
export interface NetworkPolicy {
  allowHosts: string[];
  /** Never reachable, whatever `allowHosts` says. */
  denyHosts: string[];
}

/** A sandbox's network as `info` shows it. */
export interface SandboxNetworkInfo extends NetworkPolicy {
  /** `user` (the internet, nothing of the host), `tap`, or `none`. */
  network: NetworkMode;
  /** The guest's own address (no prefix); null without a network. */
  guestIp: string | null;
}

export async function networkInfoOf(vm: SandboxRecord): Promise<SandboxNetworkInfo> {
  const { guestNetworkOf, parsePolicy, policyLists } = await import("../network/index.ts");
  const guest = guestNetworkOf({ mode: vm.config.network, ip: vm.ip });
  return { network: vm.config.network, guestIp: guest === undefined ? null : guest.ip.split("/")[0]!, ...policyLists(parsePolicy(vm.config)) };
}

/** `vm.network.update` / `smolvm network allow|deny`: hosts to allow and hosts to deny. */
export interface NetworkPolicyChange {
  allow?: string[];
  deny?: string[];
}

/** Longest list of hosts one change may carry (a sandbox's whole policy holds 256 at most). */
const MAX_CHANGE = 256;

function checkChange(change: NetworkPolicyChange): { allow: string[]; deny: string[] } {
  const list = (value: unknown, what: string): string[] => {
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.some((entry) => typeof entry !== "string") || value.length > MAX_CHANGE) {
      throw new InvalidInputError(`Invalid ${what}: expected an array of at most ${MAX_CHANGE} hosts`, { hint: 'e.g. ["api.github.com", "10.1.0.0/16"]' });
    }
    return value as string[];
  };
  return { allow: list(change.allow, "allow"), deny: list(change.deny, "deny") };
}

/** What `vm.network` needs from the SDK handle. */
export interface NetworkAccess {
  id(): string;
  /** A `supervisor.*` operation on the sandbox's supervisor. */
  supervisor<Op extends SupervisorOp>(op: Op, request: SupervisorRequest<Op>, what: string): Promise<SupervisorResult<Op>>;
}

export class Network {
  constructor(private readonly access: NetworkAccess) {}

  /**
   * Allows and denies hosts: DNS names, `*.example.com`, addresses, CIDR ranges, or `internet`
   * (every public address). The last word on an entry wins; a denied name stops resolving in
   * the guest. Applied at once while the sandbox runs; resolves to the policy now in force.
   *
   * ```ts
   * await vm.network.update({ deny: ["internet"], allow: ["api.github.com"] });
   * ```
   */
  async update(change: NetworkPolicyChange): Promise<NetworkPolicy> {
    const { allow, deny } = checkChange(change);
    const vm = readSandbox(this.access.id());
    if (vm.config.network === "none") {
      throw new InvalidInputError(`Cannot change the network policy of sandbox "${vm.name}": it has no network`, {
        hint: "create it with --network user (the default on Linux) or --network tap",
      });
    }
    // Checked here too, so a bad entry is refused before the supervisor is asked anything.
    const { parsePolicy, policyLists, updatePolicy } = await import("../network/index.ts");
    const next = policyLists(updatePolicy(parsePolicy(vm.config), { allow, deny }));
    if (isLive(vm.status)) return this.access.supervisor("supervisor.network", { allow, deny }, "change the network of");
    withStore((store) => store.update(vm.id, { config: { ...vm.config, ...next } }));
    return next;
  }
}
