/**
 * Where published images come from and how their manifest is trusted, from the environment:
 *
 *   (nothing set)            the project's release for this version, checked with RELEASE_KEYS
 *   SMOLVM_IMAGES_URL=URL    a mirror; it also needs one of:
 *     SMOLVM_IMAGES_KEY=K      the mirror's ed25519 public key (base64), or `release` for a
 *                              plain copy of the project's releases (the built-in keys)
 *     SMOLVM_IMAGES_SHA256=H   the SHA-256 of the mirror's manifest.json
 *   SMOLVM_USE_PUBLISHED=0   never download: build every kernel and image locally
 *
 * A mirror without a trust setting is refused, never trusted by default: anyone who can set an
 * environment variable or answer on a network could otherwise hand the host a kernel.
 */
import { DEFAULT_RELEASES_URL } from "../distribution/release-url.ts";
import { InvalidInputError } from "../errors.ts";
import { versionInfo } from "../version.ts";
import { parsePublicKey, RELEASE_KEYS, type Trust } from "./trust.ts";

/**
 * The project's release downloads (its repository is named in lib/distribution/release-url.ts);
 * `{version}` becomes the smolvm version.
 */
export const RELEASES_URL = `${DEFAULT_RELEASES_URL}/download/v{version}/`;

export interface PublishedSource {
  /** The release directory, ending in `/`; file names are resolved against it. */
  baseUrl: string;
  trust: Trust;
  kind: "release" | "mirror";
  /** The smolvm version whose release this is (the cache directory's name). */
  version: string;
}

/** False when SMOLVM_USE_PUBLISHED asks for local builds only. */
export function publishedEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.SMOLVM_USE_PUBLISHED ?? "").trim().toLowerCase();
  return !["0", "false", "no", "off"].includes(value);
}

/**
 * The source to download from, or undefined when SMOLVM_USE_PUBLISHED=0. Throws on a mirror
 * without a trust setting, a malformed key or pin, or a trust setting without a mirror.
 */
export function publishedSource(env: NodeJS.ProcessEnv = process.env, version: string = versionInfo().version): PublishedSource | undefined {
  if (!publishedEnabled(env)) return undefined;
  const url = env.SMOLVM_IMAGES_URL?.trim() || undefined;
  const key = env.SMOLVM_IMAGES_KEY?.trim() || undefined;
  const pin = env.SMOLVM_IMAGES_SHA256?.trim().toLowerCase() || undefined;
  if (url === undefined) {
    if (key !== undefined || pin !== undefined) {
      throw new InvalidInputError(`Cannot use ${key !== undefined ? "SMOLVM_IMAGES_KEY" : "SMOLVM_IMAGES_SHA256"}: it applies to a mirror, and SMOLVM_IMAGES_URL is not set`, {
        hint: "set SMOLVM_IMAGES_URL to the mirror's release directory, or unset the trust setting",
      });
    }
    return { baseUrl: baseUrlOf(RELEASES_URL, version, "the release URL"), trust: releaseTrust(), kind: "release", version };
  }
  const baseUrl = baseUrlOf(url, version, "SMOLVM_IMAGES_URL");
  if (key === undefined && pin === undefined) {
    throw new InvalidInputError(`Cannot use the image mirror "${baseUrl}": it has no trust setting`, {
      hint: "set SMOLVM_IMAGES_KEY to the mirror's public key (`smolvm release keygen` prints it; `release` for a copy of the " +
        "project's releases) or SMOLVM_IMAGES_SHA256 to its manifest's SHA-256 (`smolvm release build` prints it); " +
        "or unset SMOLVM_IMAGES_URL",
      details: { url: baseUrl },
    });
  }
  if (key !== undefined && pin !== undefined) {
    throw new InvalidInputError(`Cannot use the image mirror "${baseUrl}": both SMOLVM_IMAGES_KEY and SMOLVM_IMAGES_SHA256 are set`, {
      hint: "keep one of them",
    });
  }
  if (pin !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(pin)) {
      throw new InvalidInputError(`Cannot use SMOLVM_IMAGES_SHA256 "${pin}": it is not a SHA-256 (64 hex digits)`, {
        hint: "use the manifest SHA-256 `smolvm release build` printed",
      });
    }
    return { baseUrl, trust: { kind: "sha256", sha256: pin, label: "the SHA-256 in SMOLVM_IMAGES_SHA256" }, kind: "mirror", version };
  }
  if (key === "release") return { baseUrl, trust: releaseTrust(), kind: "mirror", version };
  const parsed = parsePublicKey(key!, "SMOLVM_IMAGES_KEY");
  return {
    baseUrl,
    trust: { kind: "keys", keys: [{ id: parsed.id, publicKey: parsed.publicKey }], label: `the key in SMOLVM_IMAGES_KEY (${parsed.id})` },
    kind: "mirror",
    version,
  };
}

function releaseTrust(): Trust {
  return { kind: "keys", keys: RELEASE_KEYS, label: "a smolvm release key" };
}

function baseUrlOf(template: string, version: string, what: string): string {
  const text = template.replaceAll("{version}", version);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidInputError(`Cannot use ${what} "${text}": it is not a URL`, { hint: "e.g. https://example.org/smolvm/v{version}/" });
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new InvalidInputError(`Cannot use ${what} "${text}": only http and https are supported`, {
      hint: "serve the release directory over HTTP(S)",
    });
  }
  if (url.username !== "" || url.password !== "") {
    throw new InvalidInputError(`Cannot use ${what}: credentials in the URL would be written to logs and errors`, {
      hint: "use a mirror that needs no credentials, or one on a private network",
    });
  }
  url.search = "";
  url.hash = "";
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return url.toString();
}
