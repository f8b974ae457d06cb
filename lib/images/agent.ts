/**
 * The guest agent binary that images install as PID 1.
 */
import { readFile } from "node:fs/promises";
import { guestAgentBinary } from "../agent/binary.ts";
import type { GuestArch } from "../kernel/arch.ts";
import { SmolError } from "../errors.ts";

/**
 * The static agent for `arch` (embedded in a compiled smolvm, guest-agent/build/ in a checkout).
 * `SMOLVM_AGENT_BINARY=/path` substitutes another build, e.g. an agent under development; the
 * image hash follows its contents.
 */
export async function agentBinary(arch: GuestArch): Promise<Uint8Array> {
  const override = process.env.SMOLVM_AGENT_BINARY;
  if (!override) return guestAgentBinary(arch);
  try {
    return new Uint8Array(await readFile(override));
  } catch (cause) {
    throw new SmolError("NOT_FOUND", `Cannot read the agent binary "${override}" named by SMOLVM_AGENT_BINARY`, {
      cause,
      hint: "point SMOLVM_AGENT_BINARY at a static agent build, or unset it",
    });
  }
}
