/**
 * The guest agent binary that images install as PID 1.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { runHost } from "../host/process.ts";
import { guestAgentBinary } from "../agent/binary.ts";
import type { GuestArch } from "../kernel/arch.ts";
import { HostDependencyMissingError, NotFoundError, SmolError } from "../errors.ts";

/**
 * The static agent for `arch` (embedded in a compiled smolvm, guest-agent/build/ in a checkout).
 * `SMOLVM_AGENT_BINARY=/path` substitutes another build, e.g. an agent under development; the
 * image hash follows its contents.
 */
export async function agentBinary(arch: GuestArch): Promise<Uint8Array> {
  const override = process.env.SMOLVM_AGENT_BINARY;
  if (!override) return guestAgentBinary(arch).catch((error) => buildFromCheckout(arch, error));
  try {
    return new Uint8Array(await readFile(override));
  } catch (cause) {
    throw new NotFoundError(`Cannot read the agent binary "${override}" named by SMOLVM_AGENT_BINARY`, {
      cause,
      hint: "point SMOLVM_AGENT_BINARY at a static agent build, or unset it",
    });
  }
}

/**
 * Running from a checkout without a built agent (a fresh clone's first `smolvm setup`): build
 * it with the checkout's Makefile rather than send the user off to do it by hand.
 */
async function buildFromCheckout(arch: GuestArch, original: unknown): Promise<Uint8Array> {
  const makefile = fileURLToPath(new URL("../../guest-agent/Makefile", import.meta.url));
  if (!(original instanceof SmolError) || original.code !== "HOST_DEPENDENCY_MISSING" || !existsSync(makefile)) throw original;
  const target = `build/smolvm-agent-${arch}`;
  const result = await runHost("make", ["-C", fileURLToPath(new URL("../../guest-agent", import.meta.url)), target], { timeoutMs: 10 * 60_000 });
  if (result.code !== 0) {
    throw new HostDependencyMissingError(`Cannot build the ${arch} guest agent: make exited with ${result.code}`, {
      hint: "install the compilers with `smolvm setup` (musl-tools, gcc-aarch64-linux-gnu), then retry",
      details: { stderr: result.stderr.slice(-2000) },
      cause: original,
    });
  }
  return guestAgentBinary(arch);
}
