import { describe, expect, test } from "bun:test";
import { generateSigningKey, parsePublicKey, RELEASE_KEYS, sha256Hex, signManifest, verifyManifest, type Trust } from "../../../lib/published/trust.ts";
import { publishedEnabled, publishedSource, RELEASES_URL } from "../../../lib/published/source.ts";

const origin = { manifestUrl: "http://127.0.0.1:1/manifest.json", signatureUrl: "http://127.0.0.1:1/manifest.json.sig" };
const manifest = Buffer.from('{"schema":1}\n');

function keysTrust(publicKey: string): Trust {
  const parsed = parsePublicKey(publicKey, "test key");
  return { kind: "keys", keys: [{ id: parsed.id, publicKey }], label: "the test key" };
}

describe("manifest signatures", () => {
  const key = generateSigningKey();
  const signed = signManifest(manifest, key.privateKeyPem);

  test("a manifest signed by a trusted key verifies; one altered byte does not", () => {
    expect(signed.keyId).toBe(key.id);
    verifyManifest(manifest, Buffer.from(signed.text), keysTrust(key.publicKey), origin);
    const altered = Buffer.from(manifest);
    altered[2] = altered[2]! ^ 1;
    expect(() => verifyManifest(altered, Buffer.from(signed.text), keysTrust(key.publicKey), origin))
      .toThrow(`Cannot trust the image manifest "${origin.manifestUrl}": its signature does not match its contents`);
  });

  test("another key, a missing or malformed signature are refused", () => {
    const other = generateSigningKey();
    expect(() => verifyManifest(manifest, Buffer.from(signed.text), keysTrust(other.publicKey), origin)).toThrow(`it is signed by key ${key.id}, which is not the test key`);
    expect(() => verifyManifest(manifest, undefined, keysTrust(key.publicKey), origin)).toThrow("it has no signature");
    expect(() => verifyManifest(manifest, Buffer.from("{}"), keysTrust(key.publicKey), origin)).toThrow("is malformed");
    // A signature made by another key but labelled with the trusted key's id.
    const forged = JSON.parse(signManifest(manifest, other.privateKeyPem).text);
    forged.keyId = key.id;
    expect(() => verifyManifest(manifest, Buffer.from(JSON.stringify(forged)), keysTrust(key.publicKey), origin)).toThrow("does not match its contents");
  });

  test("a pinned SHA-256 trusts exactly those bytes", () => {
    verifyManifest(manifest, undefined, { kind: "sha256", sha256: sha256Hex(manifest), label: "pin" }, origin);
    expect(() => verifyManifest(Buffer.from("{}"), undefined, { kind: "sha256", sha256: sha256Hex(manifest), label: "pin" }, origin)).toThrow("not the pinned");
  });

  test("the built-in release keys are valid ed25519 keys whose ids match", () => {
    expect(RELEASE_KEYS.length).toBeGreaterThan(0);
    for (const k of RELEASE_KEYS) expect(parsePublicKey(k.publicKey, "built-in key").id).toBe(k.id);
  });

  test("a signing key of another type is refused", () => {
    expect(() => signManifest(manifest, "not a key")).toThrow("the signing key is not a PEM private key");
  });
});

describe("image source from the environment", () => {
  const key = generateSigningKey();

  test("nothing set: the project's release for this version, trusted by the built-in keys", () => {
    const source = publishedSource({}, "1.2.3")!;
    expect(source.baseUrl).toBe(RELEASES_URL.replace("{version}", "1.2.3"));
    expect(source.kind).toBe("release");
    expect(source.trust).toMatchObject({ kind: "keys", keys: RELEASE_KEYS });
  });

  test("SMOLVM_USE_PUBLISHED=0 turns published images off", () => {
    for (const value of ["0", "false", "no", "off"]) expect(publishedSource({ SMOLVM_USE_PUBLISHED: value }, "1.0.0")).toBeUndefined();
    expect(publishedEnabled({ SMOLVM_USE_PUBLISHED: "1" })).toBe(true);
  });

  test("a mirror without a trust setting is refused with a hint naming both settings", () => {
    let error: any;
    try {
      publishedSource({ SMOLVM_IMAGES_URL: "http://127.0.0.1:8080/rel" }, "1.0.0");
    } catch (e) {
      error = e;
    }
    expect(error.code).toBe("INVALID_INPUT");
    expect(error.message).toBe('Cannot use the image mirror "http://127.0.0.1:8080/rel/": it has no trust setting');
    expect(error.hint).toContain("SMOLVM_IMAGES_KEY");
    expect(error.hint).toContain("SMOLVM_IMAGES_SHA256");
  });

  test("a mirror with a key, the release keys, or a pin; {version} is replaced", () => {
    const withKey = publishedSource({ SMOLVM_IMAGES_URL: "https://mirror.example/smolvm/v{version}", SMOLVM_IMAGES_KEY: key.publicKey }, "2.0.0")!;
    expect(withKey.baseUrl).toBe("https://mirror.example/smolvm/v2.0.0/");
    expect(withKey.trust).toMatchObject({ kind: "keys", keys: [{ id: key.id, publicKey: key.publicKey }] });
    expect(publishedSource({ SMOLVM_IMAGES_URL: "https://m.example/", SMOLVM_IMAGES_KEY: "release" }, "2.0.0")!.trust).toMatchObject({ keys: RELEASE_KEYS });
    expect(publishedSource({ SMOLVM_IMAGES_URL: "https://m.example/", SMOLVM_IMAGES_SHA256: "A".repeat(64) }, "2.0.0")!.trust)
      .toMatchObject({ kind: "sha256", sha256: "a".repeat(64) });
  });

  test("bad settings are refused: a malformed key or pin, both at once, a trust setting alone, a non-HTTP URL", () => {
    const url = "http://127.0.0.1:1/";
    expect(() => publishedSource({ SMOLVM_IMAGES_URL: url, SMOLVM_IMAGES_KEY: "abc" }, "1.0.0")).toThrow("it is not an ed25519 public key");
    expect(() => publishedSource({ SMOLVM_IMAGES_URL: url, SMOLVM_IMAGES_SHA256: "abc" }, "1.0.0")).toThrow("is not a SHA-256");
    expect(() => publishedSource({ SMOLVM_IMAGES_URL: url, SMOLVM_IMAGES_KEY: key.publicKey, SMOLVM_IMAGES_SHA256: "a".repeat(64) }, "1.0.0")).toThrow("both");
    expect(() => publishedSource({ SMOLVM_IMAGES_KEY: key.publicKey }, "1.0.0")).toThrow("SMOLVM_IMAGES_URL is not set");
    expect(() => publishedSource({ SMOLVM_IMAGES_URL: "file:///tmp/rel", SMOLVM_IMAGES_KEY: key.publicKey }, "1.0.0")).toThrow("only http and https");
    expect(() => publishedSource({ SMOLVM_IMAGES_URL: "https://u:p@m.example/", SMOLVM_IMAGES_KEY: key.publicKey }, "1.0.0")).toThrow("credentials");
  });
});
