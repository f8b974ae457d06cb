import type { PrepareProgress } from "../lib/sandbox/artifacts.ts";
import { Progress } from "./output.ts";

/** A create/run progress callback: a redrawn line on a terminal, nothing in pipes or JSON. */
export function progressReporter(json: boolean): { onProgress: (p: PrepareProgress) => void; done: () => void } {
  const progress = new Progress(json);
  return {
    onProgress: (p) => progress.update(p.message, p.fraction),
    done: () => progress.done(),
  };
}
