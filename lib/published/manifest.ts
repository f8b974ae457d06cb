/**
 * The release manifest: what one smolvm release publishes, row by (image, arch, vmm), each row
 * naming its kernel and root filesystem files with the size and SHA-256 of the compressed file
 * (what is downloaded and checked) and of the unpacked one (what is booted).
 *
 * Pure: parsing and lookup, no I/O. The manifest's bytes are checked against the trust root
 * (trust.ts) before they are parsed here; the parse is still strict, because a mirror's key or
 * pin proves who made the file, not that its maker's smolvm was bug-free.
 */
import { z } from "../zod.ts";
import { SmolError } from "../errors.ts";
import type { BackendName } from "../backends/types.ts";
import { GUEST_ARCHES, type GuestArch } from "../kernel/arch.ts";

/** The manifest layout this smolvm reads and writes. A manifest of any other is refused. */
export const MANIFEST_SCHEMA = 1;
export const MANIFEST_FILE = "manifest.json";
export const SIGNATURE_FILE = "manifest.json.sig";
/** The VMMs a release has kernels for: every backend's. */
export const VMMS = ["qemu", "firecracker"] as const satisfies readonly BackendName[];

/** Caps on what a manifest may promise: a hostile one must not make the client write terabytes. */
export const MAX_COMPRESSED_BYTES = 16 * 2 ** 30;
export const MAX_UNPACKED_BYTES = 64 * 2 ** 30;

const sha256Schema = z.string().check(z.regex(/^[0-9a-f]{64}$/, { error: "a lowercase hex SHA-256" }));
/** A plain file name: no directory, no dot-dot, nothing a shell or URL would read differently. */
export const fileNameSchema = z.string().check(
  z.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, { error: "a plain file name" }),
  z.refine((name) => !name.includes(".."), { error: "a file name without .." }),
);
const nameSchema = z.string().check(z.regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, { error: "an image name" }));
export const versionSchema = z.string().check(
  z.regex(/^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$/, { error: "a version such as 0.1.0" }),
  z.refine((v) => !v.includes(".."), { error: "a version without .." }),
);

const fileEntrySchema = z.strictObject({
  /** Name of the compressed file beside the manifest. */
  file: fileNameSchema,
  size: z.int().check(z.minimum(1), z.maximum(MAX_COMPRESSED_BYTES)),
  sha256: sha256Schema,
  unpackedSize: z.int().check(z.minimum(1), z.maximum(MAX_UNPACKED_BYTES)),
  unpackedSha256: sha256Schema,
});
export type FileEntry = z.infer<typeof fileEntrySchema>;

const rowSchema = z.strictObject({
  image: nameSchema,
  arch: z.enum(GUEST_ARCHES),
  vmm: z.enum(VMMS),
  kernel: z.extend(fileEntrySchema, { format: z.enum(["vmlinux", "Image"]) }),
  rootfs: fileEntrySchema,
  /** SHA-256 of the guest agent inside the image: the client uses a row only with its own agent. */
  agentSha256: sha256Schema,
  /** The image's recipe hash and sizes, as `smolvm image list` shows them. */
  recipeHash: sha256Schema,
  sizeMiB: z.int().check(z.minimum(1)),
  usedMiB: z.int().check(z.minimum(0)),
  init: z.string().check(z.regex(/^\/[A-Za-z0-9._/-]+$/)),
});
export type ManifestRow = z.infer<typeof rowSchema>;

const manifestSchema = z.strictObject({
  schema: z.literal(MANIFEST_SCHEMA),
  smolvmVersion: versionSchema,
  /** When the release was built; a manifest older than one already trusted is refused. */
  createdAt: z.iso.datetime(),
  rows: z.array(rowSchema).check(z.maxLength(1024)),
});
export type ReleaseManifest = z.infer<typeof manifestSchema>;

/** Where a manifest came from, for error messages. */
export interface ManifestOrigin {
  url: string;
}

/**
 * Parses manifest bytes (already checked against the trust root). An unknown schema gets its own
 * message: it is the one failure a user fixes by upgrading smolvm rather than the mirror.
 */
export function parseManifest(bytes: Uint8Array, origin: ManifestOrigin): ReleaseManifest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw manifestError(origin, "it is not valid JSON", "check that the URL points at a release directory", cause);
  }
  const schema = (json as { schema?: unknown } | null)?.schema;
  if (typeof json !== "object" || json === null || schema !== MANIFEST_SCHEMA) {
    throw manifestError(
      origin,
      `its schema is ${JSON.stringify(schema ?? null)}, and this smolvm reads schema ${MANIFEST_SCHEMA} only`,
      "use the smolvm version the release was made for, or point SMOLVM_IMAGES_URL at a release of this version",
    );
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join(".") || "value"}: ${i.message}`);
    throw manifestError(origin, `it is malformed (${problems.join("; ")})`, "rebuild the release with `smolvm release build`");
  }
  const seen = new Set<string>();
  for (const row of parsed.data.rows) {
    const key = rowKey(row.image, row.arch, row.vmm);
    if (seen.has(key)) throw manifestError(origin, `it lists ${key} twice`, "rebuild the release with `smolvm release build`");
    seen.add(key);
  }
  return parsed.data;
}

function manifestError(origin: ManifestOrigin, why: string, hint: string, cause?: unknown): SmolError {
  return new SmolError("IO_ERROR", `Cannot use the image manifest "${origin.url}": ${why}`, {
    hint,
    details: { url: origin.url, reason: "manifest" },
    ...(cause === undefined ? {} : { cause }),
  });
}

export function rowKey(image: string, arch: GuestArch, vmm: BackendName): string {
  return `${image}/${arch}/${vmm}`;
}

/** The row for (image, arch, vmm), or undefined when the release does not publish it. */
export function findRow(manifest: ReleaseManifest, image: string, arch: GuestArch, vmm: BackendName): ManifestRow | undefined {
  return manifest.rows.find((row) => row.image === image && row.arch === arch && row.vmm === vmm);
}

/** The compressed kernel file a release publishes for `arch`. */
export function kernelFileName(arch: GuestArch): string {
  return `kernel-${arch}.${arch === "x86_64" ? "vmlinux" : "Image"}.zst`;
}

/** The compressed root filesystem file a release publishes for (image, arch). */
export function rootfsFileName(image: string, arch: GuestArch): string {
  return `${image}-${arch}.ext4.zst`;
}
