import { describe, expect, test } from "bun:test";
import { hostTscKhz, parseCpuinfoTscKhz as parseCpuinfoKhz } from "../../../lib/backends/accel.ts";
import { kernelCmdline, kernelCmdlineArgs } from "../../../lib/kernel/cmdline.ts";

describe("kernelCmdline", () => {
  test("x86_64 under TCG boots quietly from /dev/vda into the agent with the TSC pinned", () => {
    expect(kernelCmdline({ arch: "x86_64", verbose: false, tscKhz: 2199998 })).toBe(
      "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw rootfstype=ext4 init=/sbin/smolvm-agent quiet " +
        "tsc_early_khz=2199998 tsc=reliable no_timer_check noapictimer",
    );
  });

  test("without a TSC frequency (KVM, HVF) no TSC options are added", () => {
    const args = kernelCmdlineArgs({ arch: "x86_64", verbose: false });
    expect(args.some((a) => a.startsWith("tsc"))).toBe(false);
    expect(args).not.toContain("no_timer_check");
    expect(args).not.toContain("noapictimer");
  });

  test("aarch64 uses the PL011 console and ignores the x86-only TSC and reboot options", () => {
    const line = kernelCmdline({ arch: "aarch64", verbose: false, tscKhz: 1000000 });
    expect(line).toBe("console=ttyAMA0 panic=-1 root=/dev/vda rw rootfstype=ext4 init=/sbin/smolvm-agent quiet");
  });

  test("verbose drops quiet, and SMOLVM_VERBOSE_BOOT=1 is the default for verbose", () => {
    expect(kernelCmdlineArgs({ arch: "x86_64", verbose: true })).not.toContain("quiet");
    const saved = process.env.SMOLVM_VERBOSE_BOOT;
    try {
      process.env.SMOLVM_VERBOSE_BOOT = "1";
      expect(kernelCmdlineArgs({ arch: "x86_64" })).not.toContain("quiet");
      process.env.SMOLVM_VERBOSE_BOOT = "0";
      expect(kernelCmdlineArgs({ arch: "x86_64" })).toContain("quiet");
    } finally {
      if (saved === undefined) delete process.env.SMOLVM_VERBOSE_BOOT;
      else process.env.SMOLVM_VERBOSE_BOOT = saved;
    }
  });

  test("init, root and extra words are honoured in order", () => {
    const line = kernelCmdline({ arch: "x86_64", verbose: false, init: "/init", root: "/dev/vdb", extra: ["smolvm.ip=10.0.2.15/24"] });
    expect(line).toContain("init=/init");
    expect(line).toContain("root=/dev/vdb");
    expect(line.endsWith(" smolvm.ip=10.0.2.15/24")).toBe(true);
  });

  test("an extra argument with whitespace or a bad TSC value is refused", () => {
    expect(() => kernelCmdline({ arch: "x86_64", extra: ["a b"] })).toThrow(RangeError);
    expect(() => kernelCmdline({ arch: "x86_64", tscKhz: 0 })).toThrow(RangeError);
    expect(() => kernelCmdline({ arch: "x86_64", tscKhz: 1.5 })).toThrow(RangeError);
  });
});

describe("host TSC frequency", () => {
  test("parses cpu MHz into kHz", () => {
    expect(parseCpuinfoKhz("processor\t: 0\ncpu MHz\t\t: 2199.998\ncache size\t: 1 KB\n")).toBe(2199998);
    expect(parseCpuinfoKhz("processor\t: 0\nBogoMIPS\t: 50.00\n")).toBeUndefined();
  });

  test("reads a plausible value on this x86_64 host", () => {
    if (process.arch !== "x64") return;
    const khz = hostTscKhz();
    expect(khz).toBeGreaterThan(100_000);
    expect(khz).toBeLessThan(10_000_000);
  });
});

test("on aarch64 the console is QEMU virt's PL011, or Firecracker's 16550", () => {
  expect(kernelCmdlineArgs({ arch: "aarch64" })).toContain("console=ttyAMA0");
  expect(kernelCmdlineArgs({ arch: "aarch64", vmm: "firecracker" })).toContain("console=ttyS0");
  expect(kernelCmdlineArgs({ arch: "x86_64", vmm: "firecracker" }).slice(0, 2)).toEqual(["console=ttyS0", "reboot=t"]);
});
