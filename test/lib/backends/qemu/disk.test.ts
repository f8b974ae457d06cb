/**
 * A QEMU sandbox's disk for snapshots, with the real qemu-img and qemu-io: the captured overlay
 * is stored as a qcow2 of its own clusters only, zstd-compressed, over the same image; a sandbox
 * made from it gets a copy that reads exactly as the original did; a shared disk is refused.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { captureQemuDisk, packQemuDisk, prepareQemuDisk } from "../../../../lib/backends/qemu/disk.ts";
import { which } from "../../../../lib/host/process.ts";
import { haveQemuImg, scratchDir } from "./_fixtures.ts";

const qemuIo = which("qemu-io");

function run(file: string, args: string[]): string {
  const result = spawnSync(file, args, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${file} ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

(haveQemuImg && qemuIo ? describe : describe.skip)("snapshot disk layers", () => {
  test("the stored layer holds only the guest's writes, compressed, and a copy of it reads as the overlay did", async () => {
    const dir = scratchDir("layer");
    const image = join(dir, "rootfs.raw");
    writeFileSync(image, Buffer.alloc(32 * 2 ** 20, 0x11));
    const vmDir = join(dir, "vm");
    const disk = await prepareQemuDisk({ imagePath: image, vmDir, mode: "isolated" });
    // The guest's writes: 4 MiB of one pattern, and a zeroed range over the image's data.
    run(qemuIo!, ["-f", "qcow2", "-c", "write -P 0xab 1M 4M", "-c", "write -z 8M 1M", disk.path]);

    const snap = join(dir, "snap");
    mkdirSync(snap);
    await captureQemuDisk(disk, snap);
    const layer = await packQemuDisk(snap, image);
    expect(readdirSync(snap)).toEqual([layer]);
    const info = JSON.parse(run("qemu-img", ["info", "--output", "json", join(snap, layer)]));
    expect(info.format).toBe("qcow2");
    expect(info["backing-filename"]).toBe(image);
    expect(info["format-specific"].data["compression-type"]).toBe("zstd");
    // 4 MiB of one byte compresses to almost nothing; the image's 32 MiB are not in it.
    expect(statSync(join(snap, layer)).size).toBeLessThan(1 * 2 ** 20);

    const copy = await prepareQemuDisk({ imagePath: image, vmDir: join(dir, "copy"), mode: "isolated", layer: join(snap, layer) });
    expect(copy.created).toBe(true);
    expect(spawnSync("qemu-img", ["compare", "-q", disk.path, copy.path]).status).toBe(0);
    // The copy is the new sandbox's own: its writes do not reach the stored layer.
    run(qemuIo!, ["-f", "qcow2", "-c", "write -P 0xcd 0 64k", copy.path]);
    expect(spawnSync("qemu-img", ["compare", "-q", disk.path, join(snap, layer)]).status).toBe(0);
  });

  test("a shared disk (the image itself) is not captured", async () => {
    const dir = scratchDir("shared");
    const image = join(dir, "rootfs.raw");
    writeFileSync(image, Buffer.alloc(2 ** 20));
    const shared = await prepareQemuDisk({ imagePath: image, vmDir: join(dir, "vm"), mode: "shared" });
    await expect(captureQemuDisk(shared, dir)).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });
});
