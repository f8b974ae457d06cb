/**
 * Guest path rules shared by every file operation, pure so they are tested without a VM:
 * guest paths are absolute, and a trailing `/` means "into this directory".
 */
import { posix } from "node:path";
import { InvalidInputError } from "../errors.ts";
import { GUEST_HOME } from "../guest.ts";

/**
 * Checks a guest path and returns it normalised. With `file: true` the path must name a file,
 * so a trailing `/` (a directory) is refused.
 */
export function requireGuestPath(guest: string, options: { file?: boolean } = {}): string {
  if (typeof guest !== "string" || guest === "" || guest.includes("\0")) {
    throw new InvalidInputError(`Invalid guest path ${JSON.stringify(guest)}: it must be a non-empty absolute path`, {
      hint: `write it from the guest root, e.g. "${GUEST_HOME}/data.txt"`,
    });
  }
  if (!guest.startsWith("/")) {
    throw new InvalidInputError(`Invalid guest path "${guest}": it must be absolute`, {
      hint: `write it from the guest root, e.g. "${GUEST_HOME}/${guest.replace(/^\.\/+/, "")}"`,
    });
  }
  if (options.file === true && guest.endsWith("/")) {
    throw new InvalidInputError(`Invalid guest path "${guest}": it names a directory, not a file`, {
      hint: "add the file name after the last /",
    });
  }
  // normalize keeps a trailing slash, so "into this directory" survives it.
  return posix.normalize(guest);
}

/** The guest file an upload of a file named `localName` writes: `dir/` means `dir/localName`. */
export function guestTarget(guest: string, localName: string): string {
  const path = requireGuestPath(guest);
  return path.endsWith("/") ? `${path}${localName}` : path;
}
