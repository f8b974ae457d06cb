/**
 * The base image for the other arch (aarch64 on an x86_64 host), built for real in a private
 * cache: Debian's arm64 busybox-static comes through mmdebstrap's extract variant from the
 * Debian mirror, its applets are listed under qemu-user, and the image holds that binary.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runHostChecked } from "../../../lib/host/process.ts";
import { currentRecipeHash, ensureImage } from "../../../lib/images/build.ts";
import { foreignBusyboxPath } from "../../../lib/images/foreign-busybox.ts";
import { hostGuestArch } from "../../../lib/kernel/arch.ts";
import { guestStat } from "./_debugfs.ts";

const foreign = hostGuestArch() === "x86_64" ? "aarch64" : "x86_64";
let savedCache: string | undefined;
let cache: string;

beforeAll(() => {
  savedCache = process.env.SMOLVM_CACHE;
  cache = mkdtempSync(join(tmpdir(), "smolvm-foreign-base-"));
  process.env.SMOLVM_CACHE = cache;
});
afterAll(() => {
  if (savedCache === undefined) delete process.env.SMOLVM_CACHE;
  else process.env.SMOLVM_CACHE = savedCache;
  rmSync(cache, { recursive: true, force: true });
});

describe(`base image for ${foreign} on a ${hostGuestArch()} host`, () => {
  test("asking for its recipe hash before a build downloads nothing and says what is missing", async () => {
    await expect(currentRecipeHash("base", { arch: foreign })).rejects.toThrow(`Cannot find the cached ${foreign} busybox`);
  });

  test(`builds with Debian's ${foreign} busybox-static and its applet links`, async () => {
    const image = await ensureImage("base", { arch: foreign });
    expect(image.arch).toBe(foreign);
    const dumped = join(cache, "busybox-from-image");
    await runHostChecked("debugfs", ["-R", `dump /bin/busybox ${dumped}`, image.path]);
    const elf = readFileSync(dumped);
    expect(elf.readUInt32BE(0)).toBe(0x7f454c46);
    expect(elf.readUInt16LE(18)).toBe(foreign === "aarch64" ? 183 : 62);
    expect(elf).toEqual(readFileSync(foreignBusyboxPath(foreign)));
    expect((await guestStat(image.path, "/bin/sh"))?.linkTarget).toBe("/bin/busybox");
    expect(await currentRecipeHash("base", { arch: foreign })).toBe(image.recipeHash);
  }, 300_000);
});
