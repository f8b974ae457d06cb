import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { smolvmBinDir } from "../../../lib/backends/firecracker/locate.ts";
import { backendFor, type BackendRequest, chooseBackend, precheckBackend } from "../../../lib/backends/select.ts";
import type { Backend, BackendProbe } from "../../../lib/backends/types.ts";
import { BackendUnavailableError, InvalidInputError, type SmolError } from "../../../lib/errors.ts";
import { rejection } from "../../helpers/rejection.ts";

function caught(body: () => unknown): SmolError {
  try {
    body();
  } catch (error) {
    return error as SmolError;
  }
  throw new Error("expected a failure");
}

/** A Firecracker whose probe answers as told, counting how often it was asked. */
function firecrackerThat(answer: BackendProbe): Backend & { probes: number } {
  const fake = {
    name: "firecracker" as const,
    probes: 0,
    probe: async () => {
      fake.probes++;
      return answer;
    },
    prepareDisk: () => Promise.reject(new Error("not used")),
    launch: () => Promise.reject(new Error("not used")),
    restore: () => Promise.reject(new Error("not used")),
    attach: () => Promise.reject(new Error("not used")),
  };
  return fake;
}

const usable = () => firecrackerThat({ ok: true, accel: "kvm", accelReason: "test", version: "1.17.0" });
const unusable = () => firecrackerThat({ ok: false, reason: "KVM cannot run a guest here: test says no", hint: "use QEMU" });

function request(overrides: Partial<BackendRequest> = {}): BackendRequest {
  return { network: undefined, arch: "x86_64", kernelPath: "/k", env: {}, platform: "linux", firecracker: usable(), ...overrides };
}

// smolvm's own bin directory (under the test's fresh home) holds the firecracker binary.
beforeEach(() => {
  mkdirSync(smolvmBinDir(), { recursive: true });
  writeFileSync(join(smolvmBinDir(), "firecracker"), "#!/bin/sh\n");
  chmodSync(join(smolvmBinDir(), "firecracker"), 0o755);
});
afterEach(() => rmSync(smolvmBinDir(), { recursive: true, force: true }));

describe("the backend a new sandbox gets", () => {
  test("an explicit qemu wins over SMOLVM_BACKEND, and keeps the default network", async () => {
    const firecracker = usable();
    const chosen = await chooseBackend(request({ choice: "qemu", env: { SMOLVM_BACKEND: "firecracker" }, firecracker }));
    expect(chosen).toEqual({ name: "qemu", network: "user", reason: "asked for by the sandbox config", fellBack: false });
    expect(firecracker.probes).toBe(0);
  });

  test("on macOS the default is QEMU, with no notice", async () => {
    const chosen = await chooseBackend(request({ platform: "darwin", network: "none" }));
    expect(chosen.name).toBe("qemu");
    expect(chosen.fellBack).toBe(false);
  });

  test("on Linux the default is Firecracker where it can run the sandbox's network", async () => {
    const chosen = await chooseBackend(request({ network: "none" }));
    expect(chosen).toEqual({ name: "firecracker", network: "none", reason: "Firecracker 1.17.0 runs on KVM here", fellBack: false });
    expect((await chooseBackend(request({ network: "none", env: { SMOLVM_BACKEND: "auto" } }))).name).toBe("firecracker");
  });

  test("a sandbox left to the default network (user mode) falls back to QEMU, saying why", async () => {
    const firecracker = usable();
    const chosen = await chooseBackend(request({ firecracker }));
    expect(chosen.name).toBe("qemu");
    expect(chosen.network).toBe("user");
    expect(chosen.fellBack).toBe(true);
    expect(chosen.reason).toContain("user-mode networking");
    expect(firecracker.probes).toBe(0);
  });

  test("where Firecracker cannot run, the default is QEMU with Firecracker's reason", async () => {
    const chosen = await chooseBackend(request({ network: "none", firecracker: unusable() }));
    expect(chosen).toEqual({ name: "qemu", network: "none", reason: "Firecracker cannot run here: KVM cannot run a guest here: test says no", fellBack: true });
  });

  test("where firecracker is not installed, the default is QEMU, saying so", async () => {
    rmSync(smolvmBinDir(), { recursive: true, force: true });
    const saved = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      const chosen = await chooseBackend(request({ network: "none" }));
      expect(chosen).toEqual({ name: "qemu", network: "none", reason: "Firecracker is not installed (`smolvm setup --firecracker` installs it)", fellBack: true });
    } finally {
      process.env.PATH = saved;
    }
  });

  test("an explicit firecracker with no network given runs without one", async () => {
    const chosen = await chooseBackend(request({ choice: "firecracker" }));
    expect(chosen).toEqual({ name: "firecracker", network: "none", reason: "asked for by the sandbox config", fellBack: false });
    const fromEnv = await chooseBackend(request({ env: { SMOLVM_BACKEND: "firecracker" } }));
    expect(fromEnv.reason).toBe("asked for by SMOLVM_BACKEND");
  });

  test("an explicit firecracker that cannot run here is refused with Firecracker's reason and a way out", async () => {
    const error = await rejection(chooseBackend(request({ choice: "firecracker", firecracker: unusable() })), BackendUnavailableError);
    expect(error.message).toBe("Cannot use the firecracker backend (asked for by the sandbox config): KVM cannot run a guest here: test says no");
    expect(error.hint).toContain("--backend qemu");
  });
});

describe("refused before anything is prepared", () => {
  test("an unknown SMOLVM_BACKEND is INVALID_INPUT naming the choices", () => {
    const error = caught(() => precheckBackend({ network: undefined, env: { SMOLVM_BACKEND: "xen" } }));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.hint).toContain("qemu");
  });

  test("firecracker with user-mode networking names the backend and who asked for it", () => {
    const error = caught(() => precheckBackend({ network: "user", env: { SMOLVM_BACKEND: "firecracker" }, platform: "linux" }));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toBe('Cannot create a sandbox with network "user" on the firecracker backend (asked for by SMOLVM_BACKEND): Firecracker has no user-mode networking');
  });

  test("firecracker off Linux, or without its binary, is BACKEND_UNAVAILABLE with the fix", () => {
    const mac = caught(() => precheckBackend({ choice: "firecracker", network: "none", platform: "darwin" }));
    expect(mac).toBeInstanceOf(BackendUnavailableError);
    expect(mac.message).toContain("Linux only");
    rmSync(smolvmBinDir(), { recursive: true, force: true });
    const saved = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      const missing = caught(() => precheckBackend({ choice: "firecracker", network: "none", platform: "linux" }));
      expect(missing).toBeInstanceOf(BackendUnavailableError);
      expect(missing.message).toContain('"firecracker" is not on PATH');
      expect(missing.hint).toContain("smolvm setup --firecracker");
    } finally {
      process.env.PATH = saved;
    }
  });

  test("qemu and auto are never refused here", () => {
    expect(precheckBackend({ choice: "qemu", network: "user", platform: "darwin" }).choice).toBe("qemu");
    expect(precheckBackend({ network: "user", env: {} }).choice).toBe("auto");
  });
});

test("backendFor maps a recorded name to its implementation", () => {
  expect(backendFor("qemu").name).toBe("qemu");
  expect(backendFor("firecracker").name).toBe("firecracker");
});
