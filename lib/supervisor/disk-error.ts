/**
 * What to say when the VMM froze a guest because its disk could not be written on the host: the
 * guest's writes wait in the VMM, nothing is lost yet, and the sandbox goes on once the host has
 * room again (`smolvm resume`). The message names the file and the room it may still need.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import type { DiskError } from "../backends/types.ts";
import { diskFullError, freeBytes, SmolError } from "../errors.ts";

/** The least free space worth trying a resume with: one guest write of a few MiB. */
export const RESUME_MIN_FREE_BYTES = 8 * 1024 * 1024;

/** How much more room a disk file may take: up to its virtual size (a qcow2's header says it). */
export function diskGrowthBytes(path: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const header = Buffer.alloc(32);
    if (readSync(fd, header, 0, 32, 0) < 32 || header.readUInt32BE(0) !== 0x514649fb) return undefined; // "QFI\xfb"
    const virtual = Number(header.readBigUInt64BE(24));
    const allocated = statSync(path).blocks * 512;
    return Math.max(0, virtual - allocated);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The error clients get while the guest is frozen on a disk error. */
export function frozenOnDisk(name: string, disk: string, error: DiskError): SmolError {
  if (error.noSpace) {
    const growth = diskGrowthBytes(disk);
    const fault = diskFullError(disk, {
      action: `Sandbox "${name}" is paused: its disk "${disk}" cannot grow`,
      ...(growth === undefined ? {} : { neededBytes: growth }),
    });
    return new SmolError("HOST_DISK_FULL", growth === undefined ? fault.message : fault.message.replace(/ needed\)$/, " more at most, for the disk to reach its full size)"), {
      hint: `free space on the file system holding "${disk}" (or move it), then \`smolvm resume ${name}\`: the guest goes on where it was and nothing is lost`,
      ...(fault.details === undefined ? {} : { details: fault.details }),
    });
  }
  return new SmolError("IO_ERROR", `Sandbox "${name}" is paused: writing its disk "${disk}" failed on the host (${error.reason})`, {
    hint: `fix what stops "${disk}" from being written (see the host's kernel log), then \`smolvm resume ${name}\``,
  });
}

/** Whether there is room enough now to let a guest frozen on a full disk go on. */
export function roomToResume(disk: string): boolean {
  return (freeBytes(disk) ?? Infinity) >= RESUME_MIN_FREE_BYTES;
}
