/**
 * The managed env file has two writers: the agent, and the SSH channel, which rewrites
 * /etc/profile.d/smolvm-env.sh over SFTP in the same format. The agent reloads the file when
 * another writer replaced it, so both channels always share one set.
 */
import { expect, test } from "bun:test";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import type { AgentClient } from "../../lib/agent/client.ts";
import { parseEnv, serializeEnv } from "../../lib/ssh/envfile.ts";
import { withSharedAgent, type TestAgent } from "../helpers/agent.ts";

let agent: TestAgent;
let client: AgentClient;

withSharedAgent((a, c) => {
  agent = a;
  client = c;
});

function replaceFile(vars: Record<string, string>): void {
  const tmp = `${agent.envFile}.other-writer`;
  writeFileSync(tmp, serializeEnv(vars));
  renameSync(tmp, agent.envFile);
}

test("a file replaced by another writer is what the next exec and env.list see", async () => {
  await client.env.set({ FROM_AGENT: "a" });
  replaceFile({ FROM_AGENT: "a", FROM_SSH: "it's\nmultiline" });
  expect(await client.env.list()).toEqual({ FROM_AGENT: "a", FROM_SSH: "it's\nmultiline" });
  expect((await client.run('printf %s "$FROM_SSH"')).stdout).toBe("it's\nmultiline");
});

test("an agent env.set after another writer keeps that writer's variables", async () => {
  replaceFile({ KEEP_ME: "yes" });
  const vars = await client.env.set({ ADDED: "1" });
  expect(vars).toEqual({ KEEP_ME: "yes", ADDED: "1" });
});

test("the agent's own file parses to the same set in the SSH channel's parser", async () => {
  const vars = await client.env.set({ Q: "'", NL: "a\nb", EMPTY: "", SP: " x y " });
  const { readFileSync } = await import("node:fs");
  expect(parseEnv(readFileSync(agent.envFile, "utf8"))).toEqual(vars);
  expect(readFileSync(agent.envFile, "utf8")).toBe(serializeEnv(vars));
});

test("a removed file empties the set", async () => {
  await client.env.set({ SOON_GONE: "x" });
  rmSync(agent.envFile);
  expect(await client.env.list()).toEqual({});
  expect((await client.run('printf %s "${SOON_GONE-unset}"')).stdout).toBe("unset");
});
