import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareFirecrackerDisk } from "../../../../lib/backends/firecracker/disk.ts";
import { InvalidInputError, NotFoundError } from "../../../../lib/errors.ts";

let dir: string;
let image: string;
let vmDir: string;
const MiB = 1024 * 1024;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-fc-disk-"));
  vmDir = join(dir, "vm");
  mkdirSync(vmDir);
  // A 64 MiB image with data in two places and holes elsewhere, like a fresh mkfs.ext4 image.
  image = join(dir, "rootfs.ext4");
  const fd = openSync(image, "w");
  writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, 0);
  writeSync(fd, Buffer.alloc(4096, 0xcd), 0, 4096, 40 * MiB);
  writeSync(fd, Buffer.alloc(1), 0, 1, 64 * MiB - 1);
  closeSync(fd);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("prepareFirecrackerDisk", () => {
  test("isolated: a sparse copy with the same bytes, kept on the next start, the image untouched", async () => {
    const disk = await prepareFirecrackerDisk({ imagePath: image, vmDir, mode: "isolated" });
    expect(disk).toEqual({ path: join(vmDir, "disk.ext4"), format: "raw", readOnly: false, created: true });
    expect(readFileSync(disk.path).equals(readFileSync(image))).toBe(true);
    // Sparse: far fewer 512-byte blocks allocated than the 64 MiB size.
    expect(statSync(disk.path).blocks * 512).toBeLessThan(4 * MiB);
    expect(readdirSync(vmDir)).toEqual(["disk.ext4"]);
    const again = await prepareFirecrackerDisk({ imagePath: image, vmDir, mode: "isolated" });
    expect(again.created).toBe(false);
  });

  test("isolated with a size: grown to it, never shrunk below the image", async () => {
    const disk = await prepareFirecrackerDisk({ imagePath: image, vmDir, mode: "isolated", sizeMiB: 128 });
    expect(statSync(disk.path).size).toBe(128 * MiB);
    rmSync(disk.path);
    await expect(prepareFirecrackerDisk({ imagePath: image, vmDir, mode: "isolated", sizeMiB: 32 })).rejects.toBeInstanceOf(InvalidInputError);
    expect(readdirSync(vmDir)).toEqual([]);
  });

  test("shared: the image itself; a missing image is NOT_FOUND and leaves no partial copy", async () => {
    expect(await prepareFirecrackerDisk({ imagePath: image, vmDir, mode: "shared" })).toEqual({ path: image, format: "raw", readOnly: false, created: false });
    await expect(prepareFirecrackerDisk({ imagePath: join(dir, "nope.ext4"), vmDir, mode: "shared" })).rejects.toBeInstanceOf(NotFoundError);
    await expect(prepareFirecrackerDisk({ imagePath: join(dir, "nope.ext4"), vmDir, mode: "isolated" })).rejects.toBeInstanceOf(NotFoundError);
    // A directory in place of an image makes cp fail: the error says so and no temp file stays.
    mkdirSync(join(dir, "notafile"));
    await expect(prepareFirecrackerDisk({ imagePath: join(dir, "notafile"), vmDir, mode: "isolated" })).rejects.toMatchObject({ code: "COMMAND_FAILED" });
    expect(readdirSync(vmDir)).toEqual([]);
  });
});
