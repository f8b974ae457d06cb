/**
 * Host packages smolvm uses, by the Debian/Ubuntu package that provides them. `doctor` names
 * them in hints and `setup` installs them.
 */
export const DEBIAN_PACKAGES = {
  qemuSystem: process.arch === "arm64" ? "qemu-system-arm" : "qemu-system-x86",
  qemuImg: "qemu-utils",
  mkfsExt4: "e2fsprogs",
  nft: "nftables",
  ip: "iproute2",
  ssh: "openssh-client",
  busybox: "busybox-static",
  mmdebstrap: "mmdebstrap",
  kernelSource: "linux-source-6.1",
} as const;

/** Everything `smolvm setup` installs: the runtime tools plus what builds the kernel and images. */
export const SETUP_PACKAGES: readonly string[] = [
  ...new Set([
    ...Object.values(DEBIAN_PACKAGES),
    "zstd",
    "cpio",
    "socat",
    "openssh-server",
    "build-essential",
    "bc",
    "bison",
    "flex",
    "libelf-dev",
    "libssl-dev",
    "musl-tools",
    "gcc-aarch64-linux-gnu",
    "qemu-user",
  ]),
];

export function aptInstallHint(...packages: string[]): string {
  return `install it: sudo apt-get install -y ${packages.join(" ")} (or run \`smolvm setup\`)`;
}
