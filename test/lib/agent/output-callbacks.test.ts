/**
 * A command's output handed to callbacks (`onStdout`/`onStderr`) instead of streams: in order and
 * whole before `wait()` resolves, held while a callback's promise is pending, discarded after a
 * callback fails (without stalling the command), and the handle's streams end empty.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Readable } from "node:stream";
import type { AgentClient } from "../../../lib/agent/client.ts";
import { startTestAgent, type TestAgent } from "../../helpers/agent.ts";

let agent: TestAgent;
let client: AgentClient;

beforeAll(async () => {
  agent = await startTestAgent();
  client = await agent.connect();
}, 60_000);

afterAll(async () => {
  await client?.close();
  await agent?.stop();
});

async function drained(stream: Readable): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += chunk;
  return text;
}

describe("exec with output callbacks", () => {
  test("each stream goes to its callback, whole, before wait() resolves; the handle's streams end empty", async () => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const proc = await client.exec({
      shell: "echo one; echo two >&2; seq 1 20000; echo three >&2; exit 3",
      onStdout: (chunk) => void out.push(chunk),
      onStderr: (chunk) => void err.push(chunk),
    });
    expect(await proc.wait()).toMatchObject({ exitCode: 3 });
    const expected = `one\n${Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join("")}`;
    expect(Buffer.concat(out).toString()).toBe(expected);
    expect(Buffer.concat(err).toString()).toBe("two\nthree\n");
    expect(await drained(proc.stdout)).toBe("");
    expect(await drained(proc.stderr)).toBe("");
  });

  test("a callback's pending promise holds the output, past the credit window, without losing or reordering any", async () => {
    const total = 3 * 1024 * 1024; // beyond the 256 KiB window: the agent must wait for credit
    let received = 0;
    let inFlight = 0;
    let overlapped = false;
    const proc = await client.exec({
      shell: `head -c ${total} /dev/zero | tr '\\0' 'x'`,
      onStdout: async (chunk) => {
        if (inFlight++ > 0) overlapped = true;
        await Bun.sleep(1);
        received += chunk.length;
        inFlight--;
      },
    });
    expect(await proc.wait()).toMatchObject({ exitCode: 0 });
    // wait() resolved after the last piece was taken, not when the command ended.
    expect(received).toBe(total);
    expect(overlapped).toBe(false);
  });

  test("a callback that throws: the rest is discarded, the command is not held, and wait() rejects with the error", async () => {
    let calls = 0;
    const proc = await client.exec({
      shell: "head -c 2000000 /dev/zero",
      onStdout: () => {
        calls++;
        throw new Error("the terminal went away");
      },
    });
    await expect(proc.wait()).rejects.toThrow("the terminal went away");
    expect(calls).toBe(1);
  });

  test("a rejected promise does the same", async () => {
    const proc = await client.exec({ shell: "echo a; echo b", onStdout: () => Promise.reject(new Error("no room")) });
    await expect(proc.wait()).rejects.toThrow("no room");
  });
});
