/**
 * Taking a snapshot of a sandbox, from the caller's side. The supervisor stops the guest, has
 * the backend write its state and copy its disk into a staging directory, and runs it again
 * (lib/supervisor/snapshot.ts); then, with the guest running, this compresses the state, lets
 * the backend pack the disk layer, records checksums and what a restore must match in the
 * manifest, and moves the directory into place. A failure at any step (a full disk included)
 * removes the staging directory: nothing half-written is ever listed.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { SupervisorResult } from "../agent/supervisor-messages.ts";
import { backendFor, snapshotSupport } from "../backends/select.ts";
import { freeBytes, InvalidInputError, smolError, toSmolError } from "../errors.ts";
import { hostGuestArch } from "../kernel/arch.ts";
import { logEvent } from "../log.ts";
import { paths } from "../paths.ts";
import { assertMay } from "../sandbox/status.ts";
import type { SandboxRecord } from "../state/record.ts";
import { compressFile, sha256File, stampOf } from "./_files.ts";
import { SNAPSHOT_FORMAT, writeManifest, type SnapshotFile, type SnapshotManifest } from "./manifest.ts";
import { makeStaging, nameTaken, parseSnapshotName, publish, type StoredSnapshot } from "./store.ts";

type SnapshotTaken = SupervisorResult<"supervisor.snapshot">;

export interface SaveOptions {
  /** Default: `<sandbox>-<UTC date and time>`. */
  name?: string;
  /** `template`: a warm template (`root` is then the warm directory and the name the image's). */
  kind?: "snapshot" | "template";
  root?: string;
  /** Replace a snapshot of the same name (templates). */
  replace?: boolean;
  /**
   * `false`: leave it in its staging directory, unlisted, for one restore (a fork); the caller
   * removes it, and `cleanup` does once the caller's process is gone.
   */
  publish?: boolean;
  /** Asks the sandbox's supervisor to stop, save into `dir` and resume (`supervisor.snapshot`). */
  ask: (dir: string) => Promise<SnapshotTaken>;
}

/**
 * Whether the file system under `root` has (almost) no room left: QEMU reports a full disk only
 * as a failed migration ("broken pipe" from the writer it runs), so the space itself is asked.
 */
function nearlyFull(root: string): boolean {
  const free = freeBytes(root);
  return free !== undefined && free < 16 * 2 ** 20;
}

/** `dev-20261202-031502`, shortened to fit the 63 characters of a name. */
export function defaultSnapshotName(sandbox: string, at: Date = new Date()): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${sandbox.slice(0, 63 - stamp.length - 1).replace(/-+$/, "")}-${stamp}`;
}

/** Snapshots a running or paused sandbox; resolves once the snapshot is stored and listed. */
export async function saveSnapshot(vm: SandboxRecord, options: SaveOptions): Promise<StoredSnapshot> {
  const kind = options.kind ?? "snapshot";
  const root = options.root ?? paths.snapshotsDir();
  const name = kind === "snapshot" ? parseSnapshotName(options.name ?? defaultSnapshotName(vm.name)) : options.name!;
  assertMay(vm, { kind: "control", what: "snapshot" });
  if (vm.config.diskMode !== "isolated") {
    throw new InvalidInputError(`Cannot snapshot sandbox "${vm.name}": its disk is the image itself (--disk-mode ${vm.config.diskMode})`, {
      hint: "snapshots need an isolated disk (the default); create the sandbox without --disk-mode shared",
    });
  }
  const target = join(root, name);
  const publishing = options.publish !== false;
  if (publishing && !options.replace && existsSync(target)) throw nameTaken(target);
  const backend = backendFor(vm.backend ?? "qemu");
  const arch = hostGuestArch();
  const staging = makeStaging(root, name);
  try {
    // What the restore must match, before the guest is stopped: none of it needs the guest.
    const support = snapshotSupport(backend, `snapshot sandbox "${vm.name}"`);
    const [build, kernelHash] = await Promise.all([support.build(arch), sha256File(vm.config.kernelPath!)]);
    const taken = await options.ask(staging);
    const files: SnapshotFile[] = [];
    const layer = await support.packDisk(staging, vm.config.rootfsPath!);
    files.push({ role: "disk", file: layer, encoding: "layer", ...(await sha256File(join(staging, layer))) });
    for (const entry of readdirSync(staging).sort()) {
      if (entry === layer) continue;
      const stored = await compressFile(join(staging, entry), join(staging, `${entry}.zst`));
      rmSync(join(staging, entry));
      files.push({ role: entry === "memory" ? "memory" : "state", file: `${entry}.zst`, encoding: "zstd", ...stored });
    }
    const { name: _name, env: _env, ...config } = vm.config;
    const manifest: SnapshotManifest = {
      format: SNAPSHOT_FORMAT,
      kind,
      name,
      createdAt: Date.now(),
      source: { id: vm.id, name: vm.name },
      backend: backend.name,
      vmm: build,
      arch,
      accel: taken.accel,
      kernel: { ...stampOf(vm.config.kernelPath!), sha256: kernelHash.sha256 },
      image: { name: vm.config.image, ...stampOf(vm.config.rootfsPath!) },
      config,
      pausedMs: Math.round(taken.pausedMs),
      files,
    };
    await writeManifest(staging, manifest);
    if (publishing) await publish(staging, target, { replace: options.replace === true });
    logEvent("info", "snapshot saved", { vm: vm.id, snapshot: name, kind, pausedMs: manifest.pausedMs, files: files.map((f) => `${f.file}:${f.bytes}`) });
    return { dir: publishing ? target : staging, manifest };
  } catch (thrown) {
    rmSync(staging, { recursive: true, force: true });
    const error = toSmolError(thrown);
    if (error.code === "ALREADY_EXISTS") throw error;
    const full = error.code === "HOST_DISK_FULL" || /ENOSPC|No space left/i.test(error.message) || nearlyFull(root);
    throw smolError(full ? "HOST_DISK_FULL" : error.code, `Cannot save snapshot "${name}" of sandbox "${vm.name}": ${error.message}`, {
      hint: full ? `free some space under ${root}; the sandbox runs on, and nothing of the snapshot was kept` : error.hint ?? "the sandbox runs on as it was",
      cause: thrown,
    });
  }
}
