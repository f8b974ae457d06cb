import { describe, expect, test } from "bun:test";
import {
  AgentEvent,
  AgentHello,
  AgentRequest,
  ExecResultMessage,
  HostHello,
} from "../../../lib/agent/messages.ts";

describe("agent message schemas", () => {
  test("accept the examples of PROTOCOL.md", () => {
    expect(HostHello.safeParse({ protocol: 1, nonce: "b7e1", client: "smolvm/0.1.0", timeMs: 1764070000000 }).success).toBe(true);
    expect(AgentHello.safeParse({
      protocol: 1, agentVersion: "0.1.0", nonce: "b7e1", arch: "x86_64", pid1: true, bootTimeMs: 812,
      capabilities: ["exec"], limits: { maxFrame: 65536, initialWindow: 262144, maxStreams: 1024 },
    }).success).toBe(true);
    for (const req of [
      { op: "exec", argv: ["ls", "-l"], env: { A: "1" }, cwd: "/srv", stdin: true, timeoutMs: 5000, pty: { rows: 24, cols: 80, term: "xterm-256color" } },
      { op: "exec", shell: "echo hi" },
      { op: "writeFile", path: "/root/a.txt", mode: 420, mkdirParents: true },
      { op: "readFile", path: "/etc/hostname" },
      { op: "env.set", vars: { API_KEY: "a b'c$d\n" } },
      { op: "env.unset", names: ["API_KEY"] },
      { op: "env.list" },
      { op: "forward", port: 8080, host: "127.0.0.1" },
      { op: "ping" },
      { op: "setTime", timeMs: 1764070000000 },
      { op: "reseed", data: "aGVsbG8=" },
      { op: "sync" },
      { op: "shutdown", action: "poweroff" },
    ]) {
      expect(AgentRequest.safeParse(req).success).toBe(true);
    }
    expect(ExecResultMessage.safeParse({ exitCode: null, signal: "KILL", timedOut: true, durationMs: 3 }).success).toBe(true);
    expect(AgentEvent.safeParse({ event: "file", size: 9, mode: 420 }).success).toBe(true);
  });

  test("refuse what the agent would refuse", () => {
    for (const bad of [
      { op: "exec" },
      { op: "exec", argv: [], shell: "x" },
      { op: "exec", argv: ["a"], shell: "b" },
      { op: "writeFile", path: "relative" },
      { op: "writeFile", path: "/a", mode: 0o10000 },
      { op: "env.set", vars: { "1X": "y" } },
      { op: "forward", port: 0 },
      { op: "forward", port: 80, host: "localhost" },
      { op: "shutdown", action: "halt" },
      { op: "supervisor.status" },
    ]) {
      expect(AgentRequest.safeParse(bad).success).toBe(false);
    }
  });
});
