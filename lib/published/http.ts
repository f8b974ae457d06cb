/**
 * One HTTP GET for published images, with the limits an untrusted server needs: redirects
 * followed by hand (at most MAX_REDIRECTS, never from https down to http), a deadline for the
 * response headers (which covers DNS, connect and TLS: an offline host must fail fast), and a
 * stall timeout between body chunks. Built on fetch, which Bun, Deno and Node share.
 */
import { SmolError, type SmolErrorOptions } from "../errors.ts";
import { versionInfo } from "../version.ts";

export const MAX_REDIRECTS = 5;

export interface HttpGetOptions {
  /** What is being fetched, for errors: `image "base" (base-x86_64.ext4.zst)`. */
  what: string;
  /** Ask for the bytes from this offset on (HTTP Range). */
  from?: number;
  /** Deadline for the response headers, redirects included. */
  connectTimeoutMs: number;
  /** Longest silence between two body chunks. */
  stallTimeoutMs: number;
  signal?: AbortSignal;
}

export interface HttpBody {
  status: number;
  /** The URL that answered, after redirects. */
  url: string;
  /** Content-Length, when the server sent one. */
  length: number | undefined;
  /** For a 206: where the bytes start. */
  rangeStart: number | undefined;
  chunks: AsyncIterable<Uint8Array>;
  /** Drops the connection (after an error, or when the caller has what it needs). */
  cancel(): void;
}

/**
 * Why a download failed, for callers that decide between falling back and reporting:
 * `unreachable` (no answer at all: offline, DNS, refused, no headers in time) is the one a
 * create may quietly fall back from.
 */
export type DownloadFailure = "unreachable" | "http" | "stall" | "redirects" | "size" | "checksum" | "format" | "disk" | "interrupted";

export class DownloadError extends SmolError {
  readonly reason: DownloadFailure;
  readonly url: string;

  constructor(reason: DownloadFailure, message: string, url: string, options: SmolErrorOptions = {}) {
    // A file that does not match its manifest is an integrity failure; the rest are I/O.
    const code = reason === "checksum" || reason === "size" || reason === "format" ? "INTEGRITY_FAILED" : "IO_ERROR";
    super(code, message, { ...options, details: { ...options.details, url, reason } });
    this.reason = reason;
    this.url = url;
  }
}

/** GET `url`; resolves once a 200 or 206 answered, throws DownloadError otherwise. */
export async function httpGet(url: string, options: HttpGetOptions): Promise<HttpBody> {
  const controller = new AbortController();
  const abortOuter = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", abortOuter, { once: true });
  let timedOut = false;
  const headerTimer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.connectTimeoutMs);
  const fail = (reason: DownloadFailure, why: string, hint: string, at = url, cause?: unknown) =>
    new DownloadError(reason, `Cannot download ${options.what} from "${at}": ${why}`, at, {
      hint,
      ...(cause === undefined ? {} : { cause }),
    });
  const release = () => options.signal?.removeEventListener("abort", abortOuter);

  let current = url;
  let response: Response | undefined;
  try {
    for (let hop = 0; ; hop++) {
      try {
        response = await fetch(current, {
          redirect: "manual",
          signal: controller.signal,
          headers: {
            "accept-encoding": "identity",
            "user-agent": `smolvm/${versionInfo().version}`,
            ...(options.from ? { range: `bytes=${options.from}-` } : {}),
          },
        });
      } catch (cause) {
        if (options.signal?.aborted) throw fail("interrupted", "the download was interrupted", "run the command again to resume", current, cause);
        const why = timedOut ? `no answer within ${options.connectTimeoutMs} ms` : describeNetworkError(cause);
        throw fail("unreachable", why, "check the network connection (or SMOLVM_IMAGES_URL); SMOLVM_USE_PUBLISHED=0 builds locally", current, cause);
      }
      if (![301, 302, 303, 307, 308].includes(response.status)) break;
      await response.body?.cancel().catch(() => {});
      const location = response.headers.get("location");
      if (hop >= MAX_REDIRECTS) {
        throw fail("redirects", `more than ${MAX_REDIRECTS} redirects (a redirect loop?)`, "check the server's redirects", current);
      }
      let next: URL;
      try {
        next = new URL(location ?? "", current);
      } catch {
        throw fail("http", `a redirect to an invalid location ${JSON.stringify(location)}`, "check the server's redirects", current);
      }
      if (location === null || (next.protocol !== "https:" && next.protocol !== "http:")) {
        throw fail("http", `a redirect without a usable location ${JSON.stringify(location)}`, "check the server's redirects", current);
      }
      if (new URL(current).protocol === "https:" && next.protocol === "http:") {
        throw fail("http", `a redirect from https down to plain http (${next.href})`, "the server must keep redirects on https", current);
      }
      current = next.href;
    }
  } catch (error) {
    clearTimeout(headerTimer);
    release();
    throw error;
  }
  clearTimeout(headerTimer);

  const ok = response.status === 200 || (response.status === 206 && options.from !== undefined);
  if (!ok) {
    await response.body?.cancel().catch(() => {});
    release();
    const hint = response.status === 404
      ? "the release does not have this file: check SMOLVM_IMAGES_URL, or build locally with SMOLVM_USE_PUBLISHED=0"
      : "try again later; SMOLVM_USE_PUBLISHED=0 builds locally";
    throw fail("http", `the server answered ${response.status} ${response.statusText}`.trimEnd(), hint, current);
  }
  const lengthHeader = response.headers.get("content-length");
  const length = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
  let rangeStart: number | undefined;
  if (response.status === 206) {
    const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers.get("content-range") ?? "");
    if (!m) {
      await response.body?.cancel().catch(() => {});
      release();
      throw fail("http", "a partial answer (206) without a valid Content-Range", "the server's range support is broken; remove the partial download", current);
    }
    rangeStart = Number(m[1]);
  }
  const reader = response.body?.getReader();
  const final = current;
  const stallTimeoutMs = options.stallTimeoutMs;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (reader === undefined) return;
    let finished = false;
    try {
      for (;;) {
        let stallTimer: ReturnType<typeof setTimeout> | undefined;
        const stalled = new Promise<"stalled">((resolve) => {
          stallTimer = setTimeout(() => resolve("stalled"), stallTimeoutMs);
        });
        let next: Awaited<ReturnType<typeof reader.read>> | "stalled";
        try {
          next = await Promise.race([reader.read(), stalled]);
        } catch (cause) {
          if (options.signal?.aborted) throw fail("interrupted", "the download was interrupted", "run the command again to resume", final, cause);
          throw fail("http", `the connection broke (${describeNetworkError(cause)})`, "run the command again to resume where it stopped", final, cause);
        } finally {
          clearTimeout(stallTimer);
        }
        if (next === "stalled") {
          controller.abort();
          throw fail("stall", `no data for ${stallTimeoutMs >= 1000 ? `${Math.round(stallTimeoutMs / 1000)} s` : `${stallTimeoutMs} ms`}`, "the server stalled; run the command again to resume", final);
        }
        if (next.done) {
          finished = true;
          return;
        }
        yield next.value;
      }
    } finally {
      // Stopped early (an error here or in the consumer): drop the connection.
      if (!finished) {
        controller.abort();
        await reader.cancel().catch(() => {});
      }
      release();
    }
  }
  return {
    status: response.status,
    url: final,
    length,
    rangeStart,
    chunks: chunks(),
    cancel: () => {
      controller.abort();
      release();
    },
  };
}

function describeNetworkError(cause: unknown): string {
  const error = cause as { code?: string; message?: string; cause?: { code?: string } } | undefined;
  const code = error?.code ?? error?.cause?.code;
  const message = error?.message ?? String(cause);
  return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
}
