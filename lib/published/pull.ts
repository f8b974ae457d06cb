/**
 * Pulling the kernel and root filesystem of one manifest row into the cache: each artifact under
 * its own lock (two creates at once download it once: the second waits, then finds it), into a
 * temp directory, checked, stamped with its `.from-sha256` sidecar, and published with one
 * rename. A failure leaves the cache as it was, plus at most a `.partial` download to resume.
 */
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { NotFoundError } from "../errors.ts";
import type { GuestArch } from "../kernel/arch.ts";
import { buildInto, withLock } from "../util/cache-lock.ts";
import { fetchAndUnpack } from "./download.ts";
import { DownloadError } from "./http.ts";
import { findRow, rowKey, type FileEntry, type ManifestRow } from "./manifest.ts";
import type { BackendName } from "../backends/types.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_STALL_TIMEOUT_MS, loadManifest, rememberUnreachable, type LoadedManifest } from "./release-manifest.ts";
import { publishedSource, type PublishedSource } from "./source.ts";
import {
  artifactDirName, artifactFileName, INFO_FILE, readArtifact, SIDECAR_SUFFIX, versionDir,
  type PublishedArtifact, type PublishedInfo,
} from "./store.ts";

export interface PullProgress {
  phase: "manifest" | "wait" | "download" | "done";
  message: string;
  fraction?: number;
}

export interface PullTimeouts {
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (progress: PullProgress) => void;
}

export interface PulledRow {
  version: string;
  manifestSha256: string;
  row: ManifestRow;
  kernel: PublishedArtifact;
  rootfs: PublishedArtifact;
  /** Compressed bytes that came over the network (0 when both were cached). */
  downloadedBytes: number;
}

export interface PullOptions extends PullTimeouts {
  image: string;
  /** The guest arch; there is no default here, the caller names it (usually the host's). */
  arch: GuestArch;
  vmm?: BackendName;
  /** Default: from the environment (publishedSource). */
  source?: PublishedSource;
  /** Ask the source for a fresh manifest even when the cached one is recent (default true). */
  refresh?: boolean;
}

export interface PullImagesOptions extends Omit<PullOptions, "image"> {
  /** Images to pull; with `all`, every image the release has for the arch. */
  images: readonly string[];
  all?: boolean;
}

/** `smolvm image pull`: each image's artifacts, downloading what the cache lacks. */
export async function pullImages(o: PullImagesOptions): Promise<PulledRow[]> {
  const what = o.all ? "images" : `image${o.images.length === 1 ? "" : "s"} ${o.images.map((i) => `"${i}"`).join(", ")}`;
  const source = o.source ?? publishedSource();
  if (source === undefined) {
    throw new NotFoundError(`Cannot pull ${what}: SMOLVM_USE_PUBLISHED=0 turns published images off`, {
      hint: "unset SMOLVM_USE_PUBLISHED, or build locally with `smolvm image build`",
    });
  }
  o.onProgress?.({ phase: "manifest", message: `fetching the manifest from ${source.baseUrl}` });
  const loaded = await loadManifest({ source, refresh: o.refresh === false ? "when-stale" : "always", ...timeouts(o) });
  const vmm = o.vmm ?? "qemu";
  const offered = loaded.manifest.rows.map((r) => rowKey(r.image, r.arch, r.vmm));
  const names = o.all
    ? [...new Set(loaded.manifest.rows.filter((r) => r.arch === o.arch && r.vmm === vmm).map((r) => r.image))]
    : [...new Set(o.images)];
  if (names.length === 0) {
    throw new NotFoundError(`Cannot pull images for ${o.arch}: the release ${loaded.url} has none for ${o.arch}/${vmm}`, {
      hint: offered.length ? `it publishes ${offered.join(", ")}` : "the release publishes no images",
      details: { arch: o.arch, vmm, url: loaded.url, offered },
    });
  }
  const rows = names.map((image) => {
    const row = findRow(loaded.manifest, image, o.arch, vmm);
    if (row === undefined) {
      throw new NotFoundError(`Cannot pull image "${image}" for ${o.arch}: the release ${loaded.url} has no ${rowKey(image, o.arch, vmm)}`, {
        hint: offered.length ? `it publishes ${offered.join(", ")}; \`smolvm image build ${image}\` builds it locally` : "the release publishes no images",
        details: { image, arch: o.arch, vmm, url: loaded.url, offered },
      });
    }
    return row;
  });
  const pulled: PulledRow[] = [];
  for (const row of rows) pulled.push(await pullRow(source, loaded, row, o));
  return pulled;
}

/** The artifacts of `row`, downloaded and unpacked when the cache lacks them. */
export async function pullRow(source: PublishedSource, loaded: LoadedManifest, row: ManifestRow, o: PullTimeouts = {}): Promise<PulledRow> {
  const total = row.kernel.size + row.rootfs.size;
  let downloadedBytes = 0;
  const fetchOne = async (kind: "kernel" | "rootfs", entry: FileEntry, offset: number) => {
    const label = kind === "kernel" ? `the ${row.arch} kernel (${entry.file})` : `image "${row.image}" for ${row.arch} (${entry.file})`;
    const artifact = await ensureArtifact(source, loaded, row, kind, entry, label, {
      ...o,
      onProgress: (p) => o.onProgress?.({ ...p, ...(p.fraction === undefined ? {} : { fraction: (offset + p.fraction * entry.size) / total }) }),
    });
    downloadedBytes += artifact.downloaded;
    return artifact.artifact;
  };
  const kernel = await fetchOne("kernel", row.kernel, 0);
  const rootfs = await fetchOne("rootfs", row.rootfs, row.kernel.size);
  o.onProgress?.({ phase: "done", message: rootfs.path, fraction: 1 });
  return { version: source.version, manifestSha256: loaded.sha256, row, kernel, rootfs, downloadedBytes };
}

async function ensureArtifact(
  source: PublishedSource,
  loaded: LoadedManifest,
  row: ManifestRow,
  kind: "kernel" | "rootfs",
  entry: FileEntry,
  label: string,
  o: PullTimeouts,
): Promise<{ artifact: PublishedArtifact; downloaded: number }> {
  const parent = versionDir(source.version);
  const dirName = artifactDirName(kind, row.arch, entry.sha256, row.image);
  const finalDir = join(parent, dirName);
  const cached = await readArtifact(finalDir, entry.sha256);
  if (cached) return { artifact: cached, downloaded: 0 };
  return withLock(join(parent, `.lock-${dirName}`), async () => {
    const again = await readArtifact(finalDir, entry.sha256);
    if (again) return { artifact: again, downloaded: 0 };
    const url = new URL(entry.file, source.baseUrl).href;
    const file = artifactFileName(kind, row.arch);
    let downloaded = 0;
    o.onProgress?.({ phase: "download", message: `downloading ${label}`, fraction: 0 });
    try {
      // replace: a directory here without its sidecar is the remains of a damaged copy.
      await buildInto(parent, dirName, finalDir, { replace: true }, async (temp) => {
        const output = join(temp, file);
        const result = await fetchAndUnpack({
          url,
          what: label,
          entry,
          partialPath: join(parent, ".downloads", `${entry.file}-${entry.sha256.slice(0, 16)}.partial`),
          outputPath: output,
          connectTimeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
          stallTimeoutMs: o.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
          ...(o.signal ? { signal: o.signal } : {}),
          onBytes: (done, size) => o.onProgress?.({
            phase: "download",
            message: `downloading ${label}: ${mib(done)} of ${mib(size)}`,
            fraction: done / size,
          }),
        });
        downloaded = result.downloaded;
        await checkFormat(output, kind, row.arch, label, url);
        const info: PublishedInfo = {
          kind,
          version: source.version,
          arch: row.arch,
          ...(kind === "rootfs" ? {
            image: row.image, recipeHash: row.recipeHash, sizeMiB: row.sizeMiB, usedMiB: row.usedMiB, init: row.init, agentSha256: row.agentSha256,
          } : {}),
          file: entry.file,
          sha256: entry.sha256,
          url,
          unpackedAt: new Date().toISOString(),
        };
        await writeFile(join(temp, INFO_FILE), JSON.stringify(info, null, 2) + "\n");
        // The sidecar last: it is what says the file is complete.
        await writeFile(join(temp, `${file}${SIDECAR_SUFFIX}`), `${entry.sha256}\n`);
      });
    } catch (error) {
      if (error instanceof DownloadError && error.reason === "unreachable") {
        await rememberUnreachable(source.version, loaded.url, error.message);
      }
      throw error;
    }
    const artifact = await readArtifact(finalDir, entry.sha256);
    if (!artifact) throw new DownloadError("disk", `Cannot unpack ${label}: the published entry ${finalDir} is unreadable`, url);
    return { artifact, downloaded };
  }, { onWait: (pid) => o.onProgress?.({ phase: "wait", message: `waiting for process ${pid}, which is downloading ${label}` }) });
}

/**
 * A kernel must be one for `arch` and a root filesystem an ext4 image: a release that put the
 * wrong file in a row (the right checksum of the wrong thing) fails here, not at boot.
 */
async function checkFormat(path: string, kind: "kernel" | "rootfs", arch: GuestArch, label: string, url: string): Promise<void> {
  const handle = await open(path, "r");
  const head = Buffer.alloc(2048);
  try {
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  let found: string;
  if (kind === "rootfs") {
    found = head.readUInt16LE(1080) === 0xef53 ? "ext4" : "not an ext4 image";
    if (found === "ext4") return;
  } else {
    const elf = head.readUInt32BE(0) === 0x7f454c46;
    const machine = elf ? head.readUInt16LE(18) : -1;
    const arm64Image = head.readUInt32LE(56) === 0x644d5241; // "ARM\x64"
    found = elf && machine === 62 ? "x86_64" : elf && machine === 183 ? "aarch64 (ELF)" : arm64Image ? "aarch64" : "not a kernel smolvm boots";
    if ((arch === "x86_64" && found === "x86_64") || (arch === "aarch64" && found === "aarch64")) return;
  }
  const wanted = kind === "rootfs" ? "an ext4 image" : `an ${arch} kernel (${arch === "x86_64" ? "ELF vmlinux" : "arm64 Image"})`;
  throw new DownloadError("format", `Cannot use ${label} from "${url}": it should be ${wanted}, and it is ${found}`, url, {
    hint: "the release lists the wrong file in this row: rebuild it with `smolvm release build`",
  });
}

function timeouts(o: PullTimeouts): { connectTimeoutMs?: number; stallTimeoutMs?: number; signal?: AbortSignal } {
  return {
    ...(o.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: o.connectTimeoutMs }),
    ...(o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: o.stallTimeoutMs }),
    ...(o.signal ? { signal: o.signal } : {}),
  };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
