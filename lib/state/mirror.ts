/**
 * Each sandbox's row, mirrored in its own directory (`vms/<id>/sandbox.json`) whenever the store
 * writes it, and that directory reachable by the sandbox's name (`names/<name>`, a symbolic link
 * to `../vms/<id>`). The store is one file, and a damaged one must not lose the sandboxes it
 * described: `smolvm doctor --repair` rebuilds the store from the mirrors (lib/sandbox/repair.ts).
 *
 * The mirror follows the store and never fails it: a mirror that cannot be written (a full disk)
 * is logged and written again with the next change.
 *
 * It is also how a command reaches a running sandbox without opening the store
 * (`runningFromMirror`): a plain `smolvm exec` needs the sandbox's id, channel and supervisor, and
 * opening SQLite, checking it and reconciling the row cost that process ~1.7 ms of the ~10 before
 * its request left (measured, compiled binary). What the mirror says is trusted as far as the store's own record of
 * a running sandbox is: the sandbox's supervisor answers on its socket, or the caller falls back
 * to the store (lib/sandbox/supervisor-client.ts), and its HELLO has the last word on the state.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { logEvent } from "../log.ts";
import { paths } from "../paths.ts";
import { SANDBOX_NAME_PATTERN } from "../config.ts";
import { storeLooksWhole } from "./db.ts";
import { MIRROR_VERSION, recordFromMirror, type SandboxRecord } from "./record.ts";

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
  const text = `${JSON.stringify({ version: MIRROR_VERSION, ...record }, null, 2)}\n`;
  try {
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, text, { mode: 0o600 });
    renameSync(temp, file);
  } catch (error) {
    // On a full disk a new file cannot be made, but the old one's blocks can be written over.
    if (!rewriteInPlace(file, text)) logEvent("warn", `cannot write ${file}: ${(error as Error).message}`, { sandbox: record.id });
  }
  linkName(record);
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

/** The id whose directory `names/<name>` leads to, if it is a link this module wrote (`../vms/<id>`). */
function linkedId(name: string): string | undefined {
  try {
    return /^\.\.\/vms\/([a-z0-9]+)$/.exec(readlinkSync(join(paths.namesDir(), name)))?.[1];
  } catch {
    return undefined; // no link of that name, or not a link
  }
}

/** Points `names/<name>` at the sandbox's directory, replacing a link a name's earlier holder left. */
function linkName(record: SandboxRecord): void {
  // Only a name `create` would take becomes a path (a restored row's comes from a file).
  if (!SANDBOX_NAME_PATTERN.test(record.name)) return;
  if (linkedId(record.name) === record.id) return;
  const link = join(paths.namesDir(), record.name);
  // A sandbox name holds no dot, so no other sandbox's link is ever named like this.
  const temp = `${link}.${process.pid}.tmp`;
  try {
    mkdirSync(paths.namesDir(), { recursive: true, mode: 0o700 });
    rmSync(temp, { force: true });
    symlinkSync(join("..", "vms", record.id), temp);
    renameSync(temp, link);
  } catch (error) {
    rmSync(temp, { force: true });
    logEvent("warn", `cannot link ${link}: ${(error as Error).message}`, { sandbox: record.id });
  }
}

/**
 * Removes `names/<name>` while it is sandbox `id`'s: called before the row goes, while the name is
 * still this sandbox's, so that a sandbox that takes the name next keeps its link.
 */
export function unlinkName(name: string, id: string): void {
  if (linkedId(name) === id) rmSync(join(paths.namesDir(), name), { force: true });
}

/**
 * The entries of `names/` that are not the link to a sandbox of that name (`sandboxes`, the rows):
 * left by a crash between a row's removal and its link's, or by a hand. `cleanup` removes them.
 */
export function strayNameLinks(sandboxes: ReadonlyArray<{ id: string; name: string }>): string[] {
  const ids = new Map(sandboxes.map((vm) => [vm.name, vm.id]));
  let entries: string[];
  try {
    entries = readdirSync(paths.namesDir());
  } catch {
    return [];
  }
  return entries.filter((name) => !ids.has(name) || linkedId(name) !== ids.get(name)).map((name) => join(paths.namesDir(), name));
}

/**
 * The record of a running sandbox as its mirror has it, by name or by id, without opening the
 * store. Undefined whenever the mirror cannot vouch for it, and the caller reads the store: no
 * link and no directory of that id, a link that now leads to another sandbox, a mirror that is
 * damaged or of another version, a sandbox that is not running, or a store whose header says it
 * is damaged (which stops every command, this one too, with the store's own error).
 */
export function runningFromMirror(idOrName: string): SandboxRecord | undefined {
  // Ids and names are both DNS labels: nothing else names a path under the home.
  if (!SANDBOX_NAME_PATTERN.test(idOrName)) return undefined;
  // No sandbox of that name has a link: it may be an id.
  const id = linkedId(idOrName) ?? idOrName;
  const text = readMirrorText(id);
  if (text === undefined) return undefined;
  let record: SandboxRecord;
  try {
    record = recordFromMirror(JSON.parse(text));
  } catch {
    return undefined;
  }
  const named = record.name === idOrName || record.id === idOrName;
  if (record.id !== id || !named || record.status !== "running") return undefined;
  return storeLooksWhole() ? record : undefined;
}
