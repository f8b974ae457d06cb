/**
 * Every command group, in the order `smolvm --help` lists them. A command is registered only
 * once it works end to end.
 */
import type { Command } from "@commander-js/extra-typings";
import { registerArtifacts } from "./artifacts.ts";
import { registerBench } from "./bench.ts";
import { registerCompletions } from "./completions.ts";
import { registerDoctor } from "./doctor.ts";
import { registerEnv } from "./env.ts";
import { registerExec } from "./exec.ts";
import { registerFile } from "./file.ts";
import { registerList } from "./list.ts";
import { registerMaintenance } from "./maintenance.ts";
import { registerPause } from "./pause.ts";
import { registerPort } from "./port.ts";
import { registerSandbox } from "./sandbox.ts";
import { registerSetup } from "./setup.ts";
import { registerSsh } from "./ssh.ts";
import { registerSupervise } from "./supervise.ts";
import { registerVersion } from "./version.ts";

export function registerCommands(program: Command): void {
  registerExec(program);
  registerSandbox(program);
  registerPause(program);
  registerFile(program);
  registerEnv(program);
  registerPort(program);
  registerSsh(program);
  registerList(program);
  registerMaintenance(program);
  registerSetup(program);
  registerArtifacts(program);
  registerDoctor(program);
  registerBench(program);
  registerVersion(program);
  registerCompletions(program);
  registerSupervise(program);
}
