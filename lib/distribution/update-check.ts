/**
 * `smolvm version --check`: is there a newer release? The network is optional here: an offline
 * host, a mirror that is down or an answer that makes no sense all end in `unknown` with the
 * reason, never in an error, so scripts can run the check unconditionally.
 */
import { compareVersions, isVersion } from "./semver.ts";
import { releaseAssetUrl, releasesUrl, RELEASE_FILES } from "./release-url.ts";

export type UpdateStatus = "update-available" | "up-to-date" | "ahead" | "unknown";

export interface UpdateCheck {
  status: UpdateStatus;
  /** The version asking. */
  current: string;
  /** The newest release, when it could be read. */
  latest?: string;
  /** Where the newest release's version was read from. */
  url: string;
  /** Why the status is `unknown`. */
  reason?: string;
}

export interface CheckForUpdateOptions {
  current: string;
  /** Releases base URL; default `SMOLVM_INSTALL_URL` or the project's GitHub releases. */
  baseUrl?: string;
  timeoutMs?: number;
}

/** A version file is one short line; anything longer is not one. */
const MAX_ANSWER_BYTES = 256;

export async function checkForUpdate(options: CheckForUpdateOptions): Promise<UpdateCheck> {
  const url = releaseAssetUrl(options.baseUrl ?? releasesUrl(), "latest", RELEASE_FILES.version);
  const timeoutMs = options.timeoutMs ?? 5000;
  const unknown = (reason: string): UpdateCheck => ({ status: "unknown", current: options.current, url, reason });
  let answer: string;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "follow" });
    if (!response.ok) {
      await response.body?.cancel();
      return unknown(`${url} answered HTTP ${response.status}`);
    }
    const bounded = await readBounded(response, MAX_ANSWER_BYTES);
    if (bounded === undefined) return unknown(`${url} answered with more than ${MAX_ANSWER_BYTES} bytes, which is no version`);
    answer = bounded;
  } catch (error) {
    const name = (error as Error).name;
    if (name === "TimeoutError" || name === "AbortError") return unknown(`no answer from ${url} within ${timeoutMs / 1000} s (offline?)`);
    return unknown(`cannot reach ${url} (offline?): ${(error as Error).message}`);
  }
  const latest = answer.trim().replace(/^v/, "");
  if (!isVersion(latest)) return unknown(`${url} did not answer with a version (got ${JSON.stringify(answer.slice(0, 40))})`);
  if (!isVersion(options.current)) return { ...unknown(`this build's version "${options.current}" cannot be compared`), latest };
  const order = compareVersions(options.current, latest);
  return { status: order < 0 ? "update-available" : order === 0 ? "up-to-date" : "ahead", current: options.current, latest, url };
}

/** The body as text, or undefined when it is longer than `limit` bytes (reading stops there). */
async function readBounded(response: Response, limit: number): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
  }
  return Buffer.concat(chunks).toString("utf8");
}
