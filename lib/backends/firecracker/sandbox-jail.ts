/**
 * How smolvm runs one sandbox's Firecracker under the jailer (opt-in: `--jailer`, SMOLVM_JAILER=1),
 * on top of the jailer's own contract in jailer.ts:
 *
 * - The jail is `<sandbox dir>/jail/firecracker/<sandbox id>/root/`: deleting the sandbox deletes
 *   it, and its socket paths stay short. A launch removes a jail left by an earlier run first (the
 *   jailer refuses to make its device nodes over old ones).
 * - Each sandbox's Firecracker runs as a user and group of its own, `JAIL_ID_BASE + its vsock CID`
 *   (the store keeps CIDs unique), so two jailed sandboxes cannot touch each other's files or
 *   processes. No account is needed: the jailer drops to the numbers.
 * - No cgroup is made: the VM's vCPUs and memory are its limits (`--cgroup` is not passed, so the
 *   jailer makes none), and nothing is left under /sys/fs/cgroup.
 * - The sandbox's disk is hard-linked into the jail and handed to the jail's user; the kernel is
 *   linked as it is (readable by all). A shared disk is refused: it is the cached image itself,
 *   which no sandbox's user may own.
 * - The jailer must run as root (it makes device nodes, chroots and changes user).
 */
import { join } from "node:path";
import { BackendUnavailableError, InvalidInputError } from "../../errors.ts";
import type { JailerOptions } from "./jailer.ts";
import { findVmmProgram, smolvmBinDir } from "./locate.ts";
import { JAILER_PROGRAM } from "./process.ts";

/** The first of the user and group ids jailed sandboxes run as: far above login and container (subuid) ranges. */
export const JAIL_ID_BASE = 1_700_000_000;
const JAIL_ID_SPAN = 100_000_000;

/** The user and group id the jailed Firecracker of the sandbox with vsock CID `cid` runs as. */
export function jailIdFor(cid: number): number {
  if (!Number.isInteger(cid) || cid < 0 || cid >= JAIL_ID_SPAN) {
    throw new InvalidInputError(`Cannot run Firecracker under the jailer: vsock CID ${cid} gives no jail user id`, {
      hint: "delete sandboxes you no longer need; CIDs are reused lowest first",
    });
  }
  return JAIL_ID_BASE + cid;
}

export interface JailRequest {
  /** The sandbox's directory: the jail is made in it. */
  vmDir: string;
  guestCid: number;
  /** The Firecracker binary the jailer copies into the jail. */
  firecrackerBinary: string;
  /** The jailer binary; default found as Firecracker is (PATH, then smolvm's bin directory). */
  jailerBinary?: string;
}

/** The jailer's options for one sandbox. */
export function sandboxJail(request: JailRequest): JailerOptions {
  const id = jailIdFor(request.guestCid);
  return {
    jailerBinary: request.jailerBinary ?? requireJailer(),
    firecrackerBinary: request.firecrackerBinary,
    uid: id,
    gid: id,
    chrootBaseDir: join(request.vmDir, "jail"),
    cgroupVersion: 2,
  };
}

export interface JailCheck {
  diskMode: "isolated" | "shared";
  /** The effective user id smolvm runs as; default this process's. */
  euid?: number;
}

/**
 * Refuses, before anything is made, a jailed sandbox this host or this sandbox cannot have: not
 * root, no jailer binary, or a shared disk. `source` says who asked (`--jailer`, SMOLVM_JAILER).
 */
export function checkJailUsable(check: JailCheck, source: string): void {
  const euid = check.euid ?? process.geteuid?.();
  if (euid !== 0) {
    throw new BackendUnavailableError(`Cannot run Firecracker under its jailer (asked for by ${source}): the jailer needs root, and smolvm runs as user ${euid ?? "unknown"}`, {
      hint: "run smolvm as root for jailed sandboxes, or create the sandbox without the jailer (no --jailer, SMOLVM_JAILER unset)",
    });
  }
  if (check.diskMode === "shared") {
    throw new InvalidInputError(`Cannot run Firecracker under its jailer (asked for by ${source}) with a shared disk: the jail's user would own the image itself`, {
      hint: "use --disk-mode isolated (the default) for a jailed sandbox",
    });
  }
  requireJailer(source);
}

function requireJailer(source = "the sandbox config"): string {
  const found = findVmmProgram(JAILER_PROGRAM);
  if (found !== undefined) return found;
  throw new BackendUnavailableError(`Cannot run Firecracker under its jailer (asked for by ${source}): "${JAILER_PROGRAM}" is not on PATH nor in ${smolvmBinDir()}`, {
    hint: "`smolvm setup --firecracker` installs it with Firecracker; or create the sandbox without the jailer",
  });
}
