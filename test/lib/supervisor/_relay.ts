/**
 * A relay to the native test-mode agent, as the supervisor builds one: the agent link greeted,
 * and a session context whose clients are in-process (local-client.ts), for the relay's, the
 * forwards' and the SSH set-up's tests.
 */
import { connect, type Socket } from "node:net";
import type { AgentClient } from "../../../lib/agent/client.ts";
import type { AgentHello } from "../../../lib/agent/messages.ts";
import { greet } from "../../../lib/agent/session.ts";
import type { SessionContext } from "../../../lib/supervisor/client-session.ts";
import type { Frame } from "../../../lib/supervisor/frames.ts";
import { localClient } from "../../../lib/supervisor/local-client.ts";
import { Relay } from "../../../lib/supervisor/relay.ts";
import { startTestAgent, type TestAgent } from "../../helpers/agent.ts";

export interface AgentRelay {
  agent: TestAgent;
  relay: Relay;
  context: SessionContext;
  /** Every frame the relay wrote to the agent, as the agent saw it. */
  sentToAgent: Frame[];
  /** What the relay reported as the agent breaking the protocol. */
  violations: string[];
  /** A new in-process client of the relay. */
  client(): Promise<AgentClient>;
  /** The agent link itself, to end it. */
  link: Socket;
  stop(): Promise<void>;
}

export async function agentRelay(): Promise<AgentRelay> {
  const agent = await startTestAgent();
  const link = connect(agent.socketPath);
  await new Promise((resolve) => link.once("connect", resolve));
  let relay: Relay | undefined;
  const hello: AgentHello = await greet(link, {
    client: "relay-test",
    onFrame: (frame) => relay?.fromAgent(frame),
    onProtocolError: (error) => {
      throw error;
    },
  });
  const sentToAgent: Frame[] = [];
  const violations: string[] = [];
  const { FrameDecoder } = await import("../../../lib/agent/frame.ts");
  const seen = new FrameDecoder();
  const tap = {
    get destroyed() {
      return link.destroyed;
    },
    write(bytes: Uint8Array) {
      seen.push(bytes, (frame) => sentToAgent.push({ ...frame, raw: Buffer.from(frame.raw), payload: Buffer.from(frame.payload) }));
      return link.write(bytes);
    },
  };
  relay = new Relay(tap, { window: hello.limits.initialWindow, onViolation: (what) => violations.push(what) });
  link.on("close", () => relay!.failAll("AGENT_UNAVAILABLE", "the guest agent connection closed"));
  const context: SessionContext = {
    relay,
    hello: async () => hello,
    ops: new Proxy({} as SessionContext["ops"], { get: () => async () => ({}) }),
  };
  return {
    agent,
    relay,
    context,
    sentToAgent,
    violations,
    client: () => localClient(context),
    link,
    stop: async () => {
      link.destroy();
      await agent.stop();
    },
  };
}
