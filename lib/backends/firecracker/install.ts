/**
 * `smolvm setup --firecracker`: the pinned Firecracker release, downloaded from its GitHub release,
 * checked against the SHA-256 pinned here (the archive, then each binary in it), and installed as
 * `firecracker` and `jailer` in smolvm's bin directory (locate.ts), where the backend finds them
 * after PATH. Nothing is installed unless every digest matches, and a failed or interrupted
 * install leaves nothing behind. Where the network does not allow the download, the error says
 * exactly how to do it by hand.
 *
 * To move to a newer release: take the archive's digest from the release's own
 * `firecracker-v<version>-<arch>.tgz.sha256.txt`, and the binaries' from `SHA256SUMS` inside it;
 * replace firecracker-api.yaml with that release's copy of the spec.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BackendUnavailableError, HostDependencyMissingError, SmolError } from "../../errors.ts";
import { runHostChecked } from "../../host/process.ts";
import { type GuestArch, hostArch } from "../accel.ts";
import { smolvmBinDir } from "./locate.ts";
import { HashingTap } from "../../util/hashing-tap.ts";

export interface FirecrackerRelease {
  version: string;
  /** SHA-256 (hex) per host architecture: the release archive and the two binaries in it. */
  sha256: Record<GuestArch, { archive: string; firecracker: string; jailer: string }>;
}

/** The release smolvm's backend and API spec are written against. */
export const FIRECRACKER_RELEASE: FirecrackerRelease = {
  version: "1.17.0",
  sha256: {
    x86_64: {
      archive: "06094a1108ae9e82aa4c23a775aa92758f53f1175d422270d9d6162cb9ade558",
      firecracker: "99ad0f5cd0514a88aad0e9ae8cfdb3cc3b4ab9d190e1194602406c786b5de7a5",
      jailer: "65ef226e96f0ceda55ba643f445801ef2cc0ea667ef67cad8ac4f406c9c8434f",
    },
    aarch64: {
      archive: "e351ebe4f7a16b5873bbd51005d2e6767103cff4d5ebc829df2d3f95a93e2256",
      firecracker: "fe726e0b43c04363ac07e358be4dee982c3947c65ed3ae10c770fef5e1cd756c",
      jailer: "4d8d2dd4dfc1d47932b2bd261479181dd0c54f0a2f32714421a7e7f9f07ddec8",
    },
  },
};

/** The release archive's file name and its download URL on GitHub. */
export function releaseArchive(release: FirecrackerRelease, arch: GuestArch): { name: string; url: string; dir: string } {
  const v = `v${release.version}`;
  const name = `firecracker-${v}-${arch}.tgz`;
  return { name, url: `https://github.com/firecracker-microvm/firecracker/releases/download/${v}/${name}`, dir: `release-${v}-${arch}` };
}

/** The commands that install the release by hand, exactly as `installFirecracker` would. */
export function manualInstall(release: FirecrackerRelease = FIRECRACKER_RELEASE, arch: GuestArch = hostArch() ?? "x86_64", binDir = smolvmBinDir()): string {
  const archive = releaseArchive(release, arch);
  const v = `v${release.version}`;
  return [
    `curl -fLO ${archive.url}`,
    `echo "${release.sha256[arch].archive}  ${archive.name}" | sha256sum -c -`,
    `tar -xzf ${archive.name}`,
    `install -D -m 0755 ${archive.dir}/firecracker-${v}-${arch} ${join(binDir, "firecracker")}`,
    `install -D -m 0755 ${archive.dir}/jailer-${v}-${arch} ${join(binDir, "jailer")}`,
  ].join("\n");
}

export interface InstallFirecrackerOptions {
  /** Default: the pinned FIRECRACKER_RELEASE. */
  release?: FirecrackerRelease;
  /** Where the archive is fetched from; default its GitHub release URL. */
  url?: string;
  /** Where `firecracker` and `jailer` go; default smolvm's bin directory. */
  binDir?: string;
  arch?: GuestArch;
  /** Deadline for the whole download. Default 10 minutes. */
  timeoutMs?: number;
  onProgress?: (progress: { message: string; fraction?: number }) => void;
}

export interface FirecrackerInstall {
  version: string;
  firecracker: string;
  jailer: string;
  /** The archive's verified SHA-256; absent when the binaries were there already. */
  archiveSha256?: string;
  /** True when both binaries were installed and matched already: nothing was downloaded. */
  alreadyInstalled: boolean;
}

/** Downloads, verifies and installs the pinned Firecracker release. */
export async function installFirecracker(options: InstallFirecrackerOptions = {}): Promise<FirecrackerInstall> {
  if (process.platform !== "linux") {
    throw new BackendUnavailableError(`Cannot install Firecracker: it runs on Linux only, not on ${process.platform}`, {
      hint: "sandboxes on this host run on QEMU",
    });
  }
  const arch = options.arch ?? hostArch();
  if (arch === undefined) {
    throw new BackendUnavailableError(`Cannot install Firecracker: it supports x86_64 and aarch64 hosts, not ${process.arch}`);
  }
  const release = options.release ?? FIRECRACKER_RELEASE;
  const digests = release.sha256[arch];
  const binDir = options.binDir ?? smolvmBinDir();
  const targets = { firecracker: join(binDir, "firecracker"), jailer: join(binDir, "jailer") };
  const result = { version: release.version, ...targets };
  if (await sha256Of(targets.firecracker) === digests.firecracker && await sha256Of(targets.jailer) === digests.jailer) {
    return { ...result, alreadyInstalled: true };
  }
  const archive = releaseArchive(release, arch);
  const url = options.url ?? archive.url;
  await mkdir(binDir, { recursive: true });
  // Beside the targets, so the final renames stay on one filesystem; removed whatever happens.
  const work = await mkdtemp(join(binDir, ".firecracker-install-"));
  try {
    const archivePath = join(work, archive.name);
    const archiveSha256 = await download(url, archivePath, release, arch, options);
    if (archiveSha256 !== digests.archive) {
      throw new SmolError("INTEGRITY_FAILED", `Cannot install Firecracker v${release.version}: ${archive.name} from ${url} has SHA-256 ${archiveSha256}, not the pinned ${digests.archive}`, {
        hint: "nothing was installed; the download was corrupted or is not the release smolvm pins: try again, or install it by hand from the release page",
      });
    }
    const v = `v${release.version}`;
    const members = { firecracker: `${archive.dir}/firecracker-${v}-${arch}`, jailer: `${archive.dir}/jailer-${v}-${arch}` };
    await runHostChecked("tar", ["-xzf", archivePath, "-C", work, "--no-same-owner", "--", members.firecracker, members.jailer], {
      action: `Cannot unpack ${archive.name}`,
      timeoutMs: 120_000,
    });
    for (const name of ["firecracker", "jailer"] as const) {
      const extracted = join(work, members[name]);
      const actual = await sha256Of(extracted);
      if (actual !== digests[name]) {
        throw new SmolError("INTEGRITY_FAILED", `Cannot install Firecracker v${release.version}: ${members[name]} has SHA-256 ${actual}, not the pinned ${digests[name]}`, {
          hint: "nothing was installed; the archive matched but its contents did not: report it",
        });
      }
      await chmod(extracted, 0o755);
    }
    for (const name of ["firecracker", "jailer"] as const) await rename(join(work, members[name]), targets[name]);
    return { ...result, archiveSha256, alreadyInstalled: false };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function download(url: string, path: string, release: FirecrackerRelease, arch: GuestArch, options: InstallFirecrackerOptions): Promise<string> {
  const cannot = (why: string, cause?: unknown) => new HostDependencyMissingError(`Cannot download Firecracker v${release.version} from ${url}: ${why}`, {
    hint: `install it by hand where the network allows (same checks):\n${manualInstall(release, arch, options.binDir ?? smolvmBinDir())}`,
    ...(cause === undefined ? {} : { cause }),
  });
  let response: Response;
  try {
    response = await fetch(url, { redirect: "follow", signal: AbortSignal.timeout(options.timeoutMs ?? 600_000) });
  } catch (error) {
    throw cannot(((error as Error).cause as Error | undefined)?.message ?? (error as Error).message, error);
  }
  if (!response.ok || response.body === null) throw cannot(`the server answered ${response.status} ${response.statusText}`.trim());
  const total = Number(response.headers.get("content-length")) || undefined;
  const meter = new HashingTap((received) =>
    options.onProgress?.({ message: `firecracker v${release.version}: ${(received / 1048576).toFixed(1)} MiB`, ...(total ? { fraction: received / total } : {}) }));
  try {
    await pipeline(Readable.fromWeb(response.body as import("node:stream/web").ReadableStream), meter, createWriteStream(path));
  } catch (error) {
    throw cannot(`the download broke off: ${(error as Error).message}`, error);
  }
  return meter.sha256();
}

async function sha256Of(path: string): Promise<string | undefined> {
  const hash = createHash("sha256");
  try {
    await pipeline(createReadStream(path), hash);
  } catch {
    return undefined;
  }
  return hash.digest("hex");
}
