/**
 * How smolvm starts another copy of itself (the per-VM supervisor). A compiled binary re-execs
 * `process.execPath` directly (its argv[1] is a virtual `/$bunfs` path); from source, the
 * runtime needs the entry script too, and Deno needs its `run -A`.
 */
import { fileURLToPath } from "node:url";

declare const SMOLVM_BUILD_TARGET: string | undefined;

const entryScript = fileURLToPath(new URL("../../main.ts", import.meta.url));

export function selfCommand(args: string[]): { file: string; args: string[] } {
  if (typeof SMOLVM_BUILD_TARGET === "string") return { file: process.execPath, args };
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.deno !== undefined) return { file: process.execPath, args: ["run", "-A", entryScript, ...args] };
  return { file: process.execPath, args: [entryScript, ...args] };
}
