/** `version --check` against real HTTP servers on 127.0.0.1: newer, same, older, broken, unreachable. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkForUpdate } from "../../../lib/distribution/update-check.ts";
import { envelope, runCli } from "../../helpers/cli.ts";
import { serveRelease, type ReleaseServer } from "../../helpers/release-server.ts";

let root: string;
let server: ReleaseServer;
const latestFile = () => join(root, "latest", "download", "VERSION");

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "smolvm-update-"));
  mkdirSync(join(root, "latest", "download"), { recursive: true });
  server = await serveRelease(root);
});
afterAll(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

test("newer, same and older releases are told apart", async () => {
  for (const [latest, status] of [["0.2.0", "update-available"], ["0.1.0", "up-to-date"], ["0.0.9", "ahead"], ["v0.1.1\n", "update-available"]] as const) {
    writeFileSync(latestFile(), latest);
    const check = await checkForUpdate({ current: "0.1.0", baseUrl: server.url });
    expect(check).toEqual({ status, current: "0.1.0", latest: latest.trim().replace(/^v/, ""), url: `${server.url}/latest/download/VERSION` });
  }
});

test("a missing file, an answer that is not a version, or an oversized answer is unknown, not an error", async () => {
  rmSync(latestFile(), { force: true });
  expect(await checkForUpdate({ current: "0.1.0", baseUrl: server.url })).toMatchObject({ status: "unknown", reason: `${server.url}/latest/download/VERSION answered HTTP 404` });
  writeFileSync(latestFile(), "<html>rate limited</html>");
  expect((await checkForUpdate({ current: "0.1.0", baseUrl: server.url })).reason).toContain("did not answer with a version");
  writeFileSync(latestFile(), `0.2.0${" ".repeat(10_000)}`);
  expect((await checkForUpdate({ current: "0.1.0", baseUrl: server.url })).reason).toContain("more than 256 bytes");
});

test("an unreachable or stalling server is reported as such, within the timeout", async () => {
  const port = await closedPort();
  const refused = await checkForUpdate({ current: "0.1.0", baseUrl: `http://127.0.0.1:${port}` });
  expect(refused.status).toBe("unknown");
  expect(refused.reason).toStartWith(`cannot reach http://127.0.0.1:${port}/latest/download/VERSION (offline?)`);
  // The server sends half of this (short of the size limit) and then nothing more.
  writeFileSync(latestFile(), `0.2.0\n${" ".repeat(100)}`);
  server.faults.set("/latest/download/VERSION", "stall");
  try {
    const started = Date.now();
    const stalled = await checkForUpdate({ current: "0.1.0", baseUrl: server.url, timeoutMs: 300 });
    expect(stalled.status).toBe("unknown");
    expect(stalled.reason).toContain("within 0.3 s");
    expect(Date.now() - started).toBeLessThan(5000);
  } finally {
    server.faults.clear();
  }
});

test("`smolvm version --check` prints the verdict and exits 0 whatever the network says", async () => {
  writeFileSync(latestFile(), "9.0.0\n");
  const newer = await runCli(["version", "--check"], { env: { SMOLVM_INSTALL_URL: server.url } });
  expect(newer.code).toBe(0);
  expect(newer.stdout).toContain("smolvm 9.0.0 is available (this is 0.1.0); upgrade: git pull");
  const json = envelope(await runCli(["version", "--check", "--json"], { env: { SMOLVM_INSTALL_URL: server.url } }));
  expect(json.data.check).toMatchObject({ status: "update-available", latest: "9.0.0", current: json.data.version });
  expect(json.data.commit).toMatch(/^([0-9a-f]{40}|unknown)$/);
  writeFileSync(latestFile(), `${json.data.version}\n`);
  expect((await runCli(["version", "--check"], { env: { SMOLVM_INSTALL_URL: server.url } })).stdout).toContain("This is the latest release");
  writeFileSync(latestFile(), "0.0.1\n");
  expect((await runCli(["version", "--check"], { env: { SMOLVM_INSTALL_URL: server.url } })).stdout).toContain("newer than the latest release (0.0.1)");
  const offline = await runCli(["version", "--check", "--json"], { env: { SMOLVM_INSTALL_URL: `http://127.0.0.1:${await closedPort()}` } });
  expect(offline.code).toBe(0);
  expect(envelope(offline).data.check.status).toBe("unknown");
  const bad = await runCli(["version", "--check"], { env: { SMOLVM_INSTALL_URL: "ftp://x" } });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("only http and https");
});
