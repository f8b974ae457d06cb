/**
 * Pure allocation rules: which address, port, CID or name a new sandbox gets, given the ones
 * already taken. The store calls these inside a write transaction, so "lowest free value" is
 * race-free across processes.
 */
import { SmolError } from "../errors.ts";
import { randomBytes, randomHex } from "../util/random.ts";

/** TAP-mode guest addresses: 172.16.0.1 is the host side, .255 is broadcast. */
export const IP_POOL = { prefix: "172.16.0.", first: 2, last: 254 } as const;
/** Host ports on 127.0.0.1 a sandbox holds: its SSH forward and its DNS responder. */
export const SSH_PORT_POOL = { first: 2200, last: 2999 } as const;
/** vsock context ids: 0-2 are reserved (hypervisor, local, host). */
export const CID_POOL = { first: 3, last: 0xffff_fffe } as const;

export function lowestFree(taken: Iterable<number>, first: number, last: number, what: string): number {
  const used = new Set(taken);
  for (let candidate = first; candidate <= last; candidate++) {
    if (!used.has(candidate)) return candidate;
  }
  throw new SmolError("RESOURCE_EXHAUSTED", `Cannot allocate a ${what}: all ${last - first + 1} are in use`, {
    hint: "delete sandboxes you no longer need (`smolvm list`, `smolvm delete NAME`), or run `smolvm cleanup`",
  });
}

export function allocateIp(taken: Iterable<string>): string {
  const hosts = [...taken].map((ip) => Number(ip.slice(IP_POOL.prefix.length)));
  return IP_POOL.prefix + lowestFree(hosts, IP_POOL.first, IP_POOL.last, "sandbox IP address");
}

export function allocateSshPort(taken: Iterable<number>): number {
  return lowestFree(taken, SSH_PORT_POOL.first, SSH_PORT_POOL.last, "SSH port");
}

/** The host port of a sandbox's DNS responder: from the same pool, never one an SSH forward has. */
export function allocateDnsPort(taken: Iterable<number>): number {
  return lowestFree(taken, SSH_PORT_POOL.first, SSH_PORT_POOL.last, "DNS responder port");
}

export function allocateCid(taken: Iterable<number>): number {
  return lowestFree(taken, CID_POOL.first, CID_POOL.last, "vsock CID");
}

const ADJECTIVES = [
  "amber", "brave", "brisk", "calm", "clever", "cosmic", "crisp", "dapper", "eager", "fuzzy",
  "gentle", "glad", "happy", "jolly", "keen", "lucky", "mellow", "nimble", "plucky", "quick",
  "quiet", "rapid", "shiny", "snappy", "sunny", "swift", "tidy", "witty", "zesty", "zippy",
];
const NOUNS = [
  "badger", "beaver", "bison", "crane", "falcon", "ferret", "finch", "gecko", "heron", "ibex",
  "koala", "lemur", "lynx", "marten", "moose", "newt", "ocelot", "otter", "panda", "puffin",
  "quail", "raven", "robin", "seal", "stoat", "tapir", "tern", "walrus", "wombat", "yak",
];

/** A readable, unused name: `swift-otter`, then `swift-otter-2`... if the pair is taken. */
export function generateName(taken: ReadonlySet<string>, random: () => number = secureRandom): string {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  const base = `${pick(ADJECTIVES)}-${pick(NOUNS)}`;
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) {
    const candidate = `${base}-${n}`;
    if (!taken.has(candidate)) return candidate;
  }
}

/** Sandbox ids: 12 hex characters, short enough for socket paths under the 108-byte limit. */
export function generateId(): string {
  return randomHex(6);
}

function secureRandom(): number {
  return randomBytes(4).readUInt32BE(0) / 0x1_0000_0000;
}
