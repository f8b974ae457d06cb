/**
 * The guest's console log (`vms/<id>/console.log`) is written by the VMM as fast as the guest
 * prints, and a guest can print forever: left alone it would fill the host's disk. While the
 * supervisor runs, a log past CONSOLE_MAX_BYTES is cut to its last CONSOLE_KEEP_BYTES with a line
 * saying so. The VMM appends (QEMU's `append=on`, Firecracker's stdout opened for appending), so
 * its next line lands after the cut. What the guest prints between the read and the cut is lost;
 * the log is a convenience, the disk is not. The VMM's other logs the guest can drive
 * (`Vmm.logFiles`: Firecracker's log and metrics) are held to the same bound.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";

export const CONSOLE_MAX_BYTES = 16 * 1024 * 1024;
const CONSOLE_KEEP_BYTES = 1024 * 1024;
/** A serial console under emulation prints well under 16 MiB in this time. */
const CHECK_EVERY_MS = 2_000;

/** Keeps `file` under the cap until the returned function is called. */
export function capConsoleLog(file: string, maxBytes = CONSOLE_MAX_BYTES): () => void {
  const timer = setInterval(() => trimConsoleLog(file, maxBytes), CHECK_EVERY_MS);
  timer.unref?.();
  return () => clearInterval(timer);
}

/** Cuts `file` to its last CONSOLE_KEEP_BYTES when it is over `maxBytes`; true when it did. */
export function trimConsoleLog(file: string, maxBytes = CONSOLE_MAX_BYTES): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r+");
    const size = fstatSync(fd).size;
    if (size <= maxBytes) return false;
    const keep = Buffer.alloc(Math.min(CONSOLE_KEEP_BYTES, size));
    const read = readSync(fd, keep, 0, keep.length, size - keep.length);
    const note = Buffer.from(`[smolvm: this log passed ${maxBytes} bytes; ${size - read} bytes before this line were dropped]\n`);
    ftruncateSync(fd, 0);
    writeSync(fd, note, 0, note.length, 0);
    writeSync(fd, keep, 0, read, note.length);
    return true;
  } catch {
    return false; // no log yet, or the sandbox's files are going
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
