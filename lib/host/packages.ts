/**
 * The one list of host packages smolvm needs, by Debian package name and by the step that needs
 * it. `smolvm setup` installs it, `.ci/run` installs it through `smolvm setup --packages-only
 * --with-test-tools`, and the fresh-host check (scripts/fresh-host-check.ts) installs exactly
 * this list into an empty Debian root and builds there, so a package missing here fails CI
 * instead of a user's first run.
 *
 * Recommends are never installed (`--no-install-recommends`): a package that some step only
 * gets through another's Recommends is named here on its own, with the reason.
 */

/** What a package is for. `test` packages are installed by `.ci/run` and `setup --with-test-tools` only. */
export type PackagePurpose = "run" | "kernel" | "agent" | "image" | "test";

export interface HostPackage {
  name: string;
  purpose: PackagePurpose;
  why: string;
}

const nativeQemu = process.arch === "arm64" ? "qemu-system-arm" : "qemu-system-x86";
const foreignQemu = process.arch === "arm64" ? "qemu-system-x86" : "qemu-system-arm";
/** The cross compiler and libc headers for the guest arch that is not the host's. */
const crossGcc = process.arch === "arm64" ? "gcc-x86-64-linux-gnu" : "gcc-aarch64-linux-gnu";
const crossLibc = process.arch === "arm64" ? "libc6-dev-amd64-cross" : "libc6-dev-arm64-cross";

/** The kernel source package the guest kernel is built from (lib/kernel/source.ts). */
export const KERNEL_SOURCE_PACKAGE = "linux-source-6.12";

export const HOST_PACKAGES: readonly HostPackage[] = [
  { name: nativeQemu, purpose: "run", why: "the QEMU system emulator that runs sandboxes" },
  { name: "qemu-utils", purpose: "run", why: "qemu-img makes isolated disks (copy-on-write overlays)" },
  { name: "e2fsprogs", purpose: "run", why: "mkfs.ext4 -d builds root images without root" },
  { name: "zstd", purpose: "run", why: "compressed images and snapshots" },
  { name: "openssh-client", purpose: "run", why: "`smolvm ssh` and scp into sandboxes" },
  { name: "iproute2", purpose: "run", why: "network namespaces and TAP devices" },
  { name: "nftables", purpose: "run", why: "the sandbox network's firewall rules" },
  { name: "passt", purpose: "run", why: "pasta: the default network's way out of each sandbox's own namespace" },
  { name: "procps", purpose: "run", why: "ps and pgrep, used to find a sandbox's processes" },
  { name: KERNEL_SOURCE_PACKAGE, purpose: "kernel", why: "the Linux source the guest kernel is built from" },
  { name: "build-essential", purpose: "kernel", why: "gcc and make for the kernel, the floor image and the guest agent" },
  { name: "bc", purpose: "kernel", why: "the kernel build's timeconst step" },
  { name: "bison", purpose: "kernel", why: "the kernel's Kconfig parser" },
  { name: "flex", purpose: "kernel", why: "the kernel's Kconfig lexer" },
  { name: "libelf-dev", purpose: "kernel", why: "the kernel build's objtool" },
  { name: "libssl-dev", purpose: "kernel", why: "the kernel build's certificate tools" },
  { name: "xz-utils", purpose: "kernel", why: "unpacks the kernel source tarball" },
  { name: "cpio", purpose: "kernel", why: "the kernel build's header archive" },
  { name: crossGcc, purpose: "kernel", why: "cross-compiles the other architecture's kernel and agent" },
  { name: "musl-tools", purpose: "agent", why: "musl-gcc: the static x86_64 guest agent" },
  { name: crossLibc, purpose: "agent", why: "the cross libc headers; a Recommends of the cross gcc, so not installed with it" },
  { name: "busybox-static", purpose: "image", why: "the base image's userland" },
  { name: "mmdebstrap", purpose: "image", why: "builds the Debian images without root" },
  { name: "arch-test", purpose: "image", why: "mmdebstrap's check that a foreign architecture can run" },
  { name: "qemu-user-static", purpose: "image", why: "runs the other architecture's maintainer scripts in image builds" },
  { name: "binfmt-support", purpose: "image", why: "registers qemu-user-static with binfmt_misc" },
  { name: "openssh-server", purpose: "test", why: "a real sshd for the SSH channel's host-side tests" },
  { name: foreignQemu, purpose: "test", why: "boots the other architecture's kernel and image" },
  { name: "qemu-user", purpose: "test", why: "runs the other architecture's smolvm binary" },
  { name: "socat", purpose: "test", why: "raw socket clients in tests and the bench floors" },
  { name: "zsh", purpose: "test", why: "checks the generated zsh completions" },
  { name: "fish", purpose: "test", why: "checks the generated fish completions" },
  { name: "tmux", purpose: "test", why: "drives interactive sessions in tests" },
  { name: "ruby", purpose: "test", why: "checks the generated Homebrew formula" },
  { name: "dash", purpose: "test", why: "runs install.sh under a strict POSIX shell" },
  { name: "bash-completion", purpose: "test", why: "checks that bash finds the completions install.sh puts in place" },
  { name: "wget", purpose: "test", why: "runs install.sh on a host without curl" },
  { name: "perl", purpose: "test", why: "shasum: runs install.sh on a host without sha256sum, as on macOS" },
  { name: "curl", purpose: "test", why: "the download floor in the bench" },
];

/** Package names for the given purposes, in list order, without repeats. */
export function packagesFor(purposes: readonly PackagePurpose[]): string[] {
  const wanted = new Set(purposes);
  return [...new Set(HOST_PACKAGES.filter((p) => wanted.has(p.purpose)).map((p) => p.name))];
}

/** What `smolvm setup` installs: everything but the test tools, unless asked. */
export function setupPackages(options: { withTestTools?: boolean } = {}): string[] {
  const purposes: PackagePurpose[] = ["run", "kernel", "agent", "image"];
  if (options.withTestTools) purposes.push("test");
  return packagesFor(purposes);
}

/** The Debian package that provides a tool, for hints. */
export const DEBIAN_PACKAGES = {
  qemuSystem: nativeQemu,
  qemuImg: "qemu-utils",
  mkfsExt4: "e2fsprogs",
  nft: "nftables",
  ip: "iproute2",
  pasta: "passt",
  ssh: "openssh-client",
  busybox: "busybox-static",
  mmdebstrap: "mmdebstrap",
  kernelSource: KERNEL_SOURCE_PACKAGE,
} as const;

export function aptInstallHint(...packages: string[]): string {
  return `install it: sudo apt-get install -y ${packages.join(" ")} (or run \`smolvm setup\`)`;
}
