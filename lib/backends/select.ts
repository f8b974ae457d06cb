/**
 * Which backend runs a sandbox: the explicit choice, then `SMOLVM_BACKEND`, then the platform
 * default (Linux: Firecracker where it is usable, else QEMU; macOS: QEMU). This build has only
 * the QEMU backend, so `auto` means QEMU and an explicit `firecracker` is refused by name; the
 * Firecracker backend registers itself in `backendFor` and the default when it lands.
 */
import { BACKENDS, type BackendChoice } from "../config.ts";
import { BackendUnavailableError, InvalidInputError } from "../errors.ts";
import { qemuBackend } from "./qemu/backend.ts";
import type { Backend, BackendName } from "./types.ts";

/** The backend a sandbox created now gets, refusing one this build cannot run. */
export function chooseBackend(choice: BackendChoice = "auto", env: Record<string, string | undefined> = process.env): BackendName {
  let effective = choice;
  let source = "the sandbox config";
  if (effective === "auto" && env.SMOLVM_BACKEND) {
    const fromEnv = env.SMOLVM_BACKEND;
    if (!(BACKENDS as readonly string[]).includes(fromEnv)) {
      throw new InvalidInputError(`Cannot choose a backend: SMOLVM_BACKEND is "${fromEnv}"`, {
        hint: `use one of ${BACKENDS.join(", ")}, or unset it`,
      });
    }
    effective = fromEnv as BackendChoice;
    source = "SMOLVM_BACKEND";
  }
  if (effective === "firecracker") backendFor("firecracker", source);
  return "qemu";
}

/** The implementation of a backend by name (a sandbox's recorded one). */
export function backendFor(name: BackendName, source = "the sandbox's record"): Backend {
  if (name === "qemu") return qemuBackend;
  throw new BackendUnavailableError(`Cannot use the firecracker backend (asked for by ${source}): this build of smolvm does not include it yet`, {
    hint: "use the QEMU backend: leave the backend out (or set it to qemu), and unset SMOLVM_BACKEND",
  });
}
