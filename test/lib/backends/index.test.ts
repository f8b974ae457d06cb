import { describe, expect, test } from "bun:test";
import { getBackend, resolveBackendName } from "../../../lib/backends/index.ts";
import { SmolError } from "../../../lib/errors.ts";

describe("backend selection", () => {
  test("an explicit choice wins over SMOLVM_BACKEND", () => {
    expect(resolveBackendName("qemu", { SMOLVM_BACKEND: "firecracker" })).toBe("qemu");
    expect(resolveBackendName("firecracker", { SMOLVM_BACKEND: "qemu" })).toBe("firecracker");
  });

  test("auto follows SMOLVM_BACKEND, else QEMU", () => {
    expect(resolveBackendName("auto", { SMOLVM_BACKEND: "firecracker" })).toBe("firecracker");
    expect(resolveBackendName("auto", {})).toBe("qemu");
    expect(resolveBackendName("auto", { SMOLVM_BACKEND: "auto" })).toBe("qemu");
  });

  test("an unknown SMOLVM_BACKEND is INVALID_INPUT naming the choices", () => {
    let caught: unknown;
    try {
      resolveBackendName("auto", { SMOLVM_BACKEND: "xen" });
    } catch (error) {
      caught = error;
    }
    expect((caught as SmolError).code).toBe("INVALID_INPUT");
    expect((caught as SmolError).hint).toContain("qemu");
  });

  test("getBackend gives QEMU, and refuses Firecracker until it exists", () => {
    expect(getBackend("auto", {}).name).toBe("qemu");
    expect(() => getBackend("firecracker", {})).toThrow(SmolError);
  });
});
