/**
 * The host-native guest agent as a test fixture: built once per test process, started on a
 * temporary Unix socket, torn down by stop().
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AgentClient, type ConnectOptions } from "../../lib/agent/client.ts";
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

export function buildNativeAgent(): Promise<string> {
  building ??= makeAgent("native").then(() => NATIVE_AGENT);
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
  connect(options?: ConnectOptions): Promise<AgentClient>;
  /** A plain socket to the agent, for speaking raw frames. */
  connectRaw(): Promise<Socket>;
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

export async function startTestAgent(extraArgs: string[] = []): Promise<TestAgent> {
  const bin = await buildNativeAgent();
  const dir = mkdtempSync(join(tmpdir(), "smolvm-agent-"));
  const socketPath = join(dir, "agent.sock");
  const envFile = join(dir, "profile.d", "smolvm-env.sh");
  const child = spawn(bin, ["--listen", `unix:${socketPath}`, "--env-file", envFile, ...extraArgs], {
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
