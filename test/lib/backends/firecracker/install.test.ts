/**
 * Installing a pinned Firecracker release: a release archive of the real layout made by the test,
 * served over HTTP on 127.0.0.1, checked against pinned digests; a mismatch or a failed download
 * installs nothing and leaves nothing, and a download that cannot happen says how to do it by hand.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import {
  FIRECRACKER_RELEASE, type FirecrackerRelease, installFirecracker, manualInstall, releaseArchive,
} from "../../../../lib/backends/firecracker/install.ts";
import { HostDependencyMissingError, SmolError } from "../../../../lib/errors.ts";
import { envelope, runCli } from "../../../helpers/cli.ts";
import { rejection } from "../../../helpers/rejection.ts";

let dir: string;
let binDir: string;
let server: Server;
let served: Buffer;
let requests: number;
let url: string;

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** A release archive laid out as Firecracker's are: release-v<v>-<arch>/{firecracker,jailer}-v<v>-<arch>. */
function makeRelease(version: string): { archive: Buffer; release: FirecrackerRelease } {
  const work = join(dir, "build");
  const inner = join(work, `release-v${version}-x86_64`);
  mkdirSync(inner, { recursive: true });
  const firecracker = `#!/bin/sh\necho "Firecracker v${version}"\n`;
  const jailer = `#!/bin/sh\necho "Jailer v${version}"\n`;
  writeFileSync(join(inner, `firecracker-v${version}-x86_64`), firecracker);
  writeFileSync(join(inner, `jailer-v${version}-x86_64`), jailer);
  writeFileSync(join(inner, "SHA256SUMS"), "");
  const tgz = join(dir, "release.tgz");
  expect(spawnSync("tar", ["-czf", tgz, "-C", work, `release-v${version}-x86_64`]).status).toBe(0);
  const archive = readFileSync(tgz);
  const digests = { archive: sha256(archive), firecracker: sha256(firecracker), jailer: sha256(jailer) };
  return { archive, release: { version, sha256: { x86_64: digests, aarch64: digests } } };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-fc-install-"));
  binDir = join(dir, "bin");
  requests = 0;
  served = Buffer.alloc(0);
  server = createServer((request, response) => {
    requests++;
    if (request.url !== "/firecracker.tgz") {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "Content-Length": served.length }).end(served);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/firecracker.tgz`;
});

afterEach(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** What the bin directory holds, temporary directories included. */
const binEntries = () => (existsSync(binDir) ? readdirSync(binDir).sort() : []);

describe("installFirecracker", () => {
  test("installs both binaries once every digest matches, and does nothing the second time", async () => {
    const { archive, release } = makeRelease("9.9.9");
    served = archive;
    const progress: number[] = [];
    const installed = await installFirecracker({ release, url, binDir, arch: "x86_64", onProgress: (p) => p.fraction !== undefined && progress.push(p.fraction) });
    expect(installed).toEqual({
      version: "9.9.9", firecracker: join(binDir, "firecracker"), jailer: join(binDir, "jailer"),
      archiveSha256: release.sha256.x86_64.archive, alreadyInstalled: false,
    });
    expect(binEntries()).toEqual(["firecracker", "jailer"]);
    expect(statSync(installed.firecracker).mode & 0o777).toBe(0o755);
    expect(spawnSync(installed.firecracker, ["--version"]).stdout.toString()).toBe("Firecracker v9.9.9\n");
    expect(progress.at(-1)).toBe(1);

    const again = await installFirecracker({ release, url, binDir, arch: "x86_64" });
    expect(again.alreadyInstalled).toBe(true);
    expect(requests).toBe(1);
  });

  test("an archive that does not match the pinned digest installs nothing", async () => {
    const { archive, release } = makeRelease("9.9.9");
    served = archive;
    const pinned = { ...release, sha256: { ...release.sha256, x86_64: { ...release.sha256.x86_64, archive: "0".repeat(64) } } };
    const error = await rejection(installFirecracker({ release: pinned, url, binDir, arch: "x86_64" }), SmolError);
    expect(error.code).toBe("INTEGRITY_FAILED");
    expect(error.message).toContain(`has SHA-256 ${release.sha256.x86_64.archive}, not the pinned ${"0".repeat(64)}`);
    expect(binEntries()).toEqual([]);
  });

  test("a binary that does not match its pinned digest installs nothing", async () => {
    const { archive, release } = makeRelease("9.9.9");
    served = archive;
    const pinned = { ...release, sha256: { ...release.sha256, x86_64: { ...release.sha256.x86_64, jailer: "1".repeat(64) } } };
    const error = await rejection(installFirecracker({ release: pinned, url, binDir, arch: "x86_64" }), SmolError);
    expect(error.code).toBe("INTEGRITY_FAILED");
    expect(error.message).toContain("release-v9.9.9-x86_64/jailer-v9.9.9-x86_64 has SHA-256");
    expect(binEntries()).toEqual([]);
  });

  test("a download that fails says how to install by hand, exactly, and leaves nothing", async () => {
    const error = await rejection(installFirecracker({ url: url.replace("firecracker.tgz", "missing.tgz"), binDir, arch: "x86_64" }), HostDependencyMissingError);
    expect(error.message).toContain("the server answered 404");
    expect(error.hint).toContain(manualInstall(FIRECRACKER_RELEASE, "x86_64", binDir));
    expect(binEntries()).toEqual([]);
  });
});

test("the manual install is the pinned release's own commands, its digest checked", () => {
  const archive = releaseArchive(FIRECRACKER_RELEASE, "x86_64");
  expect(archive.url).toBe("https://github.com/firecracker-microvm/firecracker/releases/download/v1.17.0/firecracker-v1.17.0-x86_64.tgz");
  expect(manualInstall(FIRECRACKER_RELEASE, "x86_64", "/opt/smolvm/bin").split("\n")).toEqual([
    `curl -fLO ${archive.url}`,
    'echo "06094a1108ae9e82aa4c23a775aa92758f53f1175d422270d9d6162cb9ade558  firecracker-v1.17.0-x86_64.tgz" | sha256sum -c -',
    "tar -xzf firecracker-v1.17.0-x86_64.tgz",
    "install -D -m 0755 release-v1.17.0-x86_64/firecracker-v1.17.0-x86_64 /opt/smolvm/bin/firecracker",
    "install -D -m 0755 release-v1.17.0-x86_64/jailer-v1.17.0-x86_64 /opt/smolvm/bin/jailer",
  ]);
});

test("smolvm setup --firecracker installs the pinned release, or where GitHub cannot be reached says how by hand", async () => {
  const result = await runCli(["setup", "--firecracker", "--json"], { timeoutMs: 300_000 });
  const json = envelope(result);
  if (json.ok) {
    expect(json.data.version).toBe(FIRECRACKER_RELEASE.version);
    expect(existsSync(json.data.firecracker)).toBe(true);
  } else {
    expect(result.code).not.toBe(0);
    expect(json.error.code).toBe("HOST_DEPENDENCY_MISSING");
    expect(json.error.message).toContain("Cannot download Firecracker v1.17.0 from https://github.com/");
    expect(json.error.hint).toContain('| sha256sum -c -');
    expect(json.error.hint).toContain(`${process.env.SMOLVM_HOME}/bin/firecracker`);
  }
}, 300_000);
