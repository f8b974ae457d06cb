/** The end of a log file, for error messages that quote what a VMM or a guest said last. */
import { readFileSync, statSync } from "node:fs";

/** The last `lines` lines of a text file, or "" if it cannot be read. Reads at most 64 KiB. */
export function tailOf(file: string | undefined, lines = 20): string {
  if (file === undefined) return "";
  try {
    const size = statSync(file).size;
    const text = readFileSync(file, "utf8").slice(size > 65536 ? -65536 : 0);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
