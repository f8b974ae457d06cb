/**
 * `smolvm release build` and `smolvm release keygen` through the CLI: what a release directory
 * holds, the signing rules, and an unsigned release trusted by its manifest's SHA-256 on a real
 * loopback mirror.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseManifest } from "../../../lib/published/manifest.ts";
import { checkFrameHeader } from "../../../lib/published/download.ts";
import { sha256Hex, verifyManifest } from "../../../lib/published/trust.ts";
import { pullImages } from "../../../lib/published/pull.ts";
import { envelope, runCli } from "../../helpers/cli.ts";
import { serveImageMirror } from "../../helpers/image-mirror.ts";
import { freshCache, scratchDir, withEnv } from "../../helpers/release.ts";

describe("release build and keygen", () => {
  test("a build without a key is refused unless --unsigned, and --unsigned with a key is refused too", async () => {
    const out = scratchDir("release-nokey");
    const none = await runCli(["release", "build", "--out", out, "--image", "base", "--json"], { env: { SMOLVM_RELEASE_KEY: "" } });
    expect(none.code).toBe(1);
    expect(envelope(none).error).toMatchObject({ code: "INVALID_INPUT", message: "Cannot build the release: no signing key" });
    const both = await runCli(["release", "build", "--out", out, "--image", "base", "--unsigned", "--key", "/nonexistent", "--json"]);
    expect(envelope(both).error.message).toContain("--unsigned and a signing key were both given");
    const missing = await runCli(["release", "build", "--out", out, "--image", "base", "--key", join(out, "no-such.pem"), "--json"]);
    expect(envelope(missing).error).toMatchObject({ code: "NOT_FOUND" });
    expect(existsSync(join(out, "manifest.json"))).toBe(false);
  });

  test("an unsigned release: one row per vmm, checksummed zstd files, SHA256SUMS, and a mirror pinned by its SHA-256 works", async () => {
    const out = scratchDir("release-unsigned");
    const built = await runCli(["release", "build", "--out", out, "--image", "base", "--unsigned", "--json"], { timeoutMs: 30 * 60_000 });
    expect(built.code).toBe(0);
    const data = envelope(built).data;
    expect(data.keyId).toBeNull();
    expect(existsSync(join(out, "manifest.json.sig"))).toBe(false);
    const bytes = readFileSync(join(out, "manifest.json"));
    expect(data.manifestSha256).toBe(sha256Hex(bytes));
    const manifest = parseManifest(bytes, { url: out });
    expect(manifest.rows.map((r) => `${r.image}/${r.arch}/${r.vmm}`)).toEqual(["base/x86_64/qemu", "base/x86_64/firecracker"]);
    expect(manifest.rows[0]!.kernel).toEqual(manifest.rows[1]!.kernel);
    expect(manifest.rows[0]!.rootfs).toEqual(manifest.rows[1]!.rootfs);
    for (const entry of [manifest.rows[0]!.kernel, manifest.rows[0]!.rootfs]) {
      const file = readFileSync(join(out, entry.file));
      expect(file.length).toBe(entry.size);
      expect(sha256Hex(file)).toBe(entry.sha256);
      expect(checkFrameHeader(file.subarray(0, 5))).toBeUndefined();
      expect(statSync(join(out, entry.file)).mode & 0o777).toBe(0o644);
    }
    const sums = readFileSync(join(out, "SHA256SUMS"), "utf8");
    expect(sums).toContain(`${data.manifestSha256}  manifest.json`);
    expect(sums).toContain(`${manifest.rows[0]!.rootfs.sha256}  base-x86_64.ext4.zst`);

    const mirror = await serveImageMirror(out);
    try {
      const env = (pin: string) => ({ SMOLVM_CACHE: freshCache(), SMOLVM_IMAGES_URL: mirror.url, SMOLVM_IMAGES_SHA256: pin });
      const [pulled] = await withEnv(env(data.manifestSha256), () => pullImages({ images: ["base"], arch: "x86_64" }));
      expect(pulled!.manifestSha256).toBe(data.manifestSha256);
      expect(mirror.count("/manifest.json.sig")).toBe(0); // a pin needs no signature
      const wrong = await withEnv(env("0".repeat(64)), () => pullImages({ images: ["base"], arch: "x86_64" })).catch((e: unknown) => e);
      expect(wrong).toMatchObject({ code: "INTEGRITY_FAILED" });
      expect((wrong as Error).message).toContain(`its SHA-256 is ${data.manifestSha256}, not the pinned ${"0".repeat(64)}`);
    } finally {
      await mirror.close();
    }
  }, 30 * 60_000);

  test("keygen writes a private key only its owner can read, never over another, and its public key verifies what it signs", async () => {
    const dir = scratchDir("keygen");
    const keyFile = join(dir, "release.pem");
    const made = await runCli(["release", "keygen", "--out", keyFile, "--json"]);
    expect(made.code).toBe(0);
    const { publicKey, keyId } = envelope(made).data;
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const again = await runCli(["release", "keygen", "--out", keyFile, "--json"]);
    expect(envelope(again).error).toMatchObject({ code: "ALREADY_EXISTS" });

    const out = scratchDir("release-signed");
    const built = await runCli(["release", "build", "--out", out, "--image", "base", "--json"], { env: { SMOLVM_RELEASE_KEY: keyFile }, timeoutMs: 30 * 60_000 });
    expect(envelope(built).data.keyId).toBe(keyId);
    verifyManifest(readFileSync(join(out, "manifest.json")), readFileSync(join(out, "manifest.json.sig")), {
      kind: "keys", keys: [{ id: keyId, publicKey }], label: "the generated key",
    }, { manifestUrl: out, signatureUrl: out });
  }, 30 * 60_000);
});
