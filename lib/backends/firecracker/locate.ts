/**
 * Where smolvm finds the firecracker and jailer binaries: on PATH first, then in smolvm's own
 * `bin` directory (`<SMOLVM_HOME>/bin`, default `~/.smolvm/bin`), where `smolvm setup
 * --firecracker` installs a pinned release without needing root.
 */
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { which } from "../../host/process.ts";
import { smolvmHome } from "../../paths.ts";

/** smolvm's own directory of helper binaries. */
export function smolvmBinDir(): string {
  return join(smolvmHome(), "bin");
}

/** The program on PATH, else in smolvm's bin directory; undefined when neither has it. */
export function findVmmProgram(program: string): string | undefined {
  const onPath = which(program);
  if (onPath !== undefined) return onPath;
  const own = join(smolvmBinDir(), program);
  try {
    accessSync(own, constants.X_OK);
    return own;
  } catch {
    return undefined;
  }
}
