/**
 * A snapshot manifest as saveSnapshot records it, for tests that need one without a VM: its
 * kernel and image are the ones its config names, the rest made-up but well formed.
 */
import { parseSandboxConfig, type SandboxConfigInput } from "../../lib/config.ts";
import type { SnapshotManifest } from "../../lib/snapshots/manifest.ts";

export function manifestOf(input: SandboxConfigInput & { kernelPath: string; rootfsPath: string }, fields: Partial<SnapshotManifest> = {}): SnapshotManifest {
  const { name: _name, env: _env, ...config } = parseSandboxConfig(input);
  return {
    format: 1,
    kind: "snapshot",
    name: "snap",
    createdAt: Date.now(),
    source: { id: "abc123abc123", name: "dev" },
    backend: "qemu",
    vmm: { version: "QEMU emulator version 7.2.22", fingerprint: "/usr/bin/qemu:1:2" },
    arch: "x86_64",
    accel: "tcg",
    kernel: { path: input.kernelPath, size: 1, mtimeMs: 2, sha256: "a".repeat(64) },
    image: { name: config.image, path: input.rootfsPath, size: 3, mtimeMs: 4 },
    config,
    pausedMs: 80,
    files: [{ role: "state", file: "vmstate.zst", encoding: "zstd", bytes: 0, sha256: "b".repeat(64) }],
    ...fields,
  };
}
