/**
 * A real release directory for tests, made by `smolvm release build` (the `base` image, the
 * kernel from the shared cache) and signed with a throwaway key, plus the tools to derive
 * altered releases from it and to give a test a fresh cache.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { generateSigningKey, signManifest } from "../../lib/published/trust.ts";
import { parseManifest, type ReleaseManifest } from "../../lib/published/manifest.ts";
import { paths } from "../../lib/paths.ts";
import { afterAll, beforeAll } from "bun:test";
import { envelope, runCli } from "./cli.ts";
import { serveImageMirror, type ImageMirror } from "./image-mirror.ts";
import { scratchDir as processScratchDir } from "./scratch.ts";

export interface TestRelease {
  dir: string;
  key: ReturnType<typeof generateSigningKey>;
  manifest: ReleaseManifest;
  /** The environment that points smolvm at `url` (a server for `dir`) and trusts the key. */
  env(url: string): Record<string, string>;
}

/** `smolvm-<prefix>-XXXXXX`, gone when the test process ends (see scratch.ts). */
export function scratchDir(prefix: string): string {
  return processScratchDir(`smolvm-${prefix}-`);
}

export async function buildTestRelease(options: { arches?: ("x86_64" | "aarch64")[]; images?: string[] } = {}): Promise<TestRelease> {
  const dir = scratchDir("release");
  const key = generateSigningKey();
  const keyFile = join(scratchDir("key"), "release.pem");
  writeFileSync(keyFile, key.privateKeyPem, { mode: 0o600 });
  const args = ["release", "build", "--out", dir, "--key", keyFile, "--json"];
  for (const arch of options.arches ?? ["x86_64"]) args.push("--arch", arch);
  for (const image of options.images ?? ["base"]) args.push("--image", image);
  const result = await runCli(args, { timeoutMs: 60 * 60_000 });
  if (result.code !== 0) throw new Error(`smolvm release build failed: ${result.stderr}${result.stdout}`);
  expectSigned(envelope(result).data.keyId, key.id);
  return {
    dir,
    key,
    manifest: parseManifest(readFileSync(join(dir, "manifest.json")), { url: dir }),
    env: (url) => ({ SMOLVM_IMAGES_URL: url, SMOLVM_IMAGES_KEY: key.publicKey }),
  };
}

function expectSigned(actual: string, expected: string): void {
  if (actual !== expected) throw new Error(`the release was signed by ${actual}, not the test key ${expected}`);
}

/** Manifest and signature bytes for `manifest`, signed with the release's key. */
export function signed(release: TestRelease, manifest: ReleaseManifest): { manifest: Uint8Array; signature: Uint8Array } {
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2) + "\n");
  return { manifest: bytes, signature: Buffer.from(signManifest(bytes, release.key.privateKeyPem).text) };
}

/** A copy of the release directory (to alter without touching the original). */
export function copyRelease(release: TestRelease): string {
  const dir = scratchDir("release-copy");
  cpSync(release.dir, dir, { recursive: true });
  return dir;
}

/**
 * An empty cache for one test; with `withKernel`, the shared cache's kernels linked in, so a
 * fallback to a local build costs the (fast) base image only, never a kernel build.
 */
export function freshCache(options: { withKernel?: boolean } = {}): string {
  const cache = scratchDir("cache");
  if (options.withKernel) {
    const shared = paths.kernelsDir();
    mkdirSync(join(cache, "kernels"), { recursive: true });
    // Built kernels only: no locks, logs or temp dirs of builds in progress.
    cpSync(shared, join(cache, "kernels"), { recursive: true, filter: (src) => src === shared || !basename(src).startsWith(".") });
    // A fallback must never start a 10-minute kernel build inside a test.
    if (!readdirSync(join(cache, "kernels")).some((name) => existsSync(join(cache, "kernels", name, "manifest.json")))) {
      throw new Error(`no built kernel in ${shared} to copy: build one first (\`smolvm kernel build\`)`);
    }
  }
  return cache;
}

/** Runs `fn` with the environment changed, restoring it afterwards. */
export async function withEnv<T>(env: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * Builds a test release and serves it from a loopback mirror for the tests of one file (hooks of
 * that file): `ready` hands both over; the mirror is closed after them.
 */
export function serveTestRelease(ready: (release: TestRelease, server: ImageMirror) => void): void {
  let server: ImageMirror | undefined;
  beforeAll(async () => {
    const release = await buildTestRelease();
    server = await serveImageMirror(release.dir);
    ready(release, server);
  }, 60 * 60_000);
  afterAll(async () => {
    await server?.close();
  });
}
