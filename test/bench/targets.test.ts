import { describe, expect, test } from "bun:test";
import { computeRatios, evaluateTargets, pairedValue, ratioValue } from "../../bench/targets.ts";
import { HEALTHY, phasesFrom } from "./_fixtures.ts";

function verdicts(medians: Record<string, number | string>) {
  return Object.fromEntries(evaluateTargets(phasesFrom(medians)).map((t) => [t.id, t.met]));
}

describe("ratios", () => {
  test("compare medians: ours over the floor, and SSH over the agent for latency", () => {
    const ratios = Object.fromEntries(computeRatios(phasesFrom(HEALTHY)).map((r) => [r.id, r.value]));
    expect(ratios["create/boot-floor"]).toBeCloseTo(1000 / 950, 10);
    expect(ratios["warm-agent/ping+fork-exec"]).toBeCloseTo(5 / 2.15, 10);
    expect(ratios["warm-ssh/warm-agent"]).toBeCloseTo(12, 10);
    expect(ratios["upload-agent/channel"]).toBeCloseTo(40 / 60, 10);
  });

  test("a ratio with a missing side is null, never a made-up number", () => {
    const phases = phasesFrom({ ...HEALTHY, "warm-command.ssh": "unavailable: no sshd" });
    expect(ratioValue(phases, "warm-command.ssh", ["warm-command.agent"])).toBeNull();
    expect(computeRatios(phases).find((r) => r.id === "warm-ssh/warm-agent")?.value).toBeNull();
  });

  test("a zero denominator gives null", () => {
    expect(ratioValue(phasesFrom({ ...HEALTHY, "floor.boot": 0 }), "create", ["floor.boot"])).toBeNull();
  });
});

describe("targets", () => {
  test("a healthy run meets every target", () => {
    expect(verdicts(HEALTHY)).toEqual({
      "cli-help": true,
      "create-to-first-command": true,
      "warm-command-floor": true,
      "warm-command-vs-ssh": true,
      "stop-delete": true,
      "cli-exec": true,
      "upload-vs-channel": true,
      "dir-upload-vs-channel": true,
      "preset-start": true,
      "download-vs-channel": true,
      "image-pull": true,
      "create-published": true,
      "net-download-user": true,
      "net-download-tap": true,
      "warm-create-to-first-command": true,
    });
  });

  test("a warm create is judged against the boot floor, paired when the run has pairs", () => {
    expect(verdicts({ ...HEALTHY, "create-to-first-command.warm": 950 * 0.31 })["warm-create-to-first-command"]).toBe(false);
    const paired = evaluateTargets(phasesFrom(HEALTHY), [{ ratio: "create-to-first-command-warm/boot-floor", pairs: [[300, 1000], [250, 1000], [900, 1000]] }]);
    const warm = paired.find((t) => t.id === "warm-create-to-first-command")!;
    expect(warm.basis).toBe("paired");
    expect(warm.value).toBe(0.3);
    expect(warm.met).toBe(true);
  });

  test("a directory upload under half the raw tar floor, and a slow agent start, miss their targets", () => {
    const slow = verdicts({ ...HEALTHY, "file.upload.dir": 7, "preset.start.cached": 950 * 1.51 });
    expect(slow["dir-upload-vs-channel"]).toBe(false);
    expect(slow["preset-start"]).toBe(false);
  });

  test("each limit is inclusive and missed just past it", () => {
    const atLimit = verdicts({ ...HEALTHY, "create-to-first-command.agent": 950 * 1.15, stop: 40, delete: 10 });
    expect(atLimit["create-to-first-command"]).toBe(true);
    expect(atLimit["stop-delete"]).toBe(true);
    const past = verdicts({ ...HEALTHY, "create-to-first-command.agent": 950 * 1.16, stop: 41, delete: 10 });
    expect(past["create-to-first-command"]).toBe(false);
    expect(past["stop-delete"]).toBe(false);
  });

  test("slow warm commands miss both warm targets; slow transfers miss the channel targets", () => {
    const slow = verdicts({ ...HEALTHY, "warm-command.agent": 10, "upload.agent": 20, "download.agent": 39 });
    expect(slow["warm-command-floor"]).toBe(false);
    expect(slow["warm-command-vs-ssh"]).toBe(false);
    expect(slow["upload-vs-channel"]).toBe(false);
    expect(slow["download-vs-channel"]).toBe(false);
  });

  test("a target whose inputs were not measured is n/a with the phase and its reason", () => {
    const targets = evaluateTargets(phasesFrom({ ...HEALTHY, "warm-command.ssh": "unavailable: image base has no sshd" }));
    const ssh = targets.find((t) => t.id === "warm-command-vs-ssh")!;
    expect(ssh.met).toBeNull();
    expect(ssh.value).toBeNull();
    expect(ssh.why).toBe("unavailable: warm-command.ssh (image base has no sshd)");
  });

  test("a CLI exec is judged by what it adds to the SDK's warm command, in ms, inclusive", () => {
    const at = evaluateTargets(phasesFrom({ ...HEALTHY, "warm-command.agent": 20, "warm-command.cli": 35 })).find((x) => x.id === "cli-exec")!;
    expect(at).toMatchObject({ unit: "ms", basis: "difference", value: 15, met: true });
    expect(verdicts({ ...HEALTHY, "warm-command.agent": 20, "warm-command.cli": 35.5 })["cli-exec"]).toBe(false);
    // A slow guest makes both slower: only the process's own cost counts.
    expect(verdicts({ ...HEALTHY, "warm-command.agent": 200, "warm-command.cli": 210 })["cli-exec"]).toBe(true);
  });

  test("a CLI exec is judged by the median of its pairs (an SDK command right before each) when the run has them", () => {
    const medians = { ...HEALTHY, "warm-command.agent": 10, "warm-command.cli": 40 };
    // p50s 30 apart, but each CLI run 12-16 ms past the SDK command beside it: the drift was the moment's.
    const pairs = [{ ratio: "warm-cli/warm-agent", pairs: [[32, 20], [44, 30], [25, 10], [60, 44], [31, 18]] as [number, number][] }];
    const cli = evaluateTargets(phasesFrom(medians), pairs).find((t) => t.id === "cli-exec")!;
    expect(cli).toMatchObject({ basis: "paired", value: 14, met: true });
    expect(evaluateTargets(phasesFrom(medians)).find((t) => t.id === "cli-exec")).toMatchObject({ basis: "difference", value: 30, met: false });
  });

  test("stop + delete adds the two caller-visible medians in ms", () => {
    const t = evaluateTargets(phasesFrom(HEALTHY)).find((x) => x.id === "stop-delete")!;
    expect(t).toMatchObject({ unit: "ms", comparison: "<=", limit: 50, value: 30, met: true });
  });
});

describe("paired ratios", () => {
  const pairs = [
    { ratio: "create-to-first-command/boot-floor", pairs: [[1100, 1000], [2300, 2000], [5000, 1000]] as [number, number][] },
    { ratio: "upload-agent/channel", pairs: [[30, 100], [45, 60]] as [number, number][] },
  ];

  test("are the median of per-pair ratios, skipping a zero floor", () => {
    expect(pairedValue(pairs, "create-to-first-command/boot-floor")).toEqual({ value: 1.15, n: 3 });
    expect(pairedValue([{ ratio: "x", pairs: [[1, 0], [2, 1]] }], "x")).toEqual({ value: 2, n: 1 });
    expect(pairedValue(pairs, "nothing")).toBeNull();
  });

  test("appear beside the ratio of medians", () => {
    const ratio = computeRatios(phasesFrom(HEALTHY), pairs).find((r) => r.id === "upload-agent/channel")!;
    expect(ratio.value).toBeCloseTo(40 / 60, 10);
    expect(ratio.paired).toEqual({ value: 0.525, n: 2 });
  });

  test("decide a target when the run has them; otherwise the ratio of medians does", () => {
    const slowMedians = { ...HEALTHY, "create-to-first-command.agent": 3000, "upload.agent": 10 };
    const targets = Object.fromEntries(evaluateTargets(phasesFrom(slowMedians), pairs).map((t) => [t.id, t]));
    expect(targets["create-to-first-command"]).toMatchObject({ basis: "paired", value: 1.15, met: true });
    expect(targets["upload-vs-channel"]).toMatchObject({ basis: "paired", value: 0.525, met: true });
    expect(targets["warm-command-floor"]!.basis).toBe("p50");
    expect(targets["stop-delete"]!.basis).toBe("sum");
    expect(evaluateTargets(phasesFrom(slowMedians)).find((t) => t.id === "create-to-first-command")).toMatchObject({ basis: "p50", met: false });
  });
});
