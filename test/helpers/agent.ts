/**
 * The host-native guest agent as a test fixture: built once per test process, started on a
 * temporary Unix socket, torn down by stop().
 */
import { afterAll, beforeAll } from "bun:test";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import { AgentClient } from "../../lib/agent/client.ts";
import type { AgentConnectOptions } from "../../lib/agent/types.ts";
import { encodeFrame, FrameDecoder, FrameType, type Frame } from "../../lib/agent/frame.ts";
import { runHostChecked } from "../../lib/host/process.ts";

export const GUEST_AGENT_DIR = fileURLToPath(new URL("../../guest-agent/", import.meta.url));
export const NATIVE_AGENT = join(GUEST_AGENT_DIR, "build", "smolvm-agent-native");

let building: Promise<string> | undefined;

/** `make -C guest-agent <target>`, once per target per process. */
const made = new Map<string, Promise<void>>();
export function makeAgent(target: string): Promise<void> {
  let p = made.get(target);
  if (!p) {
    p = runHostChecked("make", ["-s", "-C", GUEST_AGENT_DIR, target], { timeoutMs: 300_000 }).then(() => {});
    made.set(target, p);
  }
  return p;
}

/** The agent the tests run: the native build, or with SMOLVM_TEST_AGENT=asan the ASan+UBSan one. */
export function buildNativeAgent(): Promise<string> {
  const variant = process.env.SMOLVM_TEST_AGENT === "asan" ? "asan" : "native";
  building ??= makeAgent(variant).then(() => join(GUEST_AGENT_DIR, "build", `smolvm-agent-${variant}`));
  return building;
}

export interface TestAgent {
  socketPath: string;
  /** The managed-env file this agent persists to. */
  envFile: string;
  /** A scratch directory that goes away with stop(). */
  dir: string;
  pid: number;
  /** A connected, HELLO'd client. */
  connect(options?: AgentConnectOptions): Promise<AgentClient>;
  /** A plain socket to the agent, for speaking raw frames. */
  connectRaw(): Promise<Socket>;
  /** A raw-frame connection (no HELLO sent yet). */
  raw(): Promise<RawConnection>;
  /** What the agent wrote to stderr so far. */
  log(): string;
  /** Whether the agent process is still running. */
  alive(): boolean;
  stop(): Promise<void>;
}

function waitForLine(child: ChildProcess, line: string, output: () => string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`agent did not print "${line}" within ${timeoutMs} ms: ${output()}`)), timeoutMs);
    const onData = () => output().includes(line) && done();
    const onExit = (code: number | null) => done(new Error(`agent exited (${code}) before "${line}": ${output()}`));
    function done(error?: Error) {
      clearTimeout(timer);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      if (error) reject(error);
      else resolve();
    }
    child.stderr?.on("data", onData);
    child.on("exit", onExit);
    onData();
  });
}

/**
 * Starts the native agent in test mode. `asNobody` (root only) runs it as uid/gid 65534 through
 * util-linux `setpriv`, for what only an unprivileged agent can show (a permission error).
 */
export async function startTestAgent(extraArgs: string[] = [], options: { asNobody?: boolean } = {}): Promise<TestAgent> {
  const bin = await buildNativeAgent();
  const dir = mkdtempSync(join(tmpdir(), "smolvm-agent-"));
  if (options.asNobody) chmodSync(dir, 0o777);
  const socketPath = join(dir, "agent.sock");
  const envFile = join(dir, "profile.d", "smolvm-env.sh");
  const argv = [bin, "--listen", `unix:${socketPath}`, "--env-file", envFile, ...extraArgs];
  const command = options.asNobody ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", ...argv] : argv;
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (s: string) => (stderr += s));
  let exited = false;
  const exitPromise = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );
  await waitForLine(child, "smolvm-agent: ready", () => stderr, 10_000);

  const connectRaw = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect(socketPath);
      s.once("connect", () => {
        s.off("error", reject);
        resolve(s);
      });
      s.once("error", reject);
    });

  return {
    socketPath,
    envFile,
    dir,
    pid: child.pid!,
    connect: async (options) => AgentClient.connect(await connectRaw(), options),
    connectRaw,
    raw: async () => new RawConnection(await connectRaw()),
    log: () => stderr,
    alive: () => !exited,
    stop: async () => {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exitPromise;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Speaks raw frames on a socket, for tests that misbehave on purpose. */
export class RawConnection {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder();
  private waiters: Array<() => void> = [];

  constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.decoder.push(chunk, (f) => this.frames.push({ ...f, payload: Buffer.from(f.payload), raw: Buffer.from(f.raw) }));
      this.wake();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(type: number, stream: number, payload?: string | Uint8Array | object, flags = 0): void {
    const body = payload === undefined || typeof payload === "string" || payload instanceof Uint8Array
      ? payload
      : JSON.stringify(payload);
    this.socket.write(encodeFrame(type, stream, body, flags));
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  async hello(): Promise<void> {
    this.send(FrameType.HELLO, 0, { protocol: 1, nonce: "raw" });
    await this.next((f) => f.type === FrameType.HELLO);
  }

  /** The first frame (received so far or later) matching `match`, removed from the list. */
  async next(match: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      if (this.closed) throw new Error("connection closed while waiting for a frame");
      const left = end - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a frame");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The JSON payload of the next ERROR for `stream` (0 = connection level). */
  async error(stream: number, timeoutMs?: number): Promise<{ code: string; message: string; stream?: number }> {
    const f = await this.next((x) => x.type === FrameType.ERROR && x.streamId === stream, timeoutMs);
    return JSON.parse(f.payload.toString());
  }

  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Pids of processes whose command line matches pattern (pgrep -f, which never lists itself). */
export function processesMatching(pattern: string): string[] {
  try {
    return execFileSync("pgrep", ["-f", pattern], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** Polls check until it holds or timeoutMs passes; returns its last value. */
export async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

/**
 * One native agent for a whole test file: started before its first test, stopped after its last.
 * `use` receives it once it is up.
 */
export function withTestAgent(use: (agent: TestAgent) => void | Promise<void>): void {
  let agent: TestAgent | undefined;
  // Long: in a fresh checkout this also builds the agent.
  beforeAll(async () => {
    agent = await startTestAgent();
    await use(agent);
  }, 300_000);
  afterAll(async () => {
    await agent?.stop();
  });
}

/** withTestAgent with a client connected to it for the whole file. */
export function withSharedAgent(use: (agent: TestAgent, client: AgentClient) => void | Promise<void>): void {
  let client: AgentClient | undefined;
  // Registered before the agent's own hooks, so it runs first: the client leaves before its agent stops.
  afterAll(async () => {
    await client?.close();
  });
  withTestAgent(async (agent) => {
    client = await agent.connect();
    await use(agent, client);
  });
}

/** The stdout of `command`, run by a client of its own over `socket` (closed after). */
export async function runOnce(socket: Duplex, command: string): Promise<string> {
  const client = await AgentClient.connect(socket);
  try {
    return (await client.run(command)).stdout;
  } finally {
    await client.close();
  }
}
