/**
 * Published images: release builds, the trusted manifest, pulls into the cache, and the
 * resolver that picks published or local artifacts for a new sandbox.
 */
export { buildRelease, readSigningKey, type ReleaseBuildOptions, type ReleaseBuildResult } from "./release.ts";
export { describeOrigin, listCachedImages, removeCachedImage, type CachedImage } from "./catalog.ts";
export { DownloadError, type DownloadFailure } from "./http.ts";
export { MANIFEST_SCHEMA, VMMS, type ManifestRow, type ReleaseManifest, type Vmm } from "./manifest.ts";
export { pullImages, pullRow, type PulledRow, type PullImagesOptions, type PullProgress } from "./pull.ts";
export { resolveArtifacts, type ResolvedArtifacts, type ResolveOptions, type ResolveProgress } from "./resolve.ts";
export { publishedEnabled, publishedSource, RELEASES_URL, type PublishedSource } from "./source.ts";
export { generateSigningKey, RELEASE_KEYS } from "./trust.ts";
