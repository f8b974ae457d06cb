/**
 * The pinned Linux source the guest kernel is built from, and its verification.
 *
 * The primary source is Debian's `linux-source-6.1` package, which drops the (Debian-patched)
 * tree at /usr/src/linux-source-6.1.tar.xz. Debian replaces that package with each bookworm
 * point release and the mirror keeps only the newest few, so more than one version is pinned:
 * every accepted tarball is named here with its SHA-256, and a tarball with any other checksum
 * is refused rather than built.
 *
 * Hosts without Debian packages would use a kernel.org tarball. Its checksum could not be
 * verified from the machines this was written on (kernel.org is unreachable there), so the
 * fallback is described but refuses to run until a verified SHA-256 is recorded below.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createHash } from "node:crypto";
import { NotFoundError, SmolError } from "../errors.ts";

export const DEBIAN_SOURCE_PATH = "/usr/src/linux-source-6.1.tar.xz";

export interface DebianSourcePin {
  kind: "debian";
  package: "linux-source-6.1";
  /** The Debian package version (`dpkg-query -W linux-source-6.1`). */
  version: string;
  sha256: string;
}

export interface KernelOrgSourcePin {
  kind: "kernel.org";
  version: string;
  url: string;
  /** `undefined` until someone records a checksum verified against kernel.org's signed list. */
  sha256: string | undefined;
}

/** Accepted Debian tarballs, newest first. */
export const DEBIAN_SOURCE_PINS: readonly DebianSourcePin[] = [
  {
    kind: "debian",
    package: "linux-source-6.1",
    version: "6.1.192-2",
    sha256: "4d415b3d364834fd818270e88813e90323bbfce4f519a0e6bd4940ddcd7df693",
  },
  {
    kind: "debian",
    package: "linux-source-6.1",
    version: "6.1.176-1",
    sha256: "78cb82f50374e337d973c32ebf60d16e162589e45032db30f7a0d5295272de5e",
  },
];

/**
 * TODO: record the SHA-256 of this tarball from https://cdn.kernel.org/pub/linux/kernel/v6.x/
 * sha256sums.asc (checking its signature) before enabling the fallback.
 */
export const KERNEL_ORG_SOURCE_PIN: KernelOrgSourcePin = {
  kind: "kernel.org",
  version: "6.1.176",
  url: "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.176.tar.xz",
  sha256: undefined,
};

export type SourcePin = DebianSourcePin | KernelOrgSourcePin;

/** A source tarball on disk whose checksum matched a pin. */
export interface VerifiedSource {
  path: string;
  sha256: string;
  pin: SourcePin;
}

/** SHA-256 of a file, streamed (the tarball is ~140 MB). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Every pin a tarball may match, in preference order. */
export function knownSourcePins(): Array<SourcePin & { sha256: string }> {
  const pins: Array<SourcePin & { sha256: string }> = [...DEBIAN_SOURCE_PINS];
  const fallback = KERNEL_ORG_SOURCE_PIN;
  if (fallback.sha256 !== undefined) pins.push({ ...fallback, sha256: fallback.sha256 });
  return pins;
}

function describePin(pin: SourcePin): string {
  return pin.kind === "debian" ? `Debian ${pin.package} ${pin.version}` : `kernel.org linux-${pin.version}`;
}

/**
 * Checks that `path` exists and matches a pinned checksum.
 *
 * Throws NotFoundError when the file is missing and a SmolError (code IO_ERROR) naming the
 * actual and accepted checksums when it differs.
 */
export async function verifySource(path: string = DEBIAN_SOURCE_PATH): Promise<VerifiedSource> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error("not a regular file");
  } catch (cause) {
    throw new NotFoundError(`Cannot build the kernel: the Linux source "${path}" is missing`, {
      cause,
      hint: "install it with `apt-get install linux-source-6.1` (or run `smolvm setup`)",
      details: { path },
    });
  }
  const sha256 = await sha256File(path);
  const pin = knownSourcePins().find((p) => p.sha256 === sha256);
  if (!pin) {
    const accepted = knownSourcePins().map((p) => `${describePin(p)} (${p.sha256})`).join(", ");
    throw new SmolError(
      "IO_ERROR",
      `Cannot build the kernel: the Linux source "${path}" has SHA-256 ${sha256}, which matches no pinned version`,
      {
        hint: `accepted: ${accepted}; reinstall with \`apt-get install --reinstall linux-source-6.1\`, ` +
          "or record the new version's checksum in lib/kernel/source.ts after checking it",
        details: { path, sha256, accepted: knownSourcePins().map((p) => p.sha256) },
      },
    );
  }
  return { path, sha256, pin };
}

export { describePin };
