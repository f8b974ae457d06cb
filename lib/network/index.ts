/**
 * A sandbox's network: the one owner of everything it holds on the host (a namespace and its
 * pasta, or a TAP interface and its rules in `table inet smolvm`), from set-up to teardown.
 *
 *   chooseNetwork(requested, platform)  the mode a new sandbox gets on this platform
 *   checkNetwork(mode)                  before anything is created: can this host do it?
 *   prepareNetwork(sandbox)             before the VMM starts (sandbox/launch.ts): how to wire
 *                                       the VMM and what to tell the guest
 *   connectNetwork(sandbox, vmmPid)     once the VMM runs, by its supervisor (user mode: pasta);
 *                                       a no-op when the VMM is served already (a take-over)
 *   reclaimNetwork(ref)                 after the VMM ended, or after a kill -9 (cleanup, delete
 *                                       --force): removes whatever is left and says what it was
 *   networkLeftovers(ref)               what is left, without removing it
 *
 * While the sandbox runs, its supervisor serves its DNS and applies policy changes (service.ts).
 * Modes: `user` (the default on Linux; no privilege; user-mode.ts), `tap` (root or
 * CAP_NET_ADMIN; tap.ts), `none` (no network device; the default on macOS).
 */
import type { LaunchNetwork } from "../backends/types.ts";
import type { NetworkMode } from "../choices.ts";
import { BackendUnavailableError, CommandFailedError } from "../errors.ts";
import type { IpAddress } from "./addresses.ts";
import { learnBatch, egressBatch } from "./nft.ts";
import { applyNft } from "./nft-run.ts";
import type { EgressPolicy } from "./policy.ts";
import { checkTapNetwork, prepareTap, reclaimTap, TAP_GATEWAY, tapEgress, tapLeftovers } from "./tap.ts";
import {
  attachPasta, checkUserNetwork, HostPortTakenError, NAMESPACE_SSH_PORT, prepareUserNetwork, reclaimUserNetwork, USER_GUEST,
  userEgressSpec, userLeftovers,
} from "./user-mode.ts";


export interface SandboxNetwork {
  id: string;
  mode: NetworkMode;
  /** The sandbox's directory: rule and pid files, pasta's log. */
  dir: string;
  policy: EgressPolicy;
  /** TAP: the guest's address from the pool. */
  ip: string | null;
  /** User mode: the host port (on 127.0.0.1) of the SSH forward, if the sandbox has one. */
  sshPort: number | null;
  /** The host port the sandbox's DNS responder listens on (user and TAP modes). */
  dnsPort: number | null;
}

/** What finds a sandbox's network objects after the fact: its id and directory, and its mode when known. */
export interface NetworkRef {
  id: string;
  dir: string;
  /** Unknown for a directory without a record: every mode's objects are looked for. */
  mode?: NetworkMode;
}

/** The guest's own configuration, as the agent reads it from the kernel command line. */
export interface GuestNetwork {
  /** With its prefix length: `10.0.2.15/24`. */
  ip: string;
  gateway: string;
  dns: string;
}

export interface PreparedNetwork {
  netdev: LaunchNetwork;
  /** The command the VMM must be started through (user mode: into its own namespace); empty: none. */
  launchPrefix: string[];
  guest: GuestNetwork | undefined;
  /** `smolvm.ip=... smolvm.gw=... smolvm.dns=...` for the guest agent. */
  kernelArgs: string[];
}

/** The mode a new sandbox gets, and a notice when it is not the one a Linux host would give. */
export interface NetworkChoice {
  mode: NetworkMode;
  notice?: string;
}

/**
 * The network of a new sandbox on `platform`. Linux: what was asked, else `user`. Elsewhere
 * (macOS) the isolation the modes with a network promise rests on Linux namespaces and nftables,
 * so a sandbox gets `none` (with a notice when nobody asked) and an explicit `user` or `tap` is
 * refused rather than given a network that would reach the host.
 */
export function chooseNetwork(requested: NetworkMode | undefined, platform: NodeJS.Platform = process.platform): NetworkChoice {
  if (platform === "linux") return { mode: requested ?? "user" };
  const system = platform === "darwin" ? "macOS" : platform;
  if (requested === undefined) {
    return {
      mode: "none",
      notice: `on ${system} sandboxes have no network (--network none): the user and TAP networks keep a guest from the host with Linux namespaces and nftables; commands, files, port forwards and SSH still work through the agent`,
    };
  }
  if (requested !== "none") {
    throw new BackendUnavailableError(`Cannot use --network ${requested} on ${system}: it keeps a guest from the host's own services with Linux network namespaces and nftables, which ${system} does not have`, {
      hint: "leave --network out or use --network none (port forwards and SSH still work through the agent); run on Linux for a sandbox with a network",
    });
  }
  return { mode: "none" };
}

/** `smolvm.ip=... smolvm.gw=... smolvm.dns=...`: how the guest agent learns its network. */
export function guestKernelArgs(guest: GuestNetwork): string[] {
  return [`smolvm.ip=${guest.ip}`, `smolvm.gw=${guest.gateway}`, `smolvm.dns=${guest.dns}`];
}

function needDnsPort(sandbox: SandboxNetwork): number {
  if (sandbox.dnsPort === null) throw new RangeError(`sandbox ${sandbox.id} has no DNS port`);
  return sandbox.dnsPort;
}

function needIp(sandbox: SandboxNetwork): string {
  if (sandbox.ip === null) throw new RangeError(`sandbox ${sandbox.id} has no TAP address`);
  return sandbox.ip;
}

/** Throws a clear error when this host cannot give a sandbox this network mode. Creates nothing. */
export function checkNetwork(mode: NetworkMode): void {
  if (mode === "user") checkUserNetwork();
  if (mode === "tap") checkTapNetwork();
}

/** The guest's address and resolver in `mode` (what `info` shows). */
export function guestNetworkOf(sandbox: Pick<SandboxNetwork, "mode" | "ip">): GuestNetwork | undefined {
  if (sandbox.mode === "user") return { ...USER_GUEST };
  if (sandbox.mode === "tap" && sandbox.ip !== null) return { ip: `${sandbox.ip}/24`, gateway: TAP_GATEWAY, dns: TAP_GATEWAY };
  return undefined;
}

/**
 * Makes what the VMM needs before it starts: user mode, the namespace's rule set (loaded by the
 * launch prefix before the VMM runs, so no guest packet ever passes unfiltered); TAP mode, the
 * interface and its rules. What an earlier run of this sandbox left is removed first. A failure
 * leaves nothing.
 */
export async function prepareNetwork(sandbox: SandboxNetwork): Promise<PreparedNetwork> {
  if (sandbox.mode === "none") return { netdev: { mode: "none" }, launchPrefix: [], guest: undefined, kernelArgs: [] };
  if (sandbox.mode === "user") {
    needDnsPort(sandbox);
    await reclaimUserNetwork(sandbox.dir);
    return {
      // QEMU's forward listens inside the namespace; pasta carries the host's SSH port to it.
      netdev: { mode: "user", hostForwards: sandbox.sshPort === null ? [] : [{ hostPort: NAMESPACE_SSH_PORT, guestPort: 22 }] },
      launchPrefix: prepareUserNetwork(userSpec(sandbox)),
      guest: { ...USER_GUEST },
      kernelArgs: guestKernelArgs(USER_GUEST),
    };
  }
  const { ifname } = await prepareTap({ id: sandbox.id, ip: needIp(sandbox), dnsPort: needDnsPort(sandbox), policy: sandbox.policy });
  const guest = guestNetworkOf(sandbox)!;
  return { netdev: { mode: "tap", ifname }, launchPrefix: [], guest, kernelArgs: guestKernelArgs(guest) };
}

function userSpec(sandbox: SandboxNetwork) {
  return { id: sandbox.id, dir: sandbox.dir, policy: sandbox.policy, sshPort: sandbox.sshPort, dnsPort: needDnsPort(sandbox) };
}

/**
 * Finishes the network of the running VMM `vmmPid` (user mode: pasta gives its namespace the way
 * out and carries the SSH port in). Idempotent: a VMM served already is left as it is. When the
 * SSH port is found taken by another program, `onSshPortTaken` gives a new one (up to 5 times).
 */
export async function connectNetwork(
  sandbox: SandboxNetwork,
  vmmPid: number,
  options: { onSshPortTaken?: (port: number) => number } = {},
): Promise<{ sshPort: number | null }> {
  if (sandbox.mode !== "user") return { sshPort: sandbox.sshPort };
  let spec = userSpec(sandbox);
  for (let attempt = 1; ; attempt++) {
    try {
      await attachPasta(spec, vmmPid);
      return { sshPort: spec.sshPort };
    } catch (error) {
      if (attempt >= 5 || !(error instanceof HostPortTakenError) || options.onSshPortTaken === undefined) throw error;
      spec = { ...spec, sshPort: options.onSshPortTaken(error.port) };
    }
  }
}

/** What is left on this host of a sandbox's network (its VMM is gone or going), one line each. */
export async function networkLeftovers(ref: NetworkRef): Promise<string[]> {
  return [
    ...(ref.mode === undefined || ref.mode === "user" ? userLeftovers(ref.dir) : []),
    ...(ref.mode === undefined || ref.mode === "tap" ? await tapLeftovers(ref.id) : []),
  ];
}

/**
 * Removes everything a sandbox's network may have left (its VMM is gone) and resolves with what
 * it found; rejects naming what it could not remove, so nobody reports a clean-up that left a
 * rule or an interface behind. Idempotent.
 */
export async function reclaimNetwork(ref: NetworkRef): Promise<string[]> {
  const found = await networkLeftovers(ref);
  if (ref.mode === undefined || ref.mode === "user") await reclaimUserNetwork(ref.dir);
  if (ref.mode === undefined || ref.mode === "tap") await reclaimTap(ref.id);
  if (found.length === 0) return found;
  const left = await networkLeftovers(ref);
  if (left.length > 0) {
    throw new CommandFailedError(`Cannot remove the network of sandbox ${ref.id}: ${left.join("; ")} ${left.length === 1 ? "is" : "are"} still there`, {
      hint: "run the command again as the user who created the sandbox (TAP mode: root); `smolvm doctor` checks the host",
      details: { left },
    });
  }
  return found;
}

/** Where the sandbox's supervisor serves DNS: reached through the namespace's relay, or on the TAP gateway. */
export function responderAddress(sandbox: SandboxNetwork): { host: string; port: number } | undefined {
  if (sandbox.mode === "none" || sandbox.dnsPort === null) return undefined;
  return { host: sandbox.mode === "user" ? "127.0.0.1" : TAP_GATEWAY, port: sandbox.dnsPort };
}

/** Lets the addresses an allowed name resolved to through the sandbox's firewall. */
export async function learnAddresses(sandbox: SandboxNetwork, vmmPid: number | null, addresses: readonly IpAddress[]): Promise<void> {
  if (sandbox.mode === "none") return;
  await applyNft(learnBatch(sandbox.id, addresses), sandbox.mode === "user" ? { pid: needPid(vmmPid) } : {});
}

/**
 * Rewrites the egress rules of a running sandbox for `sandbox.policy`. `forgetLearned` drops the
 * addresses names resolved to (when a name was taken off the allow list); they come back as the
 * guest resolves still-allowed names again.
 */
export async function applyPolicy(sandbox: SandboxNetwork, vmmPid: number | null, options: { forgetLearned?: boolean } = {}): Promise<void> {
  if (sandbox.mode === "none") return;
  if (sandbox.mode === "user") {
    await applyNft(egressBatch(userEgressSpec(sandbox), options), { pid: needPid(vmmPid) });
    return;
  }
  await applyNft(egressBatch(tapEgress({ id: sandbox.id, ip: needIp(sandbox), dnsPort: needDnsPort(sandbox), policy: sandbox.policy }), options));
}

function needPid(pid: number | null): number {
  if (pid === null) throw new RangeError("the sandbox's VMM is not running");
  return pid;
}

export type { NetworkMode } from "../choices.ts";
export { HostPortTakenError } from "./user-mode.ts";
export { parsePolicy, policyLists, updatePolicy, describePolicy, parseHostEntry, parseAllowEntry, INTERNET } from "./policy.ts";
export type { EgressPolicy, HostEntry } from "./policy.ts";
