/**
 * Guest architectures smolvm builds kernels and images for, named the way `uname -m` names them.
 */
import { arch as hostNodeArch } from "node:process";
import { InvalidInputError } from "../errors.ts";

export const GUEST_ARCHES = ["x86_64", "aarch64"] as const;
export type GuestArch = (typeof GUEST_ARCHES)[number];

/** The guest arch matching the host CPU (the one that can run without cross-arch emulation). */
export function hostGuestArch(): GuestArch {
  return hostNodeArch === "arm64" ? "aarch64" : "x86_64";
}

/** Validates a user-supplied arch, accepting the Debian and Node spellings too. */
export function parseGuestArch(value: string): GuestArch {
  switch (value) {
    case "x86_64":
    case "amd64":
    case "x64":
      return "x86_64";
    case "aarch64":
    case "arm64":
      return "aarch64";
    default:
      throw new InvalidInputError(`Cannot use guest arch "${value}": it is not supported`, {
        hint: `use one of ${GUEST_ARCHES.join(", ")}`,
      });
  }
}

/** Debian's name for the arch (`dpkg --print-architecture`). */
export function debianArch(arch: GuestArch): "amd64" | "arm64" {
  return arch === "x86_64" ? "amd64" : "arm64";
}
