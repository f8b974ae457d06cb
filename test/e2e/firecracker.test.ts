/**
 * Real sandboxes on Firecracker, through the SDK: the scenarios of the QEMU end-to-end suite
 * (create, exec, files in and out, stop/start keeping files, pause/resume, delete leaving nothing)
 * with `backend: "firecracker"`. It runs where a `firecracker` binary is on PATH and KVM can run a
 * guest, and is reported as skipped with the reason everywhere else. CI's Firecracker job sets
 * SMOLVM_REQUIRE_FIRECRACKER=1, which turns that skip into a failure: a runner that silently lost
 * KVM must not pass.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { qemuProgram } from "../../lib/backends/accel.ts";
import { findVmmProgram } from "../../lib/backends/firecracker/locate.ts";
import { canRunHere, defaultKvmCheck } from "../../lib/backends/firecracker/process.ts";
import { provenKvm } from "../../lib/backends/kvm-probe.ts";
import { which } from "../../lib/host/process.ts";
import { hostGuestArch } from "../../lib/kernel/arch.ts";
import { ensureKernel } from "../../lib/kernel/build.ts";
import { GUEST_HOME } from "../../lib/guest.ts";
import { SmolVM } from "../../lib/index.ts";
import { paths } from "../../lib/paths.ts";
import { envelope, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, processesMatching, waitUntil } from "../helpers/vm.ts";

setDefaultTimeout(120_000);

// KVM is proven by booting our kernel under it (with QEMU, as smolvm does everywhere), and only
// once the firecracker binary has been found: a host without one builds nothing.
const verdict = await canRunHere({
  which: findVmmProgram,
  kvm: async () => {
    const arch = hostGuestArch();
    const qemu = which(qemuProgram(arch));
    if (qemu === undefined) return defaultKvmCheck(arch)();
    return provenKvm({ arch, qemuBinary: qemu, kernelPath: await ensureKernel() });
  },
});
const skipWhy = verdict.ok ? undefined : `${verdict.reason}; ${verdict.hint}`;
const required = process.env.SMOLVM_REQUIRE_FIRECRACKER === "1";
if (skipWhy) console.log(`skip: Firecracker end-to-end tests: ${skipWhy}`);
const suite = skipWhy ? describe.skip : describe;

if (skipWhy && required) {
  test("Firecracker can run here (SMOLVM_REQUIRE_FIRECRACKER=1)", () => {
    throw new Error(`Firecracker cannot run here: ${skipWhy}`);
  });
}

/** Firecracker has no user-mode networking; the agent talks over vsock, which needs no network. */
const FIRECRACKER = { image: "base", backend: "firecracker", network: "none", commChannel: "vsock" } as const;

suite("Firecracker sandboxes", () => {
  let scratch: string | undefined;
  beforeAll(async () => {
    console.log(`firecracker ${verdict.ok ? verdict.version : "?"} at ${verdict.ok ? verdict.binary : "?"}`);
    await prepareArtifacts();
    scratch = mkdtempSync(join(tmpdir(), "smolvm-fc-e2e-"));
  }, 30 * 60_000);
  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });
  cleanupAfterAll();

  test("create, exec, stop, start, exec, delete; files survive stop/start and nothing is left", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER, name: "fc-life" });
    const first = await vm.commands.run(["sh", "-c", `echo kept > ${GUEST_HOME}/note; uname -s; exit 3`]);
    expect(first.stdout).toBe("Linux\n");
    expect(first.exitCode).toBe(3);
    const info = await vm.info();
    expect(info.status).toBe("running");
    expect(info.backend).toBe("firecracker");
    expect(info.vmmPid).toBeGreaterThan(0);

    await vm.stop();
    expect((await vm.info()).status).toBe("stopped");
    await vm.start();
    expect((await vm.commands.run(["cat", `${GUEST_HOME}/note`])).stdout).toBe("kept\n");

    await vm.delete();
    await waitUntil(() => !existsSync(paths.sandboxDir(info.id)), 10_000, "the sandbox's directory to go");
    expect(processesMatching(info.id)).toEqual([]);
  });

  test("exec: stdin, env, cwd, a timeout and concurrent commands", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER, name: "fc-exec" });
    try {
      expect((await vm.commands.run("cat", { stdin: "data\n" })).stdout).toBe("data\n");
      const env = await vm.commands.run(["sh", "-c", 'echo "$GREETING from $(pwd)"'], { env: { GREETING: "hello world" }, cwd: "/tmp" });
      expect(env.stdout).toBe("hello world from /tmp\n");
      const slow = await vm.commands.run(["sleep", "30"], { timeoutMs: 1_000 });
      expect(slow.timedOut).toBe(true);
      const runs = await Promise.all(Array.from({ length: 8 }, (_, i) => vm.commands.run(["sh", "-c", `echo job-${i}; exit ${i}`])));
      runs.forEach((result, i) => {
        expect(result.stdout).toBe(`job-${i}\n`);
        expect(result.exitCode).toBe(i);
      });
    } finally {
      await vm.delete();
    }
  });

  test("files in and out, and pause/resume keeps the guest's state", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER, name: "fc-files" });
    try {
      const local = join(scratch!, "in.bin");
      const bytes = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7) & 0xff));
      writeFileSync(local, bytes);
      await vm.files.upload(local, "/tmp/in.bin");
      expect((await vm.commands.run(["sh", "-c", "wc -c < /tmp/in.bin"])).stdout.trim()).toBe(String(bytes.length));
      await vm.files.download("/tmp/in.bin", join(scratch!, "out.bin"));
      expect(readFileSync(join(scratch!, "out.bin")).equals(bytes)).toBe(true);
      await vm.files.write("/tmp/greeting", "hi from the host\n");
      expect((await vm.files.read("/tmp/greeting")).toString()).toBe("hi from the host\n");

      await vm.commands.run(["sh", "-c", "echo 41 > /tmp/counter"]);
      await vm.pause();
      expect((await vm.info()).status).toBe("paused");
      await vm.resume();
      expect((await vm.commands.run(["cat", "/tmp/counter"])).stdout).toBe("41\n");
    } finally {
      await vm.delete();
    }
  });

  test("the default on Linux picks Firecracker for a sandbox with network none", async () => {
    const fc = await SmolVM.create({ image: "base", network: "none", name: "fc-default" });
    try {
      expect(fc.backend).toEqual({ name: "firecracker", reason: expect.stringContaining("runs on KVM here"), fellBack: false });
      expect((await fc.commands.run(["echo", "default"])).stdout).toBe("default\n");
    } finally {
      await fc.delete();
    }
  });

  test("the CLI: create --backend firecracker, exec, info, delete", async () => {
    const created = envelope(await runCli(["create", "--backend", "firecracker", "--image", "base", "--name", "fc-cli", "--json"], { timeoutMs: 120_000 }));
    expect(created.ok).toBe(true);
    expect(created.data.backend).toBe("firecracker");
    const exec = await runCli(["exec", "fc-cli", "--", "uname", "-s"]);
    expect(exec.stdout).toBe("Linux\n");
    expect((await runCli(["delete", "fc-cli"])).code).toBe(0);
  });
});
