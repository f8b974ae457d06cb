/**
 * The snapshot phases of a bench run: snapshots of a fresh sandbox (time, the guest's pause,
 * stored size), creates from one, forks, and warm creates (the image's template restored)
 * through to their first command, each right after a floor boot, the pair the 0.3 x target is
 * judged by. Everything it makes is removed at the end; an existing warm template of the image
 * is used as it is and left in place.
 */
import type { SmolVM } from "../lib/smolvm.ts";
import type { Collector } from "./_collect.ts";

const SNAPSHOTS = 3;
const RESTORES = 3;
const FORKS = 2;
const WARM_CREATES = 3;

export async function measureSnapshots(
  c: Collector,
  o: { image: string; tag: string; live: Set<SmolVM>; step: (text: string, fraction?: number) => void; floorBoot: () => Promise<number | undefined> },
): Promise<void> {
  const [{ SmolVM }, { listWarmTemplates, removeSnapshot, removeWarmTemplate, warmImage }] = await Promise.all([
    import("../lib/smolvm.ts"), import("../lib/host-api.ts"),
  ]);
  const made: string[] = [];
  const track = (vm: SmolVM) => o.live.add(vm);
  const drop = async (vm: SmolVM) => {
    await vm.delete();
    o.live.delete(vm);
  };
  try {
    await c.attempt(["snapshot.create", "snapshot.pause", "snapshot.size", "create.from-snapshot", "fork"], async () => {
      o.step("snapshots: a fresh sandbox");
      const source = await SmolVM.create({ image: o.image, name: `bench-${o.tag}-snap`, warm: false });
      track(source);
      await source.commands.run(["true"]);
      for (let i = 0; i < SNAPSHOTS; i++) {
        o.step(`snapshot ${i + 1} of ${SNAPSHOTS}`, i / SNAPSHOTS);
        const t0 = performance.now();
        const info = await source.snapshot({ name: `bench-${o.tag}-s${i + 1}` });
        c.add("snapshot.create", performance.now() - t0);
        made.push(info.name);
        const { readManifest } = await import("../lib/snapshots/manifest.ts");
        c.add("snapshot.pause", readManifest(info.dir).pausedMs);
        c.add("snapshot.size", info.bytes / 2 ** 20);
        if (i === 0) {
          const part = (role: string) => info.files.filter((f) => f.role === role).reduce((sum, f) => sum + f.bytes, 0) / 2 ** 20;
          c.extra("snapshot.size", "stateMiB", Number(part("state").toFixed(2)));
          c.extra("snapshot.size", "diskMiB", Number(part("disk").toFixed(2)));
          c.extra("snapshot.size", "guestMemoryMiB", (await source.info()).memoryMiB);
        }
      }
      for (let i = 0; i < RESTORES; i++) {
        o.step(`create from a snapshot ${i + 1} of ${RESTORES}`, i / RESTORES);
        const t0 = performance.now();
        const vm = await SmolVM.create({ fromSnapshot: made[0]!, name: `bench-${o.tag}-r${i + 1}` });
        c.add("create.from-snapshot", performance.now() - t0);
        track(vm);
        await drop(vm);
      }
      for (let i = 0; i < FORKS; i++) {
        o.step(`fork ${i + 1} of ${FORKS}`, i / FORKS);
        const t0 = performance.now();
        const vm = await source.fork({ name: `bench-${o.tag}-f${i + 1}` });
        c.add("fork", performance.now() - t0);
        track(vm);
        await drop(vm);
      }
      await drop(source);
    });
    c.note("snapshot.create", `${SNAPSHOTS} snapshots of one fresh, idle ${o.image} sandbox (one command run), one after another`);
    c.note("create.from-snapshot", `${RESTORES} creates from the first of them, each deleted before the next`);
    c.note("fork", `${FORKS} forks of the same sandbox; the snapshot between is removed by fork itself`);
    for (const id of ["snapshot.create", "snapshot.pause", "snapshot.size", "create.from-snapshot", "fork"]) c.report(id);

    await measureWarm(c, o, { SmolVM, listWarmTemplates, removeWarmTemplate, warmImage, track, drop });
  } finally {
    for (const name of made) await removeSnapshot(name).catch(() => {});
  }
}

async function measureWarm(
  c: Collector,
  o: { image: string; tag: string; step: (text: string, fraction?: number) => void; floorBoot: () => Promise<number | undefined> },
  t: {
    SmolVM: typeof import("../lib/smolvm.ts").SmolVM;
    listWarmTemplates: typeof import("../lib/host-api.ts").listWarmTemplates;
    removeWarmTemplate: typeof import("../lib/host-api.ts").removeWarmTemplate;
    warmImage: typeof import("../lib/host-api.ts").warmImage;
    track: (vm: SmolVM) => void;
    drop: (vm: SmolVM) => Promise<void>;
  },
): Promise<void> {
  const existing = (await t.listWarmTemplates()).some((w) => w.name === o.image);
  try {
    await c.attempt(["create-to-first-command.warm"], async () => {
      if (!existing) {
        o.step(`warming image ${o.image}`);
        await t.warmImage(o.image);
      }
      for (let i = 0; i < WARM_CREATES; i++) {
        o.step(`warm create ${i + 1} of ${WARM_CREATES}`, i / WARM_CREATES);
        const floorMs = await o.floorBoot();
        const t0 = performance.now();
        const vm = await t.SmolVM.create({ image: o.image, name: `bench-${o.tag}-w${i + 1}` });
        t.track(vm);
        const first = await vm.commands.run(["true"]);
        const ms = performance.now() - t0;
        if (first.exitCode !== 0) throw new Error(`the first command in "${vm.name}" exited with ${first.exitCode}`);
        if (vm.createdFrom?.kind !== "warm") {
          await t.drop(vm);
          c.unavailable(["create-to-first-command.warm"], `the warm template of image "${o.image}" does not fit a default create (it was made for another size); \`smolvm image warm ${o.image}\` makes it again`);
          return;
        }
        c.add("create-to-first-command.warm", ms);
        if (floorMs !== undefined) c.pair("create-to-first-command-warm/boot-floor", ms, floorMs);
        await t.drop(vm);
      }
    });
  } finally {
    if (!existing) await t.removeWarmTemplate(o.image).catch(() => {});
  }
  c.note("create-to-first-command.warm", `${WARM_CREATES} plain SDK creates of image ${o.image} that restore its warm template${existing ? " (the one this home had)" : " (made by the run, removed after)"}, each to the result of \`true\`, each right after a floor boot (the pair)`);
  c.report("create-to-first-command.warm");
}
