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

/** `startAgent("claude")` until `claude --version` answers, each after a floor boot; only with the claude image cached. */
export async function measurePresetStart(
  c: Collector,
  o: { tag: string; live: Set<SmolVM>; step: (text: string, fraction?: number) => void; floorBoot: () => Promise<number | undefined> },
): Promise<void> {
  const [{ hostGuestArch }, { resolvePresetImage }, { findPreset }] = await Promise.all([
    import("../lib/kernel/arch.ts"), import("../lib/presets/image.ts"), import("../lib/presets/catalog.ts"),
  ]);
  const choice = await resolvePresetImage(findPreset("claude"), hostGuestArch());
  if (choice.installAtBoot) {
    c.unavailable(["preset.start.cached"], `unavailable: ${choice.reason}`);
    return;
  }
  for (let i = 0; i < PRESET_RUNS; i++) {
    o.step(`claude start ${i + 1} of ${PRESET_RUNS}`, i / PRESET_RUNS);
    const floorMs = await o.floorBoot();
    await c.attempt(["preset.start.cached"], async () => {
      const { ms, vm } = await timedPresetStart(`bench-${o.tag}-claude${i + 1}`);
      o.live.add(vm);
      c.add("preset.start.cached", ms);
      if (floorMs !== undefined) c.pair("preset-start/boot-floor", ms, floorMs);
      await vm.delete();
      o.live.delete(vm);
    });
  }
  c.note("preset.start.cached", "startAgent('claude', no workspace, no credentials) with the claude image cached, then `claude --version` over the agent; each right after a floor boot (the pair)");
  c.report("preset.start.cached");
}
