/**
 * Measurements on one running sandbox: the agent ping floor, warm commands (SDK, CLI, SSH), the
 * guest's fork/exec floor and file transfer both ways over every channel there is.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AgentClient } from "../agent/client.ts";
import { selfCommand } from "../host/self.ts";
import type { SmolVM } from "../smolvm.ts";
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
  guestForkExecMs?: number;
  cliStartupMs: number[];
}

const FORK_EXEC_ITERATIONS = 200;
const FORK_EXEC_BATCHES = 3;
const TRANSFER_REPEATS = 3;
const GUEST_FILE = "/tmp/smolvm-bench.bin";

async function timesOf(n: number, warmup: number, body: () => Promise<unknown>, options: RunningOptions, label: string): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await body();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    options.signal?.throwIfAborted();
    const t0 = performance.now();
    await body();
    out.push(performance.now() - t0);
    if (i % 20 === 0) options.step(label, i / n);
  }
  return out;
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

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

export async function measureAgent(vm: SmolVM, client: AgentClient, c: Collector, options: RunningOptions): Promise<RunningFacts> {
  const facts: RunningFacts = { agentDurations: [], cliStartupMs: [] };
  options.step("agent ping round trip");
  c.add("floor.ping", ...(await timesOf(options.runs, 20, () => client.ping(), options, "agent ping round trip")));
  c.report("floor.ping");

  options.step("warm commands over the agent");
  const warm = await timesOf(options.runs, 10, async () => {
    const result = await vm.run(["true"]);
    if (result.exitCode !== 0) throw new Error(`\`true\` exited with ${result.exitCode} in the guest`);
    facts.agentDurations.push(result.durationMs);
  }, options, "warm commands over the agent");
  facts.agentDurations.splice(0, 10); // the warm-up runs
  c.add("warm-command.agent", ...warm);
  c.report("warm-command.agent");

  options.step("fork/exec floor in the guest");
  await c.attempt(["floor.fork-exec"], async () => {
    for (let i = 0; i < FORK_EXEC_BATCHES; i++) {
      const result = await vm.run(["/bin/sh", "-c", forkExecScript(FORK_EXEC_ITERATIONS)]);
      const perExec = parseForkExec(result.stdout, FORK_EXEC_ITERATIONS);
      if (result.exitCode !== 0 || perExec === undefined) {
        throw new Error(`the guest's fork/exec loop printed "${result.stdout.trim()}" (exit ${result.exitCode}): ${result.stderr.trim()}`);
      }
      c.add("floor.fork-exec", perExec);
    }
    c.note("floor.fork-exec", `${FORK_EXEC_BATCHES} batches of ${FORK_EXEC_ITERATIONS} /bin/true minus an empty loop, /proc/uptime clock`);
    c.report("floor.fork-exec");
  });

  const cliRuns = Math.min(10, options.runs);
  options.step("warm commands through the CLI");
  await c.attempt(["warm-command.cli"], async () => {
    for (let i = 0; i < Math.min(5, cliRuns); i++) facts.cliStartupMs.push(await cliOnce(["--version"]));
    for (let i = 0; i < cliRuns; i++) {
      options.signal?.throwIfAborted();
      c.add("warm-command.cli", await cliOnce(["exec", vm.name, "--", "true"]));
    }
    c.note("warm-command.cli", `${cliRuns} runs; each is a new smolvm process, as from a shell`);
    c.report("warm-command.cli");
  });

  const bytes = options.transferMiB * 2 ** 20;
  const data = randomBytes(bytes);
  options.step("file transfer over the agent");
  await c.attempt(["upload.agent", "download.agent"], async () => {
    for (let i = 0; i < TRANSFER_REPEATS; i++) {
      options.signal?.throwIfAborted();
      let t0 = performance.now();
      await client.writeFile(GUEST_FILE, data);
      c.add("upload.agent", mbps(bytes, performance.now() - t0));
      t0 = performance.now();
      const handle = await client.readFile(GUEST_FILE);
      let got = 0;
      for await (const chunk of handle.stream) got += (chunk as Buffer).length;
      if (got !== bytes) throw new Error(`read back ${got} bytes of ${bytes}`);
      c.add("download.agent", mbps(bytes, performance.now() - t0));
    }
    for (const id of ["upload.agent", "download.agent"]) {
      c.note(id, `${TRANSFER_REPEATS} x ${options.transferMiB} MiB to/from ${GUEST_FILE} (tmpfs); MB = 10^6 bytes`);
      c.report(id);
    }
  });
  await vm.run(["rm", "-f", GUEST_FILE]);
  return facts;
}

const SSH_PHASES = [
  "first-command.ssh", "create-to-first-command.ssh", "warm-command.ssh", "upload.sftp", "download.sftp", "upload.scp", "download.scp",
] as const;

/**
 * The SSH phases: first command, warm commands, SFTP and scp. create -> first SSH command is
 * composed as (the later of create() returning and sshd being ready, minus create() called)
 * plus the first command's own connect + auth + exec, so the agent phases measured before it
 * do not count against SSH. Times are epoch ms.
 */
export async function measureSsh(vm: SmolVM, c: Collector, options: RunningOptions & { calledAt: number; returnedAt: number }): Promise<void> {
  options.step("SSH channel");
  const opening = await openSshBench(vm);
  if (!opening.ok) {
    c.unavailable(SSH_PHASES, opening.reason);
    return;
  }
  const ssh: SshBench = opening.ssh;
  try {
    await c.attempt(["first-command.ssh", "create-to-first-command.ssh"], async () => {
      const first = await ssh.firstCommand();
      const usableAt = Math.max(opening.readyAt, options.returnedAt);
      c.add("first-command.ssh", first);
      c.add("create-to-first-command.ssh", usableAt - options.calledAt + first);
      c.note("create-to-first-command.ssh", `sshd was ready ${Math.round(opening.readyAt - options.returnedAt)} ms after create() returned (negative: before)`);
      c.report("first-command.ssh");
    });
    await c.attempt(["warm-command.ssh"], async () => {
      c.add("warm-command.ssh", ...(await timesOf(options.runs, 10, () => ssh.warmCommand(), options, "warm commands over SSH")));
      c.report("warm-command.ssh");
    });
    const bytes = options.transferMiB * 2 ** 20;
    const data = randomBytes(bytes);
    await c.attempt(["upload.sftp", "download.sftp"], async () => {
      for (let i = 0; i < TRANSFER_REPEATS; i++) {
        c.add("upload.sftp", mbps(bytes, await ssh.sftpUpload(data, GUEST_FILE)));
        const got = await ssh.sftpDownload(GUEST_FILE);
        if (got.bytes !== bytes) throw new Error(`SFTP read back ${got.bytes} bytes of ${bytes}`);
        c.add("download.sftp", mbps(bytes, got.ms));
      }
    });
    if (ssh.scpUnavailable !== undefined) {
      c.unavailable(["upload.scp", "download.scp"], ssh.scpUnavailable);
    } else {
      await c.attempt(["upload.scp", "download.scp"], async () => {
        const local = join(options.scratchDir, "scp-upload.bin");
        await writeFile(local, data);
        for (let i = 0; i < TRANSFER_REPEATS; i++) {
          c.add("upload.scp", mbps(bytes, await ssh.scpUpload(local, GUEST_FILE)));
          c.add("download.scp", mbps(bytes, await ssh.scpDownload(GUEST_FILE, join(options.scratchDir, "scp-download.bin"))));
        }
      });
    }
  } finally {
    await ssh.close();
  }
}
