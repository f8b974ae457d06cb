/**
 * Reaching a sandbox's supervisor from any process. If the supervisor died but the VM still
 * runs, a new supervisor is started and re-attaches to it, so the caller never notices.
 */
import { connect, type Socket } from "node:net";
import { AgentClient } from "../agent/client.ts";
import { encodeFrame, FrameDecoder, FrameType } from "../agent/frame.ts";
import { AgentUnavailableError, fromWire, NotRunningError, TimeoutError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { withStore, type VmRecord } from "../state/vms.ts";
import { vmFiles } from "./layout.ts";
import { spawnSupervisor } from "./spawn.ts";
import { randomHex } from "../util/random.ts";

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.removeListener("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

function currentRecord(id: string): VmRecord {
  return withStore((store) => store.getVm(id));
}

/** Waits for a just-started supervisor to listen (it binds before it re-attaches). */
async function openWhenServing(vm: VmRecord, supervisorPid: number): Promise<Socket> {
  const path = vmFiles(vm.id).supervisorSocket;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await openSocket(path);
    } catch (error) {
      if (!pidAlive(supervisorPid) || Date.now() > deadline) {
        throw new AgentUnavailableError(`Cannot re-attach to sandbox "${vm.name}": its new supervisor did not start`, {
          hint: `see ${vmFiles(vm.id).supervisorLog}, or \`smolvm delete ${vm.name}\``,
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** An agent-protocol client connected through the sandbox's supervisor. */
export async function connectSupervisor(id: string, options: { timeoutMs?: number } = {}): Promise<AgentClient> {
  const files = vmFiles(id);
  let socket: Socket;
  try {
    socket = await openSocket(files.supervisorSocket);
  } catch (error) {
    const vm = currentRecord(id);
    if (pidAlive(vm.supervisorPid)) {
      throw new AgentUnavailableError(`Cannot reach the supervisor of "${vm.name}": ${(error as Error).message}`, {
        hint: `\`smolvm stop ${vm.name}\` then \`smolvm start ${vm.name}\``,
        cause: error,
      });
    }
    if (!pidAlive(vm.vmmPid)) {
      throw new NotRunningError(`Sandbox "${vm.name}" is not running`, { hint: `start it with \`smolvm start ${vm.name}\`` });
    }
    // The VM runs without a supervisor: start one, which re-attaches.
    const supervisorPid = spawnSupervisor(id);
    withStore((store) => store.updateVm(id, { supervisorPid }));
    socket = await openWhenServing(vm, supervisorPid);
  }
  return AgentClient.connect(socket, { timeoutMs: options.timeoutMs ?? 10_000 });
}

/**
 * Sends one `supervisor.*` operation and returns its result. A bare exchange (HELLO, OPEN,
 * RESULT) rather than an AgentClient: these are not agent operations and need none of its
 * stream machinery, and stop/delete must not re-attach a dead supervisor. With `untilClosed`
 * the answer is returned only once the supervisor hangs up (it does after recording a stop).
 */
export async function requestSupervisor(
  id: string,
  request: { op: string; [key: string]: unknown },
  options: { timeoutMs?: number; untilClosed?: boolean } = {},
): Promise<unknown> {
  const socket = await openSocket(vmFiles(id).supervisorSocket);
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder();
    const timer = setTimeout(() => done(new TimeoutError(`The supervisor did not answer ${request.op} within ${timeoutMs} ms`)), timeoutMs);
    const done = (error: Error | undefined, value?: unknown) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(value);
    };
    socket.on("error", (error) => done(error));
    let answer: { value: unknown } | undefined;
    socket.on("close", () =>
      answer !== undefined ? done(undefined, answer.value) : done(new AgentUnavailableError(`The supervisor closed the connection during ${request.op}`)),
    );
    socket.on("data", (chunk: Buffer) =>
      decoder.push(chunk, (frame) => {
        if (frame.type === FrameType.HELLO) {
          socket.write(encodeFrame(FrameType.OPEN, 1, JSON.stringify(request)));
        } else if (frame.streamId === 1 && frame.type === FrameType.RESULT) {
          answer = { value: JSON.parse(frame.payload.toString("utf8")) };
          if (options.untilClosed !== true) done(undefined, answer.value);
        } else if (frame.type === FrameType.ERROR) {
          const body = JSON.parse(frame.payload.toString("utf8")) as { code?: string; message?: string; hint?: string };
          done(fromWire(body));
        }
      }, (error) => done(error)),
    );
    socket.write(encodeFrame(FrameType.HELLO, 0, JSON.stringify({ protocol: 1, nonce: randomHex(8), client: "smolvm" })));
  });
}
