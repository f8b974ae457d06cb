/**
 * The SDK's functions for the host rather than one sandbox: guest kernels and images, host
 * set-up, the doctor's checks, reclaiming space, and this smolvm's releases. Each loads its module when it is called, so
 * importing the SDK (which the CLI does on every command) stays cheap.
 */
import type { BuildKernelOptions } from "./kernel/build.ts";
import type { KernelInfo } from "./kernel/cache.ts";
import type { BuildImageOptions } from "./images/build.ts";
import type { ImageInfo } from "./images/store.ts";
import type { InstallOptions, PackageStep } from "./host/setup.ts";
import type { HostFacts } from "./doctor/probe.ts";
import type { Diagnosis } from "./doctor/diagnose.ts";
import type { PruneReport } from "./prune.ts";
import type { CleanupOptions, CleanupReport } from "./sandbox/cleanup.ts";
import type { GuestArch } from "./kernel/arch.ts";
import type { CachedImage } from "./published/catalog.ts";
import type { PulledRow, PullImagesOptions } from "./published/pull.ts";
import type { ReleaseBuildOptions, ReleaseBuildResult } from "./published/release.ts";
import type { ResolvedArtifacts, ResolveOptions } from "./published/resolve.ts";
import type { RepairReport } from "./sandbox/repair.ts";
import type { CheckForUpdateOptions, UpdateCheck } from "./distribution/update-check.ts";
import type { UpgradeContext } from "./distribution/upgrade.ts";
import type { FirecrackerInstall, InstallFirecrackerOptions } from "./backends/firecracker/install.ts";
import type { SnapshotInfo } from "./snapshots/store.ts";
import type { WarmImageOptions } from "./snapshots/warm.ts";

export type { RepairReport };
export type { BuildImageOptions, BuildKernelOptions, CleanupOptions, CleanupReport, Diagnosis, HostFacts, ImageInfo, InstallOptions, KernelInfo, PackageStep, PruneReport };
export type { KernelProgress } from "./kernel/build.ts";
export type { ImageProgress } from "./images/build.ts";
export type { Check, CheckStatus } from "./doctor/diagnose.ts";
export type { CachedImage, PulledRow, PullImagesOptions, ReleaseBuildOptions, ReleaseBuildResult, ResolvedArtifacts, ResolveOptions };
export type { PullProgress } from "./published/pull.ts";
export type { ResolveProgress } from "./published/resolve.ts";
export { GUEST_ARCHES, hostGuestArch, parseGuestArch, type GuestArch } from "./kernel/arch.ts";
export { DownloadError, type DownloadFailure } from "./published/http.ts";
export type { CheckForUpdateOptions, UpdateCheck, UpdateStatus } from "./distribution/update-check.ts";
export type { UpgradeContext } from "./distribution/upgrade.ts";
export type { FirecrackerInstall, FirecrackerRelease, InstallFirecrackerOptions } from "./backends/firecracker/install.ts";
export type { WarmImageOptions } from "./snapshots/warm.ts";

/** Builds the guest kernel into the cache (minutes; cached by config hash). */
export async function buildKernel(options: BuildKernelOptions = {}): Promise<KernelInfo> {
  return (await import("./kernel/build.ts")).buildKernel(options);
}

/** The cached kernel for this host's guest arch, built first if there is none; resolves to its path. */
export async function ensureKernel(options: Pick<BuildKernelOptions, "onProgress"> = {}): Promise<string> {
  return (await import("./kernel/build.ts")).ensureKernel(undefined, options);
}

export async function listKernels(): Promise<KernelInfo[]> {
  return (await import("./kernel/cache.ts")).listKernels();
}

/** Builds an image (`base`, `debian`) into the cache (cached by recipe hash). */
export async function buildImage(name: string, options: BuildImageOptions = {}): Promise<ImageInfo> {
  return (await import("./images/build.ts")).buildImage(name, options);
}

/** The cached image, built first if there is none. */
export async function ensureImage(name: string, options: Omit<BuildImageOptions, "force"> = {}): Promise<ImageInfo> {
  return (await import("./images/build.ts")).ensureImage(name, options);
}

export async function listImages(): Promise<ImageInfo[]> {
  return (await import("./images/store.ts")).listImages();
}

/** Removes an image's cached builds (and its warm template); resolves to the directories removed. */
export async function removeImage(name: string): Promise<string[]> {
  const removed = await (await import("./images/store.ts")).removeImage(name);
  await removeWarmTemplate(name);
  return removed;
}

/** Every snapshot (`vm.snapshot()`), oldest first, with its stored size. */
export async function listSnapshots(): Promise<SnapshotInfo[]> {
  const { listStored, summarizeSnapshot } = await import("./snapshots/store.ts");
  return listStored().map(summarizeSnapshot);
}

/** Removes a snapshot; sandboxes made from it keep working (each has its own disk). */
export async function removeSnapshot(name: string): Promise<SnapshotInfo> {
  return (await import("./snapshots/store.ts")).removeSnapshot(name);
}

/**
 * Makes the warm template of an image: a freshly booted sandbox's snapshot, which a plain create
 * of the same shape then restores instead of booting (SmolVM.create's `warm`). A coding agent's
 * image (claude, codex, pi, openclaw) is warmed for its start: 2048 MiB and an 8 GiB disk unless
 * `options` say, its root grown and the agent run once before the snapshot.
 */
export async function warmImage(name: string, options: WarmImageOptions = {}): Promise<SnapshotInfo> {
  const [{ warmImage }, { warmImageOptions }] = await Promise.all([import("./snapshots/warm.ts"), import("./presets/warmup.ts")]);
  return warmImage(name, warmImageOptions(name, options));
}

/** The warm templates, one per image at most. */
export async function listWarmTemplates(): Promise<SnapshotInfo[]> {
  return (await import("./snapshots/warm.ts")).listTemplates();
}

/** Removes an image's warm template; resolves to whether it had one. */
export async function removeWarmTemplate(image: string): Promise<boolean> {
  return (await import("./snapshots/warm.ts")).removeTemplate(image);
}

/**
 * Installs the pinned Firecracker release (`firecracker` and `jailer`, SHA-256 checked) into
 * smolvm's bin directory; where it cannot be downloaded, the error's hint is the manual install.
 */
export async function installFirecracker(options: InstallFirecrackerOptions = {}): Promise<FirecrackerInstall> {
  return (await import("./backends/firecracker/install.ts")).installFirecracker(options);
}

/** Installs the host packages smolvm needs (apt on Debian and Ubuntu). */
export async function installHostPackages(options: InstallOptions = {}): Promise<PackageStep> {
  return (await import("./host/setup.ts")).installHostPackages(options);
}

/** What the doctor measured on this host, and its verdict on each check. */
export async function checkHost(): Promise<{ facts: HostFacts; diagnosis: Diagnosis }> {
  const [{ probeHost }, { diagnose }] = await Promise.all([import("./doctor/probe.ts"), import("./doctor/diagnose.ts")]);
  const facts = await probeHost();
  return { facts, diagnosis: diagnose(facts) };
}

/** Removes cached kernels and images that no sandbox, snapshot, warm template or current recipe uses. */
export async function prune(options: { dryRun?: boolean } = {}): Promise<PruneReport> {
  return (await import("./prune.ts")).prune(options);
}

/**
 * Reclaims what sandboxes that no longer run still hold (never a live one, never a disk unless
 * its sandbox is named in `names`, which removes those whole), and what snapshot saves that were
 * killed or ran out of space left behind (never a snapshot).
 */
export async function cleanup(options: CleanupOptions = {}): Promise<CleanupReport> {
  const [{ cleanup: sandboxes }, { strayStaging }] = await Promise.all([import("./sandbox/cleanup.ts"), import("./snapshots/store.ts")]);
  const report = await sandboxes(options);
  // Named sandboxes are all a named cleanup touches.
  const named = options.names !== undefined && options.names.length > 0;
  return { ...report, snapshotStaging: named ? [] : strayStaging({ dryRun: options.dryRun === true }) };
}

/**
 * Rebuilds a damaged state store (moved aside, never deleted) and gives back the rows of sandbox
 * directories the store lost, from the `sandbox.json` each keeps.
 */
export async function repairStore(): Promise<RepairReport> {
  return (await import("./sandbox/repair.ts")).repairStore();
}

/** Whether a newer release of smolvm exists than `current`. */
export async function checkForUpdate(options: CheckForUpdateOptions): Promise<UpdateCheck> {
  return (await import("./distribution/update-check.ts")).checkForUpdate(options);
}

/** Where smolvm's releases are published (`SMOLVM_RELEASES_URL` overrides it). */
export async function releasesUrl(env: Record<string, string | undefined> = process.env): Promise<string> {
  return (await import("./distribution/release-url.ts")).releasesUrl(env);
}

/** The command that upgrades this smolvm in place. */
export async function upgradeCommand(context: UpgradeContext): Promise<string> {
  return (await import("./distribution/upgrade.ts")).upgradeCommand(context);
}

/** The names of the images smolvm has a recipe for (`base`, `debian`, the coding agents'). */
export async function knownImageNames(): Promise<string[]> {
  return (await import("./images/recipes.ts")).knownImages();
}

/** Downloads published images (kernel and root filesystem) into the cache, verified. */
export async function pullImages(options: PullImagesOptions): Promise<PulledRow[]> {
  return (await import("./published/pull.ts")).pullImages(options);
}

/** Every cached image: local builds and published downloads. */
export async function listCachedImages(): Promise<CachedImage[]> {
  return (await import("./published/catalog.ts")).listCachedImages();
}

/** Removes every local build and published copy of image `name`; resolves to the paths removed. */
export async function removeCachedImage(name: string): Promise<string[]> {
  return (await import("./published/catalog.ts")).removeCachedImage(name);
}

/** The kernel and root filesystem a new sandbox of `image` boots: published when the release has them, else built here. */
export async function resolveArtifacts(image: string, arch: GuestArch, options: ResolveOptions = {}): Promise<ResolvedArtifacts> {
  return (await import("./published/resolve.ts")).resolveArtifacts(image, arch, options);
}

/** Builds a release: images and kernels compressed, and a manifest (signed unless `signingKeyPem` is absent). */
export async function buildRelease(options: ReleaseBuildOptions): Promise<ReleaseBuildResult> {
  return (await import("./published/release.ts")).buildRelease(options);
}

/** The PEM text of a release signing key file. */
export async function readSigningKey(path: string): Promise<string> {
  return (await import("./published/release.ts")).readSigningKey(path);
}

/** A new ed25519 release signing key: the private key (PEM), its public key and key id. */
export async function generateSigningKey(): Promise<{ privateKeyPem: string; publicKey: string; id: string }> {
  return (await import("./published/trust.ts")).generateSigningKey();
}
