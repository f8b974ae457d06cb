import { describe, expect, test } from "bun:test";
import { findRow, kernelFileName, MANIFEST_SCHEMA, parseManifest, rootfsFileName, type ReleaseManifest } from "../../../lib/published/manifest.ts";
import { SmolError } from "../../../lib/errors.ts";

const sha = (c: string) => c.repeat(64);
const entry = (file: string) => ({ file, size: 10, sha256: sha("a"), unpackedSize: 20, unpackedSha256: sha("b") });

function sampleManifest(): ReleaseManifest {
  const row = (arch: "x86_64" | "aarch64", vmm: "qemu" | "firecracker") => ({
    image: "base", arch, vmm,
    kernel: { ...entry(kernelFileName(arch)), format: arch === "x86_64" ? "vmlinux" as const : "Image" as const },
    rootfs: entry(rootfsFileName("base", arch)),
    agentSha256: sha("c"), recipeHash: sha("d"), sizeMiB: 384, usedMiB: 3, init: "/sbin/smolvm-agent",
  });
  return { schema: MANIFEST_SCHEMA, smolvmVersion: "0.1.0", createdAt: "2026-12-01T00:00:00.000Z", rows: [row("x86_64", "qemu"), row("x86_64", "firecracker"), row("aarch64", "qemu")] };
}

const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));
const origin = { url: "http://127.0.0.1:1/manifest.json" };

function failure(value: unknown): SmolError {
  try {
    parseManifest(bytes(value), origin);
  } catch (error) {
    return error as SmolError;
  }
  throw new Error("parsed");
}

describe("release manifest", () => {
  test("a valid manifest parses and its rows are found by (image, arch, vmm)", () => {
    const manifest = parseManifest(bytes(sampleManifest()), origin);
    expect(findRow(manifest, "base", "x86_64", "firecracker")?.kernel.file).toBe("kernel-x86_64.vmlinux.zst");
    expect(findRow(manifest, "base", "aarch64", "qemu")?.rootfs.file).toBe("base-aarch64.ext4.zst");
    expect(findRow(manifest, "base", "aarch64", "firecracker")).toBeUndefined();
    expect(findRow(manifest, "debian", "x86_64", "qemu")).toBeUndefined();
  });

  test("an unknown schema is refused with a message that names it and the URL", () => {
    const error = failure({ ...sampleManifest(), schema: 2 });
    expect(error.message).toBe(`Cannot use the image manifest "${origin.url}": its schema is 2, and this smolvm reads schema 1 only`);
    expect(error.hint).toContain("smolvm version");
    expect(failure({ rows: [] }).message).toContain("its schema is null");
  });

  test("malformed JSON, bad fields and duplicate rows are refused", () => {
    expect(() => parseManifest(Buffer.from("{not json"), origin)).toThrow("it is not valid JSON");
    const m = sampleManifest();
    expect(failure({ ...m, rows: [{ ...m.rows[0], rootfs: { ...m.rows[0]!.rootfs, file: "../../etc/passwd" } }] }).message).toContain("it is malformed");
    expect(failure({ ...m, rows: [{ ...m.rows[0], rootfs: { ...m.rows[0]!.rootfs, size: -1 } }] }).message).toContain("rows.0.rootfs.size");
    expect(failure({ ...m, rows: [{ ...m.rows[0], rootfs: { ...m.rows[0]!.rootfs, unpackedSize: 2 ** 40 } }] }).message).toContain("unpackedSize");
    expect(failure({ ...m, rows: [{ ...m.rows[0], kernel: { ...m.rows[0]!.kernel, sha256: "ABC" } }] }).message).toContain("kernel.sha256");
    expect(failure({ ...m, extra: true }).message).toContain("malformed");
    expect(failure({ ...m, rows: [m.rows[0], m.rows[0]] }).message).toContain("lists base/x86_64/qemu twice");
    expect(failure({ ...m, smolvmVersion: "../x" }).message).toContain("smolvmVersion");
  });
});
