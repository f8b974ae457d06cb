/**
 * Backend selection: the explicit choice, then `SMOLVM_BACKEND`, then the platform default
 * (Linux: Firecracker when usable, else QEMU; macOS: QEMU). Firecracker is not implemented yet,
 * so `auto` means QEMU everywhere for now and an explicit `firecracker` says so.
 */
import { BACKENDS, type BackendChoice } from "../config.ts";
import { BackendUnavailableError, InvalidInputError } from "../errors.ts";
import { qemuBackend } from "./qemu.ts";
import type { Backend, BackendName } from "./types.ts";

export type * from "./types.ts";
export { qemuBackend, QemuBackend } from "./qemu.ts";

/** Which backend a sandbox uses, from its configured choice and the environment. */
export function resolveBackendName(
  choice: BackendChoice = "auto",
  env: Record<string, string | undefined> = process.env,
): BackendName {
  let effective = choice;
  if (effective === "auto" && env.SMOLVM_BACKEND) {
    const fromEnv = env.SMOLVM_BACKEND;
    if (!(BACKENDS as readonly string[]).includes(fromEnv)) {
      throw new InvalidInputError(`Cannot choose a backend: SMOLVM_BACKEND is "${fromEnv}"`, {
        hint: `use one of ${BACKENDS.join(", ")}`,
      });
    }
    effective = fromEnv as BackendChoice;
  }
  return effective === "firecracker" ? "firecracker" : "qemu";
}

/** The Backend for a sandbox's configured choice. */
export function getBackend(choice: BackendChoice = "auto", env: Record<string, string | undefined> = process.env): Backend {
  const name = resolveBackendName(choice, env);
  if (name === "firecracker") {
    throw new BackendUnavailableError("Cannot use the Firecracker backend: it is not implemented yet", {
      hint: "use the QEMU backend: unset SMOLVM_BACKEND, or set it to qemu",
    });
  }
  return qemuBackend;
}
