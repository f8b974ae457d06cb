/**
 * `smolvm doctor`'s verdict: a pure function from probed host facts to checks, the backend and
 * channel the user will actually get, and what to install. Keeping it pure means every host
 * shape (no KVM, macOS, missing QEMU...) is covered by unit tests without that host.
 */
import { aptInstallHint, DEBIAN_PACKAGES } from "../host/packages.ts";
import { HYPERVISOR_ENTITLEMENT } from "./entitlements.ts";
import type { HostFacts } from "./probe.ts";

export type CheckStatus = "ok" | "warn" | "fail";

export interface Check {
  id: string;
  status: CheckStatus;
  summary: string;
  hint?: string;
}

export interface Diagnosis {
  checks: Check[];
  backend: "qemu" | "firecracker" | "none";
  accel: "kvm" | "hvf" | "tcg" | "none";
  channel: string;
  /** One plain sentence about what this host will do, for the top of the report. */
  headline: string;
  ok: boolean;
}

const GiB = 1024 ** 3;

export function diagnose(facts: HostFacts): Diagnosis {
  const checks: Check[] = [];
  const add = (id: string, status: CheckStatus, summary: string, hint?: string) =>
    checks.push(hint === undefined ? { id, status, summary } : { id, status, summary, hint });
  const linux = facts.platform === "linux";
  const mac = facts.platform === "darwin";

  if (linux || mac) add("os", "ok", `${facts.platform} ${facts.arch}`);
  else add("os", "fail", `${facts.platform} is not supported`, "smolvm runs on Linux and macOS");
  if (facts.arch !== "x64" && facts.arch !== "arm64") {
    add("arch", "fail", `CPU architecture ${facts.arch} is not supported`, "use an x86_64 or arm64 host");
  }

  let accel: Diagnosis["accel"] = "tcg";
  const kvm = facts.kvm;
  if (linux) {
    if (!kvm.present) {
      add("kvm", "warn", "no /dev/kvm: QEMU will run in software emulation (TCG), about 10x slower",
        "enable virtualization (VT-x/AMD-V) in the firmware, or use a host or VM type with nested virtualization");
    } else if (kvm.openProblem !== undefined) {
      add("kvm", "warn", `${kvm.openProblem}: QEMU falls back to software emulation, about 10x slower`,
        "add your user to the kvm group (sudo usermod -aG kvm $USER) and log in again");
    } else if (kvm.verdict === undefined) {
      add("kvm", "warn", "/dev/kvm opens, but no guest has been run under it yet: not proven",
        "`smolvm setup` builds the guest kernel; the first sandbox (or `smolvm doctor` after it) proves KVM");
    } else if (kvm.verdict.usable) {
      accel = "kvm";
      add("kvm", "ok", "KVM ran a test guest: hardware-accelerated VMs");
    } else {
      add("kvm", "warn", `present but cannot run a guest: ${kvm.verdict.reason}`,
        "sandboxes fall back to software emulation; on a cloud VM, pick an instance type with nested virtualization");
    }
  } else if (mac) {
    if (facts.hvf) {
      accel = "hvf";
      add("hvf", "ok", "Hypervisor.framework is available: hardware-accelerated VMs");
    } else {
      add("hvf", "warn", "Hypervisor.framework is not available: QEMU will run in software emulation, about 10x slower");
    }
  }
  if (facts.accelOverride !== undefined && facts.accelOverride !== "" && facts.accelOverride !== "auto") {
    const forced = facts.accelOverride;
    const valid = forced === "kvm" || forced === "hvf" || forced === "tcg";
    add("accel", valid ? "ok" : "fail", valid ? `SMOLVM_ACCEL=${forced}: every sandbox is told to use ${forced}` : `SMOLVM_ACCEL is "${forced}", which is not an accelerator`,
      valid ? undefined : "set SMOLVM_ACCEL to auto, kvm, hvf or tcg, or unset it");
    if (valid) accel = forced;
  }

  const qemu = facts.qemuSystem;
  if (qemu.path !== undefined) add("qemu", "ok", `${qemu.binary} ${qemu.version ?? "(version unknown)"}`);
  else add("qemu", "fail", `${qemu.binary} not found: no backend can run sandboxes`, installHint(facts, DEBIAN_PACKAGES.qemuSystem, "qemu"));
  if (mac && qemu.path !== undefined) {
    // QEMU, not smolvm, opens the hypervisor, so the entitlement is QEMU's to have.
    if (facts.qemuHypervisorEntitlement === true) add("qemu-hvf", "ok", `${qemu.binary} is signed with ${HYPERVISOR_ENTITLEMENT}`);
    else if (facts.qemuHypervisorEntitlement === false) {
      add("qemu-hvf", "fail", `${qemu.binary} lacks the ${HYPERVISOR_ENTITLEMENT} entitlement: it cannot use HVF, so sandboxes cannot start`,
        `use Homebrew's qemu (brew install qemu), which is signed with it, or sign yours: codesign --force --sign - --entitlements FILE.plist ${qemu.path}`);
    } else add("qemu-hvf", "warn", `cannot read ${qemu.binary}'s entitlements (codesign -d --entitlements - ${qemu.path})`, "HVF needs QEMU signed with com.apple.security.hypervisor (Homebrew's qemu is)");
  }
  if (facts.qemuImg.path !== undefined) add("qemu-img", "ok", `qemu-img ${facts.qemuImg.version ?? "(version unknown)"}`);
  else add("qemu-img", "fail", "qemu-img not found: isolated disks (copy-on-write overlays) cannot be made", installHint(facts, DEBIAN_PACKAGES.qemuImg, "qemu"));

  if (linux) firecrackerCheck(facts, add);

  const mkfs = facts.mkfsExt4;
  if (mkfs.path === undefined) add("mkfs.ext4", "fail", "mkfs.ext4 not found: images cannot be built", installHint(facts, DEBIAN_PACKAGES.mkfsExt4, "e2fsprogs"));
  else if (!mkfs.populatesFromDir) add("mkfs.ext4", "fail", `mkfs.ext4 ${mkfs.version ?? "(version unknown)"} lacks -d: images cannot be built without root`, "install e2fsprogs 1.43 or newer");
  else add("mkfs.ext4", "ok", `mkfs.ext4 ${mkfs.version} (supports -d)`);

  if (facts.ssh.path !== undefined) add("ssh", "ok", `OpenSSH ${facts.ssh.version ?? ""}`.trim());
  else add("ssh", "warn", "OpenSSH client not found: `smolvm ssh` is unavailable (the SDK's SSH channel still works)", installHint(facts, DEBIAN_PACKAGES.ssh, "openssh"));

  if (linux) networkCheck(facts.network, add);
  if (mac) {
    add("network", "warn", "sandboxes on macOS have no network (--network none, the default here): the user and TAP networks keep a guest from the host with Linux namespaces and nftables",
      "commands, files, port forwards and SSH still work through the agent; run on Linux for a sandbox with a network");
  }

  if (facts.freeDiskBytes === undefined) add("disk", "warn", `cannot tell the free space under ${facts.home}`);
  else {
    const free = `${(facts.freeDiskBytes / GiB).toFixed(1)} GiB free under ${facts.home}`;
    if (facts.freeDiskBytes < 1 * GiB) add("disk", "fail", free, "images and disks need a few GiB: free some space or point SMOLVM_HOME elsewhere");
    else if (facts.freeDiskBytes < 5 * GiB) add("disk", "warn", free, "the debian image and kernel build need about 5 GiB");
    else add("disk", "ok", free);
  }

  add("kernel", facts.kernelsCached > 0 ? "ok" : "warn",
    facts.kernelsCached > 0 ? `${facts.kernelsCached} kernel build(s) cached` : "no guest kernel built yet",
    facts.kernelsCached > 0 ? undefined : "`smolvm setup` builds it once (about 10 minutes); `smolvm run` also does on first use");
  add("images", facts.imagesCached > 0 ? "ok" : "warn",
    facts.imagesCached > 0 ? `${facts.imagesCached} image(s) cached` : "no image built yet",
    facts.imagesCached > 0 ? undefined : "`smolvm setup` builds the default image; `smolvm run` also does on first use");

  // What a sandbox created with no options gets: its default network (user mode) is QEMU's, so
  // Firecracker, when it can run, is for sandboxes that ask for it (the firecracker check says).
  const backend: Diagnosis["backend"] = qemu.path !== undefined ? "qemu" : "none";
  if (backend === "none") accel = "none";
  const channel = channelFor(facts);
  const headline =
    backend === "none"
      ? "No usable backend: install QEMU (see the failed checks below)."
      : mac && facts.qemuHypervisorEntitlement === false
        ? "QEMU cannot use HVF (it lacks the hypervisor entitlement): sandboxes cannot start until it does (see below)."
        : accel === "tcg"
          ? "Sandboxes will run on QEMU in software emulation (no hardware acceleration), about 10x slower than with KVM."
          : `Sandboxes will run on QEMU with ${accel.toUpperCase()}.`;
  return { checks, backend, accel, channel, headline, ok: !checks.some((c) => c.status === "fail") };
}

/** The default network (user mode) must work; TAP mode is said to be there or not. */
function networkCheck(network: HostFacts["network"], add: (id: string, status: CheckStatus, summary: string, hint?: string) => void): void {
  const tap = network.netAdmin ? "TAP mode available (CAP_NET_ADMIN)" : "TAP mode needs root or CAP_NET_ADMIN";
  if (network.missing.length > 0) {
    const packages = [...new Set(network.missing.map((program) => ({ pasta: DEBIAN_PACKAGES.pasta, unshare: "util-linux", nsenter: "util-linux", nft: DEBIAN_PACKAGES.nft, ip: DEBIAN_PACKAGES.ip })[program] ?? program))];
    add("network", "fail", `the sandbox network needs ${network.missing.join(", ")}: sandboxes can only be created with --network none`, aptInstallHint(...packages));
  } else if (!network.userNamespaces) {
    add("network", "fail", "this user may not create user namespaces: the default network cannot isolate sandboxes from the host",
      "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0), or use --network none");
  } else if (!network.tun) {
    add("network", "fail", "/dev/net/tun is not usable by this user: pasta cannot connect sandboxes to the outside",
      "make it read-write for users (mode 0666, Debian's default), or use --network none");
  } else {
    add("network", "ok", `sandboxes reach the internet and nothing of the host (user namespaces, nftables, pasta); ${tap}`);
  }
}

/**
 * The firecracker binary, its version, and whether it can run a guest here (Linux, x86_64 or
 * aarch64, and KVM proven to run one), or why not.
 */
function firecrackerCheck(facts: HostFacts, add: (id: string, status: CheckStatus, summary: string, hint?: string) => void): void {
  const fc = facts.firecracker;
  if (fc.path === undefined) {
    add("firecracker", "ok", "firecracker not installed (optional): sandboxes run on QEMU; `smolvm setup --firecracker` installs it");
    return;
  }
  if (fc.version === undefined) {
    add("firecracker", "warn", `${fc.path} did not report a version: the Firecracker backend cannot use it`,
      "reinstall it with `smolvm setup --firecracker`, or remove it");
    return;
  }
  const found = `firecracker ${fc.version} (${fc.path})`;
  const why = facts.arch !== "x64" && facts.arch !== "arm64"
    ? `Firecracker supports x86_64 and aarch64 hosts, not ${facts.arch}`
    : !facts.kvm.present ? "there is no /dev/kvm"
      : facts.kvm.openProblem !== undefined ? facts.kvm.openProblem
        : facts.kvm.verdict === undefined ? "KVM is not proven to run a guest yet"
          : facts.kvm.verdict.usable ? undefined : `KVM cannot run a guest: ${facts.kvm.verdict.reason}`;
  if (why === undefined) {
    add("firecracker", "ok", `${found} can run sandboxes here (--backend firecracker, or the default for sandboxes with --network none or tap)`);
  } else {
    add("firecracker", "warn", `${found} cannot run here: ${why}`,
      "Firecracker needs KVM that runs guests (see the kvm check); sandboxes run on QEMU meanwhile");
  }
}

/** The channel a new sandbox of the default image would get, from what was probed. */
function channelFor(facts: HostFacts): string {
  const agent = facts.qemuVirtioSerial === true
    ? "the guest agent over virtio-serial"
    : facts.qemuVirtioSerial === false ? "none (this QEMU lacks virtio-serial)" : "unknown (QEMU not probed)";
  const image = facts.defaultImage;
  const ssh = !image.built
    ? `SSH fallback unknown until the ${image.name} image is built`
    : image.sshd === true ? `SSH fallback (the ${image.name} image has sshd)`
      : image.sshd === false ? `no SSH fallback (the ${image.name} image has no sshd)` : "SSH fallback unknown (image not readable)";
  return `${agent}; ${ssh}`;
}

function installHint(facts: HostFacts, debianPackage: string, brewFormula: string): string {
  return facts.platform === "darwin" ? `install it: brew install ${brewFormula}` : aptInstallHint(debianPackage);
}
