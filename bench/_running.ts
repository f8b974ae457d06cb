/**
 * Measurements on one running sandbox: the agent ping floor, warm commands (SDK, CLI, SSH), the
 * guest's fork/exec floor and file transfer both ways over every channel there is.
 *
 * The machine is shared and its load drifts within a run, so whatever is compared is measured
 * interleaved: each warm iteration takes a ping, an agent exec and (when there is SSH) an SSH
 * exec back to back; fork/exec batches are spread over the warm loop; each transfer repeat
 * moves the file over the agent, SFTP and scp in turn.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AgentClient } from "../lib/agent/client.ts";
import { runHostChecked } from "../lib/host/process.ts";
import { selfCommand } from "../lib/host/self.ts";
import type { SmolVM } from "../lib/smolvm.ts";
import type { Collector } from "./_collect.ts";
import { forkExecScript, parseForkExec } from "./guest.ts";
import { openSshBench, type SshBench } from "./ssh.ts";

export interface RunningOptions {
  runs: number;
  transferMiB: number;
  scratchDir: string;
  signal?: AbortSignal;
  step: (text: string, fraction?: number) => void;
}

/** What the warm-command breakdown needs besides the phases. */
export interface RunningFacts {
  agentDurations: number[];
  cliStartupMs: number[];
}

const FORK_EXEC_ITERATIONS = 200;
const FORK_EXEC_BATCHES = 3;
const TRANSFER_REPEATS = 3;
const WARMUP = 10;
const GUEST_FILE = "/tmp/smolvm-bench.bin";

const SSH_PHASES = [
  "first-command.ssh", "create-to-first-command.ssh", "warm-command.ssh", "upload.sftp", "download.sftp", "upload.scp", "download.scp",
] as const;

async function timed(body: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await body();
  return performance.now() - t0;
}

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

/**
 * Opens the SSH side and times its first command. create -> first SSH command is composed as
 * (the later of create() returning and sshd being ready, minus create() called) plus the first
 * command's own connect + auth + exec, so the agent's first command, run before it, does not
 * count against SSH. Times are epoch ms. Undefined when SSH cannot be measured (phases marked).
 */
export async function firstSshCommand(vm: SmolVM, c: Collector, options: RunningOptions & { calledAt: number; returnedAt: number }): Promise<SshBench | undefined> {
  options.step("SSH channel: waiting for sshd, first command");
  const opening = await openSshBench(vm);
  if (!opening.ok) {
    c.unavailable(SSH_PHASES, opening.reason);
    return undefined;
  }
  let ok = false;
  await c.attempt(SSH_PHASES, async () => {
    const first = await opening.ssh.firstCommand();
    const usableAt = Math.max(opening.readyAt, options.returnedAt);
    c.add("first-command.ssh", first);
    c.add("create-to-first-command.ssh", usableAt - options.calledAt + first);
    c.note("create-to-first-command.ssh", `sshd was ready ${Math.round(opening.readyAt - options.returnedAt)} ms after create() returned (negative: before)`);
    c.report("first-command.ssh");
    ok = true;
  });
  if (!ok) {
    await opening.ssh.close();
    return undefined;
  }
  return opening.ssh;
}

/** Ping, agent exec and SSH exec, interleaved; fork/exec floor batches spread over the loop. */
export async function measureWarm(vm: SmolVM, client: AgentClient, ssh: SshBench | undefined, c: Collector, options: RunningOptions): Promise<RunningFacts> {
  const facts: RunningFacts = { agentDurations: [], cliStartupMs: [] };
  const agentExec = async (keep: boolean) => {
    const result = await vm.commands.run(["true"]);
    if (result.exitCode !== 0) throw new Error(`\`true\` exited with ${result.exitCode} in the guest`);
    if (keep) facts.agentDurations.push(result.durationMs);
  };
  const forkExecBatch = async () => {
    const result = await vm.commands.run(["/bin/sh", "-c", forkExecScript(FORK_EXEC_ITERATIONS)]);
    const perExec = parseForkExec(result.stdout, FORK_EXEC_ITERATIONS);
    if (result.exitCode !== 0 || perExec === undefined) {
      throw new Error(`the guest's fork/exec loop printed "${result.stdout.trim()}" (exit ${result.exitCode}): ${result.stderr.trim()}`);
    }
    c.add("floor.fork-exec", perExec);
  };
  for (let i = 0; i < WARMUP; i++) {
    await client.ping();
    await agentExec(false);
    if (ssh) await ssh.warmCommand();
  }
  const batchEvery = Math.max(1, Math.floor(options.runs / FORK_EXEC_BATCHES));
  let sshFailed = ssh === undefined;
  for (let i = 0; i < options.runs; i++) {
    options.signal?.throwIfAborted();
    if (i % 20 === 0) options.step(`warm commands${ssh ? " (agent and SSH)" : ""}`, i / options.runs);
    if (i % batchEvery === Math.floor(batchEvery / 2) && i / batchEvery < FORK_EXEC_BATCHES) {
      await c.attempt(["floor.fork-exec"], forkExecBatch);
    }
    c.add("floor.ping", (await client.ping()).rttMs);
    c.add("warm-command.agent", await timed(() => agentExec(true)));
    if (!sshFailed) {
      await c.attempt(["warm-command.ssh"], async () => c.add("warm-command.ssh", await ssh!.warmCommand()));
      sshFailed = c.failed("warm-command.ssh");
    }
  }
  c.note("floor.fork-exec", `${FORK_EXEC_BATCHES} batches of ${FORK_EXEC_ITERATIONS} /bin/true minus an empty loop, /proc/uptime clock, spread over the warm loop`);
  c.note("floor.ping", "interleaved with the warm commands");
  for (const id of ["floor.ping", "warm-command.agent", "warm-command.ssh", "floor.fork-exec"]) c.report(id);

  const cliRuns = Math.min(20, options.runs);
  options.step("warm commands through the CLI");
  await c.attempt(["warm-command.cli"], async () => {
    for (let i = 0; i < cliRuns; i++) {
      options.signal?.throwIfAborted();
      if (i < 5) facts.cliStartupMs.push(await cliOnce(["--version"]));
      // The SDK's warm command right before, so the two share their moment (the target's pairs).
      const sdk = await timed(() => agentExec(false));
      const cli = await cliOnce(["exec", vm.name, "--", "true"]);
      c.add("warm-command.cli", cli);
      c.pair("warm-cli/warm-agent", cli, sdk);
    }
    c.note("warm-command.cli", `${cliRuns} runs; each is a new smolvm process, as from a shell, right after an SDK warm command (the pairs)`);
    c.report("warm-command.cli");
  });
  options.step("CLI start-up against the bare runtime");
  await c.attempt(["cli.help", "floor.runtime"], async () => {
    const bare = await bareRuntimeCommand(options.scratchDir);
    for (let i = 0; i < CLI_STARTUP_RUNS; i++) {
      options.signal?.throwIfAborted();
      const floor = await timedProcess(bare);
      const help = await cliOnce(["--help"]);
      c.add("floor.runtime", floor);
      c.add("cli.help", help);
      c.pair("cli-help/runtime", help, floor);
    }
    c.note("floor.runtime", `${CLI_STARTUP_RUNS} runs interleaved with \`smolvm --help\`; ${bare.describe}`);
    c.report("cli.help");
    c.report("floor.runtime");
  });
  return facts;
}

const CLI_STARTUP_RUNS = 20;

declare const SMOLVM_BUILD_TARGET: string | undefined;

interface TimedCommand {
  file: string;
  args: string[];
  env: Record<string, string>;
  describe: string;
}

/**
 * The runtime smolvm runs on, starting and running an empty program, in the same form smolvm
 * itself takes: a compiled smolvm is measured against an empty program compiled by the Bun inside
 * it (`BUN_BE_BUN=1 smolvm build --compile`, ~0.5 s), since a standalone executable has start-up
 * costs of its own; from source, against the same runtime running an empty file.
 *
 * Not `bun -e ''`: Bun returns before starting its JavaScript engine when the script is empty, so
 * that is no floor for a program that runs anything (`bun -e 0` costs ~4x as much).
 */
async function bareRuntimeCommand(scratchDir: string): Promise<TimedCommand> {
  const script = join(scratchDir, "empty.js");
  await writeFile(script, "");
  if (typeof SMOLVM_BUILD_TARGET === "string") {
    const program = join(scratchDir, "empty-program");
    await runHostChecked(process.execPath, ["build", "--compile", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", script, "--outfile", program], {
      env: { ...process.env, BUN_BE_BUN: "1" },
      timeoutMs: 120_000,
      action: "Cannot compile the empty program for the runtime floor",
    });
    return { file: program, args: [], env: {}, describe: "an empty program compiled by this executable's Bun (BUN_BE_BUN=1 smolvm build --compile)" };
  }
  const deno = (process.versions as Record<string, string | undefined>).deno !== undefined;
  return deno
    ? { file: process.execPath, args: ["run", script], env: {}, describe: "deno run on an empty file" }
    : { file: process.execPath, args: [script], env: {}, describe: "bun on an empty file" };
}

function timedProcess(command: Omit<TimedCommand, "describe">): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command.file, command.args, { stdio: "ignore", env: { ...process.env, ...command.env } });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${command.file} exited with ${code}`))));
  });
}

/** Runs `smolvm ARGS` as a new process (as a user's shell would) and times it to its exit. */
function cliOnce(args: string[]): Promise<number> {
  const { file, args: argv } = selfCommand(args);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolve(performance.now() - t0);
      else reject(new Error(`\`smolvm ${args.join(" ")}\` exited with ${code}: ${stderr.trim().split("\n")[0] ?? ""}`));
    });
  });
}

/**
 * Upload and download over the agent, SFTP and scp, one after another within each repeat;
 * `besideAgent` (the raw channel floor) runs right after each agent transfer, and the two are
 * recorded as a pair.
 */
export async function measureTransfers(
  vm: SmolVM, client: AgentClient, ssh: SshBench | undefined, c: Collector,
  options: RunningOptions & { besideAgent?: () => Promise<{ uploadMBps: number; downloadMBps: number } | undefined> },
): Promise<void> {
  const bytes = options.transferMiB * 2 ** 20;
  const data = randomBytes(bytes);
  const local = join(options.scratchDir, "scp-upload.bin");
  if (ssh && ssh.scpUnavailable === undefined) await writeFile(local, data);
  if (ssh && ssh.scpUnavailable !== undefined) c.unavailable(["upload.scp", "download.scp"], ssh.scpUnavailable);
  for (let i = 0; i < TRANSFER_REPEATS; i++) {
    options.signal?.throwIfAborted();
    options.step("file transfer", i / TRANSFER_REPEATS);
    let agent: { up: number; down: number } | undefined;
    await c.attempt(["upload.agent", "download.agent"], async () => {
      const up = mbps(bytes, await timed(() => client.writeFile(GUEST_FILE, data)));
      c.add("upload.agent", up);
      let got = 0;
      const ms = await timed(async () => {
        const handle = await client.readFile(GUEST_FILE);
        for await (const chunk of handle.stream) got += (chunk as Buffer).length;
      });
      if (got !== bytes) throw new Error(`read back ${got} bytes of ${bytes}`);
      c.add("download.agent", mbps(bytes, ms));
      agent = { up, down: mbps(bytes, ms) };
    });
    const raw = await options.besideAgent?.();
    if (agent !== undefined && raw !== undefined) {
      c.pair("upload-agent/channel", agent.up, raw.uploadMBps);
      c.pair("download-agent/channel", agent.down, raw.downloadMBps);
    }
    if (!ssh) continue;
    if (!c.failed("upload.sftp")) {
      await c.attempt(["upload.sftp", "download.sftp"], async () => {
        c.add("upload.sftp", mbps(bytes, await ssh.sftpUpload(data, GUEST_FILE)));
        const got = await ssh.sftpDownload(GUEST_FILE);
        if (got.bytes !== bytes) throw new Error(`SFTP read back ${got.bytes} bytes of ${bytes}`);
        c.add("download.sftp", mbps(bytes, got.ms));
      });
    }
    if (ssh.scpUnavailable === undefined && !c.failed("upload.scp")) {
      await c.attempt(["upload.scp", "download.scp"], async () => {
        c.add("upload.scp", mbps(bytes, await ssh.scpUpload(local, GUEST_FILE)));
        c.add("download.scp", mbps(bytes, await ssh.scpDownload(GUEST_FILE, join(options.scratchDir, "scp-download.bin"))));
      });
    }
  }
  for (const id of ["upload.agent", "download.agent", "upload.sftp", "download.sftp", "upload.scp", "download.scp"]) {
    c.note(id, `${TRANSFER_REPEATS} x ${options.transferMiB} MiB to/from ${GUEST_FILE} (tmpfs), channels taking turns; MB = 10^6 bytes`);
    c.report(id);
  }
  await vm.commands.run(["rm", "-f", GUEST_FILE]);
}
