import type { PrepareProgress } from "../lib/sandbox/artifacts.ts";
import { Progress } from "./output.ts";
import { printErr } from "./stdio.ts";

/** A create/run progress callback: a redrawn line on a terminal, nothing in pipes or JSON. */
export function progressReporter(json: boolean): { onProgress: (p: PrepareProgress) => void; done: () => Promise<void> } {
  const progress = new Progress(json);
  return {
    onProgress: (p) => progress.update(p.message, p.fraction),
    done: async () => {
      progress.done();
      if (json) return;
      const { emulationNoticeOnce } = await import("../lib/sandbox/notice.ts");
      const notice = emulationNoticeOnce();
      if (notice !== undefined) printErr(`note: ${notice}`);
    },
  };
}
