/**
 * Warm creates: per image, a template snapshot of a freshly booted, idle sandbox
 * (`warm/<image>/`), so that a plain create restores it instead of booting. The template is made
 * by `smolvm image warm NAME`, or on first use when warm creates are asked for (`warm: true`,
 * `--warm`, SMOLVM_WARM=1): that create boots cold and its sandbox, fresh and idle, becomes the
 * template before it is handed over. The caller may give commands that ready the sandbox before
 * its snapshot (a coding agent's start: lib/presets/warmup.ts grows the root and runs the agent
 * once, so its binary is in the template's page cache).
 *
 * A template is used whenever it fits the create (same kernel and image files, memory, vCPUs,
 * disk size, boot arguments, network, disk mode; the backend the create chose, the same VMM
 * build and accelerator), and any create it does not fit boots cold, silently. One whose kernel, image or VMM moved on is
 * stale: a warm create replaces it; one made for another size is left alone.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseSandboxConfig, type SandboxConfigInput } from "../config.ts";
import { InvalidInputError } from "../errors.ts";
import { logEvent } from "../log.ts";
import { paths } from "../paths.ts";
import { createNew, createSandbox, deleteSandbox, resolveCreate, type Booted, type CreateProgressOptions, type ResolvedCreate } from "../sandbox/lifecycle.ts";
import { randomHex } from "../util/random.ts";
import { restoreRefusal, templateFits } from "./compat.ts";
import { MANIFEST_FILE, readManifest } from "./manifest.ts";
import { createFromSnapshot } from "./restore.ts";
import { saveSnapshot } from "./save.ts";
import { listStored, removeStored, summarizeSnapshot, type SnapshotInfo, type StoredSnapshot } from "./store.ts";

/** How a sandbox came to be: booted, restored from a snapshot, forked, or from its image's warm template. */
export type CreatedFrom =
  | { kind: "boot" }
  | { kind: "snapshot"; name: string }
  | { kind: "fork"; sandbox: string }
  | { kind: "warm"; image: string };

/** `true`: use the template and make it on first use; `false`: always boot; unset: use one if it exists. */
export function warmFromEnv(env: Record<string, string | undefined> = process.env): boolean | undefined {
  const value = env.SMOLVM_WARM;
  if (value === "1" || value === "true") return true;
  if (value === "0" || value === "false") return false;
  return undefined;
}

export function templateDir(image: string): string {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(image)) {
    throw new InvalidInputError(`Invalid image name ${JSON.stringify(image)}`, { hint: "an image name such as base or debian" });
  }
  return join(paths.warmDir(), image);
}

type TemplateState = { state: "none" } | { state: "stale"; why: string } | { state: "other" } | { state: "fits"; stored: StoredSnapshot };

async function templateFor({ config, backend }: ResolvedCreate): Promise<TemplateState> {
  const dir = templateDir(config.image);
  if (!existsSync(join(dir, MANIFEST_FILE))) return { state: "none" };
  let stored: StoredSnapshot;
  try {
    stored = { dir, manifest: readManifest(dir) };
  } catch (error) {
    return { state: "stale", why: (error as Error).message };
  }
  const refused = await restoreRefusal(stored.manifest);
  if (refused !== undefined) return { state: "stale", why: refused };
  return templateFits(stored.manifest, config, backend.name) ? { state: "fits", stored } : { state: "other" };
}

export interface WarmCreateOptions extends CreateProgressOptions {
  warm?: boolean;
  /** Run in order in a fresh sandbox before it becomes its image's template (first use only). */
  prepareTemplate?: string[][];
}

/** A create that restores the image's warm template when it fits, and boots otherwise. */
export async function createSandboxWarm(input: SandboxConfigInput, options: WarmCreateOptions = {}): Promise<Booted & { from: CreatedFrom }> {
  const { warm = warmFromEnv(), prepareTemplate = [], ...createOptions } = options;
  const requested = parseSandboxConfig(input);
  const boot = (booted: Booted) => ({ ...booted, from: { kind: "boot" } as CreatedFrom });
  if (warm === false || (warm === undefined && !existsSync(join(templateDir(requested.image), MANIFEST_FILE)))) return boot(await createSandbox(input, createOptions));
  const resolved = await resolveCreate(input, createOptions);
  const cold = async (make: boolean) => boot(await createNew({
    ...createOptions,
    ...resolved,
    ...(make ? { afterBoot: (booted: Booted) => makeTemplateFrom(booted, prepareTemplate) } : {}),
  }));
  const { config } = resolved;
  const template = await templateFor(resolved);
  if (template.state === "fits") {
    try {
      // The template's guest, this create's name, env, channel and network policy.
      const booted = await createFromSnapshot(template.stored, {
        ...(config.name === undefined ? {} : { name: config.name }),
        env: config.env,
        channel: config.channel,
        bootTimeoutMs: config.bootTimeoutMs,
        allowHosts: config.allowHosts,
        denyHosts: config.denyHosts,
      }, { checked: true });
      booted.notices.push(...resolved.notices);
      return { ...booted, from: { kind: "warm", image: requested.image } };
    } catch (error) {
      // A damaged template is no reason to fail a create: boot, and make a new one if warm.
      if ((error as { code?: string }).code !== "INTEGRITY_FAILED") throw error;
      logEvent("warn", `warm template of image "${requested.image}" is damaged; booting instead`, { error: (error as Error).message });
      return cold(warm === true);
    }
  }
  if (template.state === "stale") logEvent("info", `warm template of image "${requested.image}" is stale; booting instead`, { why: template.why });
  // A create with its own kernel or root file system is no template for the image.
  const own = requested.kernelPath !== undefined || requested.rootfsPath !== undefined;
  return cold(warm === true && template.state !== "other" && !own);
}

/** Readies a fresh sandbox to be its image's template; a command that fails is logged, not fatal. */
async function warmUp(booted: Booted, commands: string[][]): Promise<void> {
  for (const command of commands) {
    const result = await booted.session.run(command, { timeoutMs: 60_000 });
    if (result.exitCode !== 0) logEvent("info", `warm-up of image "${booted.record.config.image}": ${command.join(" ")} exited with ${result.exitCode}`, { vm: booted.record.id });
  }
}

/** Takes a fresh sandbox's snapshot as its image's template; a failure is logged, never thrown. */
async function makeTemplateFrom(booted: Booted, prepare: string[][]): Promise<void> {
  try {
    await warmUp(booted, prepare);
    await saveSnapshot(booted.record, {
      kind: "template",
      name: booted.record.config.image,
      root: paths.warmDir(),
      replace: true,
      ask: (dir) => booted.session.supervisor("supervisor.snapshot", { dir }, { timeoutMs: 120_000 }),
    });
  } catch (error) {
    logEvent("warn", `cannot make the warm template of image "${booted.record.config.image}": ${(error as Error).message}`, { vm: booted.record.id });
  }
}

export interface WarmImageOptions {
  vcpus?: number;
  memoryMiB?: number;
  diskSizeMiB?: number;
  /** Run in order in the sandbox before its snapshot (default: `true`, which warms its shell and page cache). */
  prepare?: string[][];
  onProgress?: CreateProgressOptions["onProgress"];
}

/**
 * Makes (or makes again) the warm template of `image`: boots a sandbox of that shape, runs one
 * command in it (so the template's page cache and shell are warm; `prepare` for others),
 * snapshots it, deletes it.
 * The snapshot is taken inside the create, so a caller killed meanwhile leaves an abandoned
 * create, which its supervisor undoes.
 */
export async function warmImage(image: string, options: WarmImageOptions = {}): Promise<SnapshotInfo> {
  const name = `warm-${image.replace(/[^a-z0-9-]/g, "-").slice(0, 48).replace(/-+$/, "")}-${randomHex(3)}`;
  let stored: StoredSnapshot | undefined;
  const booted = await createSandbox({
    image,
    name,
    ...(options.vcpus === undefined ? {} : { vcpus: options.vcpus }),
    ...(options.memoryMiB === undefined ? {} : { memoryMiB: options.memoryMiB }),
    ...(options.diskSizeMiB === undefined ? {} : { diskSizeMiB: options.diskSizeMiB }),
  }, {
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    afterBoot: async (booted) => {
      options.onProgress?.({ phase: "snapshot", message: `saving the warm template of ${image}` });
      await warmUp(booted, options.prepare ?? [["true"]]);
      stored = await saveSnapshot(booted.record, {
        kind: "template",
        name: image,
        root: paths.warmDir(),
        replace: true,
        ask: (dir) => booted.session.supervisor("supervisor.snapshot", { dir }, { timeoutMs: 120_000 }),
      });
    },
  });
  await booted.session.close();
  await deleteSandbox(booted.record.id);
  return summarizeSnapshot(stored!);
}

/** Every warm template. */
export function listTemplates(): SnapshotInfo[] {
  return listStored(paths.warmDir()).map(summarizeSnapshot);
}

/** Removes the warm template of `image`; resolves to whether there was one. */
export async function removeTemplate(image: string): Promise<boolean> {
  const dir = templateDir(image);
  if (!existsSync(dir)) return false;
  await removeStored(dir);
  return true;
}
