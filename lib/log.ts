/**
 * The diagnostic log (`~/.smolvm/smolvm.log`): one JSON line per event. Users see a short
 * message and a hint; the log keeps the stack and the details for a bug report. Logging never
 * fails the operation that logs.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { paths } from "./paths.ts";

export function logEvent(level: "info" | "warn" | "error", message: string, details: Record<string, unknown> = {}): void {
  try {
    const file = paths.logFile();
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, `${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, level, message, ...details })}\n`);
  } catch {
    // The log is a convenience; a read-only home must not turn a success into a failure.
  }
}
