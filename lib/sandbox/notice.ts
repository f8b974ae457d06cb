/**
 * Notices said once per smolvm home (a marker file remembers each), so a user learns what they
 * need without reading it on every command. The software-emulation notice says why boots take
 * seconds: it names the reason the accelerator was chosen (QEMU's own error line when KVM
 * failed), as the supervisor reported it when the sandbox became ready (`vm.accel`).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AccelInfo } from "../backends/accel.ts";
import { smolvmHome } from "../paths.ts";

let noticeGiven = false;

/**
 * The one-line notice for software emulation, returned the first time it is asked for in a
 * process and `undefined` after (and always for kvm/hvf), so it is said once.
 */
export function accelNoticeOnce(info: AccelInfo): string | undefined {
  if (info.accel !== "tcg" || noticeGiven) return undefined;
  noticeGiven = true;
  return `No hardware acceleration (${info.reason}): the guest runs under QEMU software emulation (tcg), ` +
    "which is several times slower";
}

/** The notice for a sandbox that runs with `accel`, once per smolvm home; undefined otherwise. */
export function emulationNoticeOnce(accel: AccelInfo | undefined): string | undefined {
  const marker = join(smolvmHome(), ".tcg-notice-shown");
  if (accel === undefined || existsSync(marker)) return undefined;
  const notice = accelNoticeOnce(accel);
  if (notice === undefined) return undefined;
  remember(marker);
  return `${notice} (\`smolvm doctor\` explains; said once)`;
}

/**
 * `text` the first time it is asked for in this smolvm home, undefined after (a sandbox's notice,
 * `vm.notices`, such as macOS's sandboxes having no network). The marker is named from the text,
 * so a changed notice is said again.
 */
export function noticeOncePerHome(text: string): string | undefined {
  const marker = join(smolvmHome(), `.notice-${textKey(text)}`);
  if (existsSync(marker)) return undefined;
  remember(marker);
  return `${text} (said once)`;
}

/**
 * 12 hex digits that tell notices apart (FNV-1a, 64 bits). Not `node:crypto`: loading it cost
 * every process that loads the SDK 1-2 ms (`smolvm exec` included), for a file name.
 */
function textKey(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 0x100000001b3n);
  return hash.toString(16).padStart(16, "0").slice(0, 12);
}

function remember(marker: string): void {
  try {
    mkdirSync(smolvmHome(), { recursive: true });
    writeFileSync(marker, `${new Date().toISOString()}\n`);
  } catch {
    // Unwritable home: the notice simply comes again next time.
  }
}
