/**
 * The supervisor's SSH set-up (ssh-setup.ts): it records its outcome for this boot, answers
 * `supervisor.ssh` (waiting when asked), and never runs twice for one boot. The test agent runs
 * on this host, so nothing here lets it start an sshd: only the paths that need none are run.
 */
import { expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { paths } from "../../../lib/paths.ts";
import { readSshState, writeSshState } from "../../../lib/ssh/state.ts";
import type { SandboxRecord } from "../../../lib/state/record.ts";
import { provisionSsh, SshSetup } from "../../../lib/supervisor/ssh-setup.ts";

function vm(patch: Partial<SandboxRecord> = {}): SandboxRecord {
  const id = `ssh-${Math.random().toString(16).slice(2, 10)}`;
  mkdirSync(paths.sandboxDir(id), { recursive: true });
  return {
    id, name: "box", status: "running", config: parseSandboxConfig({ network: "none" }), backend: "qemu", channel: null, ip: null,
    sshPort: null, dnsPort: null, cid: null, supervisorPid: process.pid, vmmPid: 4242, lastError: null, createdAt: 0, updatedAt: 0, ...patch,
  };
}

const never = async () => {
  throw new Error("the set-up must not reach the agent here");
};

test("a sandbox without an SSH port (an earlier smolvm's, without a network) has no SSH: unavailable, recorded for this boot, without asking the agent", async () => {
  const box = vm();
  expect(await provisionSsh(box, 4242, never)).toMatchObject({ state: "unavailable", reason: expect.stringContaining("no SSH port") });
  expect(readSshState(box.id)).toMatchObject({ state: "unavailable", vmmPid: 4242, supervisorPid: process.pid });
});

test("a re-attaching supervisor finds this boot's set-up done and does not run it again", async () => {
  const box = vm({ sshPort: 2201, config: parseSandboxConfig({}) });
  writeSshState(box.id, { state: "ready", vmmPid: 4242, setupMs: 900 });
  expect(await provisionSsh(box, 4242, never)).toEqual({ state: "ready" });
});

test("status is pending until the set-up ends; with wait, it answers once it has", async () => {
  const box = vm({ channel: "ssh" }); // an SSH sandbox's set-up starts at once
  const setup = new SshSetup(box, 4242, never, () => 0);
  const waited = setup.status(true, 10_000);
  expect((await waited).state).toBe("unavailable");
  expect((await setup.status(false)).state).toBe("unavailable");
});

test("status with wait gives up at its timeout and says pending", async () => {
  const box = vm({ sshPort: 2201, config: parseSandboxConfig({}) });
  // Never quiet: the set-up waits for the agent to be idle (at most 5 s), so it is still pending.
  const setup = new SshSetup(box, 4242, never, () => 0);
  expect(await setup.status(true, 50)).toEqual({ state: "pending" });
});
