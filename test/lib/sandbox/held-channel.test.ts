/**
 * A handle's channel (lib/sandbox/held-channel.ts) against a real supervisor and the native
 * test-mode agent: the first command rides the opening HELLO, and only when it may.
 */
import { beforeAll, expect, test } from "bun:test";
import { Commands } from "../../../lib/sandbox/commands.ts";
import { HeldChannel } from "../../../lib/sandbox/held-channel.ts";
import { agentBackend } from "../../helpers/agent-backend.ts";
import { buildNativeAgent } from "../../helpers/agent.ts";
import { client, record, sandboxRow, superviseHere } from "../supervisor/_fixture.ts";

beforeAll(async () => {
  await buildNativeAgent();
}, 300_000);

async function output(stream: NodeJS.ReadableStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

test("the first command rides the channel's HELLO; a command with stdin, or one after the channel is open, goes on it as usual", async () => {
  const vm = sandboxRow();
  const { done } = await superviseHere(vm, agentBackend());
  // Ready (the row says running) once a client has its HELLO.
  const admin = await client(vm);
  // The row as stored: this supervisor runs in the test's own process, which reconciling would not take for one.
  const target = () => ({ record: record(vm.id)!, commChannel: undefined });

  const held = new HeldChannel(target, undefined);
  const proc = await held.openWith({ argv: ["echo", "with the hello"] });
  expect(proc).toBeDefined();
  expect(await output(proc!.stdout)).toBe("with the hello\n");
  expect(await proc!.wait()).toMatchObject({ exitCode: 0 });
  // Open now: the next command is the channel's, not a new HELLO's.
  expect(await held.openWith({ argv: ["true"] })).toBeUndefined();
  expect((await (await held.get()).run(["echo", "on it"])).stdout).toBe("on it\n");
  held.release();

  // Stdin's credit comes with the answer: such a command waits for it.
  const other = new HeldChannel(target, undefined);
  expect(await other.openWith({ argv: ["cat"], stdin: true })).toBeUndefined();
  other.release();

  // vm.commands.run: a handle's first run rides the HELLO too (its output collected, its options
  // kept); one with stdin goes on the opened channel.
  for (const stdin of [undefined, "fed\n"]) {
    const runs = new HeldChannel(target, undefined);
    let rode = false;
    const commands = new Commands(() => runs.get(), async (spec) => {
      const early = await runs.openWith(spec);
      rode ||= early !== undefined;
      return early;
    });
    const first = await commands.run('printf "%s|%s|" "$GREETING" "$PWD"; cat; exit 4', { env: { GREETING: "hi" }, cwd: "/tmp", ...(stdin === undefined ? {} : { stdin }) });
    expect(first).toMatchObject({ exitCode: 4, stdout: `hi|/tmp|${stdin ?? ""}` });
    expect(rode).toBe(stdin === undefined);
    expect((await commands.run(["echo", "second"])).stdout).toBe("second\n");
    runs.release();
  }

  await admin.supervisor("supervisor.destroy", {});
  await done;
});
