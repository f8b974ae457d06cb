/**
 * Reaching a running coding agent: a pseudo-terminal session over the sandbox's channel (the
 * agent's PTY exec, as `smolvm shell` uses), and `syncWorkspace`, which brings /workspace back.
 */
import { InvalidInputError } from "../errors.ts";
import type { SmolVM } from "../smolvm.ts";
import type { DirTransferResult } from "../sandbox/dirs.ts";
import { findPreset, type Preset } from "./catalog.ts";
import { WORKSPACE } from "./defaults.ts";
import { attachCommand, readAgentRecord, TMUX_CONF, TMUX_CONF_TEXT, type AgentRecord } from "./start.ts";

/** The preset of a sandbox started as `expected` (or as any agent when absent). */
export async function agentOf(vm: SmolVM, expected?: string): Promise<{ preset: Preset; record: AgentRecord }> {
  const record = await readAgentRecord(vm);
  if (record === undefined) {
    throw new InvalidInputError(`Cannot attach to sandbox "${vm.name}": it was not started as a coding agent`, {
      hint: "start one with `smolvm <agent> start`, or open a shell with `smolvm shell`",
    });
  }
  const preset = findPreset(record.preset);
  if (expected !== undefined && findPreset(expected).id !== preset.id) {
    throw new InvalidInputError(`Cannot attach to sandbox "${vm.name}" as ${findPreset(expected).title}: it runs ${preset.title}`, {
      hint: `use \`smolvm ${preset.id} attach ${vm.name}\``,
    });
  }
  return { preset, record };
}

export interface AgentSessionOptions {
  rows: number;
  cols: number;
  /** The host terminal's TERM (default xterm-256color). */
  term?: string;
}

/**
 * Starts the agent on a PTY in /workspace and returns its live handle: write keys to `stdin`,
 * read the screen from `stdout`, `resize()` on window changes. Closing the handle (detaching)
 * leaves the sandbox running; in an image with tmux the agent keeps running too, and the next
 * session re-attaches to it.
 */
export async function openAgentSession(vm: SmolVM, options: AgentSessionOptions & { expected?: string }) {
  const { preset } = await agentOf(vm, options.expected);
  const probe = await vm.commands.run(["sh", "-c", "command -v tmux >/dev/null 2>&1 && echo tmux"]);
  const hasTmux = probe.stdout.trim() === "tmux";
  if (hasTmux) await vm.files.write(TMUX_CONF, TMUX_CONF_TEXT, { mode: 0o644 });
  const { argv, cwd, env } = attachCommand(preset, { hasTmux, term: options.term ?? "xterm-256color" });
  const handle = await vm.commands.exec(argv, { cwd, env, stdin: true, pty: { rows: options.rows, cols: options.cols, term: env.TERM } });
  return { handle, preset, persistent: hasTmux };
}

/**
 * Copies /workspace back into the host directory it came from (or `to`): what Git shows in the
 * guest's work tree (no `.git`, nothing ignored), merged file by file; nothing on the host is
 * deleted. Every entry is checked as any download from a sandbox (lib/tar/extract.ts).
 */
export async function syncWorkspace(vm: SmolVM, options: { to?: string; onProgress?: (bytes: number) => void } = {}): Promise<DirTransferResult> {
  const { record } = await agentOf(vm);
  const to = options.to ?? record.workdir;
  if (to === null || to === undefined) {
    throw new InvalidInputError(`Cannot sync sandbox "${vm.name}": it was started without a working directory`, {
      hint: "name a host directory to copy /workspace into (--to DIR)",
    });
  }
  return vm.files.downloadDir(WORKSPACE, to, {
    select: "workspace",
    ...(options.onProgress ? { onProgress: (done: number) => options.onProgress!(done) } : {}),
  });
}
