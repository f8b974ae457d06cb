/**
 * A client of the supervisor inside the supervisor itself: port forwards, SSH set-up and anything
 * else the supervisor does in the guest go through an AgentClient like any SDK caller's, served
 * by a ClientSession on the same relay, but over an in-memory pipe instead of the supervisor's own
 * socket. Flow control stays end to end (agent to AgentClient), and there is one session layer.
 */
import { duplexPair } from "node:stream";
import { AgentClient } from "../agent/client.ts";
import { ClientSession, type SessionContext } from "./client-session.ts";

export function localClient(context: SessionContext): Promise<AgentClient> {
  const [near, far] = duplexPair();
  new ClientSession(far, context, () => {}, { own: true });
  return AgentClient.connect(near, { timeoutMs: 10_000 });
}
