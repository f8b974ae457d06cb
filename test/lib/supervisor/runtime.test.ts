/**
 * The supervisor's runtime (runtime.ts, main.ts) end to end over its socket, with the native
 * test-mode agent as the VM: readiness and failure reach clients as the HELLO answer or an ERROR,
 * the record says what happened, and a supervisor that dies leaves the VM and its forwards to
 * the next one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { BackendUnavailableError, NotRunningError, TimeoutError } from "../../../lib/errors.ts";
import { pidAlive, processStat } from "../../../lib/host/pids.ts";
import { launcherFile, removeLauncher } from "../../../lib/sandbox/launcher.ts";
import { sandboxFiles } from "../../../lib/sandbox/layout.ts";
import { liveTicket } from "../../../lib/sandbox/ticket.ts";
import { pollUntil } from "../../../lib/util/poll.ts";
import { agentBackend } from "../../helpers/agent-backend.ts";
import { buildNativeAgent } from "../../helpers/agent.ts";
import { client, record, sandboxRow, superviseHere, superviseInChild } from "./_fixture.ts";

beforeAll(async () => {
  await buildNativeAgent();
}, 300_000);

const gone = (pid: number) => pollUntil(() => !pidAlive(pid), { timeoutMs: 10_000, what: `pid ${pid} to end` });

describe("readiness and failure on the socket", () => {
  test("a client that connects while the VM boots gets its HELLO once the agent answers, with the supervisor's part", async () => {
    const vm = sandboxRow();
    const backend = agentBackend({ bootDelayMs: 500 });
    const { done: supervised } = await superviseHere(vm, backend);
    const session = await client(vm);
    // The record said running before the HELLO went out.
    expect(record(vm.id)?.status).toBe("running");
    expect(session.hello.supervisor).toEqual({ pid: process.pid, sandbox: vm.id, state: "running", accel: "tcg", accelReason: "asked for by --accel", checks: true });
    expect(session.hello.capabilities).toContain("exec");
    expect((await session.run(["echo", "ready"])).stdout).toBe("ready\n");
    await session.supervisor("supervisor.destroy", {});
    // Answered once the row is gone: the name is free for a new sandbox.
    expect(record(vm.id)).toBeUndefined();
    await supervised;
    expect(record(vm.id)).toBeUndefined();
    expect(existsSync(sandboxFiles(vm.id).dir)).toBe(false);
    await gone(backend.launched[0]!);
  });

  test("a boot whose agent never answers is an ERROR on the socket with the code and reason, recorded as {code, message}", async () => {
    const vm = sandboxRow({ bootTimeoutMs: 1_000 });
    const backend = agentBackend({ noAgent: true });
    const { done: supervised } = await superviseHere(vm, backend);
    const error = await client(vm).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toContain("the guest agent did not answer within 1 s");
    await supervised;
    expect(record(vm.id)?.status).toBe("failed");
    expect(record(vm.id)?.lastError).toMatchObject({ code: "TIMEOUT", message: expect.stringContaining("did not answer within 1 s") });
    expect(existsSync(sandboxFiles(vm.id).supervisorSocket)).toBe(false);
    expect(liveTicket(sandboxFiles(vm.id))).toBeUndefined();
    await gone(backend.launched[0]!);
  });

  test("a VM that dies during boot fails at once with BACKEND_UNAVAILABLE, not at the boot timeout", async () => {
    const vm = sandboxRow({ bootTimeoutMs: 60_000 });
    const backend = agentBackend({ noAgent: true });
    const { done: supervised } = await superviseHere(vm, backend);
    const pending = client(vm, 60_000).catch((e: unknown) => e);
    await pollUntil(() => backend.launched[0], { timeoutMs: 10_000, what: "the VM to start" });
    const started = Date.now();
    process.kill(backend.launched[0]!, "SIGKILL");
    const error = await pending;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as Error).message).toContain("the VM exited during boot");
    await supervised;
    expect(record(vm.id)?.lastError?.code).toBe("BACKEND_UNAVAILABLE");
  });

  test("a second supervisor of the same sandbox refuses to serve beside the first", async () => {
    const vm = sandboxRow();
    const { done: supervised } = await superviseHere(vm, agentBackend());
    const session = await client(vm);
    await expect(superviseHere(vm, agentBackend())).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
    expect((await session.run(["true"])).exitCode).toBe(0);
    await session.supervisor("supervisor.destroy", {});
    await supervised;
  });
});

describe("the sandbox's own operations", () => {
  test("stop: the guest powers off, the stop is recorded, and only then are clients hung up on, told why", async () => {
    const vm = sandboxRow();
    const backend = agentBackend();
    const { done: supervised } = await superviseHere(vm, backend);
    const session = await client(vm);
    const watcher = await client(vm);
    await session.supervisor("supervisor.stop", {});
    // Told why before the hang-up: not "the agent closed the connection".
    const why = await watcher.closed;
    expect(why).toBeInstanceOf(NotRunningError);
    expect(why.message).toBe(`Sandbox "${vm.name}" was stopped`);
    expect(record(vm.id)).toMatchObject({ status: "stopped", vmmPid: null, supervisorPid: null });
    await supervised;
    await gone(backend.launched[0]!);
    expect(liveTicket(sandboxFiles(vm.id))).toBeUndefined();
  });

  test("pause freezes the VM and new sessions are told so; resume continues", async () => {
    const vm = sandboxRow();
    const backend = agentBackend();
    const { done: supervised } = await superviseHere(vm, backend);
    const session = await client(vm);
    await session.supervisor("supervisor.pause", {});
    expect(record(vm.id)?.status).toBe("paused");
    expect((await session.supervisor("supervisor.status", {})).vmm.state).toBe("paused");
    const second = await client(vm);
    expect(second.hello.supervisor?.state).toBe("paused");
    await session.supervisor("supervisor.resume", {});
    expect(record(vm.id)?.status).toBe("running");
    expect((await second.run(["echo", "thawed"])).stdout).toBe("thawed\n");
    await session.supervisor("supervisor.destroy", {});
    await supervised;
  });
});

describe("what the supervisor watches", () => {
  test("a create whose caller dies before it has its answer is undone: VM, files and row", async () => {
    const vm = sandboxRow();
    const caller = spawn("sleep", ["100"], { stdio: "ignore" });
    const stat = processStat(caller.pid!)!;
    writeFileSync(launcherFile(sandboxFiles(vm.id)), JSON.stringify({ pid: caller.pid, startTicks: stat.startTicks, purpose: "create" }));
    const backend = agentBackend();
    const { done: supervised } = await superviseHere(vm, backend);
    const session = await client(vm);
    expect((await session.run(["echo", "made"])).stdout).toBe("made\n");
    caller.kill("SIGKILL");
    await supervised;
    expect(record(vm.id)).toBeUndefined();
    expect(existsSync(sandboxFiles(vm.id).dir)).toBe(false);
    await gone(backend.launched[0]!);
  });

  test("a create whose caller lives to its end is left alone", async () => {
    const vm = sandboxRow();
    writeFileSync(launcherFile(sandboxFiles(vm.id)), JSON.stringify({ pid: process.pid, purpose: "create" }));
    const { done: supervised } = await superviseHere(vm, agentBackend());
    const session = await client(vm);
    removeLauncher(sandboxFiles(vm.id)); // the create returned
    await Bun.sleep(300);
    expect(record(vm.id)?.status).toBe("running");
    await session.supervisor("supervisor.destroy", {});
    await supervised;
  });

  test("a command waiting on a VM stopped by a signal is told so, once the agent has been quiet a while", async () => {
    const vm = sandboxRow();
    const backend = agentBackend();
    const { done: supervised } = await superviseHere(vm, backend, { liveness: { quietMs: 300 } });
    const session = await client(vm);
    const waiting = session.run(["sleep", "30"]).catch((error: unknown) => error);
    await Bun.sleep(100);
    const vmmPid = backend.launched[0]!;
    process.kill(vmmPid, "SIGSTOP");
    try {
      const error = await waiting;
      expect(error).toMatchObject({
        code: "AGENT_UNAVAILABLE",
        message: `Sandbox "${vm.name}" does not answer: its VM's process (pid ${vmmPid}) is stopped by a signal, so nothing in the guest runs`,
        hint: `\`kill -CONT ${vmmPid}\` lets it go on; \`smolvm stop ${vm.name}\` ends it`,
      });
    } finally {
      process.kill(vmmPid, "SIGCONT");
    }
    expect((await session.run(["echo", "on"])).stdout).toBe("on\n");
    await session.supervisor("supervisor.destroy", {});
    await supervised;
  });
});

describe("a supervisor that dies", () => {
  let server: Server;
  let guestPort: number;

  beforeAll(async () => {
    // The "guest" service behind the forward: the test agent runs on this host.
    server = createServer((socket) => socket.on("data", (data) => socket.write(`echo:${data}`)));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    guestPort = (server.address() as { port: number }).port;
  });
  afterAll(() => server.close());

  test("leaves the VM running; the next supervisor attaches with the ticket and opens the forwards again", async () => {
    const vm = sandboxRow();
    const first = await superviseInChild(vm);
    const session = await client(vm);
    const forward = await session.supervisor("supervisor.expose", { guestPort });
    expect(await roundTrip(forward.hostPort, "one")).toBe("echo:one");
    const vmmPid = record(vm.id)!.vmmPid!;
    await session.close();

    first.kill("SIGKILL");
    await gone(first.pid!);
    expect(pidAlive(vmmPid)).toBe(true);
    expect(liveTicket(sandboxFiles(vm.id))?.pid).toBe(vmmPid);

    const backend = agentBackend();
    const { done: second } = await superviseHere(vm, backend);
    const again = await client(vm);
    expect(backend.launched).toEqual([]); // attached, not launched
    expect(record(vm.id)).toMatchObject({ status: "running", vmmPid, supervisorPid: process.pid });
    await pollUntil(async () => (await again.supervisor("supervisor.ports", {})).ports.length === 1, { timeoutMs: 5_000, what: "the forward to be restored" });
    expect((await again.supervisor("supervisor.ports", {})).ports[0]).toMatchObject({ hostPort: forward.hostPort, guestPort });
    expect(await roundTrip(forward.hostPort, "two")).toBe("echo:two");
    await again.supervisor("supervisor.destroy", {});
    await second;
    await gone(vmmPid);
  });

  test("a client whose supervisor is killed mid-command is told the supervisor went, not that the agent hung up", async () => {
    const vm = sandboxRow();
    const supervisor = await superviseInChild(vm);
    const session = await client(vm);
    const running = session.run(["sleep", "30"]).catch((error: unknown) => error);
    await Bun.sleep(100);
    supervisor.kill("SIGKILL");
    const error = await running;
    expect(error).toMatchObject({ code: "AGENT_UNAVAILABLE", message: `Lost the connection to the supervisor of sandbox ${vm.id} (pid ${supervisor.pid}): it exited` });
    const vmmPid = record(vm.id)!.vmmPid!;
    process.kill(vmmPid, "SIGKILL");
    await gone(vmmPid);
  });

  test("a supervisor that accepts as it dies and hangs up unanswered counts as gone, not as a refusal", async () => {
    const vm = sandboxRow();
    const supervisor = await superviseInChild(vm);
    await (await client(vm)).close();
    const live = record(vm.id)!;
    supervisor.kill("SIGKILL");
    await gone(supervisor.pid!);
    process.kill(live.vmmPid!, "SIGKILL");
    await gone(live.vmmPid!);
    // What a killed supervisor's listening socket does for a moment: accept into its backlog,
    // then drop the connection without a word.
    const path = sandboxFiles(vm.id).supervisorSocket;
    rmSync(path, { force: true });
    const dying = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => dying.listen(path, () => resolve()));
    try {
      const error = await client(live).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NotRunningError);
    } finally {
      dying.close();
    }
  });

  test("a client of a sandbox whose supervisor is gone and whose VM is gone is told it is not running", async () => {
    const vm = sandboxRow();
    const error = await client(vm).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotRunningError);
  });
});

function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let got = "";
    socket.on("data", (data) => {
      got += data.toString();
      if (got.length >= text.length + 5) {
        socket.end();
        resolve(got);
      }
    });
    socket.on("error", reject);
    socket.write(text);
  });
}
