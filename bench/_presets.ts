/** The preset and directory phases of a bench run (see presets.ts), each paired with its floor. */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { LaunchSpec } from "../lib/backends/types.ts";
import type { SmolVM } from "../lib/smolvm.ts";
import type { Collector } from "./_collect.ts";
import { DIR_FILES, dirFloor, makeBenchTree, timedDirUpload, timedPresetStart } from "./presets.ts";

const DIR_RUNS = 3;
const PRESET_RUNS = 3;
const FLOOR_TIMEOUT_MS = 120_000;

/** Three uploads of a 2,000-file tree, each followed by the same tar stream through the raw channel. */
export async function measureDirUpload(
  c: Collector,
  vm: SmolVM,
  o: { scratch: string; step: (text: string, fraction?: number) => void; floor: (tar: Buffer) => Promise<LaunchSpec> },
): Promise<void> {
  const root = join(o.scratch, "dir-tree");
  await mkdir(root, { recursive: true });
  const { listing, tar } = await makeBenchTree(root);
  for (let i = 0; i < DIR_RUNS; i++) {
    o.step(`directory upload ${i + 1} of ${DIR_RUNS}`, i / DIR_RUNS);
    let ours: number | undefined;
    await c.attempt(["file.upload.dir"], async () => {
      ours = await timedDirUpload(vm, root, listing, tar.length, `/tmp/bench-dir-${i}`);
      c.add("file.upload.dir", ours);
      await vm.commands.run(["rm", "-rf", `/tmp/bench-dir-${i}`]);
    });
    await c.attempt(["floor.dir-upload"], async () => {
      const spec = await o.floor(tar);
      try {
        const floor = await dirFloor(spec, tar, FLOOR_TIMEOUT_MS);
        c.add("floor.dir-upload", floor);
        if (ours !== undefined) c.pair("dir-upload/channel", ours, floor);
      } finally {
        await rm(join(spec.serialLogPath, ".."), { recursive: true, force: true });
      }
    });
  }
  const note = `${DIR_FILES} files in ${listing.entries.length - DIR_FILES} directories, ${(listing.bytes / 2 ** 20).toFixed(1)} MiB of files, ${(tar.length / 2 ** 20).toFixed(1)} MiB of tar stream; MB/s of that stream`;
  c.note("file.upload.dir", note);
  c.note("floor.dir-upload", `${note}; a guest whose PID 1 is a shell piping the port into tar -x on its root disk, booted right after each upload`);
  c.report("file.upload.dir");
  c.report("floor.dir-upload");
  await rm(root, { recursive: true, force: true });
}

/**
 * `startAgent("claude")` until `claude --version` answers: each run a warm start (the image's
 * template restored, what `smolvm claude start` does by default once the template exists) and a
 * cold one (`warm: false`, a boot), both right after one floor boot. The template is made first
 * (timed: `preset.warm`) unless the home has one, and removed after when the run made it.
 * Only with the claude image cached.
 */
export async function measurePresetStart(
  c: Collector,
  o: { tag: string; live: Set<SmolVM>; step: (text: string, fraction?: number) => void; floorBoot: () => Promise<number | undefined> },
): Promise<void> {
  const PHASES = ["preset.start.cached", "preset.start.cold", "preset.warm"];
  const [{ hostGuestArch }, { resolvePresetImage }, { findPreset }, { listWarmTemplates, removeWarmTemplate, warmImage }] = await Promise.all([
    import("../lib/kernel/arch.ts"), import("../lib/presets/image.ts"), import("../lib/presets/catalog.ts"), import("../lib/host-api.ts"),
  ]);
  const choice = await resolvePresetImage(findPreset("claude"), hostGuestArch());
  if (choice.installAtBoot) {
    c.unavailable(PHASES, `unavailable: ${choice.reason}`);
    return;
  }
  const existing = (await listWarmTemplates()).some((w) => w.name === choice.image);
  try {
    if (!existing) {
      o.step("warming the claude image");
      await c.attempt(["preset.warm"], async () => {
        const t0 = performance.now();
        await warmImage(choice.image);
        c.add("preset.warm", performance.now() - t0);
      });
    } else {
      c.unavailable(["preset.warm"], "unavailable: this home has a warm template of the claude image already (the run uses it)");
    }
    for (let i = 0; i < PRESET_RUNS; i++) {
      o.step(`claude start ${i + 1} of ${PRESET_RUNS}`, i / PRESET_RUNS);
      const floorMs = await o.floorBoot();
      for (const [phase, pair, warm] of [["preset.start.cached", "preset-start/boot-floor", true], ["preset.start.cold", "preset-start-cold/boot-floor", false]] as const) {
        await c.attempt([phase], async () => {
          const { ms, vm, createdFrom } = await timedPresetStart(`bench-${o.tag}-claude${i + 1}${warm ? "w" : "c"}`, warm);
          o.live.add(vm);
          if (warm && createdFrom !== "warm") {
            throw new Error(`the claude start booted instead of restoring the claude image's warm template (does the home's template fit the agent's shape? \`smolvm image warm claude\` makes it again)`);
          }
          c.add(phase, ms);
          if (floorMs !== undefined) c.pair(pair, ms, floorMs);
          await vm.delete();
          o.live.delete(vm);
        });
      }
    }
  } finally {
    if (!existing) await removeWarmTemplate(choice.image).catch(() => {});
  }
  const how = "startAgent('claude', no workspace, no credentials) with the claude image cached, then `claude --version` over the agent";
  c.note("preset.start.cached", `${how}, restoring the image's warm template${existing ? " (the one this home had)" : " (made by the run, removed after)"}; each right after a floor boot (the pair)`);
  c.note("preset.start.cold", `${how}, booted (warm: false); each right after the same floor boot as the warm start before it`);
  c.note("preset.warm", "warmImage('claude'): boot a 2 GiB / 8 GiB sandbox, grow its root, run `claude --version`, snapshot it, delete it");
  for (const phase of PHASES) c.report(phase);
}
