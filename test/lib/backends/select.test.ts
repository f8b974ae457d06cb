import { describe, expect, test } from "bun:test";
import { backendFor, chooseBackend } from "../../../lib/backends/select.ts";
import { BackendUnavailableError, InvalidInputError, type SmolError } from "../../../lib/errors.ts";

function caught(body: () => unknown): SmolError {
  try {
    body();
  } catch (error) {
    return error as SmolError;
  }
  throw new Error("expected a failure");
}

describe("backend selection", () => {
  test("an explicit qemu wins over SMOLVM_BACKEND", () => {
    expect(chooseBackend("qemu", { SMOLVM_BACKEND: "firecracker" })).toBe("qemu");
  });

  test("auto follows SMOLVM_BACKEND, else QEMU", () => {
    expect(chooseBackend("auto", {})).toBe("qemu");
    expect(chooseBackend("auto", { SMOLVM_BACKEND: "auto" })).toBe("qemu");
    expect(chooseBackend("auto", { SMOLVM_BACKEND: "qemu" })).toBe("qemu");
  });

  test("an unknown SMOLVM_BACKEND is INVALID_INPUT naming the choices", () => {
    const error = caught(() => chooseBackend("auto", { SMOLVM_BACKEND: "xen" }));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.hint).toContain("qemu");
  });

  test("firecracker, asked for explicitly or through SMOLVM_BACKEND, is refused naming the backend and where it was asked", () => {
    const explicit = caught(() => chooseBackend("firecracker", { SMOLVM_BACKEND: "qemu" }));
    expect(explicit).toBeInstanceOf(BackendUnavailableError);
    expect(explicit.message).toContain("firecracker");
    expect(explicit.message).toContain("sandbox config");
    const fromEnv = caught(() => chooseBackend("auto", { SMOLVM_BACKEND: "firecracker" }));
    expect(fromEnv.message).toContain("SMOLVM_BACKEND");
    expect(fromEnv.hint).toContain("qemu");
  });

  test("backendFor gives the QEMU implementation, and refuses Firecracker until it exists", () => {
    expect(backendFor("qemu").name).toBe("qemu");
    expect(caught(() => backendFor("firecracker"))).toBeInstanceOf(BackendUnavailableError);
  });
});
