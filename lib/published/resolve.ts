/**
 * The kernel and root filesystem a new sandbox boots: the published ones when this version's
 * release has a row for (image, arch, vmm), else local builds. What falls back to a local build
 * (quietly: it is only slower) and what is an error:
 *
 *   local build, quietly      SMOLVM_USE_PUBLISHED=0; SMOLVM_AGENT_BINARY set; the source
 *                             unreachable (offline, DNS, connect timeout), now or within the
 *                             last 10 minutes; the project's release has no manifest (not
 *                             published yet); no row for the image; a row whose agent is not
 *                             this smolvm's
 *   error, naming file + URL  a mirror without a trust setting; a manifest or file that fails
 *                             its signature, checksum, size or format; a transfer that breaks
 *                             or stalls once it started (the next attempt resumes it)
 *
 * A tampered or broken download is never papered over by a silent local build: it is reported,
 * and the user decides (SMOLVM_USE_PUBLISHED=0 builds locally).
 */
import { createHash } from "node:crypto";
import type { GuestArch } from "../kernel/arch.ts";
import { DownloadError } from "./http.ts";
import { findRow } from "./manifest.ts";
import type { BackendName } from "../backends/types.ts";
import { pullRow, type PullProgress } from "./pull.ts";
import { loadManifest, rememberUnreachable } from "./release-manifest.ts";
import { publishedSource } from "./source.ts";

export interface ResolveProgress {
  phase: "kernel" | "image" | "download";
  message: string;
  fraction?: number;
}

export interface ResolveOptions {
  vmm?: BackendName;
  onProgress?: (progress: ResolveProgress) => void;
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  signal?: AbortSignal;
  /** The clock that ages the cached manifest (tests). */
  now?: () => number;
}

export interface ResolvedArtifacts {
  kernelPath: string;
  rootfsPath: string;
  /** `published` with the release version, or `local` with why. */
  origin: { kind: "published"; version: string; manifestSha256: string } | { kind: "local"; reason: string };
}

export async function resolveArtifacts(image: string, arch: GuestArch, options: ResolveOptions = {}): Promise<ResolvedArtifacts> {
  const published = await tryPublished(image, arch, options);
  if ("kernelPath" in published) return published;
  // Quiet on the terminal (it is only slower), but the log says why.
  const { logEvent } = await import("../log.ts");
  logEvent("info", `using local builds of image "${image}" for ${arch}: ${published.reason}`, { image, arch });
  return buildLocally(image, arch, published.reason, options);
}

async function tryPublished(image: string, arch: GuestArch, o: ResolveOptions): Promise<ResolvedArtifacts | { reason: string }> {
  const source = publishedSource();
  if (source === undefined) return { reason: "SMOLVM_USE_PUBLISHED=0" };
  if (process.env.SMOLVM_AGENT_BINARY) return { reason: "SMOLVM_AGENT_BINARY names an agent of its own" };
  const timeouts = {
    ...(o.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: o.connectTimeoutMs }),
    ...(o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: o.stallTimeoutMs }),
    ...(o.signal ? { signal: o.signal } : {}),
  };
  let loaded;
  try {
    loaded = await loadManifest({ source, ...timeouts, ...(o.now ? { now: o.now } : {}) });
  } catch (error) {
    if (!(error instanceof DownloadError)) throw error;
    if (error.reason === "unreachable") return { reason: `the image source is unreachable (${error.message})` };
    // The project's own release may simply not exist yet (a version between releases); a
    // mirror the user named must answer, so its errors are reported.
    if (source.kind === "release" && (error.reason === "http" || error.reason === "redirects")) {
      await rememberUnreachable(source.version, error.url, error.message);
      return { reason: `the release has no manifest (${error.message})` };
    }
    throw error;
  }
  const vmm = o.vmm ?? "qemu";
  const row = findRow(loaded.manifest, image, arch, vmm);
  if (row === undefined) return { reason: `the release has no ${image}/${arch}/${vmm}` };
  const ours = await ourAgentSha256(arch);
  if (ours !== undefined && ours !== row.agentSha256) {
    return { reason: `the published ${image} carries a different guest agent (${row.agentSha256.slice(0, 12)}) than this smolvm (${ours.slice(0, 12)})` };
  }
  try {
    const pulled = await pullRow(source, loaded, row, {
      ...timeouts,
      onProgress: (p: PullProgress) => o.onProgress?.({ phase: "download", message: `image ${image}: ${p.message}`, ...(p.fraction === undefined ? {} : { fraction: p.fraction }) }),
    });
    return {
      kernelPath: pulled.kernel.path,
      rootfsPath: pulled.rootfs.path,
      origin: { kind: "published", version: pulled.version, manifestSha256: pulled.manifestSha256 },
    };
  } catch (error) {
    if (error instanceof DownloadError && error.reason === "unreachable") return { reason: `the image source is unreachable (${error.message})` };
    throw error;
  }
}

/** SHA-256 of the agent this smolvm installs for `arch`, or undefined when it has none at hand. */
async function ourAgentSha256(arch: GuestArch): Promise<string | undefined> {
  try {
    const { guestAgentBinary } = await import("../agent/binary.ts");
    return createHash("sha256").update(await guestAgentBinary(arch)).digest("hex");
  } catch {
    return undefined;
  }
}

async function buildLocally(image: string, arch: GuestArch, reason: string, o: ResolveOptions): Promise<ResolvedArtifacts> {
  const { ensureKernel } = await import("../kernel/build.ts");
  const { ensureImage } = await import("../images/build.ts");
  const kernelPath = await ensureKernel(arch, {
    onProgress: (p) => o.onProgress?.({ phase: "kernel", message: `kernel: ${p.message}`, ...(p.fraction === undefined ? {} : { fraction: p.fraction }) }),
  });
  const built = await ensureImage(image, {
    arch,
    onProgress: (p) => o.onProgress?.({ phase: "image", message: `image ${image}: ${p.message}`, ...(p.fraction === undefined ? {} : { fraction: p.fraction }) }),
  });
  return { kernelPath, rootfsPath: built.path, origin: { kind: "local", reason } };
}
