/**
 * `startAgent`: a sandbox with a coding agent, the host's credentials for it, and a copy of the
 * working directory in /workspace. Every step after the sandbox exists is undone by deleting it
 * when a later one fails, so a failed start leaves nothing behind.
 */
import { chmod, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { CommChannel } from "../channels/types.ts";
import { DEFAULT_IMAGE } from "../config.ts";
import { InvalidInputError, SmolError } from "../errors.ts";
import { GUEST_HOME } from "../guest.ts";
import { hostGuestArch } from "../kernel/arch.ts";
import { SmolVM } from "../smolvm.ts";
import { listUpload } from "../sandbox/dirs.ts";
import { ownDisk, sandboxFiles } from "../sandbox/layout.ts";
import type { TreeListing } from "../tar/tree.ts";
import { findPreset, type Preset, type PresetId } from "./catalog.ts";
import { collectCredentials } from "./credentials.ts";
import { resolvePresetImage } from "./image.ts";
import { DEFAULT_INSTALL_TIMEOUT_MS, LARGE_WORKSPACE_BYTES, WORKSPACE } from "./defaults.ts";
import { installInSandbox } from "./install.ts";
import { agentSandbox, PREPARE_ROOT, ROOT_PREPARED } from "./warmup.ts";
import { warmFromEnv } from "../snapshots/warm.ts";
import { shQuote } from "../images/npm-layer.ts";


export interface StartAgentOptions {
  /** Sandbox name; generated (`claude-1a2b`) when absent. */
  name?: string;
  memoryMiB?: number;
  diskSizeMiB?: number;
  /** Copied to /workspace; `null` for none. Default: the current directory. */
  workdir?: string | null;
  commChannel?: CommChannel;
  installTimeoutMs?: number;
  /** Boot the default image and install the agent even when the preset's image is at hand. */
  installAtBoot?: boolean;
  /**
   * Warm start (lib/presets/warmup.ts): by default (and with `true`) a start with the preset's
   * image restores the image's warm template when it fits, and the first one makes it; `false`
   * always boots. Default SMOLVM_WARM, else on.
   */
  warm?: boolean;
  /** Go ahead with a workspace above LARGE_WORKSPACE_BYTES. */
  confirmLargeWorkspace?: boolean;
  /** Where API keys are read (default process.env) and config files (default the home dir). */
  hostEnv?: NodeJS.ProcessEnv;
  hostHome?: string;
  onProgress?: (progress: { phase: string; message: string; fraction?: number }) => void;
}

/** What a preset sandbox remembers on the host (no secrets): `vms/<id>/preset.json`. */
export interface AgentRecord {
  preset: PresetId;
  workdir: string | null;
  image: string;
  installedAtBoot: boolean;
}

export interface StartedAgent extends AgentRecord {
  vm: SmolVM;
  /** Whether the sandbox was booted or restored from its image's warm template. */
  createdFrom: "boot" | "warm";
  /** Names (never values) of the API-key variables forwarded. */
  forwardedKeys: string[];
  /** Home-relative paths of the configuration files copied. */
  copiedConfig: string[];
  /** False when no key and no config was found: the agent will ask for a login. */
  credentials: boolean;
  loginHint: string;
  workspace: { files: number; bytes: number; selection: TreeListing["selection"]; skipped: string[] } | null;
}

function recordPath(vm: SmolVM): string {
  return join(sandboxFiles(vm.id).dir, "preset.json");
}

/** The preset record of a sandbox, or undefined when it was not started as a coding agent. */
export async function readAgentRecord(vm: SmolVM): Promise<AgentRecord | undefined> {
  try {
    return JSON.parse(await readFile(recordPath(vm), "utf8")) as AgentRecord;
  } catch {
    return undefined;
  }
}

/** Whether the sandbox's root is grown and /workspace made: a file read, no process in the guest. */
async function rootPrepared(vm: SmolVM): Promise<boolean> {
  return vm.files.read(ROOT_PREPARED).then(() => true, () => false);
}

/** Checks the working directory and lists what will be copied, before anything is created. */
export async function planWorkspace(workdir: string, confirmLarge: boolean): Promise<TreeListing> {
  const listing = await listUpload(workdir, "workspace").catch((error: unknown) => {
    if (error instanceof SmolError && error.code === "NOT_FOUND") {
      throw new InvalidInputError(`Cannot use the working directory "${workdir}": it does not exist`, { hint: "pass an existing directory with --workdir, or --no-workdir" });
    }
    throw error;
  });
  if (listing.bytes > LARGE_WORKSPACE_BYTES && !confirmLarge) {
    const mib = (listing.bytes / 2 ** 20).toFixed(0);
    throw new InvalidInputError(`Cannot copy the working directory "${workdir}" without confirmation: it holds ${mib} MiB in ${listing.entries.length} entries`, {
      hint: "pass --yes (confirmLargeWorkspace) to copy it anyway, add what it does not need to .gitignore, or use --workdir / --no-workdir",
      details: { bytes: listing.bytes, entries: listing.entries.length },
    });
  }
  return listing;
}

/** Starts a sandbox for `presetName` (an id or an alias, e.g. "claude-code"). */
export async function startAgent(presetName: string, options: StartAgentOptions = {}): Promise<StartedAgent> {
  const preset = findPreset(presetName);
  const progress = options.onProgress ?? (() => {});
  const workdir = options.workdir === null ? null : resolve(options.workdir ?? process.cwd());
  const listing = workdir === null ? undefined : await planWorkspace(workdir, options.confirmLargeWorkspace === true);
  const credentials = await collectCredentials(preset, { ...(options.hostEnv ? { env: options.hostEnv } : {}), home: options.hostHome ?? homedir() });
  const arch = hostGuestArch();
  const choice = options.installAtBoot === true
    ? { image: DEFAULT_IMAGE, installAtBoot: true, reason: "installing at boot, as asked" }
    : await resolvePresetImage(preset, arch);
  progress({ phase: "image", message: choice.reason });

  const vm = await SmolVM.create({
    ...agentSandbox(options, choice, warmFromEnv()),
    ...(options.commChannel === undefined ? {} : { commChannel: options.commChannel }),
    onProgress: (p) => progress(p),
  });
  try {
    // The credentials below live in this disk: only its owner may read it (its directory is 0700 too).
    await chmod(ownDisk(sandboxFiles(vm.id), vm.backend?.name ?? null), 0o600).catch(() => {});
    // A template of the agent's image was prepared before its snapshot (lib/presets/warmup.ts).
    if (!(vm.createdFrom?.kind === "warm" && (await rootPrepared(vm)))) await vm.commands.run(["sh", "-c", PREPARE_ROOT]);
    if (choice.installAtBoot) {
      await installInSandbox(vm, preset, {
        arch,
        timeoutMs: options.installTimeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS,
        onProgress: (p) => progress({ phase: "install", ...p }),
      });
    }
    progress({ phase: "credentials", message: "passing credentials" });
    await vm.env.set({ LANG: "C.UTF-8", ...preset.env, ...credentials.env });
    if (credentials.dirs.length > 0) {
      const dirs = credentials.dirs.map((d) => `${GUEST_HOME}/${d}`);
      await vm.commands.run(["sh", "-c", 'mkdir -p -m 700 -- "$@" && chmod 700 -- "$@"', "sh", ...dirs]);
    }
    for (const file of credentials.files) await vm.files.write(`${GUEST_HOME}/${file.path}`, file.content, { mode: 0o600 });
    let workspace: StartedAgent["workspace"] = null;
    if (workdir !== null && listing !== undefined) {
      progress({ phase: "workspace", message: `copying ${workdir} to ${WORKSPACE}`, fraction: 0 });
      await vm.files.uploadDir(workdir, WORKSPACE, {
        listing,
        onProgress: (done, total) => progress({ phase: "workspace", message: `copying ${workdir} to ${WORKSPACE}`, fraction: total === 0 ? 1 : done / total }),
      });
      workspace = { files: listing.entries.filter((e) => e.type === "file").length, bytes: listing.bytes, selection: listing.selection, skipped: listing.skipped };
    }
    const record: AgentRecord = { preset: preset.id, workdir, image: choice.image, installedAtBoot: choice.installAtBoot };
    await writeFile(recordPath(vm), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    return {
      ...record,
      vm,
      createdFrom: vm.createdFrom?.kind === "warm" ? "warm" : "boot",
      forwardedKeys: Object.keys(credentials.env),
      copiedConfig: credentials.files.map((f) => f.path),
      credentials: Object.keys(credentials.env).length > 0 || credentials.files.length > 0,
      loginHint: preset.loginHint,
      workspace,
    };
  } catch (error) {
    await vm.delete().catch(() => {});
    throw error;
  }
}

/**
 * The argv, cwd and env `attach` runs: the agent in a tmux session when the image has tmux.
 * When the agent exits (a failed login, no network, /exit), a login shell in /workspace takes
 * over, so its last words stay on screen and the user can look around or start it again.
 */
export function attachCommand(preset: Preset, options: { hasTmux: boolean; term: string }): { argv: string[]; cwd: string; env: Record<string, string> } {
  const env = { TERM: options.term, COLORTERM: "truecolor" };
  const name = shQuote(preset.command.join(" "));
  const agentThenShell = [
    "sh", "-c",
    `"$@"; status=$?; printf '\\n[%s exited with status %s; this is a shell in the sandbox: run %s again, or exit]\\n' ${name} "$status" ${name}; exec bash -l`,
    "sh", ...preset.command,
  ];
  if (!options.hasTmux) return { argv: agentThenShell, cwd: WORKSPACE, env };
  return {
    argv: ["tmux", "-f", TMUX_CONF, "-L", "smolvm", "new-session", "-A", "-s", preset.id, "-c", WORKSPACE, ...agentThenShell],
    cwd: WORKSPACE,
    env,
  };
}

/**
 * tmux as a session holder only: no prefix key, no status line, so the agent's own keys all
 * reach it and detaching (Ctrl-] on the host) leaves it running for the next attach.
 */
export const TMUX_CONF = "/etc/smolvm-tmux.conf";
export const TMUX_CONF_TEXT = `set -g prefix None
unbind-key -a
set -g status off
set -g escape-time 0
set -g default-terminal "tmux-256color"
set -ga terminal-overrides ",*:Tc"
set -g history-limit 50000
setw -g aggressive-resize on
`;
