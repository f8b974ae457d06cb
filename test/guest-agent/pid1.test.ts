/**
 * The agent as PID 1 in a real microVM: mounts, hostname, network, the virtio port (including
 * host disconnects and a mid-frame reconnect), zombie reaping and shutdown. Needs QEMU, a
 * static busybox and a kernel already built into the test cache; skipped otherwise, saying why.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient } from "../../lib/agent/client.ts";
import { guestAgentBinaryPath } from "../../lib/agent/binary.ts";
import { encodeFrame, FrameType, MAX_PAYLOAD } from "../../lib/agent/frame.ts";
import { runHostChecked, which } from "../../lib/host/process.ts";
import { makeAgent, waitUntil } from "../helpers/agent.ts";

function findKernel(): string | undefined {
  const root = join(process.env.SMOLVM_CACHE ?? "", "kernels");
  if (!process.env.SMOLVM_CACHE || !existsSync(root)) return undefined;
  for (const d of readdirSync(root)) {
    const v = join(root, d, "vmlinux");
    if (d.startsWith("x86_64-") && existsSync(v)) return v;
  }
  return undefined;
}

const kernel = findKernel();
const qemu = which("qemu-system-x86_64");
const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const missing = !kernel ? "no x86_64 kernel in the test cache" : !qemu ? "no qemu-system-x86_64" : !busybox ? "no busybox" : !which("mkfs.ext4") ? "no mkfs.ext4" : undefined;
if (missing) console.log(`pid1.test.ts skipped: ${missing}`);

const APPLETS = ["sh", "cat", "echo", "sleep", "true", "stty", "ls", "printf", "head", "env", "hostname", "ip", "wc", "awk", "grep", "tr"];

let dir: string;
let vm: ChildProcess | undefined;
let vmExited: Promise<number | null>;
let sockPath: string;
let consolePath: string;

function tscKhz(): string {
  const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync("/proc/cpuinfo", "utf8"));
  return m ? String(Math.round(Number(m[1]) * 1000)) : "2000000";
}

function openPort(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(sockPath, () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

describe.skipIf(missing !== undefined)("the agent as PID 1 in a microVM", () => {
  beforeAll(async () => {
    await makeAgent("guest");
    dir = mkdtempSync(join(tmpdir(), "smolvm-pid1-"));
    const root = join(dir, "root");
    for (const d of ["sbin", "bin", "etc", "root", "proc", "sys", "dev", "tmp", "run"]) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(guestAgentBinaryPath("x86_64"), join(root, "sbin", "smolvm-agent"));
    chmodSync(join(root, "sbin", "smolvm-agent"), 0o755);
    copyFileSync(busybox!, join(root, "bin", "busybox"));
    chmodSync(join(root, "bin", "busybox"), 0o755);
    for (const a of APPLETS) symlinkSync("busybox", join(root, "bin", a));
    const image = join(dir, "root.ext4");
    await runHostChecked("mkfs.ext4", ["-q", "-F", "-d", root, image, "64M"]);
    sockPath = join(dir, "agent.sock");
    consolePath = join(dir, "console.log");
    const append = [
      "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw rootfstype=ext4 init=/sbin/smolvm-agent quiet",
      `tsc_early_khz=${tscKhz()} tsc=reliable no_timer_check noapictimer`,
      "smolvm.hostname=pid1test smolvm.ip=10.0.2.15/24 smolvm.gw=10.0.2.2 smolvm.dns=10.0.2.3",
    ].join(" ");
    // As the QEMU backend runs TCG guests: with the PIT, without the APIC timer (its
    // calibration fails under TCG), so the guest's timers (and the agent's polling) work.
    vm = spawn(qemu!, [
      "-M", "microvm,acpi=off,pit=on,pic=on", "-cpu", "max", "-accel", "tcg,thread=single", "-smp", "1", "-m", "256",
      "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
      "-kernel", kernel!, "-append", append,
      "-serial", `file:${consolePath}`,
      "-drive", `if=none,id=rootdisk,file=${image},format=raw`, "-device", "virtio-blk-device,drive=rootdisk",
      "-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0",
      "-chardev", `socket,id=agent,path=${sockPath},server=on,wait=off`,
      "-device", "virtio-serial-device", "-device", "virtserialport,chardev=agent,name=org.smolvm.agent",
    ], { stdio: "ignore" });
    vmExited = new Promise((resolve) => vm!.once("exit", (code) => resolve(code)));
    const console_ = () => (existsSync(consolePath) ? readFileSync(consolePath, "utf8") : "");
    if (!(await waitUntil(() => console_().includes("smolvm-agent: ready"), 90_000))) {
      throw new Error(`the guest never printed "smolvm-agent: ready"; console:\n${console_()}`);
    }
  }, 120_000);

  afterAll(async () => {
    if (vm && vm.exitCode === null) {
      vm.kill("SIGKILL");
      await vmExited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("serves the protocol with init duties done: mounts, hostname, network, clock, entropy", async () => {
    const client = await AgentClient.connect(await openPort(), { timeoutMs: 30_000, timeMs: Date.now() });
    try {
      expect(client.hello.pid1).toBe(true);
      expect(client.hello.arch).toBe("x86_64");
      expect((await client.run("hostname")).stdout.trim()).toBe("pid1test");
      const mounts = (await client.run("cat /proc/mounts")).stdout;
      for (const m of [" /proc proc", " /sys sysfs", " /dev devtmpfs", " /dev/pts devpts", " /tmp tmpfs", " /run tmpfs"]) {
        expect(mounts).toContain(m);
      }
      expect((await client.run("ip addr show eth0")).stdout).toContain("10.0.2.15/24");
      expect((await client.run("ip route")).stdout).toContain("default via 10.0.2.2");
      expect((await client.run("cat /etc/resolv.conf")).stdout).toContain("nameserver 10.0.2.3");
      expect(await client.setTime(Date.now())).toEqual({ applied: true });
      expect(await client.reseed()).toEqual({ bytes: 64, credited: true, reseeded: true });
      const guestNow = Number((await client.run("date +%s")).stdout.trim()) * 1000;
      expect(Math.abs(guestNow - Date.now())).toBeLessThan(10_000);
    } finally {
      await client.close();
    }
  }, 60_000);

  test("identity gives the guest a new clock, CRNG key, hostname and boot id, and keeps its network", async () => {
    const client = await AgentClient.connect(await openPort(), { timeoutMs: 30_000 });
    try {
      const read = async () => (await client.run("cat /proc/sys/kernel/random/boot_id; hostname; grep 127.0.1.1 /etc/hosts; head -c 16 /dev/urandom | od -An -tx1")).stdout;
      const before = await read();
      const first = await client.identity({ hostname: "renamed", ip: "10.0.2.15/24", gw: "10.0.2.2", dns: "10.0.2.3" });
      expect(first.applied).toBe(true);
      expect(first.reseeded).toBe(true);
      expect(first.bootId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const [bootId, name, hosts] = (await read()).split("\n");
      expect(bootId).toBe(first.bootId!);
      expect(bootId).not.toBe(before.split("\n")[0]);
      expect(name).toBe("renamed");
      expect(hosts).toBe("127.0.1.1\trenamed");
      // A second restore of the same guest rewrites the same mount: one mount, a new id.
      const second = await client.identity({ hostname: "pid1test", timeMs: Date.now() });
      expect(second.bootId).not.toBe(first.bootId);
      expect((await client.run("cat /proc/sys/kernel/random/boot_id")).stdout.trim()).toBe(second.bootId!);
      expect((await client.run("grep -c boot_id /proc/mounts")).stdout.trim()).toBe("1");
      expect((await client.run("ip route")).stdout).toContain("default via 10.0.2.2");
      expect((await client.run("hostname")).stdout.trim()).toBe("pid1test");
    } finally {
      await client.close();
    }
  }, 60_000);

  test("a PTY works inside the guest and orphans are reaped", async () => {
    const client = await AgentClient.connect(await openPort(), { timeoutMs: 30_000 });
    try {
      const h = await client.exec({ argv: ["/bin/sh"], pty: { rows: 33, cols: 77 } });
      let screen = "";
      h.stdout.setEncoding("utf8");
      h.stdout.on("data", (s: string) => (screen += s));
      h.stdin!.write("stty size; exit\n");
      await h.wait();
      expect(screen).toContain("33 77");
      await client.run("sleep 0.2 & exit 0"); // the sleep is orphaned to PID 1
      await new Promise((r) => setTimeout(r, 1000));
      const states = (await client.run("cat /proc/[0-9]*/stat | awk '{print $3}' | tr -d '\\n'")).stdout;
      expect(states).not.toContain("Z");
    } finally {
      await client.close();
    }
  }, 60_000);

  test("a host that vanished mid-frame is replaced by one that resyncs", async () => {
    const old = await openPort();
    old.write(encodeFrame(FrameType.HELLO, 0, '{"protocol":1,"nonce":"old"}'));
    old.write(encodeFrame(FrameType.DATA, 1, Buffer.alloc(MAX_PAYLOAD, 9)).subarray(0, 3000));
    await new Promise((r) => setTimeout(r, 300));
    old.destroy();
    const client = await AgentClient.connect(await openPort(), { resync: true, timeoutMs: 30_000 });
    try {
      expect((await client.run("echo back")).stdout).toBe("back\n");
    } finally {
      await client.close();
    }
  }, 60_000);

  // What the supervisor's stop relies on: once the answer to a "synced" shutdown arrives, the disk
  // image is complete and clean, so the host may end the VMM that instant. The image is copied at
  // the moment of the answer (what a kill then would leave); the VM must still end by itself.
  test("shutdown answered after sync: the disk is complete and clean at the answer, then the VM ends", async () => {
    const client = await AgentClient.connect(await openPort(), { timeoutMs: 30_000 });
    expect((await client.run("echo durable > /root/marker")).exitCode).toBe(0);
    expect(await client.shutdown({ answer: "synced" })).toEqual({ synced: true });
    const atAnswer = join(dir, "at-answer.ext4");
    copyFileSync(join(dir, "root.ext4"), atAnswer);
    const code = await Promise.race([vmExited, new Promise((r) => setTimeout(() => r("still running"), 30_000))]);
    expect(code).not.toBe("still running");
    expect((await runHostChecked("debugfs", ["-R", "cat /root/marker", atAnswer])).stdout).toBe("durable\n");
    expect((await runHostChecked("dumpe2fs", ["-h", atAnswer])).stdout).toMatch(/Filesystem state:\s+clean\n/);
  }, 60_000);
});
