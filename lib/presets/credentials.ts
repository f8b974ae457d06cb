/**
 * What a preset takes from the host: its API-key variables (when set) and its allow-listed
 * configuration files, read here and handed to the sandbox (managed env; files in the guest's
 * home, mode 0600, directories 0700). Nothing is written on the host, logged or put on a
 * command line: values only travel inside the channel's frames.
 */
import { lstat, readFile } from "node:fs/promises";
import { join } from "node:path";
import { listTree } from "../tar/tree.ts";
import type { ConfigCopy, Preset } from "./catalog.ts";

/** Largest configuration file copied; anything bigger is not a credential or setting. */
const MAX_CONFIG_FILE = 4 * 1024 * 1024;

export interface GuestConfigFile {
  /** Relative to the home directory. */
  path: string;
  content: Buffer;
}

export interface PresetCredentials {
  /** Variable name -> value, only those set and non-empty on the host. */
  env: Record<string, string>;
  files: GuestConfigFile[];
  /** Relative paths of the directories the files need (created 0700). */
  dirs: string[];
}

/** The named top-level fields of a JSON object, or undefined when it is not one. */
export function pickJsonFields(text: string, fields: readonly string[]): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const kept: Record<string, unknown> = {};
  for (const field of fields) if (Object.hasOwn(parsed, field)) kept[field] = (parsed as Record<string, unknown>)[field];
  return `${JSON.stringify(kept, null, 2)}\n`;
}

async function regularFile(path: string): Promise<Buffer | undefined> {
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined || !info.isFile() || info.size > MAX_CONFIG_FILE) return undefined;
  return readFile(path).catch(() => undefined);
}

async function collectCopy(home: string, copy: ConfigCopy, out: PresetCredentials): Promise<void> {
  const addDirsOf = (path: string) => {
    const parts = path.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (!out.dirs.includes(dir)) out.dirs.push(dir);
    }
  };
  if (copy.kind === "file") {
    const content = await regularFile(join(home, copy.path));
    if (content === undefined) return;
    const kept = copy.pick === undefined ? content : pickJsonFields(content.toString("utf8"), copy.pick);
    if (kept === undefined) return;
    out.files.push({ path: copy.path, content: Buffer.isBuffer(kept) ? kept : Buffer.from(kept) });
    addDirsOf(copy.path);
    return;
  }
  const root = join(home, copy.path);
  const info = await lstat(root).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) return;
  const skip = new Set(copy.skip ?? []);
  const listing = await listTree(root, { ignore: [...skip] }).catch(() => undefined);
  if (listing === undefined) return;
  if (!out.dirs.includes(copy.path)) addDirsOf(`${copy.path}/x`);
  for (const entry of listing.entries) {
    const path = `${copy.path}/${entry.path}`;
    if (entry.type === "directory") {
      if (!out.dirs.includes(path)) out.dirs.push(path);
    } else if (entry.type === "file") {
      const content = await regularFile(join(root, entry.path));
      if (content !== undefined) out.files.push({ path, content });
    }
  }
}

/** The preset's credentials found on this host (`env` and `home` default to this process's). */
export async function collectCredentials(preset: Preset, options: { env?: NodeJS.ProcessEnv; home: string }): Promise<PresetCredentials> {
  const env = options.env ?? process.env;
  const out: PresetCredentials = { env: {}, files: [], dirs: [] };
  for (const name of preset.apiKeys) {
    const value = env[name];
    if (value !== undefined && value !== "" && !value.includes("\0")) out.env[name] = value;
  }
  for (const copy of preset.config) await collectCopy(options.home, copy, out);
  return out;
}
