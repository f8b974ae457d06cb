/**
 * The sandbox configuration: one zod schema shared by the CLI flags, the SDK's `create()`
 * options and the rows persisted in the state store.
 *
 * Defaults are chosen for the fastest useful sandbox: 1 vCPU boots fastest under emulation
 * (a second vCPU costs ~0.1 s of boot), 512 MiB is enough for the Debian image with Python and
 * git, and the root disk is an isolated copy-on-write overlay so sandboxes never see each other.
 */
import { z } from "./zod.ts";
import { parseOrThrow } from "./validate.ts";

/** A sandbox name doubles as the guest hostname, hence the DNS-label rule. */
export const SANDBOX_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const sandboxNameSchema = z.string().check(z.regex(SANDBOX_NAME_PATTERN, {
  error: "use 1-63 lowercase letters, digits and dashes, not starting or ending with a dash",
}));

export const envKeySchema = z.string().check(z.regex(ENV_KEY_PATTERN, {
  error: "a name of letters, digits and underscores, not starting with a digit",
}));

/** Values are passed to the guest verbatim; only NUL cannot cross an exec boundary. */
export const envValueSchema = z.string().check(z.refine((v) => !v.includes("\0"), {
  error: "values cannot contain a NUL byte",
}));

function intRange(min: number, max: number, unit: string) {
  const error = `an integer from ${min} to ${max}${unit ? ` ${unit}` : ""}`;
  return z.int({ error }).check(z.minimum(min, { error }), z.maximum(max, { error }));
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `one of ${values.join(", ")}` });
}

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

export const DEFAULT_IMAGE = "debian";

export const vmConfigSchema = z.strictObject({
  /** Unique among sandboxes; generated when absent. */
  name: z.optional(sandboxNameSchema),
  /** A built or published image (`base`, `debian`, ...). Ignored when `rootfsPath` is set. */
  image: z._default(
    z.string().check(z.regex(/^[a-z0-9][a-z0-9._-]*$/, { error: "an image name such as base or debian" })),
    DEFAULT_IMAGE,
  ),
  /** An explicit guest kernel instead of the cached build. */
  kernelPath: z.optional(z.string().check(z.minLength(1, { error: "a path to a kernel file" }))),
  /** An explicit ext4 root filesystem instead of the image's. */
  rootfsPath: z.optional(z.string().check(z.minLength(1, { error: "a path to an ext4 image" }))),
  vcpus: z._default(intRange(1, 64, ""), 1),
  memoryMiB: z._default(intRange(128, 1_048_576, "MiB"), 512),
  /** Size of the guest's root disk; the overlay grows the image up to this. Default: the image's. */
  diskSizeMiB: z.optional(intRange(64, 4_194_304, "MiB")),
  /** Extra kernel command-line arguments, appended after smolvm's own. */
  bootArgs: z._default(z.string(), ""),
  diskMode: z._default(oneOf(DISK_MODES), "isolated"),
  network: z._default(oneOf(NETWORK_MODES), "user"),
  backend: z._default(oneOf(BACKENDS), "auto"),
  channel: z._default(oneOf(CHANNELS), "auto"),
  /** `auto` defers to SMOLVM_ACCEL, then to what the host proves it can run. */
  accel: z._default(oneOf(ACCELS), "auto"),
  env: z._default(z.record(envKeySchema, envValueSchema), {}),
  bootTimeoutMs: z._default(intRange(1_000, 3_600_000, "ms"), 30_000),
});

/** What callers may pass: every field optional. */
export type VmConfigInput = z.input<typeof vmConfigSchema>;
/** What the rest of smolvm works with: defaults filled in. */
export type VmConfig = z.output<typeof vmConfigSchema>;

export function parseVmConfig(input: unknown): VmConfig {
  return parseOrThrow(vmConfigSchema, input ?? {}, "sandbox config",
    "see `smolvm create --help` for every option and its range");
}

export function parseSandboxName(input: unknown): string {
  return parseOrThrow(sandboxNameSchema, input, "sandbox name",
    'names look like "dev", "web-2" or "agent-7f3a"');
}
