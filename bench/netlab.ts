/**
 * A stand-in "internet" for measuring sandbox networks without touching the real one: two network
 * namespaces made for the run (root only), joined by a veth pair,
 *
 *   "internet": 198.18.0.1 (router), servers on addresses routed to its loopback (198.18.1.0/24)
 *   "host":     198.18.0.2, default route via 198.18.0.1; smolvm runs its sandboxes in here
 *
 * from the benchmarking range 198.18.0.0/15, so nothing collides with the machine's own
 * networks, and the real host's routes, addresses and rules stay untouched. `close()` removes
 * both namespaces and whatever runs in them; it is also registered to run at exit.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { BackendUnavailableError, CommandFailedError } from "../lib/errors.ts";
import { which } from "../lib/host/process.ts";

export const NETLAB = { router: "198.18.0.1", host: "198.18.0.2", server: "198.18.1.10" } as const;

export interface NetLab {
  inet: string;
  host: string;
  /** `argv` inside a namespace of the lab (with the host namespace's resolv.conf, when one was given). */
  inside(ns: "inet" | "host", argv: readonly string[]): string[];
  /** Runs a long-lived program in a namespace; it ends with the lab. */
  start(ns: "inet" | "host", argv: readonly string[]): ChildProcess;
  close(): void;
}

/** Why this machine cannot build a lab, or undefined when it can. */
export function netLabUnavailable(): string | undefined {
  if (process.platform !== "linux") return "network namespaces are Linux only";
  if (process.getuid?.() !== 0) return "building a test network (network namespaces) needs root";
  for (const tool of ["ip", "nft", "pasta", "unshare", "nsenter"]) if (which(tool) === undefined) return `"${tool}" is not installed`;
  return undefined;
}

function run(argv: readonly string[]): void {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  if (result.status !== 0) {
    throw new CommandFailedError(`Cannot build the test network: ${argv.join(" ")}: ${result.stderr.trim()}`);
  }
}

/**
 * Builds the lab. `serverAddresses` are added to the internet namespace's loopback (routed to it),
 * `resolver` becomes the host namespace's resolv.conf nameserver.
 */
export function createNetLab(options: { serverAddresses?: readonly string[]; resolver?: string } = {}): NetLab {
  const why = netLabUnavailable();
  if (why !== undefined) throw new BackendUnavailableError(`Cannot build the test network: ${why}`);
  const tag = randomBytes(3).toString("hex");
  const inet = `smolvm-lab-${tag}-inet`;
  const host = `smolvm-lab-${tag}-host`;
  const children: ChildProcess[] = [];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const child of children) child.kill("SIGKILL");
    for (const ns of [inet, host]) spawnSync("ip", ["netns", "del", ns]);
    rmSync(`/etc/netns/${host}`, { recursive: true, force: true });
  };
  process.once("exit", close);
  try {
    run(["ip", "netns", "add", inet]);
    run(["ip", "netns", "add", host]);
    run(["ip", "link", "add", `smi${tag}`, "type", "veth", "peer", "name", `smh${tag}`]);
    run(["ip", "link", "set", `smi${tag}`, "netns", inet]);
    run(["ip", "link", "set", `smh${tag}`, "netns", host]);
    const i = (...args: string[]) => run(["ip", "-n", inet, ...args]);
    const h = (...args: string[]) => run(["ip", "-n", host, ...args]);
    i("addr", "add", `${NETLAB.router}/24`, "dev", `smi${tag}`);
    i("link", "set", `smi${tag}`, "up");
    i("link", "set", "lo", "up");
    for (const address of [NETLAB.server, ...(options.serverAddresses ?? [])]) i("addr", "add", `${address}/32`, "dev", "lo");
    h("addr", "add", `${NETLAB.host}/24`, "dev", `smh${tag}`);
    h("link", "set", `smh${tag}`, "up");
    h("link", "set", "lo", "up");
    h("route", "add", "default", "via", NETLAB.router);
    if (options.resolver !== undefined) {
      // `ip netns exec` mounts this over /etc/resolv.conf for everything it runs in the namespace.
      mkdirSync(`/etc/netns/${host}`, { recursive: true });
      writeFileSync(`/etc/netns/${host}/resolv.conf`, `nameserver ${options.resolver}\n`);
    }
  } catch (error) {
    close();
    throw error;
  }
  const inside = (ns: "inet" | "host", argv: readonly string[]) => ["ip", "netns", "exec", ns === "inet" ? inet : host, ...argv];
  return {
    inet,
    host,
    inside,
    start(ns, argv) {
      const full = inside(ns, argv);
      const child = spawn(full[0]!, full.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
      children.push(child);
      return child;
    },
    close,
  };
}
