/**
 * `bun _supervise-with-agent.ts __supervise ID [OPTIONS]`: a supervisor process whose VM is the
 * native test agent, or with OPTIONS (JSON: `{hostile, liveness}`) the hostile agent in a given
 * mode and a liveness watch of given patience. Its arguments name the sandbox as a real
 * supervisor's do, so smolvm finds it as one (lib/sandbox/processes.ts).
 */
import { runSupervisor } from "../../../lib/supervisor/main.ts";
import { agentBackend, type AgentBackendOptions } from "../../helpers/agent-backend.ts";
import type { LivenessOptions } from "../../../lib/supervisor/liveness.ts";

const options = JSON.parse(process.argv[4] ?? "{}") as { hostile?: AgentBackendOptions["hostile"]; liveness?: LivenessOptions };
await runSupervisor(process.argv[3]!, {
  backend: agentBackend(options.hostile === undefined ? {} : { hostile: options.hostile }),
  ...(options.liveness === undefined ? {} : { runtime: { liveness: options.liveness } }),
});
process.exit(0);
