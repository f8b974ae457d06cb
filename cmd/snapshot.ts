/** Snapshots and forks: `smolvm snapshot create|list|rm`, `smolvm fork`. */
import { Argument, type Command } from "@commander-js/extra-typings";
import type { SnapshotInfo } from "../lib/index.ts";
import { action } from "./action.ts";
import { Progress, table } from "./output.ts";

function size(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(2)} GiB` : `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

export function snapshotTable(snapshots: SnapshotInfo[]): string {
  return table(
    ["NAME", "SOURCE", "IMAGE", "CPUS", "MEMORY", "SIZE", "CREATED"],
    snapshots.map((s) => [s.name, s.source.name, s.image, String(s.vcpus), `${s.memoryMiB} MiB`, size(s.bytes), new Date(s.createdAt).toISOString()]),
  );
}

export function registerSnapshot(program: Command): void {
  const snapshot = program.command("snapshot").description("save running sandboxes (memory, devices, disk) and list or remove the saves");
  snapshot
    .command("create")
    .description("snapshot a running or paused sandbox; it runs on (a paused one stays paused)")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("--name <snapshot>", "the snapshot's name (default: SANDBOX-DATE-TIME)")
    .option("--json", "print JSON")
    .action(
      action("snapshot create", async (out, sandbox, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(sandbox);
        const progress = new Progress(options.json === true);
        progress.update(`saving ${vm.name}`);
        const info = await vm.snapshot(options.name === undefined ? {} : { name: options.name }).finally(() => progress.done());
        vm.close();
        out.result(info, () => `${info.name} (${size(info.bytes)})`);
      }),
    );
  snapshot
    .command("list")
    .alias("ls")
    .description("list snapshots with their stored size")
    .option("--json", "print JSON")
    .action(
      action("snapshot list", async (out, _options) => {
        const { listSnapshots } = await import("../lib/index.ts");
        const snapshots = await listSnapshots();
        out.result(snapshots, () => snapshots.length === 0 ? "No snapshots. `smolvm snapshot create SANDBOX` takes one." : snapshotTable(snapshots));
      }),
    );
  snapshot
    .command("rm")
    .description("remove a snapshot (sandboxes made from it keep working)")
    .addArgument(new Argument("<snapshot>", "snapshot name"))
    .option("--json", "print JSON")
    .action(
      action("snapshot rm", async (out, name, _options) => {
        const { removeSnapshot } = await import("../lib/index.ts");
        const removed = await removeSnapshot(name);
        out.result(removed, () => `removed snapshot ${removed.name}`);
      }),
    );

  program
    .command("fork")
    .description("a new sandbox that starts as a copy of a running one (files, env, processes); the original runs on")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("--name <name>", "the new sandbox's name; generated when absent")
    .option("--json", "print JSON")
    .action(
      action("fork", async (out, sandbox, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const started = Date.now();
        const original = await SmolVM.fromId(sandbox);
        const vm = await original.fork(options.name === undefined ? {} : { name: options.name });
        original.close();
        const info = await vm.info();
        vm.close();
        out.result({ ...info, createdFrom: vm.createdFrom, createMs: Date.now() - started }, () => info.name);
      }),
    );
}
