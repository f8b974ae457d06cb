/**
 * The end of a log file, for error messages that quote what a VMM or a guest said last. A
 * guest writes its console log as fast and as much as it likes, so only the file's last bytes
 * are ever read, and what is quoted is made safe for a terminal (printable.ts).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { printable } from "./printable.ts";

/** How much of a file's end is read at most. */
const TAIL_BYTES = 65536;

/** The last `lines` lines of a text file, or "" if it cannot be read. Reads at most 64 KiB. */
export function tailOf(file: string | undefined, lines = 20): string {
  if (file === undefined) return "";
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const bytes = Buffer.alloc(length);
    const read = readSync(fd, bytes, 0, length, size - length);
    const text = bytes.subarray(0, read).toString("utf8");
    return printable(text.trimEnd().split("\n").slice(-lines).map((line) => line.slice(-500)).join("\n"), 8000);
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
