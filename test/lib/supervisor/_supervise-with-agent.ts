/** `bun _supervise-with-agent.ts ID`: a supervisor process whose VM is the native test agent. */
import { runSupervisor } from "../../../lib/supervisor/main.ts";
import { agentBackend } from "../../helpers/agent-backend.ts";

await runSupervisor(process.argv[2]!, { backend: agentBackend() });
process.exit(0);
