/**
 * Getting the trusted manifest of this version's release: from the cache when it is fresh (so a
 * warm cache works offline and a create costs no request), else from the source, checked
 * against the trust root, then kept. A cached copy is checked again on every load against the
 * trust setting in force now, so changing SMOLVM_IMAGES_KEY or the pin never keeps trusting
 * what the old setting let in.
 *
 * A source that could not be reached is remembered for UNREACHABLE_MEMORY_MS, so that a host
 * without a network (a laptop on a plane) pays the connect timeout once, not on every create.
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "../zod.ts";
import { SmolError } from "../errors.ts";
import { DownloadError, httpGet } from "./http.ts";
import { MANIFEST_FILE, parseManifest, SIGNATURE_FILE, type ReleaseManifest } from "./manifest.ts";
import type { PublishedSource } from "./source.ts";
import { sha256Hex, verifyManifest } from "./trust.ts";
import { versionDir } from "./store.ts";

/** How long a fetched manifest is used without asking the source again. */
export const MANIFEST_MAX_AGE_MS = 60 * 60 * 1000;
/** How long an unreachable source is not asked again (unless a pull asks explicitly). */
export const UNREACHABLE_MEMORY_MS = 10 * 60 * 1000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 4_000;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
const MAX_MANIFEST_BYTES = 1 << 20;
const MAX_SIGNATURE_BYTES = 4096;

export interface LoadManifestOptions {
  source: PublishedSource;
  /** `always`: ask the source even when the cache is fresh (a pull); `never`: cache only. */
  refresh?: "always" | "when-stale" | "never";
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  signal?: AbortSignal;
  /** Injected clock for tests. */
  now?: () => number;
}

export interface LoadedManifest {
  manifest: ReleaseManifest;
  /** SHA-256 of the manifest's bytes. */
  sha256: string;
  url: string;
  fetchedAt: string;
  fromCache: boolean;
}

const fetchedSchema = z.object({ url: z.string(), fetchedAt: z.string(), sha256: z.string() });
const unreachableSchema = z.object({ url: z.string(), at: z.number(), message: z.string() });

export async function loadManifest(o: LoadManifestOptions): Promise<LoadedManifest> {
  const now = o.now ?? Date.now;
  const { source } = o;
  const url = new URL(MANIFEST_FILE, source.baseUrl).href;
  const cached = await readCached(source, url);
  const refresh = o.refresh ?? "when-stale";
  if (cached && refresh !== "always" && (refresh === "never" || (cached.url === url && now() - Date.parse(cached.fetchedAt) < MANIFEST_MAX_AGE_MS))) {
    return cached;
  }
  if (refresh === "never") {
    throw new DownloadError("unreachable", `Cannot use published images: no manifest of ${source.baseUrl} is cached`, url, {
      hint: "run `smolvm image pull` while online",
    });
  }
  const remembered = await readUnreachable(source.version);
  if (refresh !== "always" && remembered && remembered.url === url && now() - remembered.at < UNREACHABLE_MEMORY_MS) {
    if (cached) return cached;
    throw new DownloadError("unreachable", `Cannot download the image manifest from "${url}": ${remembered.message} (remembered; asked again after ${Math.round(UNREACHABLE_MEMORY_MS / 60000)} minutes)`, url, {
      hint: "`smolvm image pull` asks again at once; SMOLVM_USE_PUBLISHED=0 builds locally",
    });
  }

  let bytes: Uint8Array;
  let signature: Uint8Array | undefined;
  const get = { connectTimeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, stallTimeoutMs: o.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS, ...(o.signal ? { signal: o.signal } : {}) };
  const signatureUrl = new URL(SIGNATURE_FILE, source.baseUrl).href;
  try {
    bytes = await fetchSmall(url, "the image manifest", MAX_MANIFEST_BYTES, get);
    if (source.trust.kind === "keys") signature = await fetchSmall(signatureUrl, "the image manifest's signature", MAX_SIGNATURE_BYTES, get);
  } catch (error) {
    if (error instanceof DownloadError && error.reason === "unreachable") {
      await rememberUnreachable(source.version, url, error.message, now());
      if (cached) return cached;
    }
    throw error;
  }
  verifyManifest(bytes, signature, source.trust, { manifestUrl: url, signatureUrl });
  const manifest = parseManifest(bytes, { url });
  if (manifest.smolvmVersion !== source.version) {
    throw new SmolError("IO_ERROR", `Cannot use the image manifest "${url}": it is for smolvm ${manifest.smolvmVersion}, and this is ${source.version}`, {
      hint: "point SMOLVM_IMAGES_URL at the release of this version (`{version}` in the URL is replaced by it)",
      details: { url, reason: "version" },
    });
  }
  if (cached && source.trust.kind === "keys" && Date.parse(manifest.createdAt) < Date.parse(cached.manifest.createdAt)) {
    throw new SmolError("INTEGRITY_FAILED", `Cannot use the image manifest "${url}": it is older (${manifest.createdAt}) than the one already trusted (${cached.manifest.createdAt})`, {
      hint: "a mirror may be serving a stale or rolled-back release; check it, or remove the cached manifest to accept it",
      details: { url, reason: "rollback", cachedAt: cached.manifest.createdAt },
    });
  }
  const loaded: LoadedManifest = { manifest, sha256: sha256Hex(bytes), url, fetchedAt: new Date(now()).toISOString(), fromCache: false };
  await storeCached(source.version, bytes, signature, loaded);
  await rm(join(versionDir(source.version), ".unreachable.json"), { force: true });
  return loaded;
}

async function fetchSmall(url: string, what: string, cap: number, get: { connectTimeoutMs: number; stallTimeoutMs: number; signal?: AbortSignal }): Promise<Uint8Array> {
  const body = await httpGet(url, { what, ...get });
  if (body.length !== undefined && body.length > cap) {
    body.cancel();
    throw new DownloadError("size", `Cannot download ${what} from "${url}": it is ${body.length} bytes, more than ${cap}`, url, {
      hint: "check SMOLVM_IMAGES_URL",
    });
  }
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body.chunks) {
    total += chunk.length;
    if (total > cap) {
      body.cancel();
      throw new DownloadError("size", `Cannot download ${what} from "${url}": it is more than ${cap} bytes`, url, { hint: "check SMOLVM_IMAGES_URL" });
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** The cached manifest when it still passes the current trust setting. */
async function readCached(source: PublishedSource, url: string): Promise<LoadedManifest | undefined> {
  const dir = versionDir(source.version);
  try {
    const bytes = await readFile(join(dir, "release.json"));
    const signature = await readFile(join(dir, "release.json.sig")).catch(() => undefined);
    const fetched = fetchedSchema.parse(JSON.parse(await readFile(join(dir, "fetched.json"), "utf8")));
    verifyManifest(bytes, signature, source.trust, { manifestUrl: url, signatureUrl: `${url}.sig` });
    const manifest = parseManifest(bytes, { url: fetched.url });
    if (manifest.smolvmVersion !== source.version) return undefined;
    return { manifest, sha256: sha256Hex(bytes), url: fetched.url, fetchedAt: fetched.fetchedAt, fromCache: true };
  } catch {
    return undefined;
  }
}

async function storeCached(version: string, bytes: Uint8Array, signature: Uint8Array | undefined, loaded: LoadedManifest): Promise<void> {
  const dir = versionDir(version);
  await mkdir(dir, { recursive: true });
  const put = async (name: string, data: Uint8Array | string) => {
    const temp = join(dir, `.${name}.${process.pid}.tmp`);
    await writeFile(temp, data);
    await rename(temp, join(dir, name));
  };
  // The signature before the manifest: a reader between the two renames sees the old manifest
  // with the new signature, fails its check and fetches again, never trusts a mismatch.
  if (signature) await put("release.json.sig", signature);
  else await rm(join(dir, "release.json.sig"), { force: true });
  await put("release.json", bytes);
  await put("fetched.json", JSON.stringify({ url: loaded.url, fetchedAt: loaded.fetchedAt, sha256: loaded.sha256 }, null, 2) + "\n");
}

async function readUnreachable(version: string): Promise<z.infer<typeof unreachableSchema> | undefined> {
  try {
    return unreachableSchema.parse(JSON.parse(await readFile(join(versionDir(version), ".unreachable.json"), "utf8")));
  } catch {
    return undefined;
  }
}

/** Notes that `url` did not answer, so creates skip it for a while. */
export async function rememberUnreachable(version: string, url: string, message: string, at: number = Date.now()): Promise<void> {
  const dir = versionDir(version);
  await mkdir(dir, { recursive: true }).catch(() => {});
  const temp = join(dir, `.unreachable.${process.pid}.tmp`);
  await writeFile(temp, JSON.stringify({ url, at, message })).catch(() => {});
  await rename(temp, join(dir, ".unreachable.json")).catch(() => {});
}

/** Whether `url` failed to answer within the memory window. */
export async function recentlyUnreachable(version: string, url: string, now: number = Date.now()): Promise<boolean> {
  const remembered = await readUnreachable(version);
  return remembered !== undefined && remembered.url === url && now - remembered.at < UNREACHABLE_MEMORY_MS;
}
