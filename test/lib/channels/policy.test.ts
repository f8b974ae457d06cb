/**
 * The channel fallback policy (lib/channels/policy.ts), against openers that answer or fail as
 * each case needs: which channel is tried, in which order, with which deadline, and what a
 * caller is told when none answers.
 */
import { describe, expect, test } from "bun:test";
import {
  AGENT_PROBE_MS, describeChannel, FALLBACK_SSH_WAIT_MS, persistedChannel, requestedChannel, resolveChannel, type ChannelOpeners,
} from "../../../lib/channels/policy.ts";
import type { Channel, ChannelKind } from "../../../lib/channels/types.ts";
import { AgentUnavailableError, ChannelUnavailableError, NotRunningError } from "../../../lib/errors.ts";

function channel(kind: ChannelKind): Channel {
  return { kind, isClosed: false } as unknown as Channel;
}

/** Openers that record every call; each fails with the given error instead of opening. */
function openers(fail: { agent?: Error; ssh?: Error } = {}): ChannelOpeners & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    agent: async (timeoutMs) => {
      calls.push(`agent:${timeoutMs}`);
      if (fail.agent) throw fail.agent;
      return channel("agent");
    },
    ssh: async (waitMs) => {
      calls.push(`ssh:${waitMs}`);
      if (fail.ssh) throw fail.ssh;
      return channel("ssh");
    },
  };
}

const box = (persisted: "agent" | "ssh" | null = null) => ({ name: "box", channel: persisted });
const noAgent = () => new AgentUnavailableError("No answer to HELLO within 2000 ms");

test("the explicit option beats the persisted choice, which beats auto", () => {
  expect(requestedChannel({ channel: "ssh" }, "vsock")).toEqual({ requested: "vsock", source: "explicit" });
  expect(requestedChannel({ channel: "ssh" }, "auto")).toEqual({ requested: "auto", source: "explicit" });
  expect(requestedChannel({ channel: "ssh" })).toEqual({ requested: "ssh", source: "persisted" });
  expect(requestedChannel({ channel: "agent" })).toEqual({ requested: "vsock", source: "persisted" });
  expect(requestedChannel({ channel: null })).toEqual({ requested: "auto", source: "auto" });
});

test("create persists an explicit ssh or vsock, and nothing for auto", () => {
  expect(persistedChannel("ssh")).toBe("ssh");
  expect(persistedChannel("vsock")).toBe("agent");
  expect(persistedChannel("auto")).toBeNull();
  expect(persistedChannel(undefined)).toBeNull();
});

describe("opening", () => {
  test("auto takes the agent when it answers within the probe time, and never tries SSH", async () => {
    const open = openers();
    const { channel: opened, resolution } = await resolveChannel(box(), undefined, open);
    expect(opened.kind).toBe("agent");
    expect(resolution).toMatchObject({ kind: "agent", requested: "auto", source: "auto" });
    expect(resolution.reason).toMatch(/^auto: the agent answered in \d+ ms$/);
    expect(open.calls).toEqual([`agent:${AGENT_PROBE_MS}`]);
  });

  test("auto falls back to SSH, waiting for its set-up, and says why", async () => {
    const open = openers({ agent: noAgent() });
    const { channel: opened, resolution } = await resolveChannel(box(), undefined, open);
    expect(opened.kind).toBe("ssh");
    expect(resolution.reason).toContain("the agent did not answer (No answer to HELLO");
    expect(open.calls).toEqual([`agent:${AGENT_PROBE_MS}`, `ssh:${FALLBACK_SSH_WAIT_MS}`]);
  });

  test("auto with neither channel is CHANNEL_UNAVAILABLE naming both failures", async () => {
    const open = openers({ agent: noAgent(), ssh: new ChannelUnavailableError('its image "base" has no SSH server') });
    const error = await resolveChannel(box(), "auto", open).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChannelUnavailableError);
    expect((error as Error).message).toContain("No answer to HELLO");
    expect((error as Error).message).toContain("no SSH server");
  });

  test("an explicit vsock never falls back, and says how to use SSH instead", async () => {
    const open = openers({ agent: noAgent() });
    const error = await resolveChannel(box("ssh"), "vsock", open).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChannelUnavailableError);
    expect((error as ChannelUnavailableError).hint).toContain("asked for explicitly");
    expect((error as ChannelUnavailableError).hint).toContain("--comm-channel ssh");
    expect(open.calls).toEqual([`agent:${AGENT_PROBE_MS}`]);
  });

  test("a vsock chosen at create never falls back either", async () => {
    const open = openers({ agent: noAgent() });
    const error = await resolveChannel(box("agent"), undefined, open).catch((e: unknown) => e);
    expect((error as ChannelUnavailableError).hint).toContain("chosen when the sandbox was created");
    expect(open.calls).toEqual([`agent:${AGENT_PROBE_MS}`]);
  });

  test("ssh, explicit or persisted, goes straight to SSH and passes its failure on as it is", async () => {
    const open = openers();
    expect((await resolveChannel(box("ssh"), undefined, open)).resolution).toMatchObject({ kind: "ssh", source: "persisted", reason: "ssh was chosen at create" });
    expect(open.calls).toEqual([`ssh:${FALLBACK_SSH_WAIT_MS}`]);
    const refused = new ChannelUnavailableError("sshd refused the smolvm key");
    expect(await resolveChannel(box(), "ssh", openers({ ssh: refused })).catch((e: unknown) => e)).toBe(refused);
  });

  test("a paused sandbox is not a channel problem: no fallback, whatever was asked", async () => {
    const paused = new NotRunningError('Cannot reach sandbox "box": it is paused');
    for (const asked of [undefined, "auto", "vsock"] as const) {
      const open = openers({ agent: paused });
      expect(await resolveChannel(box(), asked, open).catch((e: unknown) => e)).toBe(paused);
      expect(open.calls).toEqual([`agent:${AGENT_PROBE_MS}`]);
    }
  });
});

describe("describing (info)", () => {
  const running = { ...box(), status: "running" };
  const probes = (agent: number | Error, ssh = { ok: true, text: "sshd is ready" }) => ({
    agent: async () => {
      if (agent instanceof Error) throw agent;
      return agent;
    },
    ssh: async () => ssh,
  });

  test("a sandbox that is not running has no channel, and says so", async () => {
    expect(await describeChannel({ ...running, status: "stopped" }, undefined, probes(3))).toEqual({ channel: null, reason: "auto; the sandbox is stopped" });
  });

  test("auto reports the agent when it answers, SSH's state when it does not", async () => {
    expect(await describeChannel(running, undefined, probes(3.4))).toEqual({ channel: "agent", reason: "auto: the agent answered in 3 ms" });
    const fallback = await describeChannel(running, undefined, probes(noAgent(), { ok: true, text: "sshd is being set up" }));
    expect(fallback.channel).toBe("ssh");
    expect(fallback.reason).toContain("sshd is being set up");
    expect((await describeChannel(running, undefined, probes(noAgent(), { ok: false, text: "no SSH server" }))).channel).toBeNull();
  });

  test("vsock reports no channel rather than SSH when the agent does not answer; ssh is judged by its set-up alone", async () => {
    expect((await describeChannel(running, "vsock", probes(noAgent()))).reason).toContain("no fallback to SSH");
    expect(await describeChannel(running, "ssh", probes(noAgent()))).toEqual({ channel: "ssh", reason: "asked for ssh: sshd is ready" });
  });
});
