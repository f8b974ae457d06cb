import type { AccelInfo, PrepareProgress } from "../lib/index.ts";
import { Progress } from "./output.ts";
import { printErr } from "./stdio.ts";

/**
 * A create/run progress callback: a redrawn line on a terminal, nothing in pipes or JSON; and
 * the once-only notices (QEMU chosen over Firecracker, software emulation, a sandbox's own such as
 * macOS's missing network) once the sandbox says how it runs.
 */
export function progressReporter(json: boolean): {
  onProgress: (p: PrepareProgress) => void;
  done: () => void;
  notice: (accel: AccelInfo | undefined, notices?: readonly string[]) => Promise<void>;
} {
  const progress = new Progress(json);
  return {
    onProgress: (p) => progress.update(p.message, p.fraction),
    done: () => progress.done(),
    notice: async (accel, notices = []) => {
      if (json) return;
      const { emulationNoticeOnce, noticeOncePerHome } = await import("../lib/index.ts");
      for (const notice of [emulationNoticeOnce(accel), ...notices.map(noticeOncePerHome)]) {
        if (notice !== undefined) printErr(`note: ${notice}`);
      }
    },
  };
}
