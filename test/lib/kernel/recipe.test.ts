import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findKernel, listKernels } from "../../../lib/kernel/cache.ts";
import { kernelDirName, kernelInputs, kernelKey, recipeKey } from "../../../lib/kernel/recipe.ts";

const SOURCE = "debian:linux-source-6.12=6.12.117-1~deb12u1";

describe("kernel cache key", () => {
  test("covers the build script and the fragments of the arch, and nothing of the other arch", () => {
    expect(Object.keys(kernelInputs("x86_64").files).sort()).toEqual(["build.sh", "config/common.config", "config/x86_64.config"]);
    expect(Object.keys(kernelInputs("aarch64").files).sort()).toEqual(["build.sh", "config/arm64.config", "config/common.config"]);
    expect(kernelInputs("x86_64").artifact).toBe("vmlinux");
    expect(kernelInputs("aarch64").artifact).toBe("Image");
  });

  test("changes when a config fragment, the source version or the arch changes; the recipe key ignores the source", () => {
    const inputs = kernelInputs("x86_64");
    const key = kernelKey(inputs, SOURCE);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(kernelKey(inputs, SOURCE)).toBe(key);
    const edited = { ...inputs, files: { ...inputs.files, "config/common.config": inputs.files["config/common.config"] + "CONFIG_TUN=y\n" } };
    expect(kernelKey(edited, SOURCE)).not.toBe(key);
    expect(recipeKey(edited)).not.toBe(recipeKey(inputs));
    expect(kernelKey(inputs, "debian:linux-source-6.12=6.12.118-1~deb12u1")).not.toBe(key);
    expect(kernelKey(kernelInputs("aarch64"), SOURCE)).not.toBe(key);
    expect(kernelDirName("x86_64", key)).toBe(`x86_64-${key.slice(0, 16)}`);
  });

  test("the config asks for what a smolvm guest needs", () => {
    const config = Object.values(kernelInputs("x86_64").files).join("\n");
    for (const option of [
      "VIRTIO_MMIO", "VIRTIO_MMIO_CMDLINE_DEVICES", "VIRTIO_BLK", "VIRTIO_NET", "VIRTIO_CONSOLE", "HW_RANDOM_VIRTIO",
      "VSOCKETS", "VIRTIO_VSOCKETS", "EXT4_FS", "OVERLAY_FS", "9P_FS", "NET_9P_VIRTIO", "DEVTMPFS", "DEVTMPFS_MOUNT",
      "SERIAL_8250_CONSOLE", "UNIX", "INET", "UNIX98_PTYS", "PVH",
    ]) {
      expect(config).toContain(`\nCONFIG_${option}=y\n`);
    }
    expect(config).toContain("\nCONFIG_MODULES=n\n");
    expect(kernelInputs("aarch64").files["config/arm64.config"]).toContain("CONFIG_SERIAL_AMBA_PL011_CONSOLE=y");
  });
});

describe("kernel cache lookup", () => {
  test("finds the newest build of the current recipe, whatever source version, and lists every valid build", async () => {
    const saved = process.env.SMOLVM_CACHE;
    const cache = mkdtempSync(join(tmpdir(), "smolvm-kcache-"));
    process.env.SMOLVM_CACHE = cache;
    try {
      expect(await findKernel("x86_64")).toBeUndefined();
      expect(await listKernels()).toEqual([]);
      const inputs = kernelInputs("x86_64");
      const build = (source: string, recipe: string, builtAt: string) => {
        const key = kernelKey(inputs, source);
        const dir = join(cache, "kernels", kernelDirName("x86_64", key));
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "vmlinux"), "");
        writeFileSync(join(dir, "manifest.json"), JSON.stringify({
          arch: "x86_64", key, recipeKey: recipe, artifact: "vmlinux", source: { id: source, description: source },
          builderVersion: 2, builtAt, buildSeconds: 1,
        }));
        return dir;
      };
      const older = build(SOURCE, recipeKey(inputs), "2026-11-01T00:00:00.000Z");
      const newer = build("debian:linux-source-6.12=6.12.118-1~deb12u1", recipeKey(inputs), "2026-12-01T00:00:00.000Z");
      const stale = build("debian:linux-source-6.1=6.1.192-3", "0".repeat(64), "2026-12-02T00:00:00.000Z");
      mkdirSync(join(cache, "kernels", "x86_64-damaged"));

      expect(await findKernel("x86_64")).toBe(join(newer, "vmlinux"));
      expect(await findKernel("aarch64")).toBeUndefined();
      const listed = await listKernels();
      expect(listed.map((k) => [k.dir, k.current])).toEqual([[stale, false], [newer, true], [older, true]]);
    } finally {
      if (saved === undefined) delete process.env.SMOLVM_CACHE;
      else process.env.SMOLVM_CACHE = saved;
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
