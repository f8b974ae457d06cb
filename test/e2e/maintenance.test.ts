/**
 * `smolvm cleanup` and `smolvm prune` against real leftovers: sandboxes whose QEMU and
 * supervisor were killed with SIGKILL, and stale cache entries fabricated in a private cache
 * (the shared test cache is never pruned).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { pidAlive } from "../../lib/host/pids.ts";
import { listeningTcpPorts } from "../../lib/host/ports.ts";
import { paths } from "../../lib/paths.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import type { SandboxRecord } from "../../lib/state/record.ts";
import { envelope, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, processesMatching, waitUntil } from "../helpers/vm.ts";

setDefaultTimeout(180_000);

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

function record(name: string): SandboxRecord | undefined {
  const store = StateStore.open();
  try {
    return store.find(name);
  } finally {
    store.close();
  }
}

async function create(name: string): Promise<SandboxRecord> {
  const result = await runCli(["create", "--name", name, "--image", "base", "--json"]);
  if (result.code !== 0) throw new Error(`create ${name} failed: ${result.stdout}${result.stderr}`);
  return record(name)!;
}

describe("cleanup", () => {
  test("after kill -9 of QEMU and supervisor of 3 sandboxes, cleanup reclaims what they held but their disks; named, nothing of them is left; a live one is kept", async () => {
    const names = ["gone-1", "gone-2", "gone-3"];
    const doomed = await Promise.all(names.map(create));
    const keeper = await create("keeper");
    for (const vm of doomed) {
      process.kill(vm.supervisorPid!, "SIGKILL");
      process.kill(vm.vmmPid!, "SIGKILL");
    }
    await waitUntil(() => doomed.every((vm) => !pidAlive(vm.supervisorPid) && !pidAlive(vm.vmmPid)), 10_000, "the processes to die");
    // What they left: sockets and overlays on disk, rows holding their SSH ports.
    for (const vm of doomed) {
      expect(existsSync(join(paths.sandboxDir(vm.id), "disk.qcow2"))).toBe(true);
      expect(readdirSync(paths.sandboxDir(vm.id)).some((file) => file.endsWith(".sock"))).toBe(true);
    }

    // Their disks hold what their users wrote: kept, with everything else they held reclaimed.
    const dry = await runCli(["cleanup", "--dry-run", "--json"]);
    expect(dry.code).toBe(0);
    expect(envelope(dry).data.sandboxes).toEqual([]);
    expect(envelope(dry).data.kept.map((kept: { name: string }) => kept.name).sort()).toEqual(names);
    expect(doomed.every((vm) => record(vm.name) !== undefined && existsSync(paths.sandboxDir(vm.id)))).toBe(true);

    const kept = await runCli(["cleanup", "--json"]);
    expect(kept.code).toBe(0);
    expect(envelope(kept).data.sandboxes).toEqual([]);
    expect(envelope(kept).data.kept.map((entry: { name: string; reason: string }) => [entry.name, entry.reason]).sort()).toEqual(
      names.map((name) => [name, `it is failed and its directory holds its disk; \`smolvm cleanup ${name}\` removes it`]),
    );
    for (const vm of doomed) {
      expect(existsSync(join(paths.sandboxDir(vm.id), "disk.qcow2"))).toBe(true);
      expect(readdirSync(paths.sandboxDir(vm.id)).filter((file) => file.endsWith(".sock"))).toEqual([]);
      expect(record(vm.id)?.status).toBe("failed");
    }

    // Named, they go whole.
    const result = await runCli(["cleanup", ...names, "--json"]);
    expect(result.code).toBe(0);
    const report = envelope(result).data;
    expect(report.sandboxes.sort()).toEqual(names);
    expect(report.dryRun).toBe(false);

    const listening = listeningTcpPorts();
    for (const vm of doomed) {
      expect(processesMatching(vm.id)).toEqual([]);
      expect(existsSync(paths.sandboxDir(vm.id))).toBe(false); // sockets, overlay, logs
      expect(record(vm.id)).toBeUndefined(); // the row and with it the SSH port and name
      if (vm.sshPort !== null) expect(listening.has(vm.sshPort)).toBe(false);
    }
    expect(readdirSync(paths.sandboxesDir())).toEqual([keeper.id]);

    const again = await runCli(["exec", "keeper", "--", "echo", "alive"]);
    expect(again.stdout).toBe("alive\n");
    expect(envelope(await runCli(["cleanup", "--json"])).data.sandboxes).toEqual([]);

    // --all means what other sandbox tools document: the dead ones. A live sandbox survives it.
    const all = await runCli(["cleanup", "--all", "--json"]);
    expect(all.code).toBe(0);
    expect(envelope(all).data.sandboxes).toEqual([]);
    expect((await runCli(["exec", "keeper", "--", "echo", "still alive"])).stdout).toBe("still alive\n");
    // Deleting everything is delete --all.
    expect((await runCli(["delete", "--all", "--json"])).code).toBe(0);
    await waitUntil(() => record("keeper") === undefined && !existsSync(paths.sandboxDir(keeper.id)), 15_000, "the keeper to be deleted");
    await waitUntil(() => processesMatching(keeper.id).length === 0, 10_000, "the keeper's processes to end");
  });
});

describe("prune", () => {
  const cache = mkdtempSync(join(tmpdir(), "smolvm-prune-cache-"));
  afterAll(() => rmSync(cache, { recursive: true, force: true }));

  /** A cache entry with `manifest` and a payload file of `bytes` real (non-sparse) bytes. */
  function entry(dir: string, manifest: string | object, payload: string, bytes: number): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "manifest.json"), typeof manifest === "string" ? manifest : JSON.stringify(manifest));
    writeFileSync(join(dir, payload), randomBytes(bytes));
  }

  test("removes stale kernel and image entries, keeps current ones, and reports the bytes", async () => {
    const { kernel, base } = await prepareArtifacts();
    // Current entries: the shared cache's manifests, with small payloads.
    const currentKernel = join(cache, "kernels", basename(dirname(kernel)));
    mkdirSync(currentKernel, { recursive: true });
    copyFileSync(join(dirname(kernel), "manifest.json"), join(currentKernel, "manifest.json"));
    writeFileSync(join(currentKernel, basename(kernel)), "k");
    const currentImage = join(cache, "images", basename(dirname(base)));
    mkdirSync(currentImage, { recursive: true });
    copyFileSync(join(dirname(base), "manifest.json"), join(currentImage, "manifest.json"));
    writeFileSync(join(currentImage, "rootfs.ext4"), "i");
    // Stale entries: recipes no current source produces.
    const staleKernel = join(cache, "kernels", "x86_64-0000000000000000");
    entry(staleKernel, {
      arch: "x86_64", key: "0".repeat(64), artifact: "vmlinux", source: { sha256: "0".repeat(64), description: "old" },
      builderVersion: 1, builtAt: "2020-01-01T00:00:00.000Z", buildSeconds: 1,
    }, "vmlinux", 2 * 1024 * 1024);
    const staleImage = join(cache, "images", "base-x86_64-0000000000000000");
    entry(staleImage, {
      name: "base", arch: "x86_64", recipeHash: "0".repeat(64), sizeMiB: 3, usedMiB: 3, init: "/sbin/smolvm-agent",
      builderVersion: 1, createdAt: "2020-01-01T00:00:00.000Z", buildSeconds: 1,
    }, "rootfs.ext4", 3 * 1024 * 1024);

    const env = { SMOLVM_CACHE: cache };
    const dry = await runCli(["prune", "--dry-run", "--json"], { env });
    expect(dry.code).toBe(0);
    expect(envelope(dry).data.removed.map((e: { path: string }) => e.path).sort()).toEqual([staleImage, staleKernel].sort());
    expect(existsSync(staleKernel) && existsSync(staleImage)).toBe(true);

    const result = await runCli(["prune", "--json"], { env });
    expect(result.code).toBe(0);
    const report = envelope(result).data;
    expect(report.removed.map((e: { kind: string }) => e.kind).sort()).toEqual(["image", "kernel"]);
    expect(report.bytesFreed).toBeGreaterThanOrEqual(5 * 1024 * 1024);
    expect(existsSync(staleKernel)).toBe(false);
    expect(existsSync(staleImage)).toBe(false);
    expect(existsSync(currentKernel)).toBe(true);
    expect(existsSync(currentImage)).toBe(true);

    const human = await runCli(["prune"], { env });
    expect(human.stdout).toBe("Nothing to prune.\n");
  });
});
