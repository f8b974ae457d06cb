/**
 * The files a sandbox's network keeps in the sandbox's directory. Nothing else needs recording:
 * pasta is found by the pid file its command line names (so a teardown after a kill -9 finds it
 * too), and TAP objects are named after the sandbox id.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";

/** pasta writes its pid here once it is set up; the path also marks its command line as this sandbox's. */
export const pastaPidPath = (dir: string) => join(dir, "pasta.pid");
export const pastaLogPath = (dir: string) => join(dir, "pasta.log");
/** The rule set a user-mode sandbox's namespace loads before its VMM starts. */
export const namespaceRulesPath = (dir: string) => join(dir, "netns.nft");

export function removeNetworkFiles(dir: string): void {
  for (const file of [pastaPidPath(dir), namespaceRulesPath(dir)]) rmSync(file, { force: true });
}
