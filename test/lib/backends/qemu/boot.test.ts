/**
 * Real boots under whatever accelerator the host has (tcg on the project's machines): our kernel,
 * an ext4 root on a qcow2 overlay, an /init that prints a marker and reboots, and QEMU exiting by
 * itself (-no-reboot). Also measures spawn-to-marker and QEMU's own start+quit floor.
 *
 * The kernel comes from SMOLVM_TEST_KERNEL or the kernel cache (`smolvm kernel build`); without
 * one the suite says so and why.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { accelFor, hostTscKhz } from "../../../../lib/backends/accel.ts";
import { QemuBackend } from "../../../../lib/backends/qemu/backend.ts";
import { launchQemu } from "../../../../lib/backends/qemu/process.ts";
import { QmpClient } from "../../../../lib/backends/qemu/qmp.ts";
import type { LaunchSpec, Vmm, VmmExit } from "../../../../lib/backends/types.ts";
import { runHostChecked, which } from "../../../../lib/host/process.ts";
import { findKernel, kernelCmdline } from "../../../../lib/kernel/index.ts";
import { compressFile } from "../../../../lib/snapshots/_files.ts";
import { haveQemuImg, haveQemuX86, scratchDir } from "./_fixtures.ts";

const MARKER = "smolvm-boot-marker";
const TIMERS_OK = "smolvm-timers-ok";
const BOOTS = 5;
/** Per test; boots under emulation on a loaded machine can take many seconds each. */
const TEST_TIMEOUT_MS = 180_000;

async function locateKernel(): Promise<{ path?: string; why: string }> {
  const fromEnv = process.env.SMOLVM_TEST_KERNEL;
  if (fromEnv) return { path: fromEnv, why: "SMOLVM_TEST_KERNEL" };
  const cached = await findKernel("x86_64").catch(() => undefined);
  if (cached) return { path: cached, why: "kernel cache" };
  return { why: "no x86_64 kernel in the cache: build one with `smolvm kernel build` or set SMOLVM_TEST_KERNEL" };
}

const kernel = await locateKernel();
const busybox = which("busybox");
const mkfs = which("mkfs.ext4");
const missing = [
  !haveQemuX86 && "qemu-system-x86_64", !haveQemuImg && "qemu-img", !busybox && "busybox", !mkfs && "mkfs.ext4",
].filter(Boolean);
const skipWhy = kernel.path === undefined ? kernel.why : missing.length ? `missing ${missing.join(", ")}` : undefined;
if (skipWhy) console.log(`skip: real boot tests: ${skipWhy}`);
const boots = skipWhy ? describe.skip : describe;
/** The accelerator a sandbox would get here (KVM only where a guest has been seen to run). */
const accel = kernel.path === undefined ? "tcg" : (await accelFor({ guestArch: "x86_64", kernelPath: kernel.path })).accel;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A 16 MiB ext4 whose /init prints the marker (with the guest's uptime), sleeps, says so and reboots. */
function markerImage(dir: string): Promise<string> {
  return initImage(dir, [
    "/bin/busybox mount -t proc proc /proc",
    `echo "${MARKER} uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime)"`,
    // A guest whose timers never fire still prints; only a sleep that returns proves they do.
    "/bin/busybox sleep 0.1",
    `echo "${TIMERS_OK}"`,
    "/bin/busybox reboot -f",
  ]);
}

/** A 16 MiB ext4 whose /init (busybox sh) runs `lines`. */
async function initImage(dir: string, lines: string[]): Promise<string> {
  const root = join(dir, "rootfs");
  for (const sub of ["bin", "dev", "proc", "sys", "tmp"]) mkdirSync(join(root, sub), { recursive: true });
  copyFileSync(busybox!, join(root, "bin", "busybox"));
  writeFileSync(join(root, "init"), ["#!/bin/busybox sh", ...lines, ""].join("\n"), { mode: 0o755 });
  const image = join(dir, "init.ext4");
  await runHostChecked(mkfs!, ["-q", "-F", "-d", root, image, "16M"]);
  return image;
}

/** The production command line (lib/kernel), with /init as PID 1 instead of the agent. */
function cmdline(): string {
  const tcg = accel === "tcg";
  return kernelCmdline({ arch: "x86_64", init: "/init", ...(tcg ? { tscKhz: hostTscKhz()! } : {}) });
}

/** Resolves with the VMM's exit, or "still running" after `ms`. */
function exitWithin(exited: Promise<VmmExit>, ms: number): Promise<VmmExit | "still running"> {
  return Promise.race([exited, new Promise<"still running">((r) => setTimeout(() => r("still running"), ms))]);
}

/** Polls the console log until `MARKER` appears; returns the marker line. */
async function waitForMarker(
  log: string,
  deadline: number,
  exited: Promise<unknown>,
  marker: string = MARKER,
): Promise<string> {
  let gone = false;
  exited.then(() => { gone = true; });
  while (true) {
    let text = "";
    try {
      text = readFileSync(log, "utf8");
    } catch { /* not created yet */ }
    const line = text.split("\n").find((l) => l.includes(marker));
    if (line) return line.trim();
    if (gone || Date.now() > deadline) {
      throw new Error(`no "${marker}" on the console (${gone ? "QEMU exited" : "timed out"}); console log: ${log}\n` +
        text.split("\n").slice(-15).join("\n"));
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Every VM a test started: killed after each test, even one abandoned at its timeout. */
const launched = new Set<Vmm>();
afterEach(async () => {
  for (const vmm of launched) {
    vmm.kill();
    await vmm.exited;
  }
  launched.clear();
});

boots(`real boot (${kernel.why})`, () => {
  const real = new QemuBackend();
  const backend = {
    prepareDisk: real.prepareDisk.bind(real),
    attach: real.attach.bind(real),
    async launch(spec: LaunchSpec): Promise<Vmm> {
      const vmm = await real.launch(spec);
      launched.add(vmm);
      return vmm;
    },
  };
  let image: string | undefined;

  async function vm(name: string, overrides: Partial<LaunchSpec> = {}): Promise<LaunchSpec> {
    const base = scratchDir(name);
    image ??= await markerImage(scratchDir("image"));
    const disk = await backend.prepareDisk({ imagePath: image, vmDir: base, mode: "isolated" });
    return {
      arch: "x86_64",
      vcpus: 1,
      memoryMiB: 256,
      kernelPath: kernel.path!,
      cmdline: cmdline(),
      disk,
      network: { mode: "user" },
      agentSocketPath: join(base, "agent.sock"),
      controlSocketPath: join(base, "qmp.sock"),
      serialLogPath: join(base, "console.log"),
      vmmLogPath: join(base, "qemu.log"),
      ...overrides,
    };
  }

  test(`boots to /init, prints the marker and exits by itself, ${BOOTS} times`, async () => {
    const toMarker: number[] = [];
    const toExit: number[] = [];
    const guestUptime: string[] = [];
    for (let i = 0; i < BOOTS; i++) {
      const spec = await vm(`boot${i}`);
      const started = performance.now();
      const vmm = await backend.launch(spec);
      try {
        const line = await waitForMarker(spec.serialLogPath, Date.now() + 60_000, vmm.exited);
        toMarker.push(performance.now() - started);
        guestUptime.push(/uptime=(\S+)/.exec(line)?.[1] ?? "?");
        await waitForMarker(spec.serialLogPath, Date.now() + 30_000, vmm.exited, TIMERS_OK);
        const exit = await exitWithin(vmm.exited, 30_000);
        toExit.push(performance.now() - started);
        expect(exit).toEqual({ code: 0, signal: null });
      } finally {
        vmm.kill();
        await vmm.exited;
      }
    }
    console.log(`boot: spawn -> marker median ${median(toMarker).toFixed(0)} ms ` +
      `[${toMarker.map((t) => t.toFixed(0)).join(", ")}], spawn -> QEMU exit median ${median(toExit).toFixed(0)} ms, ` +
      `guest uptime at /init [${guestUptime.join(", ")}] s (accel ${accel})`);
  }, TEST_TIMEOUT_MS);

  test("a VM launched paused stays silent until resumed, and is handed to a second owner with its ticket", async () => {
    const spec = await vm("paused", { startPaused: true });
    const vmm = await backend.launch(spec);
    try {
      expect(await vmm.describe()).toEqual({ state: "paused", detail: "prelaunch" });
      expect(vmm.ticket).toMatchObject({ pid: vmm.pid, controlSocketPath: spec.controlSocketPath, agentSocketPath: spec.agentSocketPath });
      expect(["kvm", "tcg"]).toContain(vmm.ticket.accel);
      expect(vmm.ticket.accelReason.length).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 300));
      expect(readFileSync(spec.serialLogPath, "utf8")).not.toContain(MARKER);
      // A second owner cannot attach while this one holds QMP; after it lets go it can.
      await vmm.release();
      const attached = await backend.attach(vmm.ticket);
      expect(attached.pid).toBe(vmm.pid);
      await attached.resume();
      expect((await attached.describe()).state).toBe("running");
      await waitForMarker(spec.serialLogPath, Date.now() + 60_000, vmm.exited);
      expect(await exitWithin(vmm.exited, 30_000)).toEqual({ code: 0, signal: null });
      // The new owner notices the end through its own connection, without being QEMU's parent.
      expect(await exitWithin(attached.exited, 10_000)).not.toBe("still running");
    } finally {
      vmm.kill();
      await vmm.exited;
    }
  }, TEST_TIMEOUT_MS);

  test("saveState keeps a paused guest; restore brings it back paused, and resumed it carries on where it was", async () => {
    // A guest that counts: its count lives in guest memory only, so a restored guest that goes
    // on from the saved count (rather than from 0) was restored, not rebooted.
    const counting = await initImage(scratchDir("counting"), [
      "i=0",
      "while true; do echo \"tick $i\"; i=$((i+1)); /bin/busybox sleep 0.05; done",
    ]);
    const base = scratchDir("saved");
    const disk = await backend.prepareDisk({ imagePath: counting, vmDir: base, mode: "isolated" });
    const spec = await vm("saved", { disk });
    const vmm = await backend.launch(spec);
    const stateDir = scratchDir("state");
    let saved: number;
    try {
      await waitForMarker(spec.serialLogPath, Date.now() + 60_000, vmm.exited, "tick 3");
      await vmm.pause();
      await vmm.saveState(stateDir);
      const ticks = [...readFileSync(spec.serialLogPath, "utf8").matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
      saved = ticks.at(-1)!;
    } finally {
      vmm.kill();
      await vmm.exited;
    }
    const again = scratchDir("restored");
    const restoredSpec: LaunchSpec = {
      ...spec,
      agentSocketPath: join(again, "agent.sock"),
      controlSocketPath: join(again, "qmp.sock"),
      serialLogPath: join(again, "console.log"),
      vmmLogPath: join(again, "qemu.log"),
    };
    const restored = await real.restore(restoredSpec, stateDir);
    launched.add(restored);
    expect((await restored.describe()).state).toBe("paused");
    await restored.resume();
    const line = await waitForMarker(restoredSpec.serialLogPath, Date.now() + 60_000, restored.exited, "tick ");
    expect(Number(/tick (\d+)/.exec(line)![1])).toBeGreaterThan(saved);

    // As a stored snapshot keeps it: zstd-compressed, read by QEMU through zstd (on the same
    // disk, so the first restore goes first).
    restored.kill();
    await restored.exited;
    const compressed = scratchDir("compressed");
    await compressFile(join(stateDir, "vmstate"), join(compressed, "vmstate.zst"));
    const third = scratchDir("from-zstd");
    const fromZstd: LaunchSpec = {
      ...spec,
      agentSocketPath: join(third, "agent.sock"),
      controlSocketPath: join(third, "qmp.sock"),
      serialLogPath: join(third, "console.log"),
      vmmLogPath: join(third, "qemu.log"),
    };
    const again2 = await real.restore(fromZstd, compressed);
    launched.add(again2);
    await again2.resume();
    const next = await waitForMarker(fromZstd.serialLogPath, Date.now() + 60_000, again2.exited, "tick ");
    expect(Number(/tick (\d+)/.exec(next)![1])).toBeGreaterThan(saved);
  }, TEST_TIMEOUT_MS);

  test("the isolated overlay takes the guest's writes; the base image is untouched", async () => {
    const spec = await vm("writes");
    const before = readFileSync(image!);
    const overlayBefore = statSync(spec.disk.path).size;
    const vmm = await backend.launch(spec);
    try {
      await waitForMarker(spec.serialLogPath, Date.now() + 60_000, vmm.exited);
      expect(await exitWithin(vmm.exited, 30_000)).toEqual({ code: 0, signal: null });
    } finally {
      vmm.kill();
      await vmm.exited;
    }
    // Mounting ext4 read-write updates its superblock: that write lands in the overlay only.
    expect(statSync(spec.disk.path).size).toBeGreaterThan(overlayBefore);
    expect(readFileSync(image!).equals(before)).toBe(true);
  }, TEST_TIMEOUT_MS);
});

(haveQemuX86 ? describe : describe.skip)("QEMU floor", () => {
  test(`QEMU start + quit with the sandbox's devices (and kernel, if there is one), ${BOOTS} times`, async () => {
    const times: number[] = [];
    for (let i = 0; i < BOOTS; i++) {
      const dir = scratchDir(`floor${i}`);
      const started = performance.now();
      const qemu = await launchQemu({
        arch: "x86_64", accel, vcpus: 1, memoryMiB: 256, startPaused: true,
        ...(kernel.path === undefined ? {} : { kernelPath: kernel.path, cmdline: cmdline() }),
        network: { mode: "user" }, agentSocketPath: join(dir, "agent.sock"), qmpSocketPath: join(dir, "qmp.sock"),
        serialLogPath: join(dir, "console.log"),
      }, { logFile: join(dir, "qemu.log") });
      try {
        const qmp = await QmpClient.connect(join(dir, "qmp.sock"), { timeoutMs: 10_000 });
        await qmp.quit();
        expect((await qemu.exited).code).toBe(0);
        times.push(performance.now() - started);
      } finally {
        qemu.kill();
        await qemu.exited;
      }
    }
    console.log(`floor: QEMU spawn -> QMP -> quit -> exit median ${median(times).toFixed(0)} ms ` +
      `[${times.map((t) => t.toFixed(0)).join(", ")}]`);
  }, TEST_TIMEOUT_MS);
});
