/**
 * The boot-floor image for benchmarks: the same kind of ext4 root disk, with only a static
 * `/init` (images/floor/init.c) that prints one line and reboots. Booting it with the same
 * kernel and machine measures what no agent can beat. Boot it with `init=/init`.
 */
import { chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import initSource from "../../images/floor/init.c" with { type: "text" };
import { paths } from "../paths.ts";
import { HostDependencyMissingError, SmolError } from "../errors.ts";
import { runHostChecked, which } from "../host/process.ts";
import { hostGuestArch, type GuestArch } from "../kernel/arch.ts";
import { assembleExt4 } from "./assemble.ts";
import { buildInto, withLock } from "../util/cache-lock.ts";
import { canonicalJson, IMAGE_BUILDER_VERSION, sha256Hex } from "./recipes.ts";
import { IMAGE_FILE, imageDir, imageDirName, readImage, type ImageInfo, type ImageManifest } from "./store.ts";

export const FLOOR_INIT_PATH = "/init";
/** The line the floor init prints; a benchmark waits for it on the serial console. */
export const FLOOR_READY_PREFIX = "smolvm-floor: init reached";

function compilerFor(arch: GuestArch): string {
  const candidates = arch === hostGuestArch()
    ? ["musl-gcc", "cc", "gcc"]
    : [arch === "aarch64" ? "aarch64-linux-gnu-gcc" : "x86_64-linux-gnu-gcc"];
  const found = candidates.find((c) => which(c));
  if (!found) {
    throw new HostDependencyMissingError(`Cannot build the floor image for ${arch}: no C compiler (${candidates.join(", ")})`, {
      hint: "install one with `apt-get install musl-tools build-essential`",
    });
  }
  return found;
}

/** The floor image for `arch`, built on first use (a static compile and a mkfs: ~1 s). */
export async function ensureFloorImage(options: { arch?: GuestArch } = {}): Promise<ImageInfo> {
  const arch = options.arch ?? hostGuestArch();
  const compiler = compilerFor(arch);
  const hash = sha256Hex(canonicalJson({ builder: IMAGE_BUILDER_VERSION, arch, compiler, init: initSource }));
  const finalDir = imageDir("floor", arch, hash);
  const dirName = imageDirName("floor", arch, hash);
  return withLock(join(paths.imagesDir(), `.lock-${dirName}`), async () => {
    const cached = await readImage(finalDir);
    if (cached) return cached;
    const started = Date.now();
    const logPath = join(paths.imagesDir(), ".logs", `${dirName}.log`);
    await mkdir(dirname(logPath), { recursive: true });
    await writeFile(logPath, `smolvm floor image ${dirName} with ${compiler}\n`);
    await buildInto(paths.imagesDir(), dirName, finalDir, {}, async (tempDir) => {
      const overlay = join(tempDir, "overlay");
      for (const dir of ["dev", "proc", "sys"]) await mkdir(join(overlay, dir), { recursive: true });
      await writeFile(join(tempDir, "init.c"), initSource);
      await runHostChecked(compiler, ["-static", "-Os", "-s", "-o", join(overlay, "init"), join(tempDir, "init.c")], {
        action: "Cannot build the floor init",
      });
      await chmod(join(overlay, "init"), 0o755);
      const { sizeMiB, usedMiB } = await assembleExt4({
        treeDir: join(tempDir, "tree"),
        overlayDir: overlay,
        remove: [],
        freeMiB: 16,
        label: "smolvm-floor",
        imagePath: join(tempDir, IMAGE_FILE),
        logPath,
      });
      await rm(join(tempDir, "tree"), { recursive: true, force: true });
      await rm(overlay, { recursive: true, force: true });
      await rm(join(tempDir, "init.c"), { force: true });
      const manifest: ImageManifest = {
        name: "floor",
        arch,
        recipeHash: hash,
        sizeMiB,
        usedMiB,
        init: FLOOR_INIT_PATH,
        builderVersion: IMAGE_BUILDER_VERSION,
        createdAt: new Date().toISOString(),
        buildSeconds: Math.round((Date.now() - started) / 100) / 10,
      };
      await writeFile(join(tempDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
      await rename(logPath, join(tempDir, "build.log"));
    });
    const image = await readImage(finalDir);
    if (!image) throw new SmolError("INTERNAL", `Cannot build the floor image: the published entry ${finalDir} is unreadable`);
    return image;
  });
}
