/**
 * Which kernel and image a new sandbox gets: published ones when the release has a row, local
 * builds otherwise, quietly when the source is merely unreachable (a laptop on a plane) and
 * loudly when something is wrong. A real release on a real loopback server; fallbacks build
 * the base image for real (the kernel comes from the shared cache).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { resolveArtifacts } from "../../../lib/published/resolve.ts";
import { pullImages } from "../../../lib/published/pull.ts";
import { MANIFEST_MAX_AGE_MS, UNREACHABLE_MEMORY_MS } from "../../../lib/published/release-manifest.ts";
import { serveImageMirror, type ImageMirror } from "../../helpers/image-mirror.ts";
import { freshCache, signed, withEnv, type TestRelease, serveTestRelease } from "../../helpers/release.ts";

let release: TestRelease;
let server: ImageMirror;
const ROOTFS = "/base-x86_64.ext4.zst";

serveTestRelease((built, served) => {
  release = built;
  server = served;
});

function resolveIn(cache: string, env: Record<string, string | undefined>, options: Parameters<typeof resolveArtifacts>[2] = {}) {
  return withEnv({ SMOLVM_CACHE: cache, SMOLVM_USE_PUBLISHED: undefined, SMOLVM_AGENT_BINARY: undefined, ...env }, () =>
    resolveArtifacts("base", "x86_64", { connectTimeoutMs: 1_000, stallTimeoutMs: 5_000, ...options }));
}

/** A TCP server that accepts connections and never answers: a black hole, counted. */
async function blackHole(): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const hole: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
  });
  await new Promise<void>((r) => hole.listen(0, "127.0.0.1", r));
  const port = (hole.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => hole.close(() => r()));
    },
  };
}

describe("resolving a sandbox's kernel and image", () => {
  test("a release with a row: the published artifacts", async () => {
    const cache = freshCache();
    const resolved = await resolveIn(cache, release.env(server.url));
    expect(resolved.origin).toMatchObject({ kind: "published", version: release.manifest.smolvmVersion });
    expect(resolved.rootfsPath.startsWith(join(cache, "images", release.manifest.smolvmVersion))).toBe(true);
    expect(resolved.kernelPath.startsWith(join(cache, "images", release.manifest.smolvmVersion, "kernel-x86_64-"))).toBe(true);
    expect(existsSync(join(cache, "kernels"))).toBe(false); // nothing was built
  });

  test("SMOLVM_USE_PUBLISHED=0 builds locally and asks the server nothing", async () => {
    const cache = freshCache({ withKernel: true });
    const before = server.count("/manifest.json");
    const resolved = await resolveIn(cache, { ...release.env(server.url), SMOLVM_USE_PUBLISHED: "0" });
    expect(resolved.origin).toEqual({ kind: "local", reason: "SMOLVM_USE_PUBLISHED=0" });
    expect(resolved.rootfsPath.startsWith(join(cache, "images", "base-x86_64-"))).toBe(true);
    expect(server.count("/manifest.json")).toBe(before);
  });

  test("no row for the image: a local build, no error", async () => {
    const cache = freshCache({ withKernel: true });
    const other = signed(release, { ...release.manifest, rows: release.manifest.rows.filter((r) => r.arch !== "x86_64" || r.vmm !== "qemu") });
    server.faults.set("/manifest.json", { kind: "body", bytes: other.manifest });
    server.faults.set("/manifest.json.sig", { kind: "body", bytes: other.signature });
    try {
      const resolved = await resolveIn(cache, release.env(server.url));
      expect(resolved.origin).toEqual({ kind: "local", reason: "the release has no base/x86_64/qemu" });
      expect(existsSync(resolved.rootfsPath)).toBe(true);
    } finally {
      server.faults.delete("/manifest.json");
      server.faults.delete("/manifest.json.sig");
    }
  });

  test("a row whose guest agent is not this smolvm's: a local build", async () => {
    const cache = freshCache({ withKernel: true });
    const other = signed(release, { ...release.manifest, rows: release.manifest.rows.map((r) => ({ ...r, agentSha256: "0".repeat(64) })) });
    server.faults.set("/manifest.json", { kind: "body", bytes: other.manifest });
    server.faults.set("/manifest.json.sig", { kind: "body", bytes: other.signature });
    try {
      const resolved = await resolveIn(cache, release.env(server.url));
      expect(resolved.origin.kind).toBe("local");
      expect((resolved.origin as { reason: string }).reason).toContain("carries a different guest agent (000000000000)");
    } finally {
      server.faults.delete("/manifest.json");
      server.faults.delete("/manifest.json.sig");
    }
  });

  test("a mirror without a trust setting is an error, not a silent local build", async () => {
    const cache = freshCache({ withKernel: true });
    await expect(resolveIn(cache, { SMOLVM_IMAGES_URL: server.url, SMOLVM_IMAGES_KEY: undefined })).rejects.toThrow("it has no trust setting");
  });

  test("a tampered artifact is an error, not a silent local build", async () => {
    const cache = freshCache({ withKernel: true });
    server.faults.set(ROOTFS, { kind: "corrupt", offset: 1000 });
    try {
      await expect(resolveIn(cache, release.env(server.url))).rejects.toThrow(`base-x86_64.ext4.zst`);
    } finally {
      server.faults.delete(ROOTFS);
    }
    // Not built locally either.
    expect(readdirSync(join(cache, "images")).filter((name) => /^base-x86_64-[0-9a-f]{16}$/.test(name))).toEqual([]);
  });

  test("offline with a warm cache: the published artifacts, fresh or stale, without a request that succeeds", async () => {
    const cache = freshCache();
    const mirror = await serveImageMirror(release.dir);
    const online = await resolveIn(cache, release.env(mirror.url));
    await mirror.close(); // the port now refuses connections
    const fresh = await resolveIn(cache, release.env(mirror.url));
    expect(fresh).toEqual(online);
    // Stale: the refresh fails at once (connection refused), the cached manifest still serves.
    const later = Date.now() + MANIFEST_MAX_AGE_MS + 60_000;
    const stale = await resolveIn(cache, release.env(mirror.url), { now: () => later });
    expect(stale).toEqual(online);
    expect(existsSync(join(cache, "images", release.manifest.smolvmVersion, ".unreachable.json"))).toBe(true);
  });

  test("an unreachable source with a cold cache: a quick local build, and the failure remembered for a while", async () => {
    const cache = freshCache({ withKernel: true });
    const hole = await blackHole();
    try {
      const env = { SMOLVM_IMAGES_URL: hole.url, SMOLVM_IMAGES_KEY: release.key.publicKey };
      const started = performance.now();
      const first = await resolveIn(cache, env, { connectTimeoutMs: 300 });
      expect(first.origin.kind).toBe("local");
      expect((first.origin as { reason: string }).reason).toContain("no answer within 300 ms");
      expect(hole.connections()).toBe(1);
      const second = await resolveIn(cache, env, { connectTimeoutMs: 300 });
      expect(second.origin.kind).toBe("local");
      expect((second.origin as { reason: string }).reason).toContain("remembered");
      expect(hole.connections()).toBe(1); // not asked again
      // After the memory window it is asked again.
      const much = Date.now() + UNREACHABLE_MEMORY_MS + 1_000;
      await resolveIn(cache, env, { connectTimeoutMs: 300, now: () => much });
      expect(hole.connections()).toBe(2);
      console.log(`fallback with an unreachable source: first ${(performance.now() - started).toFixed(0)} ms in all`);
    } finally {
      await hole.close();
    }
  });

  test("a pull asks an unreachable source again at once (the memory only spares creates)", async () => {
    const cache = freshCache();
    const hole = await blackHole();
    try {
      const env = { SMOLVM_CACHE: cache, SMOLVM_IMAGES_URL: hole.url, SMOLVM_IMAGES_KEY: release.key.publicKey };
      for (let i = 1; i <= 2; i++) {
        await expect(withEnv(env, () => pullImages({ images: ["base"], arch: "x86_64", connectTimeoutMs: 200 }))).rejects.toThrow("no answer within 200 ms");
        expect(hole.connections()).toBe(i);
      }
    } finally {
      await hole.close();
    }
  });
});
