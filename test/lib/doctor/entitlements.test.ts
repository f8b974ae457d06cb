import { describe, expect, test } from "bun:test";
import { diagnose } from "../../../lib/doctor/diagnose.ts";
import { grantsHypervisor } from "../../../lib/doctor/entitlements.ts";
import type { HostFacts } from "../../../lib/doctor/probe.ts";

// What `codesign -d --entitlements - $(which qemu-system-aarch64)` prints, in each format.
const BRACKETED = `Executable=/opt/homebrew/Cellar/qemu/9.2.0/bin/qemu-system-aarch64
[Dict]
\t[Key] com.apple.security.hypervisor
\t[Value]
\t\t[Bool] true
`;
const XML = `Executable=/usr/local/Cellar/qemu/8.1.0/bin/qemu-system-x86_64
??qq<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>com.apple.security.hypervisor</key>
    <true/>
</dict>
</plist>
`;

describe("reading QEMU's hypervisor entitlement from codesign", () => {
  test("granted, in the bracketed (macOS 12+) and the XML formats", () => {
    expect(grantsHypervisor(BRACKETED)).toBe(true);
    expect(grantsHypervisor(XML)).toBe(true);
  });

  test("absent: other entitlements only, none at all, explicitly false, or unsigned", () => {
    expect(grantsHypervisor(BRACKETED.replace("hypervisor", "network.client"))).toBe(false);
    expect(grantsHypervisor(XML.replace("<true/>", "<false/>"))).toBe(false);
    expect(grantsHypervisor(BRACKETED.replace("[Bool] true", "[Bool] false"))).toBe(false);
    expect(grantsHypervisor("Executable=/usr/local/bin/qemu-system-aarch64\n")).toBe(false);
    expect(grantsHypervisor("/usr/local/bin/qemu-system-aarch64: code object is not signed at all\n")).toBe(false);
  });

  test("unreadable output is unknown, not a verdict", () => {
    expect(grantsHypervisor("")).toBeUndefined();
    expect(grantsHypervisor("codesign: /nowhere: No such file or directory\n")).toBeUndefined();
  });
});

const GiB = 1024 ** 3;
const tool = (version: string) => ({ path: "/opt/homebrew/bin/x", version });
function macFacts(qemuHypervisorEntitlement: boolean | undefined): HostFacts {
  return {
    platform: "darwin",
    arch: "arm64",
    kvm: { present: false },
    hvf: true,
    qemuSystem: { ...tool("9.2.0"), binary: "qemu-system-aarch64" },
    ...(qemuHypervisorEntitlement === undefined ? {} : { qemuHypervisorEntitlement }),
    qemuImg: tool("9.2.0"),
    firecracker: { path: undefined, version: undefined },
    qemuVirtioSerial: true,
    defaultImage: { name: "debian", built: true, sshd: true },
    mkfsExt4: { ...tool("1.47.0"), populatesFromDir: true },
    ssh: tool("9.7p1"),
    network: { missing: [], userNamespaces: false, tun: false, netAdmin: false },
    home: "/Users/u/.smolvm",
    freeDiskBytes: 50 * GiB,
    kernelsCached: 1,
    imagesCached: 1,
  };
}

describe("doctor on macOS and QEMU's entitlement", () => {
  const check = (facts: HostFacts) => diagnose(facts).checks.find((c) => c.id === "qemu-hvf");

  test("a QEMU with the entitlement passes", () => {
    expect(check(macFacts(true))).toEqual({ id: "qemu-hvf", status: "ok", summary: "qemu-system-aarch64 is signed with com.apple.security.hypervisor" });
    expect(diagnose(macFacts(true)).headline).toBe("Sandboxes will run on QEMU with HVF.");
  });

  test("a QEMU without it fails, says sandboxes cannot start, and names the fix", () => {
    const diagnosis = diagnose(macFacts(false));
    expect(check(macFacts(false))?.status).toBe("fail");
    expect(check(macFacts(false))?.hint).toContain("brew install qemu");
    expect(diagnosis.ok).toBe(false);
    expect(diagnosis.headline).toContain("lacks the hypervisor entitlement");
  });

  test("an unreadable signature is a warning; Linux hosts have no such check", () => {
    expect(check(macFacts(undefined))?.status).toBe("warn");
    expect(check({ ...macFacts(undefined), platform: "linux" })).toBeUndefined();
  });
});
