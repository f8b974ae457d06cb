import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotFoundError, SmolError } from "../../../lib/errors.ts";
import { buildKernel } from "../../../lib/kernel/build.ts";
import { DEBIAN_SOURCE_PINS, KERNEL_ORG_SOURCE_PIN, knownSourcePins, verifySource } from "../../../lib/kernel/source.ts";

function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "smolvm-kernel-src-"));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

describe("kernel source pins", () => {
  test("pin the Debian linux-source-6.1 tarball by version and SHA-256", () => {
    const versions = DEBIAN_SOURCE_PINS.map((p) => p.version);
    expect(versions).toContain("6.1.192-2");
    for (const pin of DEBIAN_SOURCE_PINS) expect(pin.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  test("the kernel.org fallback is not accepted until its checksum is recorded", () => {
    const accepted = knownSourcePins().map((p) => p.kind);
    expect(accepted.includes("kernel.org")).toBe(KERNEL_ORG_SOURCE_PIN.sha256 !== undefined);
  });
});

describe("verifySource", () => {
  test("a tarball with an unpinned checksum is refused with both checksums named", async () => {
    await withTempDir(async (dir) => {
      const fake = join(dir, "linux-source-6.1.tar.xz");
      writeFileSync(fake, "not a kernel\n");
      const error = await verifySource(fake).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SmolError);
      const smol = error as SmolError;
      expect(smol.message).toContain(fake);
      expect(smol.message).toContain("matches no pinned version");
      // sha256("not a kernel\n")
      expect(smol.message).toMatch(/SHA-256 [0-9a-f]{64}/);
      expect(smol.hint).toContain(DEBIAN_SOURCE_PINS[0]!.sha256);
      expect(smol.hint).toContain("apt-get install --reinstall linux-source-6.1");
    });
  });

  test("buildKernel refuses a mismatched tarball before building anything", async () => {
    await withTempDir(async (dir) => {
      const fake = join(dir, "linux.tar.xz");
      writeFileSync(fake, "still not a kernel\n");
      await expect(buildKernel({ arch: "x86_64", source: fake })).rejects.toThrow(/matches no pinned version/);
    });
  });

  test("a missing tarball is NotFoundError with the apt-get hint", async () => {
    await withTempDir(async (dir) => {
      const error = await verifySource(join(dir, "absent.tar.xz")).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NotFoundError);
      expect((error as NotFoundError).hint).toContain("apt-get install linux-source-6.1");
    });
  });
});
