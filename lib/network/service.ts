/**
 * What a running sandbox's network needs from its owner (the supervisor) while the VM runs: the
 * DNS responder, and policy changes applied to the firewall and the responder together.
 */
import type { IpAddress } from "./addresses.ts";
import { startResponder, type Responder } from "./dns/responder.ts";
import { hostUpstreams } from "./dns/upstream.ts";
import { applyPolicy, learnAddresses, responderAddress, type SandboxNetwork } from "./index.ts";
import { formatHostEntry, updatePolicy, type EgressPolicy } from "./policy.ts";

export interface PolicyChange {
  allow?: readonly string[];
  deny?: readonly string[];
}

export interface NetworkService {
  policy(): EgressPolicy;
  /** Applies a change (firewall first, so a change that cannot be applied changes nothing) and returns the new policy. */
  update(change: PolicyChange): Promise<EgressPolicy>;
  close(): Promise<void>;
}

/**
 * Starts serving a sandbox's network. `vmmPid` is the running VMM (user mode updates its
 * namespace's rules through it). A sandbox without a network gets a service that only keeps the
 * policy.
 */
export async function startNetworkService(
  sandbox: SandboxNetwork,
  vmmPid: number | null,
  options: { log?: (message: string) => void } = {},
): Promise<NetworkService> {
  let current = sandbox.policy;
  const address = responderAddress(sandbox);
  let responder: Responder | undefined;
  if (address !== undefined) {
    // Without its responder the sandbox still runs; its lookups fail at once (nothing listens).
    responder = await startResponder({
      ...address,
      upstreams: () => hostUpstreams(),
      policy: () => current,
      learn: (addresses: IpAddress[]) => learnAddresses(sandbox, vmmPid, addresses),
      ...(options.log === undefined ? {} : { log: options.log }),
    }).catch((error: Error) => {
      options.log?.(`cannot serve DNS on ${address.host}:${address.port}: ${error.message}`);
      return undefined;
    });
  }
  // Changes apply one at a time, each to the policy the one before it left.
  let queue: Promise<unknown> = Promise.resolve();
  const apply = async (change: PolicyChange): Promise<EgressPolicy> => {
    const next = updatePolicy(current, change);
    const names = (policy: EgressPolicy) => new Set(policy.allow.map(formatHostEntry));
    const kept = names(next);
    // Addresses learned for a name that is no longer allowed must go; the rest come back on the
    // guest's next lookup.
    const forgetLearned = [...names(current)].some((name) => !kept.has(name)) || next.deny.length > current.deny.length;
    await applyPolicy({ ...sandbox, policy: next }, vmmPid, { forgetLearned });
    if (forgetLearned) responder?.forgetLearned();
    current = next;
    return next;
  };
  return {
    policy: () => current,
    update(change) {
      const result = queue.then(() => apply(change));
      queue = result.catch(() => {});
      return result;
    },
    close: async () => {
      await responder?.close();
    },
  };
}
