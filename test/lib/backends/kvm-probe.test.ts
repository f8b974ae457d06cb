/**
 * The KVM proof against stand-in QEMU binaries that behave like the hosts seen in the field
 * (works, aborts at vCPU set-up, hangs, no device, broken kernel) and against the real QEMU
 * with our kernel.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveAccel } from "../../../lib/backends/accel.ts";
import { cachedKvmVerdict, firstErrorLine, probeKvm, provenKvm } from "../../../lib/backends/kvm-probe.ts";
import { which } from "../../../lib/host/process.ts";
import { findKernel } from "../../../lib/kernel/cache.ts";
import { cacheRoot } from "../../../lib/paths.ts";

const dirs: string[] = [];
const savedCache = process.env.SMOLVM_CACHE;
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  if (savedCache === undefined) delete process.env.SMOLVM_CACHE;
  else process.env.SMOLVM_CACHE = savedCache;
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), "smolvm-kvmprobe-"));
  dirs.push(dir);
  return dir;
}

/**
 * A stand-in QEMU. `kvm` and `tcg` say what it does under each accelerator: `panic` writes a
 * guest's panic to the serial file (as our kernel without a root disk does) and exits 0,
 * `abort` dies like QEMU on a nested kvm-pvm host, `hang` never runs the guest.
 */
function fakeQemu(dir: string, kvm: "panic" | "abort" | "hang", tcg: "panic" | "abort" = "panic"): string {
  const path = join(dir, `qemu-${kvm}-${tcg}`);
  const behave = (what: string) => ({
    panic: 'printf "Kernel panic - not syncing: VFS: Unable to mount root fs\\n" >> "$serial"; exit 0',
    abort: 'echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; echo "kvm_buf_set_msrs: Assertion failed." >&2; kill -ABRT $$',
    hang: "exec sleep 600",
  })[what];
  writeFileSync(path, `#!/bin/sh
echo run >> "$0.runs"
serial="" accel=""
prev=""
for arg in "$@"; do
  case "$prev" in
    -chardev) case "$arg" in file,*) serial=$(printf '%s' "$arg" | sed 's/.*path=\\([^,]*\\).*/\\1/') ;; esac ;;
    -accel) accel=$arg ;;
  esac
  prev=$arg
done
case "$accel" in
  kvm) ${behave(kvm)} ;;
  *) ${behave(tcg)} ;;
esac
`);
  chmodSync(path, 0o755);
  return path;
}

/** A readable, writable stand-in for /dev/kvm: the device check passes, the proof decides. */
function fakeDevice(dir: string): string {
  const path = join(dir, "kvm");
  writeFileSync(path, "");
  return path;
}

describe("probeKvm", () => {
  test("a guest that runs under KVM proves it usable", async () => {
    const dir = scratch();
    process.env.SMOLVM_CACHE = dir;
    expect(await probeKvm({ arch: "x86_64", qemuBinary: fakeQemu(dir, "panic"), kernelPath: "/k", devicePath: fakeDevice(dir) }))
      .toEqual({ usable: true });
  });

  test("QEMU aborting at vCPU set-up is blamed on KVM, with QEMU's first error line", async () => {
    const dir = scratch();
    process.env.SMOLVM_CACHE = dir;
    const verdict = await probeKvm({ arch: "x86_64", qemuBinary: fakeQemu(dir, "abort"), kernelPath: "/k", devicePath: fakeDevice(dir) });
    expect(verdict.usable).toBe(false);
    if (!verdict.usable) {
      expect(verdict.reason).toContain("SIGABRT");
      expect(verdict.reason).toContain("failed to set MSR 0x10a");
      expect(verdict.inconclusive).toBeUndefined();
    }
  });

  test("a guest that never runs under KVM is cut off at the deadline", async () => {
    const dir = scratch();
    process.env.SMOLVM_CACHE = dir;
    const started = Date.now();
    const verdict = await probeKvm({
      arch: "x86_64", qemuBinary: fakeQemu(dir, "hang"), kernelPath: "/k", devicePath: fakeDevice(dir), timeoutMs: 500,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(verdict).toEqual({ usable: false, reason: "QEMU started under KVM but the guest did not run within 0.5 s" });
  });

  test("no device: said without starting QEMU", async () => {
    const dir = scratch();
    const verdict = await probeKvm({ arch: "x86_64", qemuBinary: "/nonexistent/qemu", kernelPath: "/k", devicePath: join(dir, "absent") });
    expect(verdict.usable).toBe(false);
    if (!verdict.usable) expect(verdict.reason).toContain("does not exist");
  });

  test("a guest that fails under TCG too is inconclusive: the kernel or QEMU is at fault, not KVM", async () => {
    const dir = scratch();
    process.env.SMOLVM_CACHE = dir;
    const verdict = await probeKvm({ arch: "x86_64", qemuBinary: fakeQemu(dir, "abort", "abort"), kernelPath: "/k", devicePath: fakeDevice(dir) });
    expect(verdict.usable).toBe(false);
    expect(verdict.inconclusive).toBe(true);
  });

  test("firstErrorLine picks the line that reads like an error", () => {
    expect(firstErrorLine("warning: x\nqemu: error: failed to set MSR 0x10a\nAssertion\n")).toBe("qemu: error: failed to set MSR 0x10a");
    expect(firstErrorLine("just words\n")).toBe("just words");
    expect(firstErrorLine("\nqemu-system-x86_64: could not load kernel '/k'\n")).toBe("qemu-system-x86_64: could not load kernel '/k'");
    expect(firstErrorLine("")).toBeUndefined();
  });
});

describe("provenKvm", () => {
  test("remembers a verdict for this boot and binary, but not an inconclusive one", async () => {
    const dir = scratch();
    process.env.SMOLVM_CACHE = dir;
    const device = fakeDevice(dir);
    const aborting = fakeQemu(dir, "abort");
    const first = await provenKvm({ arch: "x86_64", qemuBinary: aborting, kernelPath: "/k", devicePath: device });
    expect(first.usable).toBe(false);
    expect(cachedKvmVerdict("x86_64", aborting)).toEqual(first);
    // Asked again, the cached verdict answers: the binary is not run again.
    const runs = () => readFileSync(`${aborting}.runs`, "utf8").split("\n").filter(Boolean).length;
    const before = runs();
    expect(await provenKvm({ arch: "x86_64", qemuBinary: aborting, kernelPath: "/k", devicePath: device })).toEqual(first);
    expect(runs()).toBe(before);

    const broken = fakeQemu(dir, "abort", "abort");
    await provenKvm({ arch: "x86_64", qemuBinary: broken, kernelPath: "/k", devicePath: device });
    expect(cachedKvmVerdict("x86_64", broken)).toBeUndefined();
    expect(readdirSync(cacheRoot()).filter((name) => name.startsWith(".kvm-probe-"))).toEqual([]);
  });

  test("resolveAccel falls back to tcg once with the proof's reason when KVM aborts", async () => {
    const dir = scratch();
    process.env.SMOLVM_CACHE = dir;
    const info = await resolveAccel({
      guestArch: "x86_64", platform: "linux", hostArch: "x86_64", kernelPath: "/k", env: {},
      qemuBinary: fakeQemu(dir, "abort"),
      proveKvm: (options) => provenKvm({ ...options, devicePath: fakeDevice(dir) }),
    });
    expect(info.accel).toBe("tcg");
    expect(info.reason).toContain("failed to set MSR 0x10a");
  });
});

const qemu = which("qemu-system-x86_64");
const kernel = await findKernel("x86_64");
const realWhy = qemu === undefined ? "no qemu-system-x86_64" : kernel === undefined ? "no x86_64 kernel in the cache" : process.arch !== "x64" ? "not an x86_64 host" : undefined;
if (realWhy !== undefined) console.log(`skip: the real KVM proof: ${realWhy}`);

(realWhy === undefined ? describe : describe.skip)("the real QEMU and kernel", () => {
  test("give a conclusive verdict: either KVM runs the guest or TCG does and KVM is blamed", async () => {
    const dir = scratch();
    process.env.SMOLVM_CACHE = dir;
    const verdict = await probeKvm({ arch: "x86_64", qemuBinary: qemu!, kernelPath: kernel! });
    console.log(`real KVM proof on this host: ${JSON.stringify(verdict)}`);
    if (!verdict.usable) {
      expect(verdict.inconclusive).toBeUndefined();
      expect(verdict.reason.length).toBeGreaterThan(0);
    }
    if (!existsSync("/dev/kvm")) expect(verdict.usable).toBe(false);
  }, 120_000);
});
