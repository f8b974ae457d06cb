/**
 * The bench's published-image phases, on a release the run builds and serves itself from a
 * loopback mirror (the kernel and the bench's image from the caches, signed with a throwaway
 * key):
 *
 * - `image.pull`: `pullImages` into an empty cache (download, verify, unpack the kernel and the
 *   image), against two floors measured right after it on the same files: `curl` downloading
 *   them (`floor.curl`) and the `zstd -d` program unpacking them (`floor.zstd`). Their sum is
 *   what a pull could cost if verifying and writing sparsely were free and nothing overlapped.
 * - `create.published` and `create.local`: an SDK create from the pulled images and one from
 *   the local builds, alternating, one warm-up of each first (the first create in a cache
 *   proves KVM and makes the overlay template).
 */
import { spawn } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { CommandFailedError } from "../lib/errors.ts";
import { which } from "../lib/host/process.ts";
import { hostGuestArch } from "../lib/kernel/arch.ts";
import { buildRelease } from "../lib/published/release.ts";
import { pullImages } from "../lib/published/pull.ts";
import { generateSigningKey } from "../lib/published/trust.ts";
import type { PublishedSource } from "../lib/published/source.ts";
import { SmolVM } from "../lib/smolvm.ts";
import { versionInfo } from "../lib/version.ts";
import type { Collector } from "./_collect.ts";
import { serveDirectory } from "./_mirror.ts";

export interface PublishedBenchOptions {
  image: string;
  /** Pulls (each with its floors). */
  pulls: number;
  /** Creates of each kind, after the warm-ups. */
  creates: number;
  scratch: string;
  tag: string;
  step: (text: string, fraction?: number) => void;
  track: (vm: SmolVM) => void;
  untrack: (vm: SmolVM) => void;
  signal?: AbortSignal;
}

export const PULL_PHASES = ["image.pull", "floor.curl", "floor.zstd"] as const;
export const CREATE_PHASES = ["create.published", "create.local"] as const;

export async function measurePublished(c: Collector, o: PublishedBenchOptions): Promise<void> {
  const missing = ["curl", "zstd"].filter((tool) => !which(tool));
  if (missing.length > 0) {
    c.unavailable([...PULL_PHASES, ...CREATE_PHASES], `${missing.join(" and ")} not installed (apt-get install ${missing.join(" ")})`);
    return;
  }
  const arch = hostGuestArch();
  const key = generateSigningKey();
  const releaseDir = join(o.scratch, "release");
  o.step(`published images: building a release of ${o.image} (compressing with zstd -19)`);
  let release;
  try {
    release = await buildRelease({ outDir: releaseDir, arches: [arch], images: [o.image], signingKeyPem: key.privateKeyPem });
  } catch (error) {
    c.unavailable([...PULL_PHASES, ...CREATE_PHASES], `failed: cannot build the release: ${(error as Error).message}`);
    return;
  }
  const files = release.files.map((f) => f.file);
  const mirror = await serveDirectory(releaseDir);
  const source: PublishedSource = {
    baseUrl: mirror.url,
    trust: { kind: "keys", keys: [{ id: key.id, publicKey: key.publicKey }], label: "the bench's key" },
    kind: "mirror",
    version: versionInfo().version,
  };
  const compressed = release.files.reduce((sum, f) => sum + f.size, 0);
  let lastCache: string | undefined;
  try {
    await c.attempt([...PULL_PHASES], async () => {
      for (let i = 0; i < o.pulls; i++) {
        o.signal?.throwIfAborted();
        o.step("published images: pull, then curl + zstd -d of the same files", i / o.pulls);
        const cache = join(o.scratch, `pull-${i}`);
        const started = performance.now();
        await withEnv({ SMOLVM_CACHE: cache }, () => pullImages({ images: [o.image], arch, source }));
        const pullMs = performance.now() - started;
        if (lastCache !== undefined) await rm(lastCache, { recursive: true, force: true });
        lastCache = cache;
        const floorDir = join(o.scratch, `floor-${i}`);
        await mkdir(floorDir, { recursive: true });
        let curlMs = 0;
        let zstdMs = 0;
        for (const file of files) {
          curlMs += await timed("curl", ["-sS", "--fail", "-o", join(floorDir, file), `${mirror.url}${file}`]);
          zstdMs += await timed("zstd", ["-d", "-q", "-f", join(floorDir, file), "-o", join(floorDir, `${file}.out`)]);
        }
        await rm(floorDir, { recursive: true, force: true });
        c.add("image.pull", pullMs);
        c.add("floor.curl", curlMs);
        c.add("floor.zstd", zstdMs);
        c.pair("image-pull/curl+zstd", pullMs, curlMs + zstdMs);
      }
      c.note("image.pull", `the kernel and image ${o.image} (${(compressed / 2 ** 20).toFixed(1)} MiB compressed) from a loopback mirror into an empty cache`);
      c.extra("image.pull", "compressedMiB", Math.round((compressed / 2 ** 20) * 10) / 10);
      for (const id of PULL_PHASES) c.report(id);
    });

    await c.attempt([...CREATE_PHASES], async () => {
      if (lastCache === undefined) throw new CommandFailedError("no pull succeeded, so there is nothing published to create from");
      const published = { SMOLVM_CACHE: lastCache, SMOLVM_IMAGES_URL: mirror.url, SMOLVM_IMAGES_KEY: key.publicKey, SMOLVM_USE_PUBLISHED: undefined };
      const local = { SMOLVM_USE_PUBLISHED: "0" };
      for (let i = -1; i < o.creates; i++) {
        o.signal?.throwIfAborted();
        o.step("published images: create from published, then from local builds", Math.max(0, i) / o.creates);
        const pub = await timedCreate(o, `bench-${o.tag}-pub${i + 1}`, published);
        const loc = await timedCreate(o, `bench-${o.tag}-loc${i + 1}`, local);
        if (i < 0) continue; // the warm-ups
        c.add("create.published", pub);
        c.add("create.local", loc);
        c.pair("create-published/create-local", pub, loc);
      }
      for (const id of CREATE_PHASES) c.report(id);
    });
  } finally {
    await mirror.close();
    if (lastCache !== undefined) await rm(lastCache, { recursive: true, force: true });
  }
}

async function timedCreate(o: PublishedBenchOptions, name: string, env: Record<string, string | undefined>): Promise<number> {
  const started = performance.now();
  const vm = await withEnv(env, () => SmolVM.create({ image: o.image, name }));
  const ms = performance.now() - started;
  o.track(vm);
  await vm.delete();
  o.untrack(vm);
  return ms;
}

/** Runs a program to its end; its wall time in ms. */
function timed(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new CommandFailedError(`${file} exited with ${code}: ${stderr.trim().slice(-300)}`));
    });
  });
}

/**
 * Sets environment variables for the duration of `fn`. The published phases run one thing at a
 * time, and the SDK reads the cache location and image source from the environment.
 */
async function withEnv<T>(env: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(env);
  try {
    return await fn();
  } finally {
    apply(saved);
  }
}
