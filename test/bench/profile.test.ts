import { describe, expect, test } from "bun:test";
import { compareArgv, createSpans, findReadyEvent, normalizeArgv, warmSpans } from "../../bench/profile.ts";

describe("findReadyEvent", () => {
  const log = [
    JSON.stringify({ time: "2026-01-01T00:00:01.000Z", level: "info", message: "sandbox ready", vm: "other", bootTimeMs: 1 }),
    "not json but mentions sandbox ready abc123",
    JSON.stringify({ time: "2026-01-01T00:00:02.500Z", level: "info", message: "sandbox ready", vm: "abc123", bootTimeMs: 812 }),
  ].join("\n");

  test("finds the supervisor's ready line of one sandbox with the agent's boot time", () => {
    expect(findReadyEvent(log, "abc123")).toEqual({ at: Date.parse("2026-01-01T00:00:02.500Z"), bootTimeMs: 812 });
  });

  test("is undefined for a sandbox that never became ready", () => {
    expect(findReadyEvent(log, "zzz")).toBeUndefined();
  });
});

describe("createSpans", () => {
  test("takes medians of each hop across creates and leaves unknown hops null", () => {
    const spans = createSpans([
      { calledAt: 0, supervisorStartedAt: 50, qemuStartedAt: 300, readyLoggedAt: 1300, agentBootTimeMs: 900, returnedAt: 1310, firstCommandMs: 40 },
      { calledAt: 0, supervisorStartedAt: 70, qemuStartedAt: 340, readyLoggedAt: 1400, agentBootTimeMs: 950, returnedAt: 1404, firstCommandMs: 60 },
      { calledAt: 0, returnedAt: 1500 },
    ], { bootFloorMs: 1000, floorGuestMs: 700 });
    const ms = Object.fromEntries(spans.map((s) => [s.name, s.ms]));
    expect(ms["caller: config, artifacts, state row, spawn supervisor"]).toBe(60);
    expect(ms["supervisor start-up until QEMU is spawned"]).toBe(260);
    expect(ms["QEMU start -> agent HELLO recorded"]).toBe(1030);
    expect(ms["ready recorded -> create() returns"]).toBe(7);
    expect(ms["create() total"]).toBe(1404);
    expect(ms["boot floor (spawn -> init prints)"]).toBe(1000);
    expect(ms["  of which guest clock when the floor init ran"]).toBe(700);
    expect(createSpans([{ calledAt: 0, returnedAt: 10 }]).find((s) => s.name.startsWith("supervisor"))?.ms).toBeNull();
  });
});

test("warmSpans splits a warm command into agent time, round trip and the rest", () => {
  const spans = warmSpans({ hostP50: 10, agentDurations: [5, 6, 7], pingP50: 1, guestForkExecMs: 3, cliP50: 400, cliStartupP50: 300 });
  const ms = Object.fromEntries(spans.map((s) => [s.name.trim(), s.ms]));
  expect(ms["agent-measured: fork -> exit of the command"]).toBe(6);
  expect(ms["rest: exec set-up, stream frames, result"]).toBe(3);
  expect(warmSpans({ hostP50: undefined, agentDurations: [], pingP50: undefined, guestForkExecMs: undefined, cliP50: undefined, cliStartupP50: undefined })
    .every((s) => s.ms === null)).toBe(true);
});

describe("QEMU argv comparison", () => {
  const sandbox = [
    "-M", "microvm,acpi=off", "-append", "console=ttyS0 init=/sbin/smolvm-agent quiet smolvm.hostname=dev",
    "-drive", "if=none,id=rootdisk,file=/home/x/vms/abc/disk.qcow2,format=qcow2",
    "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2201-:22",
  ];
  const floor = [
    "-M", "microvm,acpi=off", "-append", "console=ttyS0 init=/init quiet smolvm.hostname=bench-floor",
    "-drive", "if=none,id=rootdisk,file=/tmp/b/boot-0/disk.qcow2,format=qcow2",
    "-netdev", "user,id=net0",
  ];

  test("paths, init, hostname and port forwards do not count as differences", () => {
    expect(compareArgv(normalizeArgv(floor, "/tmp/b/boot-0"), normalizeArgv(sandbox, "/home/x/vms/abc"))).toEqual([]);
  });

  test("a different flag is reported with the side that has it", () => {
    const other = floor.map((a) => (a === "microvm,acpi=off" ? "microvm,acpi=on" : a));
    expect(compareArgv(normalizeArgv(other, "/tmp/b/boot-0"), normalizeArgv(sandbox, "/home/x/vms/abc"))).toEqual([
      "floor only: microvm,acpi=on",
      "sandbox only: microvm,acpi=off",
    ]);
  });
});
