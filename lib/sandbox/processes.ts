/**
 * Every process a sandbox has on this host, found from what it is rather than from what was
 * recorded: a record can be missing (its launcher was killed before it wrote the pid), stale, or
 * name a pid the system has since given to someone else. A sandbox's VMM is the process whose
 * arguments name its agent or control socket (both live in the sandbox's directory and nowhere
 * else), or a Firecracker (or its jailer) whose `--id` is the sandbox's id: a jailed Firecracker
 * names its sockets only as paths inside its jail. Its supervisor is `smolvm __supervise ID`;
 * its network's pasta (user mode) names its pid file in the same directory. Killing goes by
 * these, and a kill is done only when they are gone.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { SmolError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { pastaPidPath } from "../network/state.ts";
import { pollUntil } from "../util/poll.ts";
import { sandboxFiles } from "./layout.ts";

export interface SandboxProcess {
  pid: number;
  role: "vmm" | "supervisor" | "network";
}

/**
 * The hidden subcommand a supervisor runs as (`smolvm __supervise ID`): how one is recognised.
 * Here rather than with spawn.ts, so that reading a sandbox's state loads no process spawning.
 */
export const SUPERVISE_COMMAND = "__supervise";

/** Whether this host lists processes in /proc (Linux); elsewhere the recorded pids are all there is. */
function hasProc(): boolean {
  // One stat, not a listing of the directory: asked on every command that reads a sandbox.
  return existsSync("/proc/self/cmdline");
}

/** What process `pid` is to sandbox `id`, from its arguments; undefined when none of its own. */
function roleOf(id: string, pid: number): SandboxProcess["role"] | undefined {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return undefined; // exited while we looked
  }
  if (argv.some((arg, i) => arg === SUPERVISE_COMMAND && argv[i + 1] === id)) return "supervisor";
  // QEMU names them inside option values (`path=...,server=on`), other VMMs as arguments.
  const files = sandboxFiles(id);
  if (argv.some((arg) => arg.includes(files.agentSocket) || arg.includes(files.controlSocket))) return "vmm";
  // Firecracker, jailed or not, and the jailer before it becomes Firecracker: `--id ID ... --api-sock`.
  if (argv.includes("--api-sock") && argv.some((arg, i) => arg === "--id" && argv[i + 1] === id)) return "vmm";
  return argv.includes(pastaPidPath(files.dir)) ? "network" : undefined;
}

/** The processes of sandbox `id` running now (Linux: found in /proc; elsewhere: the recorded pids that live). */
export function sandboxProcesses(id: string, recorded: Array<number | null | undefined> = []): SandboxProcess[] {
  if (!hasProc()) {
    return recorded.filter((pid): pid is number => pidAlive(pid)).map((pid, i) => ({ pid, role: i === 0 ? "vmm" : "supervisor" }));
  }
  const found: SandboxProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const role = roleOf(id, pid);
    if (role !== undefined && pidAlive(pid)) found.push({ pid, role });
  }
  return found;
}

/**
 * Whether a recorded pid is still one of the sandbox's processes: alive, and (where /proc says)
 * still the program it was, not another that got the pid since.
 */
export function stillOurs(id: string, pid: number | null | undefined): boolean {
  if (!pidAlive(pid)) return false;
  if (!hasProc()) return true;
  const role = roleOf(id, pid!);
  return role === "vmm" || role === "supervisor";
}

/**
 * Kills every process of sandbox `id` (SIGKILL) and resolves once none is left; a process that
 * outlives the kill (one in uninterruptible sleep) is an error naming it, never a quiet success.
 */
export async function killSandboxProcesses(id: string, recorded: Array<number | null | undefined> = [], options: { timeoutMs?: number } = {}): Promise<void> {
  const kill = () => {
    for (const { pid } of sandboxProcesses(id, recorded)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone between the look and the kill.
      }
    }
  };
  kill();
  try {
    // Killed by us but not our children: their end is only seen by looking again.
    await pollUntil(() => {
      const left = sandboxProcesses(id, recorded);
      if (left.length > 0) kill();
      return left.length === 0;
    }, { timeoutMs: options.timeoutMs ?? 5_000, intervalMs: 10, what: "the sandbox's processes to end" });
  } catch {
    const left = sandboxProcesses(id, recorded);
    throw new SmolError("IO_ERROR", `Cannot end sandbox ${id}: ${left.map((p) => `its ${p.role} (pid ${p.pid})`).join(" and ")} did not exit after SIGKILL`, {
      hint: `a process stuck in the kernel (state D in \`ps -o pid,stat -p ${left.map((p) => p.pid).join(",")}\`) ends when its I/O does; run the command again then`,
      details: { pids: left.map((p) => p.pid) },
    });
  }
}
