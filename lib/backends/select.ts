/**
 * Which backend runs a sandbox: the explicit choice, then `SMOLVM_BACKEND`, then the platform
 * default. On Linux the default is Firecracker when its binary is installed, KVM is proven to run
 * a guest here (kvm-probe.ts), and the sandbox's network is one Firecracker has (`none` or
 * `tap`): a sandbox that leaves its network to the default gets
 * user-mode networking, which only QEMU has. Otherwise QEMU, with the reason. On macOS, QEMU.
 * An explicit `firecracker` with no network given runs without one. Asking for Firecracker's
 * jailer (`resolveJailer`) asks for Firecracker, and is refused on QEMU.
 *
 * A sandbox's backend is decided once, at create, and kept in its record: `backendFor` maps the
 * recorded name to the implementation.
 */
import { BACKENDS, type BackendChoice, type DiskMode, type NetworkMode } from "../config.ts";
import { BackendUnavailableError, InvalidInputError } from "../errors.ts";
import type { GuestArch } from "./accel.ts";
import { firecrackerBackend } from "./firecracker/backend.ts";
import { findVmmProgram, smolvmBinDir } from "./firecracker/locate.ts";
import { FIRECRACKER_PROGRAM } from "./firecracker/process.ts";
import { checkJailUsable } from "./firecracker/sandbox-jail.ts";
import { qemuBackend } from "./qemu/backend.ts";
import type { Backend, BackendName, BackendSnapshots } from "./types.ts";

export interface BackendRequest {
  /** Default `auto`. */
  choice?: BackendChoice;
  /** The network the sandbox asked for, or undefined when it left it to the default. */
  network: NetworkMode | undefined;
  arch: GuestArch;
  /** The kernel it boots: the KVM proof boots it. */
  kernelPath: string;
  env?: Record<string, string | undefined>;
  platform?: NodeJS.Platform;
  /** The Firecracker implementation to probe (tests pass their own). */
  firecracker?: Backend;
  /** Run Firecracker under its jailer (resolved: `resolveJailer`); asks for Firecracker when the backend is auto. */
  jailer?: boolean;
  /** Default `isolated`; a jailed sandbox must be. */
  diskMode?: DiskMode;
  /** The effective user id (the jailer needs root); default this process's. */
  euid?: number;
}

export interface BackendChoiceResult {
  name: BackendName;
  /** The network the sandbox gets: what it asked for, or this backend's default. */
  network: NetworkMode;
  /** Why this backend: said once to the user when the default fell back from Firecracker. */
  reason: string;
  /** True when the platform default would have been Firecracker but QEMU was taken instead. */
  fellBack: boolean;
}

/** The backend a sandbox created now gets, refusing an explicit one this host cannot run. */
export async function chooseBackend(request: BackendRequest): Promise<BackendChoiceResult> {
  const { choice, source, platform } = precheckBackend(request);
  const qemu = (reason: string, fellBack = false): BackendChoiceResult =>
    ({ name: "qemu", network: request.network ?? "user", reason, fellBack });
  if (choice === "qemu") return qemu(`asked for by ${source}`);
  const explicit = choice === "firecracker";
  if (platform !== "linux") return qemu(`the default on ${platform}`);
  if (!explicit && findVmmProgram(FIRECRACKER_PROGRAM) === undefined) {
    return qemu("Firecracker is not installed (`smolvm setup --firecracker` installs it)", true);
  }
  // The default picks Firecracker only where it gives the sandbox the network it would get
  // anyway: one left to the default gets user-mode networking, which Firecracker lacks.
  const network = explicit ? firecrackerNetwork(request.network) : request.network === "user" ? undefined : request.network;
  if (network === undefined) {
    return qemu(`Firecracker has no user-mode networking, which ${request.network === undefined ? "a sandbox gets by default" : "the sandbox asks for"}`, true);
  }
  const probe = await (request.firecracker ?? firecrackerBackend).probe(request.arch, request.kernelPath);
  if (!probe.ok) {
    if (!explicit) return qemu(`Firecracker cannot run here: ${probe.reason}`, true);
    throw new BackendUnavailableError(`Cannot use the firecracker backend (asked for by ${source}): ${probe.reason}`, {
      hint: `${probe.hint ?? "see `smolvm doctor`"}; or use the QEMU backend (--backend qemu)`,
    });
  }
  return { name: "firecracker", network, reason: explicit ? `asked for by ${source}` : `Firecracker ${probe.version} runs on KVM here`, fellBack: false };
}

/**
 * What can be refused before anything is prepared (a kernel build takes minutes): a bad
 * SMOLVM_BACKEND, an explicit Firecracker off Linux, with user-mode networking, or without its
 * binary, and a jailer that cannot be had (not root, no binary, a shared disk). Whether KVM runs a guest is for `chooseBackend`, which boots a test guest once.
 */
export function precheckBackend(request: Pick<BackendRequest, "choice" | "network" | "env" | "platform" | "jailer" | "diskMode" | "euid">): {
  choice: BackendChoice;
  source: string;
  platform: NodeJS.Platform;
  /**
   * The network the sandbox gets: the one asked for, else the backend's default (Firecracker's
   * `none`; QEMU's `user`, which is also the default's: it picks Firecracker only for a network
   * Firecracker has).
   */
  network: NetworkMode;
} {
  const env = request.env ?? process.env;
  const platform = request.platform ?? process.platform;
  let choice: BackendChoice = request.choice ?? "auto";
  let source = "the sandbox config";
  if (choice === "auto" && env.SMOLVM_BACKEND) {
    const fromEnv = env.SMOLVM_BACKEND;
    if (!(BACKENDS as readonly string[]).includes(fromEnv)) {
      throw new InvalidInputError(`Cannot choose a backend: SMOLVM_BACKEND is "${fromEnv}"`, {
        hint: `use one of ${BACKENDS.join(", ")}, or unset it`,
      });
    }
    choice = fromEnv as BackendChoice;
    source = "SMOLVM_BACKEND";
  }
  if (request.jailer === true) {
    if (choice === "qemu") {
      throw new InvalidInputError(`Cannot run a sandbox under Firecracker's jailer on the qemu backend (asked for by ${source}): the jailer confines Firecracker only`, {
        hint: "leave the backend to auto or firecracker, or create the sandbox without the jailer (no --jailer, SMOLVM_JAILER unset)",
      });
    }
    // The jailer is Firecracker's: asking for it asks for Firecracker.
    if (choice === "auto") [choice, source] = ["firecracker", "the jailer option"];
  }
  if (choice !== "firecracker") return { choice, source, platform, network: request.network ?? "user" };
  if (platform !== "linux") {
    throw new BackendUnavailableError(`Cannot use the firecracker backend (asked for by ${source}): Firecracker runs on Linux only, not on ${platform}`, {
      hint: "use the QEMU backend: --backend qemu, or unset SMOLVM_BACKEND",
    });
  }
  if (firecrackerNetwork(request.network) === undefined) {
    throw new InvalidInputError(`Cannot create a sandbox with network "user" on the firecracker backend (asked for by ${source}): Firecracker has no user-mode networking`, {
      hint: "give it --network tap (root or CAP_NET_ADMIN) or --network none, or use the QEMU backend (--backend qemu)",
    });
  }
  if (findVmmProgram(FIRECRACKER_PROGRAM) === undefined) {
    throw new BackendUnavailableError(`Cannot use the firecracker backend (asked for by ${source}): "${FIRECRACKER_PROGRAM}" is not on PATH nor in ${smolvmBinDir()}`, {
      hint: "install it with `smolvm setup --firecracker`, or use the QEMU backend (--backend qemu)",
    });
  }
  if (request.jailer === true) checkJailUsable({ diskMode: request.diskMode ?? "isolated", ...(request.euid === undefined ? {} : { euid: request.euid }) }, source);
  return { choice, source, platform, network: firecrackerNetwork(request.network)! };
}

/** Whether a new sandbox runs under Firecracker's jailer: the explicit choice, else SMOLVM_JAILER (1 or 0), else no. */
export function resolveJailer(asked: boolean | undefined, env: Record<string, string | undefined> = process.env): boolean {
  if (asked !== undefined) return asked;
  const value = env.SMOLVM_JAILER;
  if (value === undefined || value === "" || value === "0") return false;
  if (value === "1") return true;
  throw new InvalidInputError(`Cannot choose whether to use Firecracker's jailer: SMOLVM_JAILER is "${value}"`, {
    hint: "set it to 1 (run Firecracker under its jailer) or 0, or unset it",
  });
}

/**
 * The network a Firecracker sandbox gets: the one asked for when Firecracker has it, none when
 * none was asked for; undefined for user-mode networking, which Firecracker does not have.
 */
export function firecrackerNetwork(asked: NetworkMode | undefined): NetworkMode | undefined {
  if (asked === "user") return undefined;
  return asked ?? "none";
}

/** The implementation of a backend by name (a sandbox's recorded one). */
export function backendFor(name: BackendName): Backend {
  return name === "firecracker" ? firecrackerBackend : qemuBackend;
}

/** The backend's snapshot support, or why there is none. */
export function snapshotSupport(backend: Backend, action: string): BackendSnapshots {
  if (backend.snapshots !== undefined) return backend.snapshots;
  throw new BackendUnavailableError(`Cannot ${action}: the ${backend.name} backend cannot take or restore snapshots yet`, {
    hint: "use the QEMU backend for sandboxes you snapshot (SMOLVM_BACKEND=qemu, or backend: \"qemu\" in the SDK)",
  });
}
