/**
 * `smolvm prune`: removes cached kernels and images that neither a sandbox, a snapshot, a warm
 * template nor a current recipe uses, published images of other smolvm versions (or no longer in
 * this version's manifest) that none of those uses, and reports the bytes freed.
 */
import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { withStore } from "./state/sandboxes.ts";

export interface PruneReport {
  removed: { kind: "kernel" | "image" | "published"; path: string; bytes: number }[];
  bytesFreed: number;
  dryRun: boolean;
}

/** Apparent size on disk (allocated blocks, so sparse images count what they really use). */
function diskUsage(path: string): number {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.blocks * 512;
  return readdirSync(path).reduce((sum, name) => sum + diskUsage(join(path, name)), stats.blocks * 512);
}

export async function prune(options: { dryRun?: boolean } = {}): Promise<PruneReport> {
  const { listKernels } = await import("./kernel/cache.ts");
  const { listImages } = await import("./images/store.ts");
  const { currentRecipeHash } = await import("./images/build.ts");
  const { listStored } = await import("./snapshots/store.ts");
  const { paths } = await import("./paths.ts");
  // Snapshots and warm templates restore only with the kernel and image they were made with.
  const saved = [...listStored(), ...listStored(paths.warmDir())].flatMap((s) => [s.manifest.kernel.path, s.manifest.image.path]);
  const inUse = [...withStore((store) => store.list()).flatMap((vm) => [vm.config.kernelPath, vm.config.rootfsPath]), ...saved];
  const used = (dir: string) => inUse.some((path) => path !== undefined && path.startsWith(`${dir}/`));

  const doomed: PruneReport["removed"] = [];
  for (const kernel of await listKernels()) {
    if (!kernel.current && !used(kernel.dir)) doomed.push({ kind: "kernel", path: kernel.dir, bytes: diskUsage(kernel.dir) });
  }
  const currentHashes = new Map<string, string | undefined>();
  for (const image of await listImages()) {
    const key = `${image.name}/${image.arch}`;
    if (!currentHashes.has(key)) {
      currentHashes.set(key, await currentRecipeHash(image.name, { arch: image.arch }).catch(() => undefined));
    }
    const current = currentHashes.get(key) === image.recipeHash;
    if (!current && !used(image.dir)) doomed.push({ kind: "image", path: image.dir, bytes: diskUsage(image.dir) });
  }
  const { publishedPruneCandidates } = await import("./published/prune.ts");
  const { versionInfo } = await import("./version.ts");
  for (const entry of await publishedPruneCandidates(versionInfo().version, (dir) => used(dir))) {
    doomed.push({ kind: "published", path: entry.path, bytes: diskUsage(entry.path) });
  }
  if (options.dryRun !== true) for (const entry of doomed) rmSync(entry.path, { recursive: true, force: true });
  return { removed: doomed, bytesFreed: doomed.reduce((sum, entry) => sum + entry.bytes, 0), dryRun: options.dryRun === true };
}
