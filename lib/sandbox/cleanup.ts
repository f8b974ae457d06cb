/**
 * `smolvm cleanup [NAME...]`: reclaims what sandboxes that no longer run still hold, and never
 * loses a disk nobody asked to lose.
 *
 * Without names it looks at every sandbox and every directory under `vms/`:
 * - a live sandbox (its supervisor or VMM runs and the row says running or paused) is not
 *   touched; a stopped one neither;
 * - an abandoned create (its caller died before it returned: launcher.ts) is removed whole, its
 *   processes included: its disk is a fresh copy nobody used;
 * - an interrupted delete is finished;
 * - any other sandbox whose processes are gone (it crashed, failed, or its boot was abandoned) has
 *   its leftovers reclaimed (stray processes, its network's namespace, TAP interface and firewall
 *   rules, sockets, its VMM ticket), and is removed whole only
 *   if its directory holds no disk; one that does is kept (and reported) until asked for by name;
 * - a directory without a row: its processes and network are ended; it is removed unless it holds a disk
 *   (`smolvm doctor --repair` gives it its row back);
 * - an entry of `names/` that is not the link to a sandbox of that name (lib/state/mirror.ts).
 *
 * With names (a sandbox's name or id, or a directory's id), those are removed whole, whatever
 * state they are in: processes, directory, disk, row. The report lists everything done; nothing is
 * reported removed that is not gone.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { NotFoundError } from "../errors.ts";
import { paths } from "../paths.ts";
import type { SandboxRecord } from "../state/record.ts";
import { strayNameLinks } from "../state/mirror.ts";
import { withStore } from "../state/sandboxes.ts";
import { abandoned } from "./launcher.ts";
import { sandboxFiles } from "./layout.ts";
import { destroyNow } from "./lifecycle.ts";
import { killSandboxProcesses, sandboxProcesses } from "./processes.ts";
import { isLive, reconcile } from "./status.ts";
import { removeTicket } from "./ticket.ts";
import { networkLeftovers, reclaimNetwork } from "../network/index.ts";

export interface CleanupReport {
  /** Sandboxes removed whole, by name. */
  sandboxes: string[];
  /** Dead sandboxes kept because their directory holds a disk (`cleanup NAME` removes one). */
  kept: Array<{ name: string; id: string; reason: string }>;
  /** Directories under vms/ that had no sandbox, removed. */
  strayDirs: string[];
  /** Entries of names/ that led to no sandbox of their name, removed. */
  strayNames: string[];
  /** Processes ended because nothing that runs them was left (a VMM whose sandbox is gone). */
  strayProcesses: number[];
  /** What sandboxes that no longer run had left of their networks (pasta, TAP interfaces, firewall rules), removed. */
  networks: string[];
  /** Directories of snapshot saves whose process is gone (lib/snapshots/store.ts, filled by lib/host-api.ts). */
  snapshotStaging: string[];
  dryRun: boolean;
}

export interface CleanupOptions {
  dryRun?: boolean;
  /** Remove these sandboxes (names or ids, or ids of directories without a row) whole. */
  names?: string[];
}

/**
 * Whether a sandbox's directory holds a disk of its own (an isolated-mode overlay, or the raw copy
 * a Firecracker sandbox has instead). Either is looked for: a directory without a row has no backend.
 */
function holdsDisk(id: string): boolean {
  const files = sandboxFiles(id);
  return existsSync(files.overlay) || existsSync(files.rawDisk);
}

export async function cleanup(options: CleanupOptions = {}): Promise<CleanupReport> {
  const dryRun = options.dryRun === true;
  const report: CleanupReport = { sandboxes: [], kept: [], strayDirs: [], strayNames: [], strayProcesses: [], networks: [], snapshotStaging: [], dryRun };
  if (options.names !== undefined && options.names.length > 0) return cleanupNamed(options.names, report);
  const vms = withStore((store) => store.list().map((vm) => reconcile(store, vm)));
  for (const vm of vms) await cleanupOne(vm, report);
  const known = new Set(vms.map((vm) => vm.id));
  for (const id of sandboxDirs()) {
    if (!known.has(id)) await cleanupStray(id, report);
  }
  // Read again: the sandboxes removed above took their links with them.
  report.strayNames = strayNameLinks(withStore((store) => store.list()));
  if (!dryRun) for (const link of report.strayNames) rmSync(link, { force: true });
  return report;
}

async function cleanupOne(vm: SandboxRecord, report: CleanupReport): Promise<void> {
  const files = sandboxFiles(vm.id);
  const running = sandboxProcesses(vm.id, [vm.vmmPid, vm.supervisorPid]);
  const wholly = abandoned(files)?.purpose === "create" || vm.status === "deleting";
  const network = { id: vm.id, dir: files.dir, mode: vm.config.network };
  if (wholly) {
    report.sandboxes.push(vm.name);
    report.strayProcesses.push(...running.map((p) => p.pid));
    report.networks.push(...await networkLeftovers(network));
    if (!report.dryRun) await destroyNow(vm.id);
    return;
  }
  if (vm.status === "stopped" || (running.length > 0 && (isLive(vm.status) || vm.status === "creating"))) return;
  // Nothing runs it any more: what it held goes; its disk only when asked for by name.
  report.strayProcesses.push(...running.map((p) => p.pid));
  report.networks.push(...await networkLeftovers(network));
  if (holdsDisk(vm.id)) {
    report.kept.push({ name: vm.name, id: vm.id, reason: `it is ${vm.status} and its directory holds its disk; \`smolvm cleanup ${vm.name}\` removes it` });
    if (!report.dryRun) {
      await killSandboxProcesses(vm.id, [vm.vmmPid, vm.supervisorPid]);
      await reclaimNetwork(network);
      removeTicket(files);
      for (const socket of [files.agentSocket, files.controlSocket, files.supervisorSocket]) rmSync(socket, { force: true });
    }
    return;
  }
  report.sandboxes.push(vm.name);
  if (!report.dryRun) await destroyNow(vm.id);
}

/** A directory under vms/ without a row. */
async function cleanupStray(id: string, report: CleanupReport): Promise<void> {
  const dir = paths.sandboxDir(id);
  const running = sandboxProcesses(id);
  report.strayProcesses.push(...running.map((p) => p.pid));
  // Its mode is unknown without a row: every mode's objects are looked for.
  report.networks.push(...await networkLeftovers({ id, dir }));
  if (!report.dryRun) {
    await killSandboxProcesses(id);
    await reclaimNetwork({ id, dir });
  }
  if (holdsDisk(id) && abandoned(sandboxFiles(id))?.purpose !== "create") {
    report.kept.push({ name: id, id, reason: `its directory "${dir}" has no row in the state store but holds a disk; \`smolvm doctor --repair\` restores its row, \`smolvm cleanup ${id}\` removes it` });
    return;
  }
  report.strayDirs.push(dir);
  if (!report.dryRun) rmSync(dir, { recursive: true, force: true });
}

/** `cleanup NAME...`: each removed whole, found by name, id, or directory. */
async function cleanupNamed(names: string[], report: CleanupReport): Promise<CleanupReport> {
  const dirs = new Set(sandboxDirs());
  const targets = names.map((name) => {
    const vm = withStore((store) => store.find(name));
    if (vm !== undefined) return { id: vm.id, name: vm.name };
    if (dirs.has(name)) return { id: name, name };
    throw new NotFoundError(`Cannot clean up "${name}": no sandbox and no sandbox directory has that name or id`, {
      hint: "`smolvm list --all` shows the sandboxes; `smolvm cleanup --dry-run` what cleanup would do",
    });
  });
  for (const target of targets) {
    report.strayProcesses.push(...sandboxProcesses(target.id).map((p) => p.pid));
    report.networks.push(...await networkLeftovers({ id: target.id, dir: sandboxFiles(target.id).dir }));
    report.sandboxes.push(target.name);
    if (!report.dryRun) await destroyNow(target.id);
  }
  return report;
}

function sandboxDirs(): string[] {
  try {
    return readdirSync(paths.sandboxesDir(), { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  } catch {
    return []; // no sandbox was ever made
  }
}
