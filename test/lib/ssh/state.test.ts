import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { ChannelUnavailableError } from "../../../lib/errors.ts";
import { paths } from "../../../lib/paths.ts";
import { assertMay } from "../../../lib/sandbox/status.ts";
import { recordedSshStatus, sshEndpointFor, sshStatePath, writeSshState } from "../../../lib/ssh/state.ts";
import type { SandboxRecord } from "../../../lib/state/record.ts";

function vm(patch: Partial<SandboxRecord> = {}): SandboxRecord {
  const id = patch.id ?? `vm-${Math.random().toString(16).slice(2, 10)}`;
  mkdirSync(paths.sandboxDir(id), { recursive: true });
  return {
    id, name: "box", status: "running", config: parseSandboxConfig({}), backend: "qemu", channel: null, ip: null,
    sshPort: 2201, dnsPort: null, cid: null, supervisorPid: process.pid, vmmPid: 4242, lastError: null, createdAt: 0, updatedAt: 0,
    ...patch,
  };
}

test("no state yet, or a state of another boot, is pending; this boot's ready gives the endpoint", () => {
  const v = vm();
  expect(recordedSshStatus(v)).toEqual({ state: "pending" });
  expect(sshEndpointFor(v, recordedSshStatus(v))).toBeUndefined();
  writeSshState(v.id, { state: "ready", vmmPid: 1 });
  expect(recordedSshStatus(v)).toEqual({ state: "pending" });
  writeSshState(v.id, { state: "ready", vmmPid: 4242 });
  expect(sshEndpointFor(v, recordedSshStatus(v))).toEqual({ host: "127.0.0.1", port: 2201 });
});

test("an image without sshd is CHANNEL_UNAVAILABLE with the reason and hint, at once", () => {
  const v = vm();
  writeSshState(v.id, { state: "unavailable", reason: 'its image "base" has no SSH server', hint: "use --image debian", vmmPid: 4242 });
  expect(() => sshEndpointFor(v, recordedSshStatus(v))).toThrow(expect.objectContaining({
    code: "CHANNEL_UNAVAILABLE",
    message: 'Cannot reach sandbox "box" over SSH: its image "base" has no SSH server',
    hint: "use --image debian",
  }));
});

test("a stopped or paused sandbox is not reached, a network-less one has no SSH", () => {
  const reach = { kind: "reach", what: "reach" } as const;
  expect(() => assertMay(vm({ status: "stopped" }), reach)).toThrow(expect.objectContaining({ code: "NOT_RUNNING" }));
  expect(() => assertMay(vm({ status: "paused" }), reach)).toThrow(expect.objectContaining({ code: "NOT_RUNNING", hint: "resume it with `smolvm resume box`" }));
  expect(() => sshEndpointFor(vm({ sshPort: null }), { state: "ready" })).toThrow(ChannelUnavailableError);
});

test("a set-up whose supervisor died fails, unless a new supervisor took over", () => {
  const dead = 2 ** 22 + 12345;
  const v = vm({ supervisorPid: dead });
  writeFileSync(sshStatePath(v.id), JSON.stringify({ state: "pending", vmmPid: 4242, supervisorPid: dead, at: 0 }));
  expect(() => sshEndpointFor(v, recordedSshStatus(v))).toThrow(expect.objectContaining({ code: "CHANNEL_UNAVAILABLE" }));
  expect(recordedSshStatus({ ...v, supervisorPid: process.pid })).toEqual({ state: "pending" });
});
