/**
 * User mode, the default: no privilege needed, the guest reaches the internet and nothing of the
 * host.
 *
 * The VMM (with its own user-mode stack, QEMU's slirp) runs in a user and network namespace of
 * its own, made by `unshare` as it starts. Before the VMM runs, a wrapper brings the namespace's
 * loopback up and loads the sandbox's rule set (nft.ts: namespaceRuleset), so no guest packet can
 * ever pass unfiltered. slirp's sockets are ordinary sockets in that namespace: the guest's
 * gateway (10.0.2.2) leads to the namespace's own loopback, where only the sandbox's SSH forward
 * and its DNS relay listen, never the host's. pasta then gives the namespace its way out: it
 * copies the host's address and routes into it and carries the namespace's connections out as
 * the host's own sockets. Gateway mapping is off (`--no-map-gw`) and no port is forwarded back
 * to the host except the DNS relay, so the host's loopback is out of reach; the rule set rejects
 * every address of the host's interfaces, link-local and metadata, and private ranges unless the
 * policy opens them. Two ports cross the namespace's edge, both set up by pasta: the host's
 * 127.0.0.1:<ssh port> into the namespace (for the SSH channel), and the namespace's port 53 out
 * to the sandbox's DNS responder on the host's 127.0.0.1:<dns port>.
 *
 * The namespace lives as long as its last process: the VMM and pasta. pasta does not end with the
 * VMM, so whoever sees the VMM gone ends pasta (teardown, or reclaim after a kill -9), finding it
 * by the pid-file path on its command line.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { pollUntil } from "../util/poll.ts";
import { AlreadyExistsError, BackendUnavailableError, CommandFailedError, HostDependencyMissingError, NotRunningError, TimeoutError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { aptInstallHint, DEBIAN_PACKAGES } from "../host/packages.ts";
import { which } from "../host/process.ts";
import type { Cidr } from "./addresses.ts";
import { hostAddresses } from "./host-addresses.ts";
import { namespaceRuleset, type EgressSpec } from "./nft.ts";
import type { EgressPolicy } from "./policy.ts";
import { namespaceRulesPath, pastaLogPath, pastaPidPath, removeNetworkFiles } from "./state.ts";

/** The guest's side of slirp's fixed network; DNS goes to the gateway, which the namespace relays. */
export const USER_GUEST = { ip: "10.0.2.15/24", gateway: "10.0.2.2", dns: "10.0.2.2" } as const;
/**
 * Where the VMM's SSH forward listens inside the namespace (on its loopback); pasta forwards the
 * host's 127.0.0.1:<ssh port> there. Fixed, so a host port found taken only means a new pasta.
 */
export const NAMESPACE_SSH_PORT = 22;

/** pasta could not bind the sandbox's SSH port on the host: another program holds it. */
export class HostPortTakenError extends AlreadyExistsError {
  constructor(readonly port: number, message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super(message, options);
  }
}

export interface UserNetworkSpec {
  id: string;
  dir: string;
  policy: EgressPolicy;
  sshPort: number | null;
  dnsPort: number;
}

interface Tools {
  unshare: string;
  nsenter: string;
  ip: string;
  nft: string;
  pasta: string;
}

function tools(): Tools {
  if (process.platform !== "linux") {
    throw new BackendUnavailableError(`Cannot use the user network on ${process.platform}: it needs Linux namespaces`, {
      hint: "use --network none on this host",
    });
  }
  const found = { unshare: which("unshare"), nsenter: which("nsenter"), ip: which("ip"), nft: which("nft"), pasta: which("pasta") };
  const packages: Record<keyof Tools, string> = {
    unshare: "util-linux", nsenter: "util-linux", ip: DEBIAN_PACKAGES.ip, nft: DEBIAN_PACKAGES.nft, pasta: DEBIAN_PACKAGES.pasta,
  };
  const missing = (Object.keys(found) as (keyof Tools)[]).filter((tool) => found[tool] === undefined);
  if (missing.length > 0) {
    throw new HostDependencyMissingError(`Cannot set up the sandbox network: ${missing.map((t) => `"${t}"`).join(", ")} ${missing.length === 1 ? "is" : "are"} not installed`, {
      hint: aptInstallHint(...new Set(missing.map((tool) => packages[tool]))),
    });
  }
  return found as Tools;
}

/** Checks, before anything is created, that this host can run the user network. */
export function checkUserNetwork(): void {
  tools();
}

/** What a user-mode sandbox may never reach beyond the fixed closed ranges: every host address. */
export function userEgressSpec(spec: { id: string; policy: EgressPolicy }, host: readonly Cidr[] = hostAddresses()): EgressSpec {
  return { id: spec.id, policy: spec.policy, never: host };
}

/**
 * Writes the namespace's rule set and returns the command prefix the VMM must be started through:
 * a new user and network namespace, loopback up, the rules loaded, then the VMM (same pid).
 */
export function prepareUserNetwork(spec: UserNetworkSpec): string[] {
  const found = tools();
  const rules = namespaceRulesPath(spec.dir);
  writeFileSync(rules, namespaceRuleset(userEgressSpec(spec)));
  const script = '"$1" link set lo up && "$2" -f "$3" && shift 3 && exec "$@" </dev/null';
  return [found.unshare, "--user", "--map-root-user", "--net", "--", "/bin/sh", "-c", script, "sh", found.ip, found.nft, rules];
}

/** Waits until `pid` runs in a network namespace other than ours (it may still be in unshare). */
async function waitForOwnNamespace(pid: number, timeoutMs: number): Promise<void> {
  const ours = readlinkSync("/proc/self/ns/net");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let theirs: string | undefined;
    try {
      theirs = readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      throw new NotRunningError("Cannot connect the sandbox network: the VMM exited as it started");
    }
    if (theirs !== ours) return;
    if (Date.now() > deadline) throw new TimeoutError("Cannot connect the sandbox network: the VMM never entered its own namespace");
    await sleep(2);
  }
}

/**
 * Connects the namespace of the VMM `vmmPid` to the outside with pasta and resolves once pasta is
 * set up (it writes its pid file then). Never touches a namespace that is this process's own.
 */
export async function attachPasta(spec: UserNetworkSpec, vmmPid: number, options: { timeoutMs?: number } = {}): Promise<void> {
  const found = tools();
  const timeoutMs = options.timeoutMs ?? 10_000;
  // A supervisor that takes over a running VMM finds its pasta still serving it.
  const running = pastaProcesses(spec.dir);
  if (running.length > 0 && running.every((pid) => pastaTarget(pid) === vmmPid)) return;
  await endPasta(running);
  await waitForOwnNamespace(vmmPid, timeoutMs);
  const pidFile = pastaPidPath(spec.dir);
  const logFile = pastaLogPath(spec.dir);
  rmSync(pidFile, { force: true });
  const args = [
    // As root pasta would switch to nobody, who may not enter a namespace root made.
    ...(process.getuid?.() === 0 ? ["--runas", "0"] : []),
    "--config-net", "--quiet", "--foreground",
    "--no-map-gw",
    "--tcp-ports", spec.sshPort === null ? "none" : `127.0.0.1/${spec.sshPort}:${NAMESPACE_SSH_PORT}`,
    "--udp-ports", "none",
    "--tcp-ns", `53:${spec.dnsPort}`,
    "--udp-ns", `53:${spec.dnsPort}`,
    "--pid", pidFile,
    "--log-file", logFile,
    String(vmmPid),
  ];
  const log = openSync(logFile, "a");
  let exited = false;
  let pid: number | undefined;
  try {
    const child = spawn(found.pasta, args, { detached: true, stdio: ["ignore", log, log] });
    child.once("exit", () => { exited = true; });
    child.once("error", () => { exited = true; });
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(log);
  }
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(pidFile) || readFileSync(pidFile, "utf8").trim() === "") {
    if (exited || pid === undefined || Date.now() > deadline) {
      if (pid !== undefined) killQuietly(pid);
      const said = tail(logFile);
      if (spec.sshPort !== null && /Failed to bind/.test(said)) {
        throw new HostPortTakenError(spec.sshPort, `Cannot forward the SSH port 127.0.0.1:${spec.sshPort}: it is taken`, { details: { logFile } });
      }
      throw new CommandFailedError(`Cannot connect the sandbox network: pasta ${exited ? "exited" : "did not start"}${said ? `: ${said}` : ""}`, {
        hint: /tun/i.test(said)
          ? "pasta needs /dev/net/tun to be usable by your user (mode 0666 on Debian)"
          : `see ${logFile}`,
        details: { logFile, args },
      });
    }
    await sleep(5);
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").filter((line) => !/unknown version/.test(line)).slice(-2).join(" | ");
  } catch {
    return "";
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

/** The pid of the process whose namespace a pasta serves (the last word of its command line). */
function pastaTarget(pid: number): number | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    return Number(argv[argv.length - 1]);
  } catch {
    return undefined;
  }
}

/** Processes whose command line names this sandbox's pasta pid file: its pasta, however it was left. */
export function pastaProcesses(dir: string): number[] {
  const marker = pastaPidPath(dir);
  const found: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes(marker)) found.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

/**
 * Ends what a user-mode sandbox's network holds: its pasta (the namespace goes with the last
 * process in it). Safe to run any number of times, also when nothing is left.
 */
export async function reclaimUserNetwork(dir: string): Promise<void> {
  await endPasta(pastaProcesses(dir));
  removeNetworkFiles(dir);
}

/** What is left of a user-mode sandbox's network: its pasta (the namespace lives while it does). */
export function userLeftovers(dir: string): string[] {
  return pastaProcesses(dir).map((pid) => `pasta (pid ${pid})`);
}

async function endPasta(pids: readonly number[]): Promise<void> {
  for (const pid of pids) killQuietly(pid);
  // Not our children (a supervisor or the launcher started them): their end is seen by looking.
  await pollUntil(() => !pids.some((pid) => pidAlive(pid)), { timeoutMs: 2_000, intervalMs: 5, what: "pasta to end" }).catch(() => {});
}
