/**
 * The values a sandbox's enumerated settings may take: one list each, for the config schema
 * (config.ts), the CLI's flag choices and the SDK's types. No dependencies, so the CLI can read
 * them without loading the schema library.
 */
export const DISK_MODES = ["isolated", "shared"] as const;
export const NETWORK_MODES = ["user", "tap", "none"] as const;
export const BACKENDS = ["auto", "qemu", "firecracker"] as const;
export const CHANNELS = ["auto", "ssh", "vsock"] as const;
/** Hardware acceleration: auto (proven KVM, HVF, else software emulation) or one forced. */
export const ACCELS = ["auto", "kvm", "hvf", "tcg"] as const;

export type DiskMode = (typeof DISK_MODES)[number];
export type NetworkMode = (typeof NETWORK_MODES)[number];
export type BackendChoice = (typeof BACKENDS)[number];
export type ChannelChoice = (typeof CHANNELS)[number];
export type AccelChoice = (typeof ACCELS)[number];
