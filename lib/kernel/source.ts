/**
 * The Linux source the guest kernel is built from, and why it can be trusted.
 *
 * The source is Debian's `linux-source-6.12` package, which installs the (Debian-patched) tree
 * as /usr/src/linux-source-6.12.tar.xz. Trust comes from apt's signed chain, not from a list of
 * tarball hashes kept by hand: apt checks each .deb against the Release file's signature, dpkg
 * records the checksum of every file it unpacks, and `dpkg --verify` compares the file on disk
 * with that record. So any version Debian ships is accepted (its point and security releases
 * replace the package every few weeks and drop old ones from the mirror, which broke every pin),
 * and a tarball dpkg says was modified is refused.
 *
 * The package name and version are the source's identity in the kernel's cache key and
 * manifest. A tarball given by path (`smolvm kernel build --source FILE`) is the user's own
 * choice: it is identified by its SHA-256, and nothing vouches for it.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createHash } from "node:crypto";
import { NotFoundError, SmolError } from "../errors.ts";
import { KERNEL_SOURCE_PACKAGE } from "../host/packages.ts";
import { runHost } from "../host/process.ts";

export { KERNEL_SOURCE_PACKAGE };

export interface KernelSource {
  path: string;
  /** What goes into the cache key: `debian:<package>=<version>` or `sha256:<hex>`. */
  id: string;
  /** For people: `Debian linux-source-6.12 6.12.117-1~deb12u1`. */
  description: string;
  package?: string;
  version?: string;
}

export interface DebianSourceOptions {
  package?: string;
  /** A root directory whose dpkg database and files are checked instead of `/` (tests). */
  root?: string;
}

/** Where a Debian linux-source package puts its tarball, relative to the root. */
export function debianSourcePath(pkg: string = KERNEL_SOURCE_PACKAGE): string {
  return `/usr/src/${pkg}.tar.xz`;
}

function installHint(pkg: string): string {
  return `install it: apt-get install -y ${pkg} (or run \`smolvm setup\`)`;
}

/**
 * The installed Debian kernel source, verified by dpkg. Throws NotFoundError (with the exact
 * apt-get line) when the package or its tarball is missing, and INTEGRITY_FAILED when dpkg says
 * the tarball is not the file the package installed.
 */
export async function verifyDebianSource(options: DebianSourceOptions = {}): Promise<KernelSource> {
  const pkg = options.package ?? KERNEL_SOURCE_PACKAGE;
  const rootArgs = options.root === undefined ? [] : [`--root=${options.root}`];
  const relative = debianSourcePath(pkg);
  const path = options.root === undefined ? relative : `${options.root}${relative}`;

  const query = await runHost("dpkg-query", [...rootArgs, "-W", "-f=${db:Status-Status}\\t${Version}\\n", pkg], { timeoutMs: 30_000 });
  const [status, version] = query.stdout.trim().split("\t");
  if (query.code !== 0 || status !== "installed" || !version) {
    throw new NotFoundError(`Cannot build the kernel: the Linux source package "${pkg}" is not installed`, {
      hint: installHint(pkg),
      details: { package: pkg, status: status ?? null },
    });
  }
  const verify = await runHost("dpkg", [...rootArgs, "--verify", pkg], { timeoutMs: 120_000 });
  // bookworm's dpkg exits 0 even when it reports problems: its output is the verdict. Each
  // line is `<flags> [c] <path>`, or `missing <path>`.
  const problem = verify.stdout.split("\n").find((line) => line.trimEnd().endsWith(relative));
  if (problem?.startsWith("missing")) {
    throw new NotFoundError(`Cannot build the kernel: "${path}" is missing although "${pkg}" is installed`, {
      hint: `reinstall it: apt-get install --reinstall -y ${pkg}`,
      details: { package: pkg, version, path },
    });
  }
  if (problem !== undefined || verify.code !== 0) {
    throw new SmolError("INTEGRITY_FAILED", `Cannot build the kernel: "${path}" is not the file ${pkg} ${version} installed (dpkg --verify: ${(problem ?? verify.stderr).trim()})`, {
      hint: `restore it: apt-get install --reinstall -y ${pkg}`,
      details: { package: pkg, version, path },
    });
  }
  try {
    if (!(await stat(path)).isFile()) throw new Error("not a regular file");
  } catch (cause) {
    throw new NotFoundError(`Cannot build the kernel: "${path}" is not a file`, { cause, hint: `reinstall it: apt-get install --reinstall -y ${pkg}` });
  }
  return { path, id: `debian:${pkg}=${version}`, description: `Debian ${pkg} ${version}`, package: pkg, version };
}

/** SHA-256 of a file, streamed (a kernel tarball is ~150 MB). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A tarball the user named: identified by its checksum, vouched for by nobody but them. */
export async function customSource(path: string): Promise<KernelSource> {
  try {
    if (!(await stat(path)).isFile()) throw new Error("not a regular file");
  } catch (cause) {
    throw new NotFoundError(`Cannot build the kernel: the Linux source "${path}" does not exist`, {
      cause,
      hint: "name a Linux source tarball (.tar.xz), or leave --source out to use Debian's package",
    });
  }
  const sha256 = await sha256File(path);
  return { path, id: `sha256:${sha256}`, description: `${path} (sha256 ${sha256.slice(0, 16)}...)` };
}

/** The source to build from: the named tarball, else the Debian package's, verified. */
export function resolveKernelSource(path?: string): Promise<KernelSource> {
  return path === undefined ? verifyDebianSource() : customSource(path);
}
