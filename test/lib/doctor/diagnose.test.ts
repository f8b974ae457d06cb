import { describe, expect, test } from "bun:test";
import { diagnose } from "../../../lib/doctor/diagnose.ts";
import { versionAtLeast, type HostFacts } from "../../../lib/doctor/probe.ts";

const GiB = 1024 ** 3;
const tool = (version: string) => ({ path: `/usr/bin/x`, version });
const missing = { path: undefined, version: undefined };

function facts(overrides: Partial<HostFacts> = {}): HostFacts {
  return {
    platform: "linux",
    arch: "x64",
    kvm: { present: true, verdict: { usable: true } },
    hvf: false,
    qemuSystem: { ...tool("7.2.22"), binary: "qemu-system-x86_64" },
    qemuImg: tool("7.2.22"),
    firecracker: missing,
    qemuVirtioSerial: true,
    defaultImage: { name: "debian", built: true, sshd: true },
    mkfsExt4: { ...tool("1.47.0"), populatesFromDir: true },
    ssh: tool("9.2p1"),
    network: { missing: [], userNamespaces: true, tun: true, netAdmin: false },
    home: "/home/u/.smolvm",
    freeDiskBytes: 50 * GiB,
    kernelsCached: 1,
    imagesCached: 2,
    ...overrides,
  };
}

const status = (d: ReturnType<typeof diagnose>, id: string) => d.checks.find((c) => c.id === id)?.status;

describe("doctor verdict", () => {
  test("a host where KVM ran a test guest: QEMU with KVM; firecracker's absence is not a problem", () => {
    const d = diagnose(facts());
    expect(d.backend).toBe("qemu");
    expect(d.accel).toBe("kvm");
    expect(d.ok).toBe(true);
    expect(status(d, "firecracker")).toBe("ok");
    expect(d.checks.find((c) => c.id === "firecracker")?.summary).toContain("firecracker not installed (optional): sandboxes run on QEMU");
  });

  test("no KVM says plainly that QEMU runs in software emulation", () => {
    const d = diagnose(facts({ kvm: { present: false } }));
    expect(d.accel).toBe("tcg");
    expect(d.headline).toContain("software emulation");
    expect(status(d, "kvm")).toBe("warn");
  });

  test("KVM that opens but cannot run a guest is reported with the reason, and sandboxes use tcg", () => {
    const d = diagnose(facts({ kvm: { present: true, verdict: { usable: false, reason: "QEMU under KVM was killed by SIGABRT: failed to set MSR 0x10a" } } }));
    expect(d.accel).toBe("tcg");
    expect(d.checks.find((c) => c.id === "kvm")?.summary).toBe("present but cannot run a guest: QEMU under KVM was killed by SIGABRT: failed to set MSR 0x10a");
  });

  test("KVM not yet proven (no kernel) is not claimed as working", () => {
    const d = diagnose(facts({ kvm: { present: true } }));
    expect(d.accel).toBe("tcg");
    expect(d.checks.find((c) => c.id === "kvm")?.summary).toContain("not proven");
  });

  test("KVM present but not openable points at the kvm group", () => {
    const d = diagnose(facts({ kvm: { present: true, openProblem: "/dev/kvm is not accessible (add your user to group kvm)" } }));
    expect(d.checks.find((c) => c.id === "kvm")?.hint).toContain("kvm group");
  });

  test("firecracker: its version, and that it can run here where KVM ran a guest", () => {
    const d = diagnose(facts({ firecracker: tool("1.17.0") }));
    expect(status(d, "firecracker")).toBe("ok");
    expect(d.checks.find((c) => c.id === "firecracker")?.summary).toBe('firecracker 1.17.0 (/usr/bin/x) can run sandboxes here (--backend firecracker, or the default for sandboxes with --network none or tap)');
    // A sandbox created with no options gets user-mode networking, which is QEMU's.
    expect(d.backend).toBe("qemu");
  });

  test("firecracker that cannot run here says why, from the KVM facts", () => {
    const why = (kvm: HostFacts["kvm"]) => {
      const check = diagnose(facts({ kvm, firecracker: tool("1.17.0") })).checks.find((c) => c.id === "firecracker")!;
      expect(check.status).toBe("warn");
      expect(check.hint).toContain("KVM");
      return check.summary;
    };
    expect(why({ present: false })).toBe("firecracker 1.17.0 (/usr/bin/x) cannot run here: there is no /dev/kvm");
    expect(why({ present: true, openProblem: "/dev/kvm is not accessible" })).toEndWith("cannot run here: /dev/kvm is not accessible");
    expect(why({ present: true })).toEndWith("cannot run here: KVM is not proven to run a guest yet");
    expect(why({ present: true, verdict: { usable: false, reason: "failed to set MSR 0x10a" } })).toEndWith("cannot run here: KVM cannot run a guest: failed to set MSR 0x10a");
    const silent = diagnose(facts({ firecracker: { path: "/opt/firecracker", version: undefined } })).checks.find((c) => c.id === "firecracker")!;
    expect(silent.status).toBe("warn");
    expect(silent.summary).toBe("/opt/firecracker did not report a version: the Firecracker backend cannot use it");
  });

  test("SMOLVM_ACCEL is reported and decides the accelerator; a bad value fails", () => {
    expect(diagnose(facts({ accelOverride: "tcg" })).accel).toBe("tcg");
    expect(status(diagnose(facts({ accelOverride: "fast" })), "accel")).toBe("fail");
  });

  test("the channel line says what was probed: QEMU's virtio-serial and the image's sshd", () => {
    expect(diagnose(facts()).channel).toBe("the guest agent over virtio-serial; SSH fallback (the debian image has sshd)");
    expect(diagnose(facts({ defaultImage: { name: "debian", built: false } })).channel).toContain("unknown until the debian image is built");
    expect(diagnose(facts({ qemuVirtioSerial: false, defaultImage: { name: "debian", built: true, sshd: false } })).channel)
      .toBe("none (this QEMU lacks virtio-serial); no SSH fallback (the debian image has no sshd)");
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

describe("the network check", () => {
  const network = (overrides: Partial<HostFacts["network"]>) => diagnose(facts({ network: { missing: [], userNamespaces: true, tun: true, netAdmin: false, ...overrides } }));
  const check = (d: ReturnType<typeof diagnose>) => d.checks.find((c) => c.id === "network")!;

  test("ready: says what isolates sandboxes and whether TAP mode is there", () => {
    expect(check(network({}))).toMatchObject({ status: "ok" });
    expect(check(network({})).summary).toContain("TAP mode needs root or CAP_NET_ADMIN");
    expect(check(network({ netAdmin: true })).summary).toContain("TAP mode available");
  });

  test("fails with what to install, or what to allow, when the default network cannot work", () => {
    const missing = check(network({ missing: ["pasta", "nft"] }));
    expect(missing.status).toBe("fail");
    expect(missing.hint).toContain("passt");
    expect(missing.hint).toContain("nftables");
    expect(check(network({ userNamespaces: false })).summary).toContain("user namespaces");
    expect(check(network({ tun: false })).summary).toContain("/dev/net/tun");
  });

  test("on macOS, says sandboxes need --network none", () => {
    const mac = check(diagnose(facts({ platform: "darwin", network: { missing: ["pasta"], userNamespaces: false, tun: false, netAdmin: false } })));
    expect(mac.status).toBe("warn");
    expect(mac.summary).toContain("--network none");
  });
});
