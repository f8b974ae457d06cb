/**
 * A static BusyBox for a guest arch other than the host's (the aarch64 `base` image built on an
 * x86_64 release machine): Debian's `busybox-static` for that arch, fetched by mmdebstrap's
 * `extract` variant, which verifies it through apt's signed indexes and runs nothing of it, so
 * neither `dpkg --add-architecture` nor binfmt is needed. Cached under
 * <imagesDir>/.busybox/busybox-<arch>-<key16>; its checksum feeds the image's recipe hash.
 *
 * Listing its applets runs it under the host's user-mode emulator (`qemu-aarch64`, Debian
 * package qemu-user), which needs no binfmt either: the binary is static.
 */
import { rmSync } from "node:fs";
import { chmod, mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { paths } from "../paths.ts";
import { HostDependencyMissingError, NotFoundError } from "../errors.ts";
import { onInterrupt } from "../host/interrupt.ts";
import { runHostChecked, which } from "../host/process.ts";
import { debianArch, hostGuestArch, type GuestArch } from "../kernel/arch.ts";
import { exists, removeLeftovers, withLock } from "../util/cache-lock.ts";
import { debianSourceLines, readHostAptSources } from "./debian-mirror.ts";
import { canonicalJson, IMAGE_BUILDER_VERSION, sha256Hex } from "./recipes.ts";
import { runLogged } from "../util/run-logged.ts";

const SUITE = "bookworm";

export function foreignBusyboxPath(arch: GuestArch): string {
  const key = sha256Hex(canonicalJson({ builder: IMAGE_BUILDER_VERSION, arch, suite: SUITE, package: "busybox-static" }));
  return join(paths.imagesDir(), ".busybox", `busybox-${arch}-${key.slice(0, 16)}`);
}

export interface ForeignBusyboxOptions {
  logPath: string;
  onLine?: (line: string) => void;
  /** Only look in the cache (for hashing without side effects); throws when it is not there. */
  cachedOnly?: boolean;
}

/** The static busybox for `arch`, fetched and cached on first use. */
export async function ensureForeignBusybox(arch: GuestArch, options: ForeignBusyboxOptions): Promise<string> {
  const target = foreignBusyboxPath(arch);
  if (await exists(target)) return target;
  if (options.cachedOnly) {
    throw new NotFoundError(`Cannot find the cached ${arch} busybox "${target}"`, { hint: `build the image for ${arch} once` });
  }
  return withLock(`${target}.lock`, async () => {
    if (await exists(target)) return target;
    if (!which("mmdebstrap")) {
      throw new HostDependencyMissingError(`Cannot fetch busybox for ${arch}: mmdebstrap is not installed`, {
        hint: "install it with `apt-get install mmdebstrap` (or run `smolvm setup`)",
      });
    }
    await mkdir(join(paths.imagesDir(), ".busybox"), { recursive: true });
    await removeLeftovers(join(paths.imagesDir(), ".busybox"), `busybox-${arch}-`, (name) => name.endsWith(".partial") || name.endsWith(".tar"));
    const tarball = `${target}.${process.pid}.tar`;
    const partial = `${target}.${process.pid}.partial`;
    const undoInterrupt = onInterrupt(() => {
      rmSync(tarball, { force: true });
      rmSync(partial, { force: true });
    });
    try {
      await runLogged("mmdebstrap", [
        "--mode=auto",
        "--variant=extract",
        `--architectures=${debianArch(arch)}`,
        "--include=busybox-static",
        "--format=tar",
        SUITE,
        tarball,
        ...debianSourceLines(SUITE, ["main"], readHostAptSources(), process.env.SMOLVM_DEBIAN_MIRROR),
      ], { logPath: options.logPath, action: `Cannot fetch busybox-static for ${arch}`, ...(options.onLine ? { onLine: options.onLine } : {}) });
      await runHostChecked("sh", ["-c", 'tar -xOf "$1" ./bin/busybox > "$2"', "sh", tarball, partial], {
        action: `Cannot extract busybox for ${arch}`,
      });
      await chmod(partial, 0o755);
      await rename(partial, target);
    } finally {
      undoInterrupt();
      await rm(tarball, { force: true });
      await rm(partial, { force: true });
    }
    return target;
  });
}

/** How to run a static binary of `arch` here: directly, or under qemu-user. */
export function runnerFor(arch: GuestArch): string[] {
  if (arch === hostGuestArch()) return [];
  const emulator = `qemu-${arch}`;
  const found = which(emulator) ?? which(`${emulator}-static`);
  if (!found) {
    throw new HostDependencyMissingError(`Cannot list the applets of the ${arch} busybox: ${emulator} is not installed`, {
      hint: "install it with `apt-get install qemu-user` (or run `smolvm setup`)",
    });
  }
  return [found];
}
