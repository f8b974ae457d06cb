/**
 * From nothing to a running sandbox with published images: a fresh smolvm home and an empty
 * cache, pointed at a loopback mirror serving a real release, run a command in a real VM
 * without building a kernel or an image.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { envelope, runCli } from "../helpers/cli.ts";
import type { ImageMirror } from "../helpers/image-mirror.ts";
import { freshCache, type TestRelease, serveTestRelease } from "../helpers/release.ts";
import { cleanupAfterAll } from "../helpers/vm.ts";

let release: TestRelease;
let server: ImageMirror;

serveTestRelease((built, served) => {
  release = built;
  server = served;
});
cleanupAfterAll();

describe("published images end to end", () => {
  test("a fresh home and an empty cache reach a running sandbox with no kernel or image build", async () => {
    const cache = freshCache();
    const env = { SMOLVM_CACHE: cache, ...release.env(server.url) };

    const setup = await runCli(["setup", "--skip-packages", "--image", "base", "--json"], { env, timeoutMs: 300_000 });
    expect(setup.code).toBe(0);
    expect(envelope(setup).data.origin).toMatchObject({ kind: "published", version: release.manifest.smolvmVersion });

    const run = await runCli(["run", "--image", "base", "--", "sh", "-c", "uname -m; cat /etc/hostname >/dev/null && echo ok"], { env, timeoutMs: 300_000 });
    expect(run.stderr).not.toMatch(/^error:/m);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("x86_64\nok\n");

    // Nothing was built: no kernel builds, no local image builds, only the published copies.
    const kernels = join(cache, "kernels");
    expect(existsSync(kernels) ? readdirSync(kernels).filter((n) => !n.startsWith(".")) : []).toEqual([]);
    const images = readdirSync(join(cache, "images"));
    expect(images.filter((n) => /-(x86_64|aarch64)-[0-9a-f]{16}$/.test(n))).toEqual([]);
    expect(images).toContain(release.manifest.smolvmVersion);
    // The manifest was fetched once for setup; the run used the cached one.
    expect(server.count("/manifest.json")).toBe(1);
    expect(server.count("/base-x86_64.ext4.zst")).toBe(1);
  }, 600_000);
});
