/**
 * The software-emulation notice: said once per smolvm home (a marker file remembers it), so a
 * user learns why boots take seconds without reading it on every command.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { accelNoticeOnce, detectAccel } from "../backends/accel.ts";
import { hostGuestArch } from "../kernel/arch.ts";
import { smolvmHome } from "../paths.ts";

export function emulationNoticeOnce(): string | undefined {
  const marker = join(smolvmHome(), ".tcg-notice-shown");
  if (existsSync(marker)) return undefined;
  const notice = accelNoticeOnce(detectAccel(hostGuestArch()));
  if (notice === undefined) return undefined;
  try {
    mkdirSync(smolvmHome(), { recursive: true });
    writeFileSync(marker, `${new Date().toISOString()}\n`);
  } catch {
    // Unwritable home: the notice simply comes again next time.
  }
  return `${notice} (\`smolvm doctor\` explains; said once)`;
}
