/**
 * A real guest (the debian image, with sshd) turned against its host: root in the guest links
 * its SSH host key to /dev/zero, which the supervisor's SSH set-up reads on the next boot; and a
 * guest whose VM (and supervisor) are frozen with SIGSTOP, which an SSH fallback would wait on.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ensureImage } from "../../lib/images/build.ts";
import { readSshState } from "../../lib/ssh/state.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import type { SandboxRecord } from "../../lib/state/record.ts";
import { runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, waitUntil } from "../helpers/vm.ts";

setDefaultTimeout(300_000);

beforeAll(async () => {
  await prepareArtifacts();
  await ensureImage("debian");
}, 60 * 60_000);
cleanupAfterAll();

function record(name: string): SandboxRecord {
  const store = StateStore.open();
  try {
    return store.get(name);
  } finally {
    store.close();
  }
}

function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
}

async function cli(args: string[]): Promise<string> {
  const result = await runCli(args, { timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(`smolvm ${args.join(" ")} failed (${result.code}): ${result.stdout}${result.stderr}`);
  return result.stdout;
}

describe("a guest with sshd attacks its host", () => {
  test("its SSH host key linked to /dev/zero: the supervisor reads 64 KiB of it at most, its memory stays flat, and SSH is set up with smolvm's key", async () => {
    await cli(["create", "--name", "zero-key", "--image", "debian", "--json"]);
    await cli(["exec", "zero-key", "--", "ln", "-sf", "/dev/zero", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    await cli(["stop", "zero-key"]);
    await cli(["start", "zero-key"]);
    const vm = record("zero-key");
    const baseline = rssBytes(vm.supervisorPid!);
    let peak = baseline;
    await waitUntil(() => {
      peak = Math.max(peak, rssBytes(vm.supervisorPid!));
      const state = readSshState(vm.id);
      return state !== undefined && state.vmmPid === vm.vmmPid && state.state !== "pending";
    }, 120_000, "the SSH set-up to finish");
    console.log(`supervisor RSS during the SSH set-up: ${(baseline / 2 ** 20).toFixed(1)} MiB before, ${(peak / 2 ** 20).toFixed(1)} MiB at most`);
    expect(peak - baseline).toBeLessThan(48 * 1024 * 1024);
    expect(readSshState(vm.id)?.state).toBe("ready");
    expect(await cli(["exec", "--comm-channel", "ssh", "zero-key", "--", "sh", "-c", "test -f /etc/ssh/ssh_host_ed25519_key.pub && ! test -L /etc/ssh/ssh_host_ed25519_key.pub && echo a-file"])).toBe("a-file\n");
  });

  test("frozen with SIGSTOP (its VM and its supervisor): exec fails within seconds saying why, without waiting out an SSH handshake or printing anything else", async () => {
    const vm = record("zero-key");
    process.kill(vm.vmmPid!, "SIGSTOP");
    process.kill(vm.supervisorPid!, "SIGSTOP");
    try {
      const t0 = Date.now();
      const result = await runCli(["exec", "zero-key", "--", "echo", "hi"]);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toBe(
        `error: Cannot reach sandbox "zero-key": the agent did not answer (Cannot reach sandbox "zero-key": its supervisor (pid ${vm.supervisorPid}) is stopped by a signal) and SSH failed (Cannot reach sandbox "zero-key" over SSH: its VM's process (pid ${vm.vmmPid}) is stopped by a signal)\n` +
          "  hint: see `smolvm logs zero-key`; `smolvm stop zero-key` then `smolvm start zero-key` restarts it\n",
      );
    } finally {
      process.kill(vm.supervisorPid!, "SIGCONT");
      process.kill(vm.vmmPid!, "SIGCONT");
    }
    // Only the VM frozen: the supervisor says so to the waiting command.
    process.kill(vm.vmmPid!, "SIGSTOP");
    try {
      const result = await runCli(["exec", "zero-key", "--", "echo", "hi"]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `error: Sandbox "zero-key" does not answer: its VM's process (pid ${vm.vmmPid}) is stopped by a signal, so nothing in the guest runs\n` +
          `  hint: \`kill -CONT ${vm.vmmPid}\` lets it go on; \`smolvm stop zero-key\` ends it\n`,
      );
    } finally {
      process.kill(vm.vmmPid!, "SIGCONT");
    }
    expect(await cli(["exec", "zero-key", "--", "echo", "back"])).toBe("back\n");
  });
});
