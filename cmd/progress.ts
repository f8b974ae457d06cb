import type { AccelInfo, PrepareProgress } from "../lib/index.ts";
import { Progress } from "./output.ts";
import { printErr } from "./stdio.ts";

/**
 * A create/run progress callback: a redrawn line on a terminal, nothing in pipes or JSON; and
 * the once-only software-emulation notice once the sandbox says how it runs.
 */
export function progressReporter(json: boolean): {
  onProgress: (p: PrepareProgress) => void;
  done: () => void;
  notice: (accel: AccelInfo | undefined) => Promise<void>;
} {
  const progress = new Progress(json);
  return {
    onProgress: (p) => progress.update(p.message, p.fraction),
    done: () => progress.done(),
    notice: async (accel) => {
      if (json) return;
      const { emulationNoticeOnce } = await import("../lib/index.ts");
      const notice = emulationNoticeOnce(accel);
      if (notice !== undefined) printErr(`note: ${notice}`);
    },
  };
}
