/**
 * Each sandbox's row, mirrored in its own directory (`vms/<id>/sandbox.json`) whenever the store
 * writes it: the store is one file, and a damaged one must not lose the sandboxes it described.
 * `smolvm doctor --repair` rebuilds the store from these (lib/sandbox/repair.ts).
 *
 * The mirror follows the store and never fails it: a mirror that cannot be written (a full disk)
 * is logged and written again with the next change.
 */
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { logEvent } from "../log.ts";
import { paths } from "../paths.ts";
import type { SandboxRecord } from "./sandboxes.ts";

export const MIRROR_FILE = "sandbox.json";
/** A mirror is small; anything bigger is not one (and is not read whole). */
export const MIRROR_MAX_BYTES = 256 * 1024;

export function mirrorPath(id: string): string {
  return join(paths.sandboxDir(id), MIRROR_FILE);
}

/** Writes the row into its sandbox's directory, if that exists (a deleted sandbox's does not). */
export function writeMirror(record: SandboxRecord): void {
  const dir = paths.sandboxDir(record.id);
  if (!existsSync(dir)) return;
  const file = mirrorPath(record.id);
  const text = `${JSON.stringify({ version: 1, ...record }, null, 2)}\n`;
  try {
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, text, { mode: 0o600 });
    renameSync(temp, file);
  } catch (error) {
    // On a full disk a new file cannot be made, but the old one's blocks can be written over.
    if (!rewriteInPlace(file, text)) logEvent("warn", `cannot write ${file}: ${(error as Error).message}`, { sandbox: record.id });
  }
}

function rewriteInPlace(file: string, text: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r+");
    const bytes = Buffer.from(text);
    writeSync(fd, bytes, 0, bytes.length, 0);
    ftruncateSync(fd, bytes.length);
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The mirror's text, or undefined when there is none (or it is too big to be one). */
export function readMirrorText(id: string): string | undefined {
  try {
    if (statSync(mirrorPath(id)).size > MIRROR_MAX_BYTES) return undefined;
    return readFileSync(mirrorPath(id), "utf8");
  } catch {
    return undefined;
  }
}
