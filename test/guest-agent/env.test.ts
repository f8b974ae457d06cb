import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { AgentClient } from "../../lib/agent/client.ts";
import { InvalidInputError } from "../../lib/errors.ts";
import { startTestAgent, withSharedAgent, type TestAgent } from "../helpers/agent.ts";

let agent: TestAgent;
let client: AgentClient;

withSharedAgent((a, c) => {
  agent = a;
  client = c;
});

const TRICKY: Record<string, string> = {
  SPACES: "a b  c",
  SINGLE: "it's 'quoted'",
  DOUBLE: 'say "hi"',
  DOLLAR: "$HOME and ${PATH} and $(id) and `id`",
  NEWLINES: "line1\nline2\n\nline4\n",
  BACKSLASH: "back\\slash\\n not a newline",
  ONLY_QUOTE: "'",
  EMPTY: "",
  UNICODE: "héllo wörld 😀",
  TABS: "\tindented\t",
  GLOB: "* ? [a-z]",
};

test("tricky values survive the env file and reach commands exactly", async () => {
  const vars = await client.env.set(TRICKY);
  expect(vars).toEqual(TRICKY);
  expect(await client.env.list()).toEqual(TRICKY);
  for (const [name, value] of Object.entries(TRICKY)) {
    // Through the exec environment...
    expect((await client.run(`printf %s "$${name}"`)).stdout).toBe(value);
    // ...and through the file itself, as a login shell would source it (no inherited env).
    const sourced = await client.run(["env", "-i", "/bin/sh", "-c", `. "$1"; printf %s "$${name}"`, "sh", agent.envFile]);
    expect(sourced.stdout).toBe(value);
  }
  const text = readFileSync(agent.envFile, "utf8");
  expect(text).toContain("export SINGLE='it'\\''s '\\''quoted'\\'''");
});

test("unset removes variables from commands and from the file", async () => {
  await client.env.set({ GONE: "soon", KEPT: "yes" });
  const vars = await client.env.unset(["GONE", "NEVER_SET"]);
  expect(vars.GONE).toBeUndefined();
  expect(vars.KEPT).toBe("yes");
  expect((await client.run('printf %s "${GONE-unset}"')).stdout).toBe("unset");
  expect(readFileSync(agent.envFile, "utf8")).not.toContain("GONE");
});

test("a per-exec env wins over the managed env", async () => {
  await client.env.set({ WHO: "managed" });
  expect((await client.run('printf %s "$WHO"', { env: { WHO: "exec" } })).stdout).toBe("exec");
});

test("the managed env is loaded from the file when the agent restarts", async () => {
  await client.env.set({ PERSIST: "across restarts\nand lines" });
  const before = await client.env.list();
  const second = await startTestAgent(["--env-file", agent.envFile]);
  try {
    const c2 = await second.connect();
    expect(await c2.env.list()).toEqual(before);
    expect((await c2.run('printf %s "$PERSIST"')).stdout).toBe("across restarts\nand lines");
    await c2.close();
  } finally {
    await second.stop();
  }
});

test("invalid names are refused", async () => {
  await expect(client.env.set({ "BAD-NAME": "x" })).rejects.toBeInstanceOf(InvalidInputError);
  await expect(client.env.set({ "1ST": "x" })).rejects.toBeInstanceOf(InvalidInputError);
});
