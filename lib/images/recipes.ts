/**
 * Image recipes: plain data in `images/*.json`, validated here, and the hash that names a build.
 */
import { createHash } from "node:crypto";
import { z } from "../zod.ts";
import { InvalidInputError, NotFoundError } from "../errors.ts";
import { parseOrThrow } from "../validate.ts";
import baseRecipe from "../../images/base.json" with { type: "json" };
import debianRecipe from "../../images/debian.json" with { type: "json" };
import nodeRuntimePin from "../../images/node.json" with { type: "json" };
import claudeRecipe from "../../images/claude.json" with { type: "json" };
import codexRecipe from "../../images/codex.json" with { type: "json" };
import piRecipe from "../../images/pi.json" with { type: "json" };
import openclawRecipe from "../../images/openclaw.json" with { type: "json" };
import { GUEST_HOME } from "../guest.ts";

/** Bump when the builder's output changes for the same recipe (layout, mkfs flags, files). */
export const IMAGE_BUILDER_VERSION = 1;

const modeSchema = z.string().check(z.regex(/^[0-7]{3,4}$/, { error: "an octal mode such as 0755" }));
const guestPathSchema = z.string().check(
  z.regex(/^\/[^\0]*$/, { error: "an absolute guest path" }),
  z.refine((p) => !p.split("/").includes(".."), { error: "a path without .." }),
);

const sriSchema = z.string().check(z.regex(/^sha512-[A-Za-z0-9+/]{86}==$/, { error: "an npm integrity string (sha512-<base64>)" }));
const versionSchema = z.string().check(z.regex(/^\d+\.\d+\.\d+$/, { error: "an exact version such as 24.1.0" }));
/** `name@exact-version`, scoped or not: a recipe pins what it installs. */
const npmSpecSchema = z.string().check(z.regex(/^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*@\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/, {
  error: "an npm package pinned to an exact version, e.g. @scope/name@1.2.3",
}));

/** Node.js and npm from the npm registry (Debian 12's nodejs is v18), pinned by version and hash. */
export const nodeRuntimeSchema = z.strictObject({
  node: z.strictObject({ version: versionSchema, sha512: z.strictObject({ x86_64: sriSchema, aarch64: sriSchema }) }),
  npm: z.strictObject({ version: versionSchema, sha512: sriSchema }),
});
export type NodeRuntime = z.infer<typeof nodeRuntimeSchema>;

/** Node.js, npm and global npm packages installed into a Debian tree at build time. */
const npmLayerSchema = z.strictObject({
  runtime: nodeRuntimeSchema,
  packages: z.array(npmSpecSchema).check(z.minLength(1)),
});
export type NpmLayer = z.infer<typeof npmLayerSchema>;

const busyboxRootfs = z.strictObject({ kind: z.literal("busybox") });
const mmdebstrapRootfs = z.strictObject({
  kind: z.literal("mmdebstrap"),
  suite: z.string().check(z.regex(/^[a-z]+$/)),
  variant: z.enum(["extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "standard"]),
  components: z.array(z.string().check(z.regex(/^[a-z-]+$/))).check(z.minLength(1)),
  include: z.array(z.string().check(z.regex(/^[a-z0-9][a-z0-9+.-]*$/))),
  /** Installed by a customize hook inside the tree, with the build's network. */
  npm: z.optional(npmLayerSchema),
});

export const recipeSchema = z.strictObject({
  name: z.string().check(z.regex(/^[a-z0-9][a-z0-9._-]*$/)),
  description: z.string(),
  rootfs: z.discriminatedUnion("kind", [busyboxRootfs, mmdebstrapRootfs]),
  dirs: z._default(z.array(z.strictObject({ path: guestPathSchema, mode: z.optional(modeSchema) })), []),
  files: z._default(z.array(z.strictObject({ path: guestPathSchema, content: z.string(), mode: z.optional(modeSchema) })), []),
  /** Glob patterns deleted from the finished tree (generated keys, machine ids). */
  remove: z._default(z.array(guestPathSchema), []),
  /** Free space left in the filesystem beyond what the tree uses. */
  freeMiB: z.int().check(z.minimum(16), z.maximum(65536)),
});

export type Recipe = z.infer<typeof recipeSchema>;
export type RecipeInput = z.input<typeof recipeSchema>;

/** Files every image gets, before the recipe's own (which may replace them). */
export const COMMON_FILES: Recipe["files"] = [
  { path: "/etc/hostname", content: "smolvm\n" },
  { path: "/etc/hosts", content: "127.0.0.1\tlocalhost\n127.0.1.1\tsmolvm\n::1\tlocalhost ip6-localhost ip6-loopback\n" },
  // QEMU user-mode networking's DNS forwarder; the agent rewrites it for other network modes.
  { path: "/etc/resolv.conf", content: "nameserver 10.0.2.3\n" },
];

/** Directories every image has (mount points the agent uses, and the usual top level). */
export const COMMON_DIRS: Recipe["dirs"] = [
  { path: "/proc", mode: "0555" },
  { path: "/sys", mode: "0555" },
  { path: "/dev" },
  { path: "/run" },
  { path: "/tmp", mode: "1777" },
  { path: GUEST_HOME, mode: "0700" },
  { path: "/etc/profile.d" },
  { path: "/var" },
  { path: "/sbin" },
];

/**
 * A recipe derived from another (the agent presets from `debian`): the parent's root filesystem
 * with more packages and an npm layer, its dirs, files and removals followed by the child's.
 */
const derivedRecipeSchema = z.strictObject({
  name: z.string().check(z.regex(/^[a-z0-9][a-z0-9._-]*$/)),
  from: z.string(),
  description: z.string(),
  include: z._default(z.array(z.string()), []),
  /** Global npm packages, on the Node.js runtime of images/node.json. */
  npm: z.optional(z.array(z.string())),
  dirs: z._default(z.array(z.unknown()), []),
  files: z._default(z.array(z.unknown()), []),
  remove: z._default(z.array(z.string()), []),
  freeMiB: z.optional(z.int()),
});

// JSON imports are typed loosely (strings, not literals); parseRecipe validates them on use.
const BUILTIN: Record<string, unknown> = {
  base: baseRecipe,
  debian: debianRecipe,
  claude: claudeRecipe,
  codex: codexRecipe,
  pi: piRecipe,
  openclaw: openclawRecipe,
};

/** The pinned Node.js runtime the presets (and installs at boot) use. */
export function nodeRuntime(): NodeRuntime {
  return parseOrThrow(nodeRuntimeSchema, nodeRuntimePin, "Node.js runtime pin (images/node.json)");
}

/** Names `ensureImage` can build. */
export function knownImages(): string[] {
  return Object.keys(BUILTIN);
}

export function parseRecipe(input: unknown): Recipe {
  return parseOrThrow(recipeSchema, input, "image recipe");
}

/** The recipe for `name`, or NotFoundError listing the known images. */
export function getRecipe(name: string): Recipe {
  const input = Object.hasOwn(BUILTIN, name) ? BUILTIN[name] : undefined;
  if (!input) {
    throw new NotFoundError(`Cannot find image "${name}": there is no recipe by that name`, {
      hint: `known images: ${knownImages().join(", ")}`,
      details: { name, known: knownImages() },
    });
  }
  if (typeof input === "object" && input !== null && "from" in input) return deriveRecipe(input, getRecipe);
  return parseRecipe(input);
}

/** Resolves a derived recipe against its parent (looked up by `lookup`) and validates the result. */
export function deriveRecipe(input: unknown, lookup: (name: string) => Recipe, runtime: NodeRuntime = nodeRuntime()): Recipe {
  const child = parseOrThrow(derivedRecipeSchema, input, "image recipe");
  const parent = lookup(child.from);
  const rootfs = parent.rootfs;
  if (rootfs.kind !== "mmdebstrap") {
    throw new InvalidInputError(`Cannot derive image "${child.name}" from "${child.from}": only Debian recipes can be extended`);
  }
  return parseRecipe({
    name: child.name,
    description: child.description,
    rootfs: {
      ...rootfs,
      include: [...rootfs.include, ...child.include.filter((p) => !rootfs.include.includes(p))],
      ...(child.npm === undefined ? {} : { npm: { runtime, packages: child.npm } }),
    },
    dirs: [...parent.dirs, ...child.dirs],
    files: [...parent.files, ...child.files],
    remove: [...parent.remove, ...child.remove],
    freeMiB: child.freeMiB ?? parent.freeMiB,
  });
}

/** JSON with sorted keys, so a hash does not depend on key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * The hash that names a build: the recipe, the arch, the builder version, and the checksums of
 * the binaries copied in (the agent, busybox). A Debian mirror's contents are not part of it:
 * rebuild with `force` to pick up new packages.
 */
export function recipeHash(recipe: Recipe, inputs: { arch: string; agentSha256: string; extra?: Record<string, string> }): string {
  return sha256Hex(canonicalJson({
    builder: IMAGE_BUILDER_VERSION,
    arch: inputs.arch,
    recipe,
    common: { files: COMMON_FILES, dirs: COMMON_DIRS },
    agent: inputs.agentSha256,
    extra: inputs.extra ?? {},
  }));
}
