/**
 * The real kernel build. Cold it takes 10-15 minutes on 2 cores; the shared test cache
 * (SMOLVM_CACHE, ~/.cache/smolvm-test by default) makes every later run instant.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { runHostChecked } from "../../../lib/host/process.ts";
import { ensureKernel, type KernelProgress } from "../../../lib/kernel/build.ts";
import { findKernel, listKernels } from "../../../lib/kernel/cache.ts";

const BUILD_TIMEOUT_MS = 45 * 60 * 1000;

describe("x86_64 kernel build", () => {
  test("ensureKernel yields a PVH vmlinux built from the pinned source with the guest essentials", async () => {
    const phases = new Set<KernelProgress["phase"]>();
    const path = await ensureKernel("x86_64", { onProgress: (p) => phases.add(p.phase) });
    expect(path.endsWith("/vmlinux")).toBe(true);
    expect(await findKernel("x86_64")).toBe(path);

    const info = (await listKernels()).find((k) => k.path === path)!;
    expect(info.current).toBe(true);
    expect(info.arch).toBe("x86_64");
    expect(readFileSync(info.logPath, "utf8")).toContain("==> done");

    const config = readFileSync(info.configPath, "utf8");
    for (const option of ["VIRTIO_MMIO", "VIRTIO_BLK", "VIRTIO_CONSOLE", "EXT4_FS", "PVH", "DEVTMPFS", "SERIAL_8250_CONSOLE"]) {
      expect(config).toContain(`\nCONFIG_${option}=y\n`);
    }
    expect(config).toContain("# CONFIG_MODULES is not set");

    // QEMU's microvm boots an uncompressed vmlinux through its Xen PVH entry note.
    const notes = await runHostChecked("readelf", ["-n", path]);
    expect(notes.stdout).toMatch(/Xen\s+0x[0-9a-f]+\s+(Unknown note type: \(0x00000012\)|\S*PHYS32_ENTRY)/);
  }, BUILD_TIMEOUT_MS);
});
