/**
 * TAP mode (root or CAP_NET_ADMIN): one TAP interface per sandbox, `sm-<id>`, with the host's
 * gateway address 172.16.0.1 on it and a route to the sandbox's own address from the pool; the
 * rules in `table inet smolvm` (nft.ts: tapSetupBatch) masquerade its traffic out, keep other
 * sandboxes and the outside from opening connections to it, keep it from every host service but
 * its DNS responder, and apply its egress policy. Set up before the VMM starts; torn down when it
 * ends, and by `reclaim` after a kill -9.
 *
 * Forwarding must be on for a sandbox's packets to leave the host: if `net.ipv4.ip_forward` is 0
 * it is set to 1 (as Docker does), which the docs say. Our rules only ever touch packets of
 * sandbox interfaces.
 */
import { accessSync, constants, readFileSync, writeFileSync } from "node:fs";
import { AlreadyExistsError, BackendUnavailableError, CommandFailedError, HostDependencyMissingError } from "../errors.ts";
import { aptInstallHint, DEBIAN_PACKAGES } from "../host/packages.ts";
import { runHost, which } from "../host/process.ts";
import { parseCidr, parseIp, type Cidr, type IpAddress } from "./addresses.ts";
import { objectNamesOf, TABLE, tapEgressSpec, tapSetupBatch, tapTeardownBatch, type TapSpec } from "./nft.ts";
import { applyNft, listSmolvmTable, runWithInput } from "./nft-run.ts";
import type { EgressPolicy } from "./policy.ts";

/** The host's side of every TAP sandbox; the guests' addresses come from the pool around it. */
export const TAP_GATEWAY = "172.16.0.1";
export const TAP_POOL: Cidr = parseCidr("172.16.0.0/24")!;
const CAP_NET_ADMIN = 12;

/** `sm-` and the 12-hex-digit sandbox id: 15 characters, the kernel's limit. */
export function tapName(id: string): string {
  if (!/^[0-9a-f]{12}$/.test(id)) throw new RangeError(`not a sandbox id: ${id}`);
  return `sm-${id}`;
}

/** The interface alias that marks an interface as this sandbox's (so a clash is told from a leftover). */
const aliasOf = (id: string) => `smolvm sandbox ${id}`;

export interface TapNetworkSpec {
  id: string;
  /** The guest's address, allocated from the pool with the sandbox's row. */
  ip: string;
  dnsPort: number;
  policy: EgressPolicy;
}

/** Whether the effective capability set of this process has `bit`. */
export function hasCapability(bit: number): boolean {
  try {
    const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return line !== null && ((BigInt(`0x${line[1]}`) >> BigInt(bit)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** Checks, before anything is created, that this process may make TAP interfaces and rules. */
export function checkTapNetwork(): void {
  if (process.platform !== "linux") {
    throw new BackendUnavailableError(`Cannot use --network tap on ${process.platform}: TAP mode is Linux only`, {
      hint: "use the default user network",
    });
  }
  if (!hasCapability(CAP_NET_ADMIN)) {
    throw new BackendUnavailableError("Cannot use --network tap: this process lacks CAP_NET_ADMIN, which creating TAP interfaces and firewall rules needs", {
      hint: "run smolvm as root (sudo), or give it the capability; or use the default --network user, which needs no privilege",
    });
  }
  try {
    accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
  } catch {
    throw new BackendUnavailableError("Cannot use --network tap: /dev/net/tun is missing or not readable and writable", {
      hint: "load the tun module (`modprobe tun`) or run where /dev/net/tun exists",
    });
  }
  for (const [tool, pkg] of [["ip", DEBIAN_PACKAGES.ip], ["nft", DEBIAN_PACKAGES.nft]] as const) {
    if (which(tool) === undefined) {
      throw new HostDependencyMissingError(`Cannot use --network tap: "${tool}" is not installed`, { hint: aptInstallHint(pkg) });
    }
  }
}

function tapSpecOf(spec: TapNetworkSpec): TapSpec {
  const guest = parseIp(spec.ip);
  if (guest === undefined) throw new RangeError(`not an address: ${spec.ip}`);
  return {
    id: spec.id, ifname: tapName(spec.id), guest, gateway: parseIp(TAP_GATEWAY)!, dnsPort: spec.dnsPort, policy: spec.policy, pool: TAP_POOL,
  };
}

export const tapEgress = (spec: TapNetworkSpec) => tapEgressSpec(tapSpecOf(spec));

async function ip(args: readonly string[]) {
  return runHost(which("ip") ?? "ip", ["-o", ...args], { timeoutMs: 10_000 });
}

/** The alias of interface `ifname`, "" when it has none, undefined when there is no such interface. */
async function interfaceAlias(ifname: string): Promise<string | undefined> {
  const shown = await ip(["link", "show", "dev", ifname]);
  if (shown.code !== 0) return undefined;
  return /\\\s+alias (.*)$/m.exec(shown.stdout)?.[1]?.trim() ?? "";
}

/**
 * Creates the sandbox's TAP interface and rules. A leftover of the same sandbox (a kill -9) is
 * reclaimed first; an interface of that name that is not ours is an error, and nothing is made.
 */
export async function prepareTap(spec: TapNetworkSpec, options: { owner?: number } = {}): Promise<{ ifname: string; guest: IpAddress }> {
  const tap = tapSpecOf(spec);
  const alias = await interfaceAlias(tap.ifname);
  if (alias !== undefined && alias !== aliasOf(spec.id)) {
    throw new AlreadyExistsError(`Cannot create the TAP interface "${tap.ifname}": an interface of that name exists and is not this sandbox's`, {
      hint: `remove it (\`ip link del ${tap.ifname}\`) if nothing needs it, or delete and re-create the sandbox`,
    });
  }
  if (alias !== undefined) await reclaimTap(spec.id);
  const owner = options.owner ?? process.getuid?.() ?? 0;
  const commands = [
    `tuntap add dev ${tap.ifname} mode tap vnet_hdr user ${owner}`,
    `link set dev ${tap.ifname} alias "${aliasOf(spec.id)}"`,
    `addr add ${TAP_GATEWAY}/32 peer ${spec.ip}/32 dev ${tap.ifname}`,
    `link set dev ${tap.ifname} up`,
  ];
  try {
    await runWithInput([which("ip") ?? "ip", "-batch", "-"], `${commands.join("\n")}\n`, `Cannot create the TAP interface "${tap.ifname}"`);
    enableForwarding();
    await applyNft(tapSetupBatch(tap), {}, `Cannot load the firewall rules of "${tap.ifname}"`);
  } catch (error) {
    await reclaimTap(spec.id).catch(() => {});
    throw error;
  }
  return { ifname: tap.ifname, guest: tap.guest };
}

function enableForwarding(): void {
  const file = "/proc/sys/net/ipv4/ip_forward";
  if (readFileSync(file, "utf8").trim() === "1") return;
  try {
    writeFileSync(file, "1\n");
  } catch (error) {
    throw new BackendUnavailableError(`Cannot use --network tap: IPv4 forwarding is off and cannot be turned on (${(error as Error).message})`, {
      hint: "turn it on once: sysctl -w net.ipv4.ip_forward=1",
    });
  }
}

/** Whether `id` could name a TAP sandbox's objects (a sandbox id: 12 hex digits). */
function isSandboxId(id: string): boolean {
  return /^[0-9a-f]{12}$/.test(id);
}

/**
 * What of sandbox `id`'s TAP network exists on this host: its interface (only when it carries
 * this sandbox's alias: an interface of that name that is not ours is not ours to remove) and its
 * objects in `table inet smolvm`. The rules can only be listed with CAP_NET_ADMIN, which is also
 * what making them took: without it there are none of this process's making.
 */
export async function tapLeftovers(id: string): Promise<string[]> {
  if (!isSandboxId(id)) return [];
  const found: string[] = [];
  const ifname = tapName(id);
  if ((await interfaceAlias(ifname)) === aliasOf(id)) found.push(`TAP interface "${ifname}"`);
  const rules = await tapRulesOf(id);
  if (rules.length > 0) found.push(`firewall rules of sandbox ${id} in table ${TABLE} (${rules.join(", ")})`);
  return found;
}

/** The names of sandbox `id`'s objects in `table inet smolvm` (none when the table does not exist). */
async function tapRulesOf(id: string): Promise<string[]> {
  if (process.platform !== "linux" || !hasCapability(CAP_NET_ADMIN) || which("nft") === undefined) return [];
  const table = await listSmolvmTable();
  return objectNamesOf(id).filter((name) => new RegExp(`\\b${name}\\b`).test(table));
}

/**
 * Removes the sandbox's TAP interface (only if it is ours) and every rule of it. Safe to run any
 * number of times, also when nothing is left; touches the firewall only when it holds something
 * of this sandbox's (so a host that never used TAP mode never gets smolvm's table).
 */
export async function reclaimTap(id: string): Promise<void> {
  if (!isSandboxId(id)) return;
  const ifname = tapName(id);
  const alias = await interfaceAlias(ifname);
  if (alias === aliasOf(id)) {
    const removed = await ip(["link", "del", "dev", ifname]);
    if (removed.code !== 0 && (await interfaceAlias(ifname)) !== undefined) {
      throw new CommandFailedError(`Cannot remove the TAP interface "${ifname}": ${removed.stderr.trim()}`);
    }
  }
  if ((await tapRulesOf(id)).length === 0) return;
  await applyNft(tapTeardownBatch(id, ifname), {}, `Cannot remove the firewall rules of "${ifname}"`);
}
