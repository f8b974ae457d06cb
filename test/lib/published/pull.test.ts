/**
 * Pulling published images from a real HTTP server on 127.0.0.1 that serves a real release made
 * by `smolvm release build`, and every fault the issue names: each must fail with an error that
 * names the file and its URL, and leave the cache as it was (no artifact directory, no sidecar;
 * at most a `.partial` download, kept only where resuming it is right).
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { constants as zlib, zstdCompressSync } from "node:zlib";
import { pullImages } from "../../../lib/published/pull.ts";
import { DownloadError } from "../../../lib/published/http.ts";
import { findRow, kernelFileName, type ReleaseManifest } from "../../../lib/published/manifest.ts";
import { findKernel } from "../../../lib/kernel/cache.ts";
import { SmolError } from "../../../lib/errors.ts";
import type { ImageMirror } from "../../helpers/image-mirror.ts";
import { freshCache, scratchDir, signed, withEnv, type TestRelease, serveTestRelease } from "../../helpers/release.ts";

let release: TestRelease;
let server: ImageMirror;
const ROOTFS = "/base-x86_64.ext4.zst";
const KERNEL = `/${kernelFileName("x86_64")}`;

serveTestRelease((built, served) => {
  release = built;
  server = served;
});

function row() {
  return findRow(release.manifest, "base", "x86_64", "qemu")!;
}

/** Pulls `base` for x86_64 into `cache` from the test server. */
function pull(cache: string, extra: { stallTimeoutMs?: number; connectTimeoutMs?: number } = {}) {
  return withEnv({ SMOLVM_CACHE: cache, ...release.env(server.url) }, () =>
    pullImages({ images: ["base"], arch: "x86_64", stallTimeoutMs: extra.stallTimeoutMs ?? 5_000, connectTimeoutMs: extra.connectTimeoutMs ?? 5_000 }));
}

async function failure(promise: Promise<unknown>): Promise<SmolError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SmolError) return error;
    throw error;
  }
  throw new Error("expected a failure");
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Everything under <cache>/images/<version>, as relative paths (dot-files included). */
function cacheEntries(cache: string): string[] {
  const root = join(cache, "images", release.manifest.smolvmVersion);
  const walk = (dir: string, prefix: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? [`${prefix}${e.name}/`, ...walk(join(dir, e.name), `${prefix}${e.name}/`)] : [`${prefix}${e.name}`]);
  return existsSync(root) ? walk(root, "").sort() : [];
}

/**
 * The cache holds no copy of the faulted artifact, complete or not, and no temp dir or lock
 * (the kernel, pulled first and verified, may stay: it is complete and correct).
 */
function expectNoArtifacts(cache: string, faulted: "base" | "kernel" = "base"): void {
  const entries = cacheEntries(cache);
  expect(entries.filter((e) => e.startsWith(`${faulted}-`) || e.startsWith(".tmp-") || e.startsWith(".lock-"))).toEqual([]);
  // Every sidecar there is is next to its complete file.
  for (const sidecar of entries.filter((e) => e.endsWith(".from-sha256"))) {
    const dir = join(cache, "images", release.manifest.smolvmVersion);
    const file = join(dir, sidecar.slice(0, -".from-sha256".length));
    expect(createHash("sha256").update(readFileSync(file)).digest("hex")).toBe(row().kernel.unpackedSha256);
  }
}

function serve(path: string, body: Uint8Array): void {
  server.faults.set(path, { kind: "body", bytes: body });
}

function withFaults<T>(faults: Record<string, Parameters<ImageMirror["faults"]["set"]>[1]>, fn: () => Promise<T>): Promise<T> {
  for (const [path, fault] of Object.entries(faults)) server.faults.set(path, fault);
  return fn().finally(() => {
    for (const path of Object.keys(faults)) server.faults.delete(path);
  });
}

describe("image pull from a loopback mirror", () => {
  test("downloads, verifies and unpacks the kernel and image (sparse), each stamped with its .from-sha256", async () => {
    const cache = freshCache();
    const [pulled] = await pull(cache);
    const r = row();
    expect(pulled!.rootfs.path).toBe(join(cache, "images", release.manifest.smolvmVersion, `base-x86_64-${r.rootfs.sha256.slice(0, 16)}`, "rootfs.ext4"));
    expect(sha256(pulled!.rootfs.path)).toBe(r.rootfs.unpackedSha256);
    expect(statSync(pulled!.rootfs.path).size).toBe(r.rootfs.unpackedSize);
    expect(statSync(pulled!.rootfs.path).blocks * 512).toBeLessThan(r.rootfs.unpackedSize / 4);
    expect(readFileSync(`${pulled!.rootfs.path}.from-sha256`, "utf8")).toBe(`${r.rootfs.sha256}\n`);
    expect(readFileSync(pulled!.kernel.path)).toEqual(readFileSync((await findKernel("x86_64"))!));
    expect(readFileSync(`${pulled!.kernel.path}.from-sha256`, "utf8")).toBe(`${r.kernel.sha256}\n`);
    expect(pulled!.downloadedBytes).toBe(r.kernel.size + r.rootfs.size);
    // Nothing left over: no partial downloads, temp dirs or locks.
    expect(cacheEntries(cache).filter((e) => e.startsWith(".") && e !== ".downloads/")).toEqual([]);

    const before = server.count(ROOTFS) + server.count(KERNEL);
    const [again] = await pull(cache);
    expect(again!.downloadedBytes).toBe(0);
    expect(server.count(ROOTFS) + server.count(KERNEL)).toBe(before);
  });

  test("a corrupted byte: refused by its checksum, the partial download deleted", async () => {
    const cache = freshCache();
    const error = await withFaults({ [ROOTFS]: { kind: "corrupt", offset: Math.floor(row().rootfs.size / 2) } }, () => failure(pull(cache)));
    expect(error).toBeInstanceOf(DownloadError);
    expect((error as DownloadError).reason).toBe("checksum");
    expect(error.message).toStartWith(`Cannot download image "base" for x86_64 (base-x86_64.ext4.zst) from "${server.url}base-x86_64.ext4.zst": `);
    expectNoArtifacts(cache);
    expect(cacheEntries(cache).filter((e) => e.endsWith(".partial"))).toEqual([]);
  });

  test("a corrupted last byte (inside zstd's own frame checksum) is refused too", async () => {
    const cache = freshCache();
    const error = await withFaults({ [ROOTFS]: { kind: "corrupt", offset: row().rootfs.size - 1 } }, () => failure(pull(cache)));
    expect((error as DownloadError).reason).toBe("checksum");
    expectNoArtifacts(cache);
  });

  test("a file without zstd's content checksum is refused: the decoded bytes would go unchecked", async () => {
    const cache = freshCache();
    const { spawnSync } = await import("node:child_process");
    const scratch = scratchDir("nocheck");
    spawnSync("zstd", ["-q", "-d", join(release.dir, "base-x86_64.ext4.zst"), "-o", join(scratch, "raw")]);
    spawnSync("zstd", ["-q", "-3", "--no-check", join(scratch, "raw"), "-o", join(release.dir, "base-x86_64.nocheck.zst")]);
    const packed = readFileSync(join(release.dir, "base-x86_64.nocheck.zst"));
    const rootfs = { ...row().rootfs, file: "base-x86_64.nocheck.zst", size: packed.length, sha256: createHash("sha256").update(packed).digest("hex") };
    const next = signed(release, { ...release.manifest, rows: release.manifest.rows.map((r) => ({ ...r, rootfs })) });
    serve("/manifest.json", next.manifest);
    serve("/manifest.json.sig", next.signature);
    const error = await failure(pull(cache)).finally(() => {
      server.faults.delete("/manifest.json");
      server.faults.delete("/manifest.json.sig");
    });
    expect((error as DownloadError).reason).toBe("format");
    expect(error.message).toBe(`Cannot download image "base" for x86_64 (base-x86_64.nocheck.zst) from "${server.url}base-x86_64.nocheck.zst": its zstd frame carries no content checksum`);
    expectNoArtifacts(cache);
    expect(cacheEntries(cache).filter((e) => e.endsWith(".partial"))).toEqual([]);
  });

  test("a truncated file (a short Content-Length) and a longer one: refused before a byte is unpacked", async () => {
    const cache = freshCache();
    for (const fault of [{ kind: "truncate", bytes: 1000 } as const, { kind: "append", bytes: 10 } as const]) {
      const error = await withFaults({ [ROOTFS]: fault }, () => failure(pull(cache)));
      expect((error as DownloadError).reason).toBe("size");
      expect(error.message).toContain(`the server's file is ${fault.kind === "truncate" ? 1000 : row().rootfs.size + 10} bytes, the manifest says ${row().rootfs.size}`);
      expect(error.message).toContain(`${server.url}base-x86_64.ext4.zst`);
      expectNoArtifacts(cache);
    }
  });

  test("a server that sends more than the manifest's size without a Content-Length is cut off at that size", async () => {
    const cache = freshCache();
    const error = await withFaults({ [ROOTFS]: { kind: "append", bytes: 4096, unlabelled: true } }, () => failure(pull(cache)));
    expect((error as DownloadError).reason).toBe("size");
    expect(error.message).toContain(`the server sent more than the manifest's ${row().rootfs.size} bytes`);
    expectNoArtifacts(cache);
  });

  test("a transfer cut short is kept and the next pull resumes it with an HTTP Range", async () => {
    const cache = freshCache();
    const cut = 300_000;
    const error = await withFaults({ [ROOTFS]: { kind: "cut", afterBytes: cut } }, () => failure(pull(cache)));
    expect(error).toBeInstanceOf(DownloadError);
    expect(error.message).toContain(`${server.url}base-x86_64.ext4.zst`);
    expect(error.hint).toContain("resume");
    expectNoArtifacts(cache);
    const partial = cacheEntries(cache).find((e) => e.endsWith(".partial"))!;
    expect(statSync(join(cache, "images", release.manifest.smolvmVersion, partial)).size).toBe(cut);

    const [pulled] = await pull(cache);
    expect(server.requests.get(ROOTFS)!.at(-1)).toBe(`bytes=${cut}-`);
    expect(sha256(pulled!.rootfs.path)).toBe(row().rootfs.unpackedSha256);
    expect(cacheEntries(cache).filter((e) => e.endsWith(".partial"))).toEqual([]);
  });

  test("a server that ignores the Range starts over from byte 0 and still unpacks a correct image", async () => {
    const cache = freshCache();
    await withFaults({ [ROOTFS]: { kind: "cut", afterBytes: 200_000 } }, () => failure(pull(cache)));
    const [pulled] = await withFaults({ [ROOTFS]: { kind: "no-range" } }, () => pull(cache));
    expect(sha256(pulled!.rootfs.path)).toBe(row().rootfs.unpackedSha256);
  });

  test("a server that stalls: a clear error after the stall timeout, the partial kept for a resume", async () => {
    const cache = freshCache();
    const started = performance.now();
    const error = await withFaults({ [ROOTFS]: { kind: "stall", afterBytes: 100_000 } }, () => failure(pull(cache, { stallTimeoutMs: 500 })));
    expect((error as DownloadError).reason).toBe("stall");
    expect(error.message).toBe(`Cannot download image "base" for x86_64 (base-x86_64.ext4.zst) from "${server.url}base-x86_64.ext4.zst": no data for 500 ms`);
    expect(performance.now() - started).toBeLessThan(30_000);
    expectNoArtifacts(cache);
  });

  test("a redirect loop is cut after 5 hops; one redirect is followed", async () => {
    const cache = freshCache();
    const error = await withFaults({ [ROOTFS]: { kind: "redirect-loop" } }, () => failure(pull(cache)));
    expect((error as DownloadError).reason).toBe("redirects");
    expect(error.message).toContain("more than 5 redirects");
    expect(error.message).toContain("base-x86_64.ext4.zst");
    expectNoArtifacts(cache);
    writeFileSync(join(release.dir, "moved.zst"), readFileSync(join(release.dir, "base-x86_64.ext4.zst")));
    const [pulled] = await withFaults({ [ROOTFS]: { kind: "redirect", to: "/moved.zst" } }, () => pull(cache));
    expect(sha256(pulled!.rootfs.path)).toBe(row().rootfs.unpackedSha256);
  });

  test("a file the server does not have: the 404 names the file", async () => {
    const cache = freshCache();
    const error = await withFaults({ [ROOTFS]: { kind: "status", status: 404 } }, () => failure(pull(cache)));
    expect(error.message).toContain(`"${server.url}base-x86_64.ext4.zst": the server answered 404`);
    expectNoArtifacts(cache);
  });

  test("a manifest with an unknown schema, even signed, is refused by name", async () => {
    const cache = freshCache();
    const next = signed(release, { ...release.manifest, schema: 2 } as unknown as ReleaseManifest);
    serve("/manifest.json", next.manifest);
    serve("/manifest.json.sig", next.signature);
    const error = await failure(pull(cache)).finally(() => {
      server.faults.delete("/manifest.json");
      server.faults.delete("/manifest.json.sig");
    });
    expect(error.message).toBe(`Cannot use the image manifest "${server.url}manifest.json": its schema is 2, and this smolvm reads schema 1 only`);
    expect(cacheEntries(cache)).toEqual([]);
  });

  test("a tampered manifest (one byte changed after signing) is refused", async () => {
    const cache = freshCache();
    const original = readFileSync(join(release.dir, "manifest.json"));
    serve("/manifest.json", Buffer.from(original.toString().replace('"usedMiB": ', '"usedMiB": 1')));
    const error = await failure(pull(cache)).finally(() => server.faults.delete("/manifest.json"));
    expect(error.message).toBe(`Cannot trust the image manifest "${server.url}manifest.json": its signature does not match its contents (key ${release.key.id})`);
    expect(cacheEntries(cache)).toEqual([]);
  });

  test("a manifest whose rows are all for another arch: the pull says what the release has", async () => {
    const cache = freshCache();
    const other = signed(release, { ...release.manifest, rows: release.manifest.rows.map((r) => ({ ...r, arch: "aarch64" as const })) });
    serve("/manifest.json", other.manifest);
    serve("/manifest.json.sig", other.signature);
    const error = await failure(pull(cache)).finally(() => {
      server.faults.delete("/manifest.json");
      server.faults.delete("/manifest.json.sig");
    });
    expect(error.code).toBe("NOT_FOUND");
    expect(error.message).toBe(`Cannot pull image "base" for x86_64: the release ${server.url}manifest.json has no base/x86_64/qemu`);
    expect(error.hint).toContain("it publishes base/aarch64/qemu, base/aarch64/firecracker");
    expectNoArtifacts(cache);
  });

  test("a row for x86_64 whose kernel is an aarch64 Image: refused after the checksum, before it is used", async () => {
    const cache = freshCache();
    const image = Buffer.alloc(256 * 1024);
    image.writeUInt32LE(0x644d5241, 56); // "ARM\x64": the arm64 Image magic
    const packed = zstdCompressSync(image, { params: { [zlib.ZSTD_c_checksumFlag]: 1 } });
    writeFileSync(join(release.dir, "kernel-aarch64.Image.zst"), packed);
    const hash = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    const kernel = { file: "kernel-aarch64.Image.zst", size: packed.length, sha256: hash(packed), unpackedSize: image.length, unpackedSha256: hash(image), format: "Image" as const };
    const wrong = signed(release, { ...release.manifest, rows: release.manifest.rows.map((r) => ({ ...r, kernel })) });
    serve("/manifest.json", wrong.manifest);
    serve("/manifest.json.sig", wrong.signature);
    const error = await failure(pull(cache)).finally(() => {
      server.faults.delete("/manifest.json");
      server.faults.delete("/manifest.json.sig");
    });
    expect((error as DownloadError).reason).toBe("format");
    expect(error.message).toBe(`Cannot use the x86_64 kernel (kernel-aarch64.Image.zst) from "${server.url}kernel-aarch64.Image.zst": it should be an x86_64 kernel (ELF vmlinux), and it is aarch64`);
    expectNoArtifacts(cache, "kernel");
    expectNoArtifacts(cache, "base");
  });

  test("a manifest older than the one already trusted is refused (no rollback)", async () => {
    const cache = freshCache();
    await pull(cache);
    const old = signed(release, { ...release.manifest, createdAt: "2020-01-01T00:00:00.000Z" });
    serve("/manifest.json", old.manifest);
    serve("/manifest.json.sig", old.signature);
    const error = await failure(pull(cache)).finally(() => {
      server.faults.delete("/manifest.json");
      server.faults.delete("/manifest.json.sig");
    });
    expect(error.message).toContain("it is older (2020-01-01T00:00:00.000Z) than the one already trusted");
  });

  test("a changed checksum in a newer manifest unpacks again beside the old copy", async () => {
    const cache = freshCache();
    const [first] = await pull(cache);
    // The same image, compressed differently: a new file, a new checksum, the same unpacked bytes.
    const repacked = zstdCompressSync(readFileSync(first!.rootfs.path), { params: { [zlib.ZSTD_c_checksumFlag]: 1 } });
    writeFileSync(join(release.dir, "base-x86_64.v2.ext4.zst"), repacked);
    const sha = createHash("sha256").update(repacked).digest("hex");
    const rootfs = { ...row().rootfs, file: "base-x86_64.v2.ext4.zst", size: repacked.length, sha256: sha };
    const newer = signed(release, {
      ...release.manifest,
      createdAt: new Date(Date.parse(release.manifest.createdAt) + 60_000).toISOString(),
      rows: release.manifest.rows.map((r) => (r.arch === "x86_64" ? { ...r, rootfs } : r)),
    });
    serve("/manifest.json", newer.manifest);
    serve("/manifest.json.sig", newer.signature);
    try {
      const [second] = await pull(cache);
      expect(second!.rootfs.path).not.toBe(first!.rootfs.path);
      expect(second!.rootfs.dir).toEndWith(`base-x86_64-${sha.slice(0, 16)}`);
      expect(readFileSync(`${second!.rootfs.path}.from-sha256`, "utf8")).toBe(`${sha}\n`);
      expect(sha256(second!.rootfs.path)).toBe(row().rootfs.unpackedSha256);
      expect(second!.kernel.path).toBe(first!.kernel.path); // unchanged: not downloaded again
      expect(existsSync(first!.rootfs.path)).toBe(true); // kept for sandboxes made on it, until prune

      const { prune } = await import("../../../lib/prune.ts");
      const report = await withEnv({ SMOLVM_CACHE: cache }, () => prune());
      expect(report.removed.filter((e) => e.kind === "published").map((e) => e.path)).toEqual([first!.rootfs.dir]);
      expect(existsSync(second!.rootfs.path) && existsSync(second!.kernel.path)).toBe(true);
    } finally {
      server.faults.delete("/manifest.json");
      server.faults.delete("/manifest.json.sig");
    }
  });

  test("prune removes another version's directory and keeps this version's", async () => {
    const cache = freshCache();
    const [pulled] = await pull(cache);
    const other = join(cache, "images", "0.0.1", "base-x86_64-0123456789abcdef");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, "rootfs.ext4"), "old");
    const { prune } = await import("../../../lib/prune.ts");
    const dry = await withEnv({ SMOLVM_CACHE: cache }, () => prune({ dryRun: true }));
    expect(dry.removed.map((e) => e.path)).toEqual([join(cache, "images", "0.0.1")]);
    await withEnv({ SMOLVM_CACHE: cache }, () => prune());
    expect(existsSync(join(cache, "images", "0.0.1"))).toBe(false);
    expect(existsSync(pulled!.rootfs.path) && existsSync(pulled!.kernel.path)).toBe(true);
  });
});
