/**
 * Warm starts of coding agents without a VM: which template a preset image gets (shape and
 * warm-up), whether a start asks for one, and whether the template `image warm` makes for an
 * agent's image fits what `<agent> start` asks for (the decision that picks restore over boot).
 */
import { describe, expect, test } from "bun:test";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { PRESETS } from "../../../lib/presets/catalog.ts";
import { DEFAULT_AGENT_DISK_MIB, DEFAULT_AGENT_MEMORY_MIB } from "../../../lib/presets/defaults.ts";
import { agentSandbox, PREPARE_ROOT, presetWarm, templateWarmUp, warmImageOptions } from "../../../lib/presets/warmup.ts";
import { templateFits } from "../../../lib/snapshots/compat.ts";
import type { SnapshotManifest } from "../../../lib/snapshots/manifest.ts";
import { manifestOf } from "../../helpers/snapshot-manifest.ts";

const files = { kernelPath: "/k/vmlinux", rootfsPath: "/i/claude/rootfs.ext4" };

/** A warm template of `image` made with `shape`, as saveSnapshot records it. */
function template(image: string, shape: { memoryMiB?: number; diskSizeMiB?: number; vcpus?: number }): SnapshotManifest {
  return manifestOf({ image, ...files, ...shape }, { kind: "template", name: image, source: { id: "abc123abc123", name: "warm-claude-1a2b3c" } });
}

/** The resolved config of a preset start with `options` (kernel and image resolved, create-only options taken off, as SmolVM.create does). */
function startConfig(options: Parameters<typeof agentSandbox>[0] = {}) {
  const { warm: _warm, prepareTemplate: _prepare, ...input } = agentSandbox(options, { image: "claude", installAtBoot: false }, undefined);
  return parseSandboxConfig({ ...input, ...files });
}

describe("a preset image's template", () => {
  test("every agent image is warmed in the agent's shape, its root grown, its version command run once", () => {
    for (const preset of PRESETS.filter((p) => p.image !== undefined)) {
      expect(templateWarmUp(preset.image!)).toEqual({
        memoryMiB: DEFAULT_AGENT_MEMORY_MIB,
        diskSizeMiB: DEFAULT_AGENT_DISK_MIB,
        commands: [["sh", "-c", PREPARE_ROOT], [...preset.versionCommand]],
      });
    }
  });

  test("any other image gets a plain idle template", () => {
    for (const image of ["debian", "base", "hermes"]) expect(templateWarmUp(image)).toBeUndefined();
  });
});

describe("who readies the template", () => {
  test("a start of an agent's image passes its warm-up to the create that may make the template; an install at boot none", () => {
    expect(agentSandbox({}, { image: "claude", installAtBoot: false }, undefined).prepareTemplate).toEqual(templateWarmUp("claude")!.commands);
    expect(agentSandbox({}, { image: "debian", installAtBoot: true }, undefined).prepareTemplate).toBeUndefined();
  });

  test("`image warm` of an agent's image takes the agent's shape and warm-up unless told otherwise; other images as asked", () => {
    expect(warmImageOptions("codex", {})).toEqual({ memoryMiB: 2048, diskSizeMiB: 8192, prepare: templateWarmUp("codex")!.commands });
    expect(warmImageOptions("claude", { memoryMiB: 4096, vcpus: 2 })).toMatchObject({ memoryMiB: 4096, diskSizeMiB: 8192, vcpus: 2 });
    expect(warmImageOptions("debian", { memoryMiB: 1024 })).toEqual({ memoryMiB: 1024 });
  });
});

describe("which `warm` a preset start asks for", () => {
  test("on by default, so the first start makes the template and the next ones restore it", () => {
    expect(presetWarm({ warm: undefined, fromEnv: undefined, installAtBoot: false })).toBe(true);
  });

  test("the caller's choice first, then SMOLVM_WARM", () => {
    expect(presetWarm({ warm: false, fromEnv: true, installAtBoot: false })).toBe(false);
    expect(presetWarm({ warm: true, fromEnv: false, installAtBoot: false })).toBe(true);
    expect(presetWarm({ warm: undefined, fromEnv: false, installAtBoot: false })).toBe(false);
  });

  test("never for an install at boot: its image is the default one, and its template is no agent's", () => {
    for (const warm of [undefined, true, false]) {
      for (const fromEnv of [undefined, true, false]) expect(presetWarm({ warm, fromEnv, installAtBoot: true })).toBe(false);
    }
  });
});

describe("restore or boot: the template `image warm claude` makes against what `claude start` asks", () => {
  const warmUp = templateWarmUp("claude")!;
  const agentTemplate = template("claude", { memoryMiB: warmUp.memoryMiB, diskSizeMiB: warmUp.diskSizeMiB });

  test("a start with the default --memory and --disk-size restores it, whatever its name", () => {
    expect(templateFits(agentTemplate, startConfig(), "qemu")).toBe(true);
    expect(templateFits(agentTemplate, startConfig({ name: "cc", memoryMiB: 2048, diskSizeMiB: 8192 }), "qemu")).toBe(true);
  });

  test("a start with another memory or disk size boots", () => {
    expect(templateFits(agentTemplate, startConfig({ memoryMiB: 4096 }), "qemu")).toBe(false);
    expect(templateFits(agentTemplate, startConfig({ diskSizeMiB: 20_480 }), "qemu")).toBe(false);
  });

  test("a template of the image in the plain create's shape (made by `create --warm --image claude`) is not the agent's: the start boots", () => {
    expect(templateFits(template("claude", {}), startConfig(), "qemu")).toBe(false);
  });

  test("another vCPU count, kernel, or backend boots", () => {
    expect(templateFits(template("claude", { memoryMiB: warmUp.memoryMiB, diskSizeMiB: warmUp.diskSizeMiB, vcpus: 2 }), startConfig(), "qemu")).toBe(false);
    expect(templateFits({ ...agentTemplate, kernel: { ...agentTemplate.kernel, path: "/k2/vmlinux" } }, startConfig(), "qemu")).toBe(false);
    expect(templateFits(agentTemplate, startConfig(), "firecracker")).toBe(false);
  });
});
