/** Regenerates `completions/` from the command tree (`npm run completions`); a test checks drift. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { completionScript, SHELLS } from "../cmd/completions.ts";
import { buildProgram } from "../cmd/program.ts";

export const COMPLETION_FILES = { bash: "smolvm.bash", zsh: "_smolvm", fish: "smolvm.fish" } as const;

if (import.meta.main) {
  const dir = join(import.meta.dirname, "..", "completions");
  mkdirSync(dir, { recursive: true });
  for (const shell of SHELLS) {
    writeFileSync(join(dir, COMPLETION_FILES[shell]), completionScript((await buildProgram()) as never, shell));
  }
  console.log(`wrote ${SHELLS.length} completion scripts to completions/`);
}
