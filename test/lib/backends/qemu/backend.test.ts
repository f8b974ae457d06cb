import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { QemuBackend } from "../../../../lib/backends/qemu/backend.ts";
import { createOverlay } from "../../../../lib/backends/qemu/disk.ts";
import { launchQemu } from "../../../../lib/backends/qemu/process.ts";
import { QmpClient } from "../../../../lib/backends/qemu/qmp.ts";
import type { LaunchSpec } from "../../../../lib/backends/types.ts";
import { SmolError } from "../../../../lib/errors.ts";
import { findKernel } from "../../../../lib/kernel/cache.ts";
import { runHostChecked } from "../../../../lib/host/process.ts";
import { haveQemuArm, haveQemuImg, haveQemuX86, scratchDir } from "./_fixtures.ts";

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

/** A sparse raw file standing in for an image. */
function fakeImage(dir: string, sizeBytes = 8 * 1024 * 1024): string {
  const path = join(dir, "base.ext4");
  writeFileSync(path, "");
  truncateSync(path, sizeBytes);
  return path;
}

const withQemuImg = haveQemuImg ? describe : describe.skip;
if (!haveQemuImg) console.log("skip: overlay tests need qemu-img (run `smolvm setup`)");

withQemuImg("disk overlays", () => {
  test("createOverlay makes a qcow2 over the absolute base path", async () => {
    const dir = scratchDir("overlay");
    const base = fakeImage(dir);
    const overlay = join(dir, "vm", "disk.qcow2");
    await createOverlay(base, overlay);
    const info = JSON.parse((await runHostChecked("qemu-img", ["info", "--output=json", overlay])).stdout);
    expect(info.format).toBe("qcow2");
    expect(info["backing-filename"]).toBe(base);
    expect(info["backing-filename-format"]).toBe("raw");
    expect(info["virtual-size"]).toBe(8 * 1024 * 1024);
  });

  test("createOverlay can grow the virtual size", async () => {
    const dir = scratchDir("overlay");
    const overlay = join(dir, "big.qcow2");
    await createOverlay(fakeImage(dir), overlay, { sizeMiB: 64 });
    const info = JSON.parse((await runHostChecked("qemu-img", ["info", "--output=json", overlay])).stdout);
    expect(info["virtual-size"]).toBe(64 * 1024 * 1024);
  });

  test("with a template dir, the first overlay of a size is kept as a template and later ones are copies of it", async () => {
    const dir = scratchDir("template");
    const base = fakeImage(dir);
    await createOverlay(base, join(dir, "a.qcow2"), { templateDir: dir });
    const template = join(dir, ".overlay-base-raw.qcow2");
    expect(existsSync(template)).toBe(true);
    await createOverlay(base, join(dir, "b.qcow2"), { templateDir: dir });
    await createOverlay(base, join(dir, "c.qcow2"), { templateDir: dir, sizeMiB: 64 });
    expect(readFileSync(join(dir, "b.qcow2")).equals(readFileSync(template))).toBe(true);
    for (const [name, size] of [["a", 8], ["b", 8], ["c", 64]] as const) {
      const overlay = join(dir, `${name}.qcow2`);
      const info = JSON.parse((await runHostChecked("qemu-img", ["info", "--output=json", overlay])).stdout);
      expect([info["backing-filename"], info["virtual-size"]]).toEqual([base, size * 1024 * 1024]);
      await runHostChecked("qemu-img", ["check", "-q", overlay]);
    }
    // Overlays made from one template are independent disks.
    await runHostChecked("qemu-io", ["-c", "write -P 0xab 0 64k", join(dir, "a.qcow2")]);
    const read = await runHostChecked("qemu-io", ["-c", "read -P 0 0 64k", join(dir, "b.qcow2")]);
    expect(read.stdout).toContain("read 65536/65536 bytes");
    expect(readdirSync(dir).filter((name) => name.endsWith(".tmp"))).toEqual([]);
  });

  test("createOverlay on a missing base fails clearly and creates nothing", async () => {
    const dir = scratchDir("overlay");
    const overlay = join(dir, "disk.qcow2");
    const error = await caught(createOverlay(join(dir, "missing.ext4"), overlay));
    expect(error).toBeInstanceOf(SmolError);
    expect((error as SmolError).code).toBe("NOT_FOUND");
    expect((error as SmolError).message).toContain("missing.ext4");
    expect(existsSync(overlay)).toBe(false);
  });

  test("prepareDisk: isolated creates an overlay once and keeps it; shared is the image itself", async () => {
    const backend = new QemuBackend();
    const dir = scratchDir("prepare");
    const image = fakeImage(dir);
    const vmDir = join(dir, "vm");
    mkdirSync(vmDir);
    const first = await backend.prepareDisk({ imagePath: image, vmDir, mode: "isolated" });
    expect(first).toEqual({ path: join(vmDir, "disk.qcow2"), format: "qcow2", readOnly: false, created: true });
    const second = await backend.prepareDisk({ imagePath: image, vmDir, mode: "isolated" });
    expect(second.created).toBe(false);
    expect(second.path).toBe(first.path);
    const shared = await backend.prepareDisk({ imagePath: image, vmDir, mode: "shared" });
    expect(shared).toEqual({ path: image, format: "raw", readOnly: false, created: false });
  });
});

const withQemu = haveQemuX86 ? describe : describe.skip;
if (!haveQemuX86) console.log("skip: QEMU launch tests need qemu-system-x86_64 (run `smolvm setup`)");

withQemu("launching QEMU", () => {
  test("probe reports the accelerator and QEMU version", async () => {
    const kernel = await findKernel("x86_64");
    if (kernel === undefined) return console.log("skip: no x86_64 kernel in the cache to prove KVM with");
    const probe = await new QemuBackend().probe("x86_64", kernel);
    expect(probe.ok).toBe(true);
    if (probe.ok) {
      expect(["kvm", "tcg"]).toContain(probe.accel);
      expect(probe.version).toContain("QEMU emulator version");
    }
  });

  test("launchQemu starts QEMU in its own process group with its stderr in the log", async () => {
    const dir = scratchDir("launch");
    const qemu = await launchQemu({
      arch: "x86_64", accel: "tcg", vcpus: 1, memoryMiB: 64, network: { mode: "none" },
      qmpSocketPath: join(dir, "qmp.sock"), startPaused: true,
    }, { logFile: join(dir, "qemu.log") });
    try {
      await (await QmpClient.connect(join(dir, "qmp.sock"), { timeoutMs: 10_000 })).close();
      const { stdout } = await runHostChecked("ps", ["-o", "pgid=", "-p", String(qemu.pid)]);
      expect(Number(stdout.trim())).toBe(qemu.pid);
    } finally {
      qemu.kill();
      await qemu.exited;
    }
  });

  test("a missing binary is BACKEND_UNAVAILABLE", async () => {
    const dir = scratchDir("launch");
    const error = await caught(launchQemu({
      arch: "x86_64", accel: "tcg", vcpus: 1, memoryMiB: 64, network: { mode: "none" },
      qmpSocketPath: join(dir, "qmp.sock"),
    }, { binary: join(dir, "no-such-qemu") }));
    expect((error as SmolError).code).toBe("BACKEND_UNAVAILABLE");
  });

  function spec(dir: string, overrides: Partial<LaunchSpec> = {}): LaunchSpec {
    return {
      arch: "x86_64",
      vcpus: 1,
      memoryMiB: 128,
      kernelPath: join(dir, "no-such-vmlinux"),
      cmdline: "console=ttyS0",
      disk: { path: fakeImage(dir), format: "raw", readOnly: true, created: false },
      network: { mode: "user" },
      agentSocketPath: join(dir, "agent.sock"),
      controlSocketPath: join(dir, "qmp.sock"),
      serialLogPath: join(dir, "console.log"),
      vmmLogPath: join(dir, "qemu.log"),
      ...overrides,
    };
  }

  test("a bad kernel path fails launch with QEMU's own words, leaving no process or socket", async () => {
    const dir = scratchDir("badkernel");
    const started = Date.now();
    const error = await caught(new QemuBackend().launch(spec(dir)));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((error as SmolError).code).toBe("COMMAND_FAILED");
    expect((error as SmolError).message).toContain("no-such-vmlinux");
    expect(existsSync(join(dir, "qmp.sock"))).toBe(false);
    expect(existsSync(join(dir, "agent.sock"))).toBe(false);
  });
});

const withArm = haveQemuArm ? describe : describe.skip;
withArm("aarch64 argv", () => {
  test("the aarch64 command line is accepted by qemu-system-aarch64 (virt, virtio-mmio devices)", async () => {
    const dir = scratchDir("arm");
    const qemu = await launchQemu({
      arch: "aarch64", accel: "tcg", vcpus: 2, memoryMiB: 128,
      disk: { path: fakeImage(dir), format: "raw", readOnly: true },
      network: { mode: "user", hostForwards: [] },
      agentSocketPath: join(dir, "agent.sock"),
      qmpSocketPath: join(dir, "qmp.sock"),
      serialLogPath: join(dir, "console.log"),
      startPaused: true,
    }, { logFile: join(dir, "qemu.log") });
    try {
      const qmp = await QmpClient.connect(join(dir, "qmp.sock"), { timeoutMs: 10_000 });
      const anonymous = await qmp.execute<Array<{ type: string }>>("qom-list", { path: "/machine/peripheral-anon" });
      const named = await qmp.execute<Array<{ type: string }>>("qom-list", { path: "/machine/peripheral" });
      const types = [...anonymous, ...named].map((d) => d.type);
      for (const kind of ["blk", "net", "rng", "serial"]) expect(types).toContain(`child<virtio-${kind}-device>`);
      expect((await qmp.queryStatus()).status).toBe("prelaunch");
      await qmp.quit();
      expect((await qemu.exited).code).toBe(0);
    } finally {
      qemu.kill();
      await qemu.exited;
    }
  });
});

