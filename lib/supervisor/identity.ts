/**
 * A restored guest's own identity, given by the supervisor that takes the restored VM over,
 * after the agent's HELLO and before any client is answered: the guest clock set to now, its
 * RNG rekeyed from 64 fresh host bytes, its hostname the new sandbox's name, a new boot id, and
 * eth0 configured again for the network this VM was given (guest-agent/identity.c). Without it
 * two sandboxes restored from one snapshot would produce the same random numbers.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import type { AgentHello } from "../agent/messages.ts";
import { agentError } from "../agent/_errors.ts";
import { AgentErrorPayload, IdentityResult, ReseedResult, SetTimeResult } from "../agent/messages.ts";
import { SmolError, smolError } from "../errors.ts";
import { logEvent } from "../log.ts";
import type { SandboxFiles } from "../sandbox/layout.ts";
import { guestNetworkOf } from "../network/index.ts";
import type { SandboxRecord } from "../state/record.ts";
import { within } from "../util/poll.ts";
import { tailOf } from "../util/tail.ts";
import { FrameType, jsonFrame, jsonPayload } from "./frames.ts";
import type { Relay, StreamOwner } from "./relay.ts";

const CALL_TIMEOUT_MS = 15_000;

/** One request to the agent on a stream of the supervisor's own; its RESULT's JSON. */
export async function callAgent(relay: Relay, body: Record<string, unknown>, timeoutMs = CALL_TIMEOUT_MS): Promise<unknown> {
  const answer = new Promise<unknown>((resolve, reject) => {
    const owner: StreamOwner = {
      deliver: (frame) => {
        if (frame.type === FrameType.RESULT) resolve(jsonPayload(frame));
        else if (frame.type === FrameType.ERROR) reject(agentError(AgentErrorPayload.parse(jsonPayload(frame)), String(body.op)));
      },
      fail: (_id, code, message) => reject(smolError(code === "AGENT_UNAVAILABLE" ? "AGENT_UNAVAILABLE" : "INTERNAL", message)),
    };
    relay.open(owner, jsonFrame(FrameType.OPEN, 1, body), String(body.op));
  });
  const result = await within(answer, timeoutMs);
  if (result === undefined) throw smolError("TIMEOUT", `the guest agent did not answer "${String(body.op)}" within ${timeoutMs} ms`);
  return result;
}

/** Gives the restored guest its own identity; removes the restore marker once it has one. */
export async function renewIdentity(relay: Relay, agent: AgentHello, vm: SandboxRecord, files: SandboxFiles): Promise<void> {
  const seed = randomBytes(64).toString("base64");
  // The network this VM was given (TAP: its own address from the pool), as the agent configures eth0.
  const guest = guestNetworkOf({ mode: vm.config.network, ip: vm.ip });
  const address = guest === undefined ? {} : { ip: guest.ip, gw: guest.gateway, dns: guest.dns };
  if (agent.capabilities.includes("identity")) {
    const answer = await callAgent(relay, { op: "identity", timeMs: Date.now(), seed, hostname: vm.name, ...address }).catch((error: unknown) => {
      // The guest's own account (its agent logs every port session it loses or starts) says why.
      const console = tailOf(files.consoleLog, 8);
      throw smolError(error instanceof SmolError ? error.code : "AGENT_UNAVAILABLE",
        `${(error as Error).message}${console ? `; last console lines:\n${console}` : ""}`, { cause: error });
    });
    const result = IdentityResult.parse(answer);
    if (result.applied && result.reseeded !== true) logEvent("warn", "restored guest: its kernel refused the CRNG reseed", { vm: vm.id });
    logEvent("info", "restored guest has its own identity", { vm: vm.id, bootId: result.bootId, applied: result.applied });
  } else {
    // An image whose agent predates the identity operation: clock and RNG at least.
    SetTimeResult.parse(await callAgent(relay, { op: "setTime", timeMs: Date.now() }));
    ReseedResult.parse(await callAgent(relay, { op: "reseed", data: seed }));
    logEvent("warn", "restored guest: its agent has no identity operation; hostname, boot id and network are the snapshot's", { vm: vm.id });
  }
  rmSync(files.restoreMarker, { force: true });
}
