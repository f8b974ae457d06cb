import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { paths } from "../../../lib/paths.ts";
import { sshReadiness, sshStatePath, writeSshState } from "../../../lib/ssh/state.ts";
import type { SandboxRecord } from "../../../lib/state/sandboxes.ts";

function vm(patch: Partial<SandboxRecord> = {}): SandboxRecord {
  const id = patch.id ?? `vm-${Math.random().toString(16).slice(2, 10)}`;
  mkdirSync(paths.sandboxDir(id), { recursive: true });
  return {
    id, name: "box", status: "running", config: parseSandboxConfig({}), backend: "qemu", channel: null, ip: null,
    sshPort: 2201, cid: null, supervisorPid: process.pid, vmmPid: 4242, lastError: null, createdAt: 0, updatedAt: 0,
    ...patch,
  };
}

test("no state yet, or a state of another boot, is pending", () => {
  const v = vm();
  expect(sshReadiness(v)).toBe("pending");
  writeSshState(v.id, { state: "ready", vmmPid: 1 });
  expect(sshReadiness(v)).toBe("pending");
  writeSshState(v.id, { state: "ready", vmmPid: 4242 });
  expect(sshReadiness(v)).toBe("ready");
});

test("an image without sshd is CHANNEL_UNAVAILABLE with the reason and hint, at once", () => {
  const v = vm();
  writeSshState(v.id, { state: "unavailable", reason: 'its image "base" has no SSH server', hint: "use --image debian", vmmPid: 4242 });
  expect(() => sshReadiness(v)).toThrow(expect.objectContaining({
    code: "CHANNEL_UNAVAILABLE",
    message: 'Cannot reach sandbox "box" over SSH: its image "base" has no SSH server',
    hint: "use --image debian",
  }));
});

test("a stopped, paused or network-less sandbox has no SSH", () => {
  expect(() => sshReadiness(vm({ status: "stopped" }))).toThrow(expect.objectContaining({ code: "NOT_RUNNING" }));
  expect(() => sshReadiness(vm({ status: "paused" }))).toThrow(expect.objectContaining({ code: "NOT_RUNNING" }));
  expect(() => sshReadiness(vm({ sshPort: null }))).toThrow(expect.objectContaining({ code: "CHANNEL_UNAVAILABLE" }));
});

test("a set-up whose supervisor died fails, unless a new supervisor took over", () => {
  const dead = 2 ** 22 + 12345;
  const v = vm({ supervisorPid: dead });
  writeFileSync(sshStatePath(v.id), JSON.stringify({ state: "pending", vmmPid: 4242, supervisorPid: dead, at: 0 }));
  expect(() => sshReadiness(v)).toThrow(expect.objectContaining({ code: "CHANNEL_UNAVAILABLE" }));
  expect(sshReadiness({ ...v, supervisorPid: process.pid })).toBe("pending");
});
