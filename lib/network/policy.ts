/**
 * A sandbox's egress policy: an allow list and a deny list of hosts. Pure: no effects.
 *
 * An entry is one of
 * - `internet`: every public address, and every name (what a new sandbox gets by default);
 * - a DNS name, `example.com` (that name only) or `*.example.com` (any name under it);
 * - an address or CIDR range, `203.0.113.7` or `10.1.0.0/16`.
 *
 * The deny list wins over the allow list. Names are enforced twice: the sandbox's DNS responder
 * answers only allowed names (anything else gets NXDOMAIN at once, so tools fail fast), and only
 * the addresses those answers carried are let through the firewall. Private ranges are closed
 * unless an entry names them (or a name that resolves into them); the host, link-local space and
 * the metadata address are closed whatever the policy says.
 */
import { InvalidInputError } from "../errors.ts";
import {
  cidrsOverlap, formatCidr, METADATA_ADDRESS, NEVER_ALLOWED, parseCidr, parseIp, type Cidr,
} from "./addresses.ts";

export const INTERNET = "internet";
/** The default allow list: the public internet, no private networks. */
export const DEFAULT_ALLOW_HOSTS: readonly string[] = [INTERNET];

export type HostEntry =
  | { kind: "internet" }
  | { kind: "name"; name: string; wildcard: boolean }
  | { kind: "cidr"; cidr: Cidr };

export interface EgressPolicy {
  allow: readonly HostEntry[];
  deny: readonly HostEntry[];
}

const LABEL = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)$/;

const ENTRY_HINT = "give an address (203.0.113.7), a CIDR range (10.1.0.0/16), a DNS name (example.com or " +
  `*.example.com), or "${INTERNET}" for every public address`;

/** Parses one `--allow-host`/`--deny-host` value. Names are lower-cased, a trailing dot dropped. */
export function parseHostEntry(text: string): HostEntry {
  const value = text.trim().toLowerCase();
  if (value === INTERNET) return { kind: "internet" };
  const range = parseCidr(value);
  if (range !== undefined) return { kind: "cidr", cidr: range };
  if (value.includes("/") || parseIp(value.split("/")[0]!) !== undefined) {
    throw new InvalidInputError(`Cannot use "${text}" as a host: it is not a valid CIDR range`, { hint: ENTRY_HINT });
  }
  const wildcard = value.startsWith("*.");
  const name = (wildcard ? value.slice(2) : value).replace(/\.$/, "");
  const labels = name.split(".");
  const valid = name.length > 0 && name.length <= 253 && labels.every((label) => LABEL.test(label)) &&
    // An all-digit last label is a mistyped address (10.0.0.256), never a top-level domain.
    !/^\d+$/.test(labels[labels.length - 1]!);
  if (!valid || name === "localhost" || name.endsWith(".localhost")) {
    throw new InvalidInputError(`Cannot use "${text}" as a host: it is not an address, a CIDR range or a DNS name`, {
      hint: ENTRY_HINT,
    });
  }
  return { kind: "name", name, wildcard };
}

/** An entry that may go on an allow list: the host and link-local space never can. */
export function parseAllowEntry(text: string): HostEntry {
  const entry = parseHostEntry(text);
  if (entry.kind === "cidr") {
    const closed = NEVER_ALLOWED.find((range) => cidrsOverlap(range, entry.cidr));
    if (closed !== undefined) {
      throw new InvalidInputError(`Cannot allow "${text}": it overlaps ${formatCidr(closed)}, which a sandbox never reaches`, {
        hint: `loopback, link-local (including the metadata address ${METADATA_ADDRESS}) and multicast stay closed in every mode`,
      });
    }
  }
  return entry;
}

export function formatHostEntry(entry: HostEntry): string {
  if (entry.kind === "internet") return INTERNET;
  if (entry.kind === "cidr") return formatCidr(entry.cidr);
  return entry.wildcard ? `*.${entry.name}` : entry.name;
}

function sameEntry(a: HostEntry, b: HostEntry): boolean {
  return formatHostEntry(a) === formatHostEntry(b);
}

/** The policy of `allowHosts`/`denyHosts` as stored in a sandbox's config. Throws InvalidInputError. */
export function parsePolicy(lists: { allowHosts?: readonly string[]; denyHosts?: readonly string[] }): EgressPolicy {
  return {
    allow: dedupe((lists.allowHosts ?? DEFAULT_ALLOW_HOSTS).map(parseAllowEntry)),
    deny: dedupe((lists.denyHosts ?? []).map(parseHostEntry)),
  };
}

export function policyLists(policy: EgressPolicy): { allowHosts: string[]; denyHosts: string[] } {
  return { allowHosts: policy.allow.map(formatHostEntry), denyHosts: policy.deny.map(formatHostEntry) };
}

function dedupe(entries: HostEntry[]): HostEntry[] {
  return entries.filter((entry, i) => entries.findIndex((other) => sameEntry(other, entry)) === i);
}

/**
 * `smolvm network allow`: each entry leaves the deny list and joins the allow list.
 * `smolvm network deny`: each entry leaves the allow list and joins the deny list.
 * So the last word on an entry wins, and denying `internet` closes the public internet.
 */
export function updatePolicy(policy: EgressPolicy, change: { allow?: readonly string[]; deny?: readonly string[] }): EgressPolicy {
  let allow = [...policy.allow];
  let deny = [...policy.deny];
  for (const text of change.allow ?? []) {
    const entry = parseAllowEntry(text);
    deny = deny.filter((other) => !sameEntry(other, entry));
    allow.push(entry);
  }
  for (const text of change.deny ?? []) {
    const entry = parseHostEntry(text);
    allow = allow.filter((other) => !sameEntry(other, entry));
    if (entry.kind !== "internet") deny.push(entry);
  }
  return { allow: dedupe(allow), deny: dedupe(deny) };
}

export function allowsInternet(policy: EgressPolicy): boolean {
  return policy.allow.some((entry) => entry.kind === "internet");
}

function nameMatches(entry: HostEntry, name: string): boolean {
  if (entry.kind !== "name") return false;
  return entry.wildcard ? name.endsWith(`.${entry.name}`) : name === entry.name;
}

export type NameVerdict =
  /** Not to be resolved: the responder answers NXDOMAIN. */
  | "refuse"
  /** Resolved; the addresses in the answer are let through the firewall (the name was named). */
  | "learn"
  /** Resolved as for any public name; the answer opens nothing the policy did not open already. */
  | "resolve";

/** What the DNS responder does with a query for `name` (any case, trailing dot or not). */
export function judgeName(policy: EgressPolicy, name: string): NameVerdict {
  const normal = name.toLowerCase().replace(/\.$/, "");
  if (policy.deny.some((entry) => nameMatches(entry, normal))) return "refuse";
  if (policy.allow.some((entry) => nameMatches(entry, normal))) return "learn";
  return allowsInternet(policy) ? "resolve" : "refuse";
}

/** The CIDR entries of a list, by family. */
export function cidrEntries(entries: readonly HostEntry[]): Cidr[] {
  return entries.flatMap((entry) => (entry.kind === "cidr" ? [entry.cidr] : []));
}

/** One line for `info`: `internet; deny: evil.example` or `api.github.com, 10.1.0.0/16`. */
export function describePolicy(policy: EgressPolicy): string {
  const allow = policy.allow.length === 0 ? "nothing" : policy.allow.map(formatHostEntry).join(", ");
  return policy.deny.length === 0 ? allow : `${allow}; deny: ${policy.deny.map(formatHostEntry).join(", ")}`;
}
