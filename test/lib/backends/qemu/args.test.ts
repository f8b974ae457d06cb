import { describe, expect, test } from "bun:test";
import {
  AGENT_PORT_NAME, escapeOptionValue, hostForwardRule, incomingFromCompressedFile, incomingFromFile, migrateToFileUri, qemuArgs, type QemuSpec,
  shellQuote,
} from "../../../../lib/backends/qemu/args.ts";
import { SmolError } from "../../../../lib/errors.ts";

const CMDLINE = "console=ttyS0 reboot=t panic=-1 quiet tsc_early_khz=2096038 tsc=reliable no_timer_check root=/dev/vda";

function x86(overrides: Partial<QemuSpec> = {}): QemuSpec {
  return {
    arch: "x86_64",
    accel: "tcg",
    vcpus: 1,
    memoryMiB: 512,
    kernelPath: "/cache/kernels/abc/vmlinux",
    cmdline: CMDLINE,
    disk: { path: "/vms/dev/disk.qcow2", format: "qcow2" },
    network: { mode: "user", hostForwards: [{ hostPort: 2222, guestPort: 22 }] },
    agentSocketPath: "/vms/dev/agent.sock",
    qmpSocketPath: "/vms/dev/qmp.sock",
    serialLogPath: "/vms/dev/console.log",
    ...overrides,
  };
}

/** The value following `flag` each time it occurs. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1]!] : []));
}

describe("qemuArgs on x86_64", () => {
  const args = qemuArgs(x86());

  test("uses microvm without ACPI, PIT or PIC under kvm, and keeps the RTC", () => {
    const kvm = qemuArgs(x86({ accel: "kvm" }));
    expect(values(kvm, "-M")).toEqual(["microvm,acpi=off,pit=off,pic=off"]);
    expect(kvm.join(" ")).not.toContain("rtc=off");
  });

  test("keeps the PIT and PIC under tcg, where they are the guest's only working timer", () => {
    expect(values(args, "-M")).toEqual(["microvm,acpi=off,pit=on,pic=on"]);
    expect(args.join(" ")).not.toContain("rtc=off");
  });

  test("runs one vCPU under single-threaded tcg with the max CPU model", () => {
    expect(values(args, "-cpu")).toEqual(["max"]);
    expect(values(args, "-accel")).toEqual(["tcg,thread=single"]);
    expect(values(args, "-smp")).toEqual(["1"]);
    expect(values(args, "-m")).toEqual(["512"]);
  });

  test("uses multi-threaded tcg for several vCPUs and the host CPU under kvm", () => {
    const smp = qemuArgs(x86({ vcpus: 2 }));
    expect(values(smp, "-accel")).toEqual(["tcg"]);
    expect(values(smp, "-smp")).toEqual(["2"]);
    const kvm = qemuArgs(x86({ accel: "kvm" }));
    expect(values(kvm, "-accel")).toEqual(["kvm"]);
    expect(values(kvm, "-cpu")).toEqual(["host"]);
  });

  test("has no default devices, no user config, no display, and exits instead of rebooting", () => {
    for (const flag of ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]) expect(args).toContain(flag);
  });

  test("passes the kernel and its command line as single argv elements, unquoted", () => {
    expect(values(args, "-kernel")).toEqual(["/cache/kernels/abc/vmlinux"]);
    expect(values(args, "-append")).toEqual([CMDLINE]);
    const odd = qemuArgs(x86({ cmdline: `init=/bin/sh -c "echo 'hi there'"` }));
    expect(values(odd, "-append")).toEqual([`init=/bin/sh -c "echo 'hi there'"`]);
  });

  test("attaches the root disk as a virtio-mmio block device", () => {
    expect(values(args, "-drive")).toEqual([
      "if=none,id=rootdisk,file=/vms/dev/disk.qcow2,format=qcow2,cache=unsafe,discard=unmap",
    ]);
    expect(values(args, "-device")).toContain("virtio-blk-device,drive=rootdisk");
    const raw = qemuArgs(x86({ disk: { path: "/images/base.ext4", format: "raw", readOnly: true } }));
    expect(values(raw, "-drive")[0]).toBe("if=none,id=rootdisk,file=/images/base.ext4,format=raw,cache=unsafe,discard=unmap,readonly=on");
  });

  test("user networking forwards ports on 127.0.0.1 only", () => {
    expect(values(args, "-netdev")).toEqual(["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"]);
    expect(values(args, "-device")).toContain("virtio-net-device,netdev=net0");
  });

  test("several forwards, an explicit address and a MAC", () => {
    const many = qemuArgs(x86({
      network: {
        mode: "user",
        mac: "52:54:00:12:34:56",
        hostForwards: [
          { hostPort: 2222, guestPort: 22 },
          { protocol: "udp", hostAddress: "127.0.0.2", hostPort: 5353, guestPort: 53 },
        ],
      },
    }));
    expect(values(many, "-netdev")).toEqual([
      "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.2:5353-:53",
    ]);
    expect(values(many, "-device")).toContain("virtio-net-device,netdev=net0,mac=52:54:00:12:34:56");
  });

  test("a TAP network uses the named device with no helper scripts", () => {
    const tap = qemuArgs(x86({ network: { mode: "tap", ifname: "smol0" } }));
    expect(values(tap, "-netdev")).toEqual(["tap,id=net0,ifname=smol0,script=no,downscript=no"]);
  });

  test("no network means no network device at all", () => {
    const none = qemuArgs(x86({ network: { mode: "none" } }));
    expect(none).not.toContain("-netdev");
    expect(none.join(" ")).not.toContain("virtio-net");
  });

  test("the agent port is a virtserialport named org.smolvm.agent on a listening socket", () => {
    expect(values(args, "-chardev")).toContain("socket,id=agent,path=/vms/dev/agent.sock,server=on,wait=off");
    expect(values(args, "-device")).toContain("virtio-serial-device,id=vser0");
    expect(values(args, "-device")).toContain(`virtserialport,bus=vser0.0,chardev=agent,name=${AGENT_PORT_NAME}`);
    expect(AGENT_PORT_NAME).toBe("org.smolvm.agent");
  });

  test("the serial console is appended to the log file", () => {
    expect(values(args, "-chardev")).toContain("file,id=console,path=/vms/dev/console.log,append=on");
    expect(values(args, "-serial")).toEqual(["chardev:console"]);
  });

  test("QMP listens on its Unix socket without waiting for a client", () => {
    expect(values(args, "-chardev")).toContain("socket,id=qmp,path=/vms/dev/qmp.sock,server=on,wait=off");
    expect(values(args, "-mon")).toEqual(["chardev=qmp,mode=control"]);
  });

  test("the guest gets a virtio-rng device fed from /dev/urandom unless turned off", () => {
    expect(values(args, "-device")).toContain("virtio-rng-device,rng=rng0");
    expect(values(args, "-object")).toEqual(["rng-random,id=rng0,filename=/dev/urandom"]);
    expect(qemuArgs(x86({ rng: false })).join(" ")).not.toContain("rng");
  });

  test("pidfile, paused start and incoming migration are passed through", () => {
    const restore = qemuArgs(x86({ pidFile: "/vms/dev/qemu.pid", startPaused: true, incoming: incomingFromFile("/s/state") }));
    expect(values(restore, "-pidfile")).toEqual(["/vms/dev/qemu.pid"]);
    expect(restore).toContain("-S");
    expect(values(restore, "-incoming")).toEqual(["exec:cat '/s/state'"]);
    // A stored snapshot's state streams through zstd; a quote in the path cannot end the word.
    expect(incomingFromCompressedFile("/s/it's/vmstate.zst")).toBe(`exec:zstd -dcq '/s/it'\\''s/vmstate.zst'`);
    expect(args).not.toContain("-S");
    expect(args).not.toContain("-incoming");
  });

  test("commas in paths are doubled so QEMU does not split the option", () => {
    const odd = qemuArgs(x86({ qmpSocketPath: "/tmp/a,b/qmp.sock", disk: { path: "/x,y.qcow2", format: "qcow2" } }));
    expect(values(odd, "-chardev")).toContain("socket,id=qmp,path=/tmp/a,,b/qmp.sock,server=on,wait=off");
    expect(values(odd, "-drive")[0]).toContain("file=/x,,y.qcow2,");
  });

  test("the same spec always gives the same argv (a restore needs identical devices)", () => {
    expect(qemuArgs(x86())).toEqual(qemuArgs(x86()));
  });
});

describe("qemuArgs on aarch64", () => {
  const args = qemuArgs(x86({ arch: "aarch64", kernelPath: "/k/Image", cmdline: "console=ttyAMA0" }));

  test("uses the virt machine with the max CPU under tcg", () => {
    expect(values(args, "-M")).toEqual(["virt,gic-version=max"]);
    expect(values(args, "-cpu")[0]).toStartWith("max");
  });

  test("uses virtio-mmio variants of every virtio device (the guest kernel has no PCI)", () => {
    const devices = values(args, "-device");
    for (const dev of ["virtio-blk-device,drive=rootdisk", "virtio-net-device,netdev=net0", "virtio-rng-device,rng=rng0",
      "virtio-serial-device,id=vser0"]) {
      expect(devices).toContain(dev);
    }
    expect(args.join(" ")).not.toMatch(/virtio-\w+-pci/);
  });

  test("uses the host CPU under kvm and hvf", () => {
    const kvm = qemuArgs(x86({ arch: "aarch64", accel: "kvm" }));
    expect(values(kvm, "-cpu")).toEqual(["host"]);
    const hvf = qemuArgs(x86({ arch: "aarch64", accel: "hvf" }));
    expect(values(hvf, "-M")).toEqual(["virt"]);
    expect(values(hvf, "-accel")).toEqual(["hvf"]);
  });
});

describe("qemuArgs validation", () => {
  test("rejects a bad port, vCPU count, memory size or MAC with INVALID_INPUT", () => {
    const bad: Partial<QemuSpec>[] = [
      { network: { mode: "user", hostForwards: [{ hostPort: 0, guestPort: 22 }] } },
      { network: { mode: "user", hostForwards: [{ hostPort: 70000, guestPort: 22 }] } },
      { network: { mode: "user", hostForwards: [{ hostPort: 2222, guestPort: 22, hostAddress: "0.0.0.0,x" }] } },
      { network: { mode: "user", mac: "not-a-mac" } },
      { vcpus: 0 },
      { memoryMiB: 1.5 },
    ];
    for (const overrides of bad) {
      let caught: unknown;
      try {
        qemuArgs(x86(overrides));
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(SmolError);
      expect((caught as SmolError).code).toBe("INVALID_INPUT");
    }
  });

  test("a command line without a kernel is refused", () => {
    expect(() => qemuArgs(x86({ kernelPath: undefined }))).toThrow(SmolError);
  });
});

describe("helpers", () => {
  test("hostForwardRule defaults to tcp on 127.0.0.1", () => {
    expect(hostForwardRule({ hostPort: 2200, guestPort: 22 })).toBe("tcp:127.0.0.1:2200-:22");
  });

  test("escapeOptionValue doubles commas only", () => {
    expect(escapeOptionValue("a,b,,c d")).toBe("a,,b,,,,c d");
  });

  test("migration URIs quote the file for the shell", () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(migrateToFileUri("/s/my state")).toBe("exec:cat > '/s/my state'");
    expect(incomingFromFile("/s/$x")).toBe("exec:cat '/s/$x'");
  });
});
