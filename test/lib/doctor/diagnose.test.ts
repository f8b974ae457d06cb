import { describe, expect, test } from "bun:test";
import { diagnose } from "../../../lib/host/doctor.ts";
import { versionAtLeast, type HostFacts } from "../../../lib/host/probe.ts";

const GiB = 1024 ** 3;
const tool = (version: string) => ({ path: `/usr/bin/x`, version });
const missing = { path: undefined, version: undefined };

function facts(overrides: Partial<HostFacts> = {}): HostFacts {
  return {
    platform: "linux",
    arch: "x64",
    kvm: { present: true, usable: true },
    hvf: false,
    qemuSystem: { ...tool("7.2.22"), binary: "qemu-system-x86_64" },
    qemuImg: tool("7.2.22"),
    firecracker: missing,
    vhostVsock: true,
    netTun: true,
    nft: tool("1.0.6"),
    ip: tool("6.1.0"),
    mkfsExt4: { ...tool("1.47.0"), populatesFromDir: true },
    ssh: tool("9.2p1"),
    home: "/home/u/.smolvm",
    freeDiskBytes: 50 * GiB,
    kernelsCached: 1,
    imagesCached: 2,
    ...overrides,
  };
}

const status = (d: ReturnType<typeof diagnose>, id: string) => d.checks.find((c) => c.id === id)?.status;

describe("doctor verdict", () => {
  test("KVM host with QEMU and no firecracker: QEMU with KVM, firecracker suggested", () => {
    const d = diagnose(facts());
    expect(d.backend).toBe("qemu");
    expect(d.accel).toBe("kvm");
    expect(d.ok).toBe(true);
    expect(status(d, "firecracker")).toBe("ok");
  });

  test("no KVM says plainly that QEMU runs in software emulation", () => {
    const d = diagnose(facts({ kvm: { present: false, usable: false } }));
    expect(d.accel).toBe("tcg");
    expect(d.headline).toContain("software emulation");
    expect(status(d, "kvm")).toBe("warn");
    // Firecracker is useless without KVM, so its absence is not a problem.
    expect(status(d, "firecracker")).toBe("ok");
  });

  test("KVM present but not openable points at the kvm group", () => {
    const d = diagnose(facts({ kvm: { present: true, usable: false } }));
    expect(d.checks.find((c) => c.id === "kvm")?.hint).toContain("kvm group");
  });

  test("firecracker with KVM is reported, but sandboxes run on QEMU until that backend lands", () => {
    const d = diagnose(facts({ firecracker: tool("1.10.1") }));
    expect(d.backend).toBe("qemu");
    expect(d.checks.find((c) => c.id === "firecracker")?.summary).toContain("not in this build yet");
  });

  test("missing QEMU fails with an install hint and no backend", () => {
    const d = diagnose(facts({ qemuSystem: { ...missing, binary: "qemu-system-x86_64" } }));
    expect(d.ok).toBe(false);
    expect(d.backend).toBe("none");
    expect(d.checks.find((c) => c.id === "qemu")?.hint).toContain("apt-get install -y qemu-system-x86");
  });

  test("mkfs.ext4 without -d fails", () => {
    const d = diagnose(facts({ mkfsExt4: { ...tool("1.42.9"), populatesFromDir: false } }));
    expect(status(d, "mkfs.ext4")).toBe("fail");
  });

  test("low disk warns, very low disk fails", () => {
    expect(status(diagnose(facts({ freeDiskBytes: 3 * GiB })), "disk")).toBe("warn");
    expect(status(diagnose(facts({ freeDiskBytes: 0.5 * GiB })), "disk")).toBe("fail");
  });

  test("empty caches warn and name smolvm setup", () => {
    const d = diagnose(facts({ kernelsCached: 0, imagesCached: 0 }));
    expect(status(d, "kernel")).toBe("warn");
    expect(d.checks.find((c) => c.id === "kernel")?.hint).toContain("smolvm setup");
  });

  test("macOS uses HVF and brew hints", () => {
    const d = diagnose(facts({ platform: "darwin", arch: "arm64", hvf: true, qemuImg: missing }));
    expect(d.accel).toBe("hvf");
    expect(d.checks.find((c) => c.id === "qemu-img")?.hint).toContain("brew install");
    expect(d.checks.some((c) => c.id === "tun")).toBe(false);
  });

  test("unsupported OS fails", () => {
    expect(status(diagnose(facts({ platform: "win32" })), "os")).toBe("fail");
  });
});

test("versionAtLeast compares numerically", () => {
  expect(versionAtLeast("1.47.0", [1, 43])).toBe(true);
  expect(versionAtLeast("1.43", [1, 43])).toBe(true);
  expect(versionAtLeast("1.42.9", [1, 43])).toBe(false);
  expect(versionAtLeast("2.0", [1, 43])).toBe(true);
  expect(versionAtLeast("garbage", [1, 43])).toBe(false);
});
