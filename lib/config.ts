/**
 * The sandbox configuration: one zod schema shared by the CLI flags, the SDK's `create()`
 * options and the rows persisted in the state store.
 *
 * Defaults are chosen for the fastest useful sandbox: 1 vCPU boots fastest under emulation
 * (a second vCPU costs ~0.1 s of boot), 512 MiB is enough for the Debian image with Python and
 * git, and the root disk is an isolated copy-on-write overlay so sandboxes never see each other.
 */
import { lazySchema, z } from "./zod.ts";
import { ACCELS, BACKENDS, CHANNELS, DISK_MODES, NETWORK_MODES } from "./choices.ts";
import { InvalidInputError } from "./errors.ts";

export * from "./choices.ts";
import { parseOrThrow } from "./validate.ts";

/** A sandbox name doubles as the guest hostname, hence the DNS-label rule. */
export const SANDBOX_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const sandboxNameSchema = lazySchema(() => z.string().check(z.regex(SANDBOX_NAME_PATTERN, {
  error: "use 1-63 lowercase letters, digits and dashes, not starting or ending with a dash",
})));

export const envKeySchema = lazySchema(() => z.string().check(z.regex(ENV_KEY_PATTERN, {
  error: "a name of letters, digits and underscores, not starting with a digit",
})));

/** Values are passed to the guest verbatim; only NUL cannot cross an exec boundary. */
export const envValueSchema = lazySchema(() => z.string().check(z.refine((v) => !v.includes("\0"), {
  error: "values cannot contain a NUL byte",
})));

function intRange(min: number, max: number, unit: string) {
  const error = `an integer from ${min} to ${max}${unit ? ` ${unit}` : ""}`;
  return z.int({ error }).check(z.minimum(min, { error }), z.maximum(max, { error }));
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `one of ${values.join(", ")}` });
}

export const DEFAULT_IMAGE = "debian";

export const sandboxConfigSchema = lazySchema(() => z.strictObject({
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
  /** `user` (the default on Linux: the internet and nothing of the host), `tap` (root) or `none` (the default on macOS). */
  network: z._default(oneOf(NETWORK_MODES), "user"),
  /**
   * Where the sandbox may connect (lib/network/policy.ts): `internet` (every public address),
   * DNS names (`example.com`, `*.example.com`), addresses and CIDR ranges. Checked in full when
   * a sandbox is created.
   */
  allowHosts: z._default(z.array(z.string().check(z.maxLength(255, { error: "at most 255 characters" }))).check(z.maxLength(256, { error: "at most 256 hosts" })), ["internet"]),
  /** Never reachable, whatever `allowHosts` says. */
  denyHosts: z._default(z.array(z.string().check(z.maxLength(255, { error: "at most 255 characters" }))).check(z.maxLength(256, { error: "at most 256 hosts" })), []),
  backend: z._default(oneOf(BACKENDS), "auto"),
  /**
   * Run Firecracker under its jailer (chroot, a user of its own, a mount namespace of its own).
   * Root only, Firecracker only; absent: SMOLVM_JAILER, else no. A create records the answer.
   */
  jailer: z.optional(z.boolean({ error: "true or false" })),
  channel: z._default(oneOf(CHANNELS), "auto"),
  /** `auto` defers to SMOLVM_ACCEL, then to what the host proves it can run. */
  accel: z._default(oneOf(ACCELS), "auto"),
  env: z._default(z.record(envKeySchema, envValueSchema), {}),
  bootTimeoutMs: z._default(intRange(1_000, 3_600_000, "ms"), 30_000),
}));

/** What callers may pass: every field optional. */
export type SandboxConfigInput = z.input<typeof sandboxConfigSchema>;
/** What the rest of smolvm works with: defaults filled in. */
export type SandboxConfig = z.output<typeof sandboxConfigSchema>;

export function parseSandboxConfig(input: unknown): SandboxConfig {
  return parseOrThrow(sandboxConfigSchema, input ?? {}, "sandbox config",
    "see `smolvm create --help` for every option and its range");
}

export function parseSandboxName(input: unknown): string {
  return parseOrThrow(sandboxNameSchema, input, "sandbox name",
    'names look like "dev", "web-2" or "agent-7f3a"');
}

/** Refuses an environment variable name a shell could not export. */
export function checkEnvName(name: string): void {
  if (typeof name !== "string" || !ENV_KEY_PATTERN.test(name)) {
    throw new InvalidInputError(`Invalid environment variable name ${JSON.stringify(name)}: it must match [A-Za-z_][A-Za-z0-9_]*`, {
      hint: "use letters, digits and underscores, not starting with a digit (e.g. API_KEY)",
    });
  }
}

/** Checks every name and value of a set of environment variables; returns it unchanged. */
export function checkEnvVars(vars: Record<string, string>): Record<string, string> {
  if (typeof vars !== "object" || vars === null || Array.isArray(vars)) {
    throw new InvalidInputError("Invalid environment: expected an object of NAME: value", { hint: 'e.g. { API_KEY: "secret" }' });
  }
  for (const [name, value] of Object.entries(vars)) {
    checkEnvName(name);
    if (typeof value !== "string") {
      throw new InvalidInputError(`Invalid value for ${name}: expected a string, got ${typeof value}`, { hint: "convert it with String(value)" });
    }
    if (value.includes("\0")) {
      throw new InvalidInputError(`Invalid value for ${name}: it contains a NUL byte`, { hint: "environment values cannot hold NUL; encode binary data (base64)" });
    }
  }
  return vars;
}
