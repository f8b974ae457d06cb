/**
 * The guest agent binary that images install as PID 1.
 */
import { readFile } from "node:fs/promises";
import type { GuestArch } from "../kernel/arch.ts";
import { SmolError } from "../errors.ts";

type AgentModule = { guestAgentBinary(arch: GuestArch): Promise<Uint8Array> };

/**
 * The static agent for `arch`, from lib/agent/binary.ts (embedded in a compiled smolvm, or
 * guest-agent/build/ in a checkout). `SMOLVM_AGENT_BINARY=/path` substitutes another build,
 * e.g. an agent under development; the image hash follows its contents.
 */
export async function agentBinary(arch: GuestArch): Promise<Uint8Array> {
  const override = process.env.SMOLVM_AGENT_BINARY;
  if (override) {
    try {
      return new Uint8Array(await readFile(override));
    } catch (cause) {
      throw new SmolError("NOT_FOUND", `Cannot read the agent binary "${override}" named by SMOLVM_AGENT_BINARY`, {
        cause,
        hint: "point SMOLVM_AGENT_BINARY at a static agent build, or unset it",
      });
    }
  }
  // TODO: a static import once lib/agent/binary.ts exists, so `bun build --compile` bundles it.
  const specifier = "../agent/binary.ts";
  let mod: AgentModule;
  try {
    mod = (await import(specifier)) as AgentModule;
  } catch (cause) {
    throw new SmolError("HOST_DEPENDENCY_MISSING", "Cannot build the image: the guest agent module is not available", {
      cause,
      hint: "build the agent with `make -C guest-agent`",
    });
  }
  return mod.guestAgentBinary(arch);
}
