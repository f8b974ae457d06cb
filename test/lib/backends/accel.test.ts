import { describe, expect, test } from "bun:test";
import {
  consoleDevice, hostArch, hostTscKhz, parseCpuinfoTscKhz, resolveAccel,
  parseQemuVersion, qemuBinary, qemuProgram, qemuVersion,
} from "../../../lib/backends/accel.ts";
import { SmolError } from "../../../lib/errors.ts";
import { accelNoticeOnce } from "../../../lib/sandbox/notice.ts";
import { which } from "../../../lib/host/process.ts";

const works = async () => ({ usable: true as const });
const aborts = async () => ({ usable: false as const, reason: "QEMU under KVM was killed by SIGABRT: failed to set MSR 0x10a to 0x69" });
const linux = { platform: "linux" as const, hostArch: "x86_64" as const, kernelPath: "/k/vmlinux", env: {} };

async function refusal(promise: Promise<unknown>): Promise<SmolError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(SmolError);
  return error as SmolError;
}

describe("resolveAccel", () => {
  test("uses kvm on Linux only when a test guest ran under it", async () => {
    expect((await resolveAccel({ ...linux, guestArch: "x86_64", proveKvm: works })).accel).toBe("kvm");
    const fallback = await resolveAccel({ ...linux, guestArch: "x86_64", proveKvm: aborts });
    expect(fallback).toEqual({ accel: "tcg", reason: "QEMU under KVM was killed by SIGABRT: failed to set MSR 0x10a to 0x69" });
  });

  test("an explicit kvm that cannot run a guest is an error naming the reason, not a fallback", async () => {
    const error = await refusal(resolveAccel({ ...linux, guestArch: "x86_64", requested: "kvm", proveKvm: aborts }));
    expect(error.code).toBe("BACKEND_UNAVAILABLE");
    expect(error.message).toContain("MSR 0x10a");
    expect(error.message).toContain("--accel");
    const fromEnv = await refusal(resolveAccel({ ...linux, guestArch: "x86_64", env: { SMOLVM_ACCEL: "kvm" }, proveKvm: aborts }));
    expect(fromEnv.message).toContain("SMOLVM_ACCEL");
  });

  test("tcg when asked for skips the proof; the flag wins over SMOLVM_ACCEL", async () => {
    const never = async () => { throw new Error("the KVM proof must not run"); };
    expect((await resolveAccel({ ...linux, guestArch: "x86_64", requested: "tcg", proveKvm: never })).accel).toBe("tcg");
    expect((await resolveAccel({ ...linux, guestArch: "x86_64", env: { SMOLVM_ACCEL: "tcg" }, proveKvm: never })).accel).toBe("tcg");
    expect((await resolveAccel({ ...linux, guestArch: "x86_64", env: { SMOLVM_ACCEL: "tcg" }, requested: "kvm", proveKvm: works })).accel).toBe("kvm");
  });

  test("SMOLVM_ACCEL with an unknown value is refused with the accepted ones", async () => {
    const error = await refusal(resolveAccel({ ...linux, guestArch: "x86_64", env: { SMOLVM_ACCEL: "fast" }, proveKvm: works }));
    expect(error.code).toBe("INVALID_INPUT");
    expect(error.hint).toContain("auto, kvm, hvf, tcg");
  });

  test("hvf on macOS for a native guest; hvf elsewhere and kvm on macOS are refused", async () => {
    const mac = { platform: "darwin" as const, hostArch: "aarch64" as const, kernelPath: "/k/Image", env: {} };
    expect((await resolveAccel({ ...mac, guestArch: "aarch64" })).accel).toBe("hvf");
    expect((await refusal(resolveAccel({ ...mac, guestArch: "aarch64", requested: "kvm" }))).code).toBe("BACKEND_UNAVAILABLE");
    expect((await refusal(resolveAccel({ ...linux, guestArch: "x86_64", requested: "hvf", proveKvm: works }))).code).toBe("BACKEND_UNAVAILABLE");
  });

  test("emulates a guest of another architecture with tcg even when kvm works, and refuses to accelerate it", async () => {
    expect((await resolveAccel({ ...linux, guestArch: "aarch64", proveKvm: works })).accel).toBe("tcg");
    expect((await refusal(resolveAccel({ ...linux, guestArch: "aarch64", requested: "kvm", proveKvm: works }))).message).toContain("aarch64");
  });

  test("the tcg notice is given once per process and never for kvm", () => {
    expect(accelNoticeOnce({ accel: "kvm", reason: "" })).toBeUndefined();
    const first = accelNoticeOnce({ accel: "tcg", reason: "/dev/kvm does not exist" });
    expect(first).toContain("/dev/kvm does not exist");
    expect(accelNoticeOnce({ accel: "tcg", reason: "again" })).toBeUndefined();
  });
});

describe("host facts", () => {
  test("TSC kHz is the first cpu MHz line times 1000, rounded", () => {
    const cpuinfo = "processor\t: 0\nmodel name\t: Some CPU @ 2.10GHz\ncpu MHz\t\t: 2096.0384\n" +
      "processor\t: 1\ncpu MHz\t\t: 1800.000\n";
    expect(parseCpuinfoTscKhz(cpuinfo)).toBe(2_096_038);
  });

  test("an aarch64 cpuinfo has no TSC frequency", () => {
    expect(parseCpuinfoTscKhz("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n")).toBeUndefined();
  });

  test("this x86_64 host reports a plausible TSC frequency", () => {
    if (process.arch !== "x64" || process.platform !== "linux") return;
    const khz = hostTscKhz()!;
    expect(khz).toBeGreaterThan(500_000);
    expect(khz).toBeLessThan(10_000_000);
  });

  test("host arch maps Node's names to guest arches", () => {
    expect(hostArch("x64")).toBe("x86_64");
    expect(hostArch("arm64")).toBe("aarch64");
    expect(hostArch("riscv64")).toBeUndefined();
  });

  test("each guest arch has its QEMU program and console", () => {
    expect(qemuProgram("x86_64")).toBe("qemu-system-x86_64");
    expect(qemuProgram("aarch64")).toBe("qemu-system-aarch64");
    expect(consoleDevice("x86_64")).toBe("ttyS0");
    expect(consoleDevice("aarch64")).toBe("ttyAMA0");
  });
});

describe("QEMU version", () => {
  test("parses a distribution's -version banner", () => {
    const v = parseQemuVersion("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) ...\n");
    expect(v).toEqual({
      major: 7, minor: 2, micro: 22, text: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)",
    });
  });

  test("parses a banner without a micro version", () => {
    expect(parseQemuVersion("QEMU emulator version 9.0\n")).toMatchObject({ major: 9, minor: 0, micro: 0 });
  });

  test("rejects text that is not a version banner", () => {
    expect(parseQemuVersion("command not found")).toBeUndefined();
  });

  test("probes the installed QEMU once and caches it", async () => {
    if (!which("qemu-system-x86_64")) {
      console.log("skip: qemu-system-x86_64 is not installed");
      return;
    }
    const binary = qemuBinary("x86_64");
    const version = await qemuVersion(binary);
    expect(version.major).toBeGreaterThanOrEqual(7);
    expect(qemuVersion(binary)).toBe(qemuVersion(binary));
  });

  test("a missing QEMU is a BACKEND_UNAVAILABLE error with a hint", () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      // which() also looks in the sbin directories; neither emulator lives there.
      const error = (() => {
        try {
          qemuBinary("aarch64");
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      if (error === undefined) return; // installed in an sbin directory: nothing to assert
      expect(error).toBeInstanceOf(SmolError);
      expect((error as SmolError).code).toBe("BACKEND_UNAVAILABLE");
      expect((error as SmolError).hint).toBeTruthy();
    } finally {
      process.env.PATH = path;
    }
  });
});
