/**
 * The software-emulation notice: said once per smolvm home (a marker file remembers it), so a
 * user learns why boots take seconds without reading it on every command. It names the reason
 * this process chose tcg when it booted a sandbox (QEMU's own error line when KVM failed).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { accelNoticeOnce, lastAccel } from "../backends/accel.ts";
import { smolvmHome } from "../paths.ts";

export function emulationNoticeOnce(): string | undefined {
  const marker = join(smolvmHome(), ".tcg-notice-shown");
  if (existsSync(marker)) return undefined;
  const chosen = lastAccel();
  const notice = chosen === undefined ? undefined : accelNoticeOnce(chosen);
  if (notice === undefined) return undefined;
  try {
    mkdirSync(smolvmHome(), { recursive: true });
    writeFileSync(marker, `${new Date().toISOString()}\n`);
  } catch {
    // Unwritable home: the notice simply comes again next time.
  }
  return `${notice} (\`smolvm doctor\` explains; said once)`;
}
