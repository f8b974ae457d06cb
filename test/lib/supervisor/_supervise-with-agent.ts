/**
 * `bun _supervise-with-agent.ts ID [OPTIONS]`: a supervisor process whose VM is the native test
 * agent, or with OPTIONS (JSON: `{hostile, liveness}`) the hostile agent in a given mode and a
 * liveness watch of given patience.
 */
import { runSupervisor } from "../../../lib/supervisor/main.ts";
import { agentBackend, type AgentBackendOptions } from "../../helpers/agent-backend.ts";
import type { LivenessOptions } from "../../../lib/supervisor/liveness.ts";

const options = JSON.parse(process.argv[3] ?? "{}") as { hostile?: AgentBackendOptions["hostile"]; liveness?: LivenessOptions };
await runSupervisor(process.argv[2]!, {
  backend: agentBackend(options.hostile === undefined ? {} : { hostile: options.hostile }),
  ...(options.liveness === undefined ? {} : { runtime: { liveness: options.liveness } }),
});
process.exit(0);
