/**
 * The jailer as an opt-in (lib/backends/firecracker/sandbox-jail.ts, select.ts): who may ask for
 * it and how (`jailer`, SMOLVM_JAILER), what it asks of the host and the sandbox, refused before
 * anything is made, and the jailer options a sandbox gets.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { smolvmBinDir } from "../../../../lib/backends/firecracker/locate.ts";
import { JAIL_ID_BASE, jailIdFor, sandboxJail } from "../../../../lib/backends/firecracker/sandbox-jail.ts";
import { chooseBackend, precheckBackend, resolveJailer } from "../../../../lib/backends/select.ts";
import type { Backend } from "../../../../lib/backends/types.ts";
import { BackendUnavailableError, InvalidInputError, type SmolError } from "../../../../lib/errors.ts";

function caught(body: () => unknown): SmolError {
  try {
    body();
  } catch (error) {
    return error as SmolError;
  }
  throw new Error("expected a failure");
}

function install(program: string): void {
  mkdirSync(smolvmBinDir(), { recursive: true });
  writeFileSync(join(smolvmBinDir(), program), "#!/bin/sh\n");
  chmodSync(join(smolvmBinDir(), program), 0o755);
}

const usable: Backend = {
  name: "firecracker",
  probe: async () => ({ ok: true, accel: "kvm", accelReason: "test", version: "1.17.0" }),
  prepareDisk: () => Promise.reject(new Error("not used")),
  launch: () => Promise.reject(new Error("not used")),
  restore: () => Promise.reject(new Error("not used")),
  attach: () => Promise.reject(new Error("not used")),
};

const asRoot = { network: undefined, env: {}, platform: "linux" as const, jailer: true, euid: 0 };

beforeEach(() => {
  install("firecracker");
  install("jailer");
});
afterEach(() => rmSync(smolvmBinDir(), { recursive: true, force: true }));

describe("asking for the jailer", () => {
  test("the explicit choice wins; else SMOLVM_JAILER 1 or 0; else no; anything else is refused by name", () => {
    expect(resolveJailer(true, { SMOLVM_JAILER: "0" })).toBe(true);
    expect(resolveJailer(false, { SMOLVM_JAILER: "1" })).toBe(false);
    expect(resolveJailer(undefined, { SMOLVM_JAILER: "1" })).toBe(true);
    expect(resolveJailer(undefined, { SMOLVM_JAILER: "0" })).toBe(false);
    expect(resolveJailer(undefined, { SMOLVM_JAILER: "" })).toBe(false);
    expect(resolveJailer(undefined, {})).toBe(false);
    const error = caught(() => resolveJailer(undefined, { SMOLVM_JAILER: "yes" }));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toBe('Cannot choose whether to use Firecracker\'s jailer: SMOLVM_JAILER is "yes"');
  });

  test("asks for Firecracker when the backend is auto, and says so as the reason", async () => {
    expect(precheckBackend(asRoot)).toMatchObject({ choice: "firecracker", source: "the jailer option" });
    const chosen = await chooseBackend({ ...asRoot, arch: "x86_64", kernelPath: "/k", firecracker: usable });
    expect(chosen).toEqual({ name: "firecracker", network: "none", reason: "asked for by the jailer option", fellBack: false });
  });

  test("on QEMU, explicit or from SMOLVM_BACKEND, it is refused naming both", () => {
    for (const [request, source] of [[{ ...asRoot, choice: "qemu" as const }, "the sandbox config"], [{ ...asRoot, env: { SMOLVM_BACKEND: "qemu" } }, "SMOLVM_BACKEND"]] as const) {
      const error = caught(() => precheckBackend(request));
      expect(error).toBeInstanceOf(InvalidInputError);
      expect(error.message).toBe(`Cannot run a sandbox under Firecracker's jailer on the qemu backend (asked for by ${source}): the jailer confines Firecracker only`);
    }
  });

  test("refused before anything is made: not root, a shared disk, no jailer binary", () => {
    const notRoot = caught(() => precheckBackend({ ...asRoot, euid: 1000 }));
    expect(notRoot).toBeInstanceOf(BackendUnavailableError);
    expect(notRoot.message).toBe("Cannot run Firecracker under its jailer (asked for by the jailer option): the jailer needs root, and smolvm runs as user 1000");
    const shared = caught(() => precheckBackend({ ...asRoot, diskMode: "shared" }));
    expect(shared).toBeInstanceOf(InvalidInputError);
    expect(shared.hint).toContain("--disk-mode isolated");
    rmSync(join(smolvmBinDir(), "jailer"));
    const missing = caught(() => precheckBackend({ ...asRoot, env: { SMOLVM_BACKEND: "firecracker" } }));
    expect(missing).toBeInstanceOf(BackendUnavailableError);
    expect(missing.message).toContain('(asked for by SMOLVM_BACKEND): "jailer" is not on PATH nor in');
    expect(missing.hint).toContain("smolvm setup --firecracker");
  });

  test("not asked for, none of it is checked", () => {
    expect(precheckBackend({ ...asRoot, jailer: false, euid: 1000, diskMode: "shared", network: "none" })).toMatchObject({ choice: "auto" });
  });
});

describe("a sandbox's jail", () => {
  test("a user and group of its own from its vsock CID, the jail in its directory, no cgroup", () => {
    expect(jailIdFor(3)).toBe(JAIL_ID_BASE + 3);
    expect(() => jailIdFor(100_000_000)).toThrow("gives no jail user id");
    expect(sandboxJail({ vmDir: "/home/u/.smolvm/vms/0123456789ab", guestCid: 5, firecrackerBinary: "/bin/firecracker", jailerBinary: "/bin/jailer" })).toEqual({
      jailerBinary: "/bin/jailer",
      firecrackerBinary: "/bin/firecracker",
      uid: JAIL_ID_BASE + 5,
      gid: JAIL_ID_BASE + 5,
      chrootBaseDir: "/home/u/.smolvm/vms/0123456789ab/jail",
      cgroupVersion: 2,
    });
  });
});
