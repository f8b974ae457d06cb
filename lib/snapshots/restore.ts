/**
 * Creating a sandbox from a snapshot (or a warm template): refused unless this host can restore
 * it (compat.ts) and every stored file matches its checksum (a truncated or damaged file never
 * reaches the VMM); then a new sandbox gets its own name, SSH port and disk (a copy of the
 * layer), its VM is restored from the state, and its supervisor gives the guest its own identity
 * before anyone reaches it (lib/supervisor/identity.ts). Any number of sandboxes may come from
 * one snapshot.
 */
import { join } from "node:path";
import type { SupervisorResult } from "../agent/supervisor-messages.ts";
import { parseSandboxConfig, type SandboxConfig } from "../config.ts";
import { InvalidInputError, SmolError } from "../errors.ts";
import { checkNetwork, parsePolicy, policyLists } from "../network/index.ts";
import { createNew, type Booted } from "../sandbox/lifecycle.ts";
import type { SandboxRecord } from "../state/record.ts";
import { sha256File } from "./_files.ts";
import { restoreRefusal } from "./compat.ts";
import { saveSnapshot } from "./save.ts";
import { findSnapshot, removeStored, type StoredSnapshot } from "./store.ts";

/** What a sandbox made from a snapshot may choose; the rest (image, memory, CPUs, disk, network) is the snapshot's. */
export interface FromSnapshotInput {
  name?: string;
  env?: Record<string, string>;
  channel?: SandboxConfig["channel"];
  bootTimeoutMs?: number;
  /** Where it may connect (default: where the source could); the network mode is the snapshot's. */
  allowHosts?: string[];
  denyHosts?: string[];
}

/** Refuses a snapshot with a file that is missing, truncated or altered, before any VMM reads it. */
export async function verifySnapshot(stored: StoredSnapshot): Promise<void> {
  const what = stored.manifest.kind === "template" ? `warm template of image "${stored.manifest.name}"` : `snapshot "${stored.manifest.name}"`;
  await Promise.all(stored.manifest.files.map(async (file) => {
    let actual;
    try {
      actual = await sha256File(join(stored.dir, file.file));
    } catch (cause) {
      throw new SmolError("INTEGRITY_FAILED", `Cannot restore the ${what}: its ${file.role} file "${file.file}" cannot be read (${(cause as Error).message})`, {
        hint: "remove it and take a new one", cause,
      });
    }
    if (actual.bytes !== file.bytes || actual.sha256 !== file.sha256) {
      throw new SmolError("INTEGRITY_FAILED", `Cannot restore the ${what}: its ${file.role} file "${file.file}" does not match its checksum (${actual.bytes} bytes, expected ${file.bytes}): it is damaged or truncated`, {
        hint: "remove it and take a new one",
        details: { file: join(stored.dir, file.file), expected: file.sha256, actual: actual.sha256 },
      });
    }
  }));
}

/** The refusal, as an error, when this host cannot restore the snapshot. */
export async function assertRestorable(stored: StoredSnapshot): Promise<void> {
  const why = await restoreRefusal(stored.manifest);
  if (why === undefined) return;
  throw new InvalidInputError(`Cannot create a sandbox from snapshot "${stored.manifest.name}": ${why}`, {
    hint: "a snapshot restores only with the VMM, kernel, image and accelerator it was made with; take a new one here",
    details: { snapshot: stored.dir },
  });
}

/** A new sandbox from `stored`, running and with its own identity; resolves once it answers. */
export async function createFromSnapshot(stored: StoredSnapshot, input: FromSnapshotInput = {}, options: { checked?: boolean } = {}): Promise<Booted> {
  if (options.checked !== true) await assertRestorable(stored);
  await verifySnapshot(stored);
  const disk = stored.manifest.files.find((file) => file.role === "disk");
  if (disk === undefined) throw new SmolError("INTEGRITY_FAILED", `Cannot restore snapshot "${stored.manifest.name}": it has no disk layer`);
  const config = parseSandboxConfig({
    ...stored.manifest.config,
    ...(input.name === undefined ? {} : { name: input.name }),
    ...(input.channel === undefined ? {} : { channel: input.channel }),
    ...(input.bootTimeoutMs === undefined ? {} : { bootTimeoutMs: input.bootTimeoutMs }),
    ...(input.allowHosts === undefined ? {} : { allowHosts: input.allowHosts }),
    ...(input.denyHosts === undefined ? {} : { denyHosts: input.denyHosts }),
    env: input.env ?? {},
  });
  // The snapshot's network mode, if this host can give it; the policy checked as any create's.
  checkNetwork(config.network);
  const policy = policyLists(parsePolicy(config));
  // As any create: a failure, or its caller's death, leaves nothing of the new sandbox.
  return createNew({
    config: { ...config, ...policy },
    backend: { name: stored.manifest.backend, reason: "a snapshot restores on the backend it was made with", fellBack: false },
    notices: [],
    restore: { dir: stored.dir, layer: join(stored.dir, disk.file), layerBytes: disk.bytes },
  });
}

/** Options a snapshot decides for itself: refused beside it. */
const SNAPSHOT_DECIDES = ["image", "kernelPath", "rootfsPath", "vcpus", "memoryMiB", "diskSizeMiB", "bootArgs", "diskMode", "network", "backend", "accel"] as const;

/** `create --from-snapshot NAME` with the create's options, of which the snapshot decides most. */
export async function createNamedSnapshot(name: string, options: Partial<Record<(typeof SNAPSHOT_DECIDES)[number], unknown>> & FromSnapshotInput): Promise<Booted> {
  const given = SNAPSHOT_DECIDES.filter((key) => options[key] !== undefined);
  if (given.length > 0) {
    throw new InvalidInputError(`Cannot create a sandbox from snapshot "${name}" with ${given.join(", ")}: the snapshot decides them`, {
      hint: "leave them out; name, env, the channel and where it may connect (--allow-host) may be chosen",
    });
  }
  return createFromSnapshot(findSnapshot(name), {
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.channel === undefined ? {} : { channel: options.channel }),
    ...(options.bootTimeoutMs === undefined ? {} : { bootTimeoutMs: options.bootTimeoutMs }),
    ...(options.allowHosts === undefined ? {} : { allowHosts: options.allowHosts }),
    ...(options.denyHosts === undefined ? {} : { denyHosts: options.denyHosts }),
  });
}

/**
 * A fork: a snapshot left unlisted in its staging directory, one sandbox restored from it, and
 * the snapshot removed (the fork has its own copy of the disk). `ask` is the source's
 * `supervisor.snapshot`.
 */
export async function forkSandbox(
  vm: SandboxRecord,
  options: { name?: string; env?: Record<string, string> },
  ask: (dir: string) => Promise<SupervisorResult<"supervisor.snapshot">>,
): Promise<Booted> {
  const stored = await saveSnapshot(vm, { name: `${vm.id}-fork`, publish: false, ask });
  try {
    return await createFromSnapshot(stored, {
      ...(options.name === undefined ? {} : { name: options.name }),
      ...(options.env === undefined ? {} : { env: options.env }),
    }, { checked: true });
  } finally {
    await removeStored(stored.dir).catch(() => {});
  }
}
