/**
 * `smolvm image pull` as separate processes against a real loopback mirror: a process killed
 * with SIGKILL mid-download (the next pull resumes it), one ended by SIGTERM (it cleans up),
 * two pulls at once (one download), a full disk during the unpack (a small tmpfs in a private
 * mount namespace), and the JSON and listing a user sees.
 */
import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { findRow, kernelFileName } from "../../../lib/published/manifest.ts";
import { envelope, repoRoot, runCli } from "../../helpers/cli.ts";
import type { ImageMirror } from "../../helpers/image-mirror.ts";
import { waitUntil } from "../../helpers/vm.ts";
import { freshCache, type TestRelease, serveTestRelease } from "../../helpers/release.ts";

let release: TestRelease;
let server: ImageMirror;
const ROOTFS = "/base-x86_64.ext4.zst";
const KERNEL = `/${kernelFileName("x86_64")}`;

serveTestRelease((built, served) => {
  release = built;
  server = served;
});

const row = () => findRow(release.manifest, "base", "x86_64", "qemu")!;
const versionDir = (cache: string) => join(cache, "images", release.manifest.smolvmVersion);
const entries = (cache: string) => (existsSync(versionDir(cache)) ? readdirSync(versionDir(cache)).sort() : []);
const partials = (cache: string) => (existsSync(join(versionDir(cache), ".downloads")) ? readdirSync(join(versionDir(cache), ".downloads")) : []);
const env = (cache: string) => ({ SMOLVM_CACHE: cache, ...release.env(server.url) });

function startPull(cache: string, extra: string[] = []) {
  return spawn(process.execPath, [join(repoRoot, "main.ts"), "image", "pull", "base", ...extra], {
    env: { ...process.env, NO_COLOR: "1", ...env(cache) },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function partialSize(cache: string): number {
  const name = partials(cache).find((n) => n.startsWith("base-x86_64.ext4.zst-"));
  return name === undefined ? 0 : statSync(join(versionDir(cache), ".downloads", name)).size;
}

describe("image pull, process by process", () => {
  test("prints one JSON document; image list shows where each image came from", async () => {
    const cache = freshCache();
    const result = await runCli(["image", "pull", "base", "--json"], { env: env(cache) });
    expect(result.code).toBe(0);
    const data = envelope(result).data;
    expect(data).toHaveLength(1);
    expect(data[0]).toMatchObject({ image: "base", arch: "x86_64", version: release.manifest.smolvmVersion, downloadedBytes: row().kernel.size + row().rootfs.size });
    const list = await runCli(["image", "list", "--json"], { env: env(cache) });
    expect(envelope(list).data).toEqual([expect.objectContaining({
      name: "base", arch: "x86_64", origin: expect.objectContaining({ kind: "published", version: release.manifest.smolvmVersion, sha256: row().rootfs.sha256 }),
      path: data[0].rootfs,
    })]);
    const human = await runCli(["image", "list"], { env: env(cache) });
    expect(human.stdout).toContain(`published ${release.manifest.smolvmVersion}`);
  });

  test("killed with SIGKILL mid-download: nothing half-made is used, and the next pull resumes with a Range", async () => {
    const cache = freshCache();
    const stallAt = Math.min(400_000, Math.floor(row().rootfs.size / 2));
    server.faults.set(ROOTFS, { kind: "stall", afterBytes: stallAt });
    const child = startPull(cache);
    try {
      await waitUntil(() => partialSize(cache) === stallAt, 60_000, "the partial download to reach the stall");
    } finally {
      child.kill("SIGKILL");
      server.faults.delete(ROOTFS);
    }
    await new Promise((r) => child.on("close", r));
    // No published rootfs and no sidecar for it; the kernel, pulled first, is complete.
    expect(entries(cache).filter((n) => n.startsWith("base-"))).toEqual([]);
    expect(partials(cache).length).toBe(1);

    const result = await runCli(["image", "pull", "base", "--json"], { env: env(cache) });
    expect(result.code).toBe(0);
    expect(server.requests.get(ROOTFS)!.at(-1)).toBe(`bytes=${stallAt}-`);
    const pulled = envelope(result).data[0];
    expect(pulled.downloadedBytes).toBe(row().rootfs.size - stallAt);
    expect(createHash("sha256").update(readFileSync(pulled.rootfs)).digest("hex")).toBe(row().rootfs.unpackedSha256);
    // The killed process's temp dir and lock are gone, and so is the partial.
    expect(entries(cache).filter((n) => n.startsWith(".tmp-") || n.startsWith(".lock-"))).toEqual([]);
    expect(partials(cache)).toEqual([]);
  });

  test("ended by SIGTERM mid-download: its temp dir and lock are removed at once, the partial kept", async () => {
    const cache = freshCache();
    server.faults.set(ROOTFS, { kind: "stall", afterBytes: 100_000 });
    const child = startPull(cache);
    try {
      await waitUntil(() => partialSize(cache) === 100_000, 60_000, "the partial download to reach the stall");
      child.kill("SIGTERM");
      const code = await new Promise((r) => child.on("close", (c, s) => r(c ?? s)));
      expect(code).toBe(143);
    } finally {
      server.faults.delete(ROOTFS);
    }
    expect(entries(cache).filter((n) => n.startsWith("base-") || n.startsWith(".tmp-") || n.startsWith(".lock-"))).toEqual([]);
    expect(partialSize(cache)).toBe(100_000);
  });

  test("two pulls at once download each file once", async () => {
    const cache = freshCache();
    const before = { rootfs: server.count(ROOTFS), kernel: server.count(KERNEL) };
    // A slow link, so the second process arrives while the first is still downloading.
    server.faults.set(KERNEL, { kind: "slow", bytesPerTick: 64 * 1024, tickMs: 20 });
    server.faults.set(ROOTFS, { kind: "slow", bytesPerTick: 64 * 1024, tickMs: 20 });
    try {
      const [a, b] = await Promise.all([
        runCli(["image", "pull", "base", "--json"], { env: env(cache) }),
        runCli(["image", "pull", "base", "--json"], { env: env(cache) }),
      ]);
      expect([a.code, b.code]).toEqual([0, 0]);
      expect(envelope(a).data[0].rootfs).toBe(envelope(b).data[0].rootfs);
      const downloaded = [envelope(a).data[0].downloadedBytes, envelope(b).data[0].downloadedBytes].sort((x, y) => x - y);
      expect(downloaded).toEqual([0, row().kernel.size + row().rootfs.size]);
    } finally {
      server.faults.delete(KERNEL);
      server.faults.delete(ROOTFS);
    }
    expect(server.count(ROOTFS) - before.rootfs).toBe(1);
    expect(server.count(KERNEL) - before.kernel).toBe(1);
  });

  test("a full disk during the unpack: a clear error naming the file and URL, and no half-written image", async () => {
    // Measure what a pull takes on disk (unpacked files are sparse; each download is removed
    // once unpacked), then give the next one room for the kernel and the image's download but
    // only half the unpacked image's blocks. Whichever file runs out first must say so.
    const measure = freshCache();
    const pulled = envelope(await runCli(["image", "pull", "base", "--json"], { env: env(measure) })).data[0];
    const allocated = (path: string) => statSync(path).blocks * 512;
    const roomKiB = Math.ceil((allocated(pulled.kernel) + row().rootfs.size + allocated(pulled.rootfs) / 2) / 1024) + 64;
    const cache = freshCache();
    const script = [
      "set -u",
      `mount -t tmpfs -o size=${roomKiB}k smolvm-test "$SMOLVM_CACHE"`,
      `"$BUN" "$MAIN" image pull base --json > "$OUT_DIR/out.json"; echo "exit=$?"`,
      'cd "$SMOLVM_CACHE" && find . | sort',
    ].join("\n");
    const outDir = freshCache();
    // Not spawnSync: the server answering the pull runs in this process.
    const child = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], {
      env: { ...process.env, ...env(cache), BUN: process.execPath, MAIN: join(repoRoot, "main.ts"), OUT_DIR: outDir, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const run = { stdout: "", stderr: "" };
    child.stdout.on("data", (c) => (run.stdout += c));
    child.stderr.on("data", (c) => (run.stderr += c));
    await new Promise((r) => child.on("close", r));
    expect(run.stderr).toBe("");
    const lines = run.stdout.trim().split("\n");
    expect(lines[0]).toBe("exit=1");
    const result = JSON.parse(readFileSync(join(outDir, "out.json"), "utf8"));
    expect(result.ok).toBe(false);
    expect(result.error.message).toMatch(
      /^Cannot unpack (image "base" for x86_64 \(base-x86_64\.ext4\.zst\)|the x86_64 kernel \(kernel-x86_64\.vmlinux\.zst\)) from "http:\/\/127\.0\.0\.1:\d+\/(base-x86_64\.ext4|kernel-x86_64\.vmlinux)\.zst": the disk is full/,
    );
    console.log(`full disk: ${result.error.message}`);
    expect(result.error.hint).toContain("free some space");
    const files = lines.slice(1);
    const version = release.manifest.smolvmVersion;
    const failed = result.error.message.includes("kernel") ? "kernel" : "base";
    expect(files.filter((f) => f.startsWith(`./images/${version}/${failed}-`) || f.includes("/.tmp-") || f.includes("/.lock-"))).toEqual([]);
    // A sidecar only beside a complete file: the kernel, when it was the image that failed.
    expect(files.filter((f) => f.endsWith(".from-sha256"))).toEqual(failed === "kernel" ? [] : [expect.stringContaining("/kernel-x86_64-")]);
    // The mount was private to that namespace: the cache directory here is still empty.
    expect(readdirSync(cache)).toEqual([]);
  });
});
