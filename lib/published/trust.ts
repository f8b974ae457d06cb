/**
 * The trust root for published images: ed25519 public keys shipped inside smolvm, and the one
 * check every manifest passes before anything in it is believed.
 *
 * A release signs its manifest's exact bytes (`manifest.json.sig`); the client verifies them
 * with a built-in key, or, for a user's own mirror, with the key or manifest SHA-256 the user
 * named (source.ts). Only then are the manifest's checksums trusted, and each artifact is
 * checked against them. Why a key rather than a pinned manifest hash: see docs/images.md.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { z } from "../zod.ts";
import { InvalidInputError, SmolError } from "../errors.ts";

export interface TrustedKey {
  /** First 16 hex digits of SHA-256 over the raw 32-byte public key. */
  id: string;
  /** The raw public key, base64. */
  publicKey: string;
}

/**
 * The project's release keys. A new key is added beside the old one (never in its place), so a
 * binary keeps verifying releases signed before and after a rotation. `smolvm release keygen`
 * makes a pair and prints the line to add here.
 */
export const RELEASE_KEYS: readonly TrustedKey[] = [
  { id: "0560fb7e2cf8c691", publicKey: "szKA1m6Db4wfCkQqGSfe6xa9kFWACwclAIkChbVMSHw=" },
];

/** How a manifest is trusted: by a signature from one of `keys`, or by its SHA-256. */
export type Trust =
  | { kind: "keys"; keys: readonly TrustedKey[]; label: string }
  | { kind: "sha256"; sha256: string; label: string };

const signatureSchema = z.strictObject({
  schema: z.literal(1),
  algorithm: z.literal("ed25519"),
  keyId: z.string().check(z.regex(/^[0-9a-f]{16}$/)),
  signature: z.string().check(z.regex(/^[A-Za-z0-9+/]{86}==$/)),
});
export type ManifestSignature = z.infer<typeof signatureSchema>;

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A public key from its raw base64 form, or an InvalidInput-style error naming `what`. */
export function parsePublicKey(base64: string, what: string): TrustedKey & { key: KeyObject } {
  const raw = /^[A-Za-z0-9+/]{43}=$/.test(base64.trim()) ? Buffer.from(base64.trim(), "base64") : undefined;
  if (raw?.length !== 32) {
    throw new InvalidInputError(`Cannot use ${what}: it is not an ed25519 public key (44 characters of base64)`, {
      hint: "use the public key `smolvm release keygen` printed for the mirror",
    });
  }
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  return { id: keyId(raw), publicKey: base64.trim(), key };
}

function keyId(raw: Uint8Array): string {
  return sha256Hex(raw).slice(0, 16);
}

export interface VerifyOrigin {
  manifestUrl: string;
  signatureUrl: string;
}

/**
 * Throws unless `manifest` is trusted: signed by one of the keys, or of the pinned SHA-256.
 * `signature` is the `manifest.json.sig` file's bytes (undefined when there is none).
 */
export function verifyManifest(manifest: Uint8Array, signature: Uint8Array | undefined, trust: Trust, origin: VerifyOrigin): void {
  const refuse = (why: string, hint: string) =>
    new SmolError("INTEGRITY_FAILED", `Cannot trust the image manifest "${origin.manifestUrl}": ${why}`, {
      hint,
      details: { url: origin.manifestUrl, reason: "untrusted", trust: trust.label },
    });
  if (trust.kind === "sha256") {
    const actual = sha256Hex(manifest);
    if (actual !== trust.sha256) {
      throw refuse(`its SHA-256 is ${actual}, not the pinned ${trust.sha256} (${trust.label})`,
        "pin the SHA-256 `smolvm release build` printed for this release, or check the mirror's files");
    }
    return;
  }
  if (signature === undefined) {
    throw refuse(`it has no signature (${origin.signatureUrl})`, "publish manifest.json.sig beside it (`smolvm release build --key FILE`)");
  }
  let parsed: ManifestSignature;
  try {
    parsed = signatureSchema.parse(JSON.parse(new TextDecoder().decode(signature)));
  } catch {
    throw refuse(`its signature file "${origin.signatureUrl}" is malformed`, "rebuild the release with `smolvm release build --key FILE`");
  }
  const key = trust.keys.find((k) => k.id === parsed.keyId);
  if (key === undefined) {
    throw refuse(`it is signed by key ${parsed.keyId}, which is not ${trust.label}`,
      "for a mirror, set SMOLVM_IMAGES_KEY to the public key its release was signed with");
  }
  const publicKey = parsePublicKey(key.publicKey, `key ${key.id}`).key;
  if (!verify(null, manifest, publicKey, Buffer.from(parsed.signature, "base64"))) {
    throw refuse(`its signature does not match its contents (key ${key.id})`,
      "the manifest was altered after signing; fetch it again or check the mirror");
  }
}

/** Signs manifest bytes with a PEM (PKCS#8) ed25519 private key; returns the `.sig` file's text. */
export function signManifest(manifest: Uint8Array, privateKeyPem: string): { text: string; keyId: string } {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(privateKeyPem);
  } catch (cause) {
    throw new InvalidInputError("Cannot sign the release: the signing key is not a PEM private key", {
      cause,
      hint: "make one with `smolvm release keygen --out FILE`",
    });
  }
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new InvalidInputError(`Cannot sign the release: the signing key is ${privateKey.asymmetricKeyType}, not ed25519`, {
      hint: "make one with `smolvm release keygen --out FILE`",
    });
  }
  const raw = Buffer.from((createPublicKey(privateKey).export({ format: "jwk" }) as { x: string }).x, "base64url");
  const id = keyId(raw);
  const signature: ManifestSignature = {
    schema: 1,
    algorithm: "ed25519",
    keyId: id,
    signature: sign(null, manifest, privateKey).toString("base64"),
  };
  return { text: JSON.stringify(signature, null, 2) + "\n", keyId: id };
}

/** A fresh key pair: the private key as PEM (PKCS#8), the public one raw base64 with its id. */
export function generateSigningKey(): { privateKeyPem: string; publicKey: string; id: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from((publicKey.export({ format: "jwk" }) as { x: string }).x, "base64url");
  return {
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKey: raw.toString("base64"),
    id: keyId(raw),
  };
}
