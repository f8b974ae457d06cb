/**
 * The aarch64 artifacts a release publishes, booted for real: `smolvm release build --arch
 * aarch64` (the cross-built kernel and the base image with Debian's arm64 busybox), pulled from
 * a loopback mirror like any user would, then booted under `qemu-system-aarch64 -M virt`
 * (software emulation on this host) with the aarch64 agent as PID 1 answering a command.
 *
 * Needs the aarch64 kernel in the shared cache (`smolvm kernel build --arch aarch64`, which
 * .ci/run does); without it the suite says so and why.
 */
import { describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentClient } from "../../lib/agent/client.ts";
import { qemuBackend } from "../../lib/backends/qemu/backend.ts";
import type { Vmm } from "../../lib/backends/types.ts";
import { which } from "../../lib/host/process.ts";
import { findKernel } from "../../lib/kernel/cache.ts";
import { kernelCmdline } from "../../lib/kernel/cmdline.ts";
import { pullImages } from "../../lib/published/pull.ts";
import { serveImageMirror } from "../helpers/image-mirror.ts";
import { buildTestRelease, freshCache, scratchDir, withEnv } from "../helpers/release.ts";

const kernel = await findKernel("aarch64");
const qemu = which("qemu-system-aarch64");
const skipWhy = kernel === undefined
  ? "no aarch64 kernel in the cache: build one with `smolvm kernel build --arch aarch64`"
  : qemu === undefined ? "qemu-system-aarch64 is not installed (package qemu-system-arm)" : undefined;
if (skipWhy) console.log(`skip: aarch64 boot: ${skipWhy}`);
const suite = skipWhy ? describe.skip : describe;

/** Connects to the agent's chardev socket, retrying until the guest's agent says HELLO. */
async function connectAgent(socketPath: string, deadline: number, exited: Promise<unknown>): Promise<AgentClient> {
  let gone = false;
  void exited.then(() => (gone = true));
  let last: unknown;
  while (Date.now() < deadline && !gone) {
    try {
      const socket = connect(socketPath);
      await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      return await AgentClient.connect(socket, { timeoutMs: Math.max(1_000, deadline - Date.now()), resync: true });
    } catch (error) {
      last = error;
      await sleep(100);
    }
  }
  throw new Error(`the aarch64 agent did not answer (${gone ? "QEMU exited" : "timed out"}): ${String(last)}`);
}

suite("aarch64 release artifacts", () => {
  test("the published aarch64 kernel and base image boot under qemu-system-aarch64 and the agent runs a command", async () => {
    const release = await buildTestRelease({ arches: ["aarch64"] });
    const server = await serveImageMirror(release.dir);
    const cache = freshCache();
    let vmm: Vmm | undefined;
    try {
      const [pulled] = await withEnv({ SMOLVM_CACHE: cache, ...release.env(server.url) }, () => pullImages({ images: ["base"], arch: "aarch64" }));
      expect(pulled!.kernel.path).toEndWith("/Image");
      const dir = scratchDir("aarch64-vm");
      const disk = await withEnv({ SMOLVM_CACHE: cache }, () =>
        qemuBackend.prepareDisk({ imagePath: pulled!.rootfs.path, vmDir: dir, mode: "isolated" }));
      const started = performance.now();
      vmm = await qemuBackend.launch({
        arch: "aarch64",
        accel: "tcg",
        vcpus: 1,
        memoryMiB: 256,
        kernelPath: pulled!.kernel.path,
        cmdline: kernelCmdline({ arch: "aarch64", extra: ["smolvm.hostname=arm"] }),
        disk,
        network: { mode: "none" },
        agentSocketPath: join(dir, "agent.sock"),
        controlSocketPath: join(dir, "qmp.sock"),
        serialLogPath: join(dir, "console.log"),
        vmmLogPath: join(dir, "qemu.log"),
      });
      const agent = await connectAgent(join(dir, "agent.sock"), Date.now() + 180_000, vmm.exited).catch(async (error) => {
        const { readFileSync } = await import("node:fs");
        throw new Error(`${(error as Error).message}\nconsole:\n${readFileSync(join(dir, "console.log"), "utf8").slice(-3000)}`);
      });
      const answered = performance.now();
      const result = await agent.run("uname -m; hostname; cat /proc/cpuinfo | grep -c processor");
      expect(result.exitCode).toBe(0);
      expect(result.stdout.split("\n").slice(0, 2)).toEqual(["aarch64", "arm"]);
      console.log(`aarch64: launch to agent HELLO ${(answered - started).toFixed(0)} ms under TCG`);
      await agent.close();
    } finally {
      vmm?.kill();
      await vmm?.exited;
      await server.close();
    }
  }, 30 * 60_000);
});
