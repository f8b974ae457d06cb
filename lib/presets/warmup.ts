/**
 * Warm starts of coding agents. A preset's image gets a warm template like any image
 * (lib/snapshots/warm.ts), with two differences that make `smolvm claude start` fast:
 *
 * - its shape is the agent's (DEFAULT_AGENT_MEMORY_MIB, DEFAULT_AGENT_DISK_MIB), so a start with
 *   the default --memory and --disk-size fits it;
 * - before the snapshot, the sandbox's root filesystem is grown to its disk, /workspace made,
 *   and the agent's version command runs once, so the template holds the agent's binary in the guest's page
 *   cache (Claude Code's is a ~400 MB file: read cold from the disk under emulation its first
 *   run takes about a second, from the page cache a fraction of that).
 *
 * The template never holds anything of a user: it is taken before credentials, the managed env
 * or the workspace go in. A start whose shape or kernel does not fit boots cold, silently.
 *
 * Warm starts are the default for a preset whose image is at hand: the first start makes the
 * template (a few seconds more, once) and later ones restore it. `--no-warm` (SDK `warm:
 * false`) or SMOLVM_WARM=0 always boots and makes nothing; `smolvm image warm claude` makes the
 * template ahead of time. An install at boot (no preset image) never makes one.
 */
import { findPresetOfImage } from "./catalog.ts";
import { DEFAULT_AGENT_DISK_MIB, DEFAULT_AGENT_MEMORY_MIB, WORKSPACE } from "./defaults.ts";

/** Left by PREPARE_ROOT: the root filesystem is grown and /workspace exists. */
export const ROOT_PREPARED = "/var/lib/smolvm/agent-root-prepared";

/**
 * Grows the root filesystem to the disk's size (the disk is bigger than the image's
 * filesystem), makes /workspace, and says so in ROOT_PREPARED. A start restored from a template
 * finds the file and skips this (resize2fs alone, with nothing to do, takes ~0.2 s under TCG).
 */
export const PREPARE_ROOT = `dev=$(sed -n 's/.*root=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
if [ -b "$dev" ] && command -v resize2fs >/dev/null 2>&1; then resize2fs "$dev" >/dev/null 2>&1 || true; fi
mkdir -p ${WORKSPACE} ${ROOT_PREPARED.slice(0, ROOT_PREPARED.lastIndexOf("/"))} && : > ${ROOT_PREPARED}`;

/** What a warm template of a preset's image is made with: the agent's shape and its warm-up commands. */
export interface TemplateWarmUp {
  memoryMiB: number;
  diskSizeMiB: number;
  /** Run in order in the fresh sandbox before its snapshot; a failure of one is no failure of the template. */
  commands: string[][];
}

/** The warm-up of `image`'s template when it is a coding agent's image, else undefined (an idle sandbox). */
export function templateWarmUp(image: string): TemplateWarmUp | undefined {
  const preset = findPresetOfImage(image);
  if (preset === undefined) return undefined;
  return {
    memoryMiB: DEFAULT_AGENT_MEMORY_MIB,
    diskSizeMiB: DEFAULT_AGENT_DISK_MIB,
    commands: [["sh", "-c", PREPARE_ROOT], [...preset.versionCommand]],
  };
}

/**
 * The `warm` a preset start passes to its create: never for an install at boot (its image is
 * the default one, not the agent's); else what the caller or SMOLVM_WARM says, and by default
 * `true` (restore the template, and make it on the first start).
 */
export function presetWarm(options: { warm: boolean | undefined; fromEnv: boolean | undefined; installAtBoot: boolean }): boolean {
  if (options.installAtBoot) return false;
  return options.warm ?? options.fromEnv ?? true;
}

/** The sandbox a preset start asks for: the agent's shape unless the caller says, and its `warm`. */
export function agentSandbox(
  options: { name?: string; memoryMiB?: number; diskSizeMiB?: number; warm?: boolean },
  choice: { image: string; installAtBoot: boolean },
  fromEnv: boolean | undefined,
): { name?: string; image: string; memoryMiB: number; diskSizeMiB: number; warm: boolean; prepareTemplate?: string[][] } {
  const warmUp = choice.installAtBoot ? undefined : templateWarmUp(choice.image);
  return {
    ...(options.name === undefined ? {} : { name: options.name }),
    image: choice.image,
    memoryMiB: options.memoryMiB ?? DEFAULT_AGENT_MEMORY_MIB,
    diskSizeMiB: options.diskSizeMiB ?? DEFAULT_AGENT_DISK_MIB,
    warm: presetWarm({ warm: options.warm, fromEnv, installAtBoot: choice.installAtBoot }),
    ...(warmUp === undefined ? {} : { prepareTemplate: warmUp.commands }),
  };
}

/**
 * `smolvm image warm NAME`'s options: a coding agent's image is warmed for its start (the
 * agent's shape unless `options` say, and its warm-up); any other image as asked.
 */
export function warmImageOptions<T extends { memoryMiB?: number; diskSizeMiB?: number; prepare?: string[][] }>(image: string, options: T): T {
  const warmUp = templateWarmUp(image);
  if (warmUp === undefined) return options;
  return {
    ...options,
    memoryMiB: options.memoryMiB ?? warmUp.memoryMiB,
    diskSizeMiB: options.diskSizeMiB ?? warmUp.diskSizeMiB,
    prepare: options.prepare ?? warmUp.commands,
  };
}
