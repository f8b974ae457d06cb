/**
 * A sandbox on the Firecracker backend end to end, through the SDK and the CLI, with the stand-in
 * firecracker binary as the VMM (real Firecracker cannot run on hosts without working KVM): the
 * launch in the caller's process, the supervisor that attaches with the ticket, the agent over
 * hybrid vsock, pause and resume through the API, stop by the agent's shutdown, start, delete.
 *
 * Faked: the VMM and its guest (the stand-in serves the spec-checking API and boots the native
 * agent as its guest), and the verdict that KVM can run a guest here, which the create's probe
 * asks for (it is replaced in this process only; everything else runs for real).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { FirecrackerBackend, firecrackerBackend } from "../../../lib/backends/firecracker/backend.ts";
import { SmolVM } from "../../../lib/index.ts";
import { paths } from "../../../lib/paths.ts";
import { pidAlive } from "../../../lib/host/pids.ts";
import { withStore } from "../../../lib/state/sandboxes.ts";
import { CONSOLE_MAX_BYTES } from "../../../lib/supervisor/console-cap.ts";
import { JAIL_ID_BASE } from "../../../lib/backends/firecracker/sandbox-jail.ts";
import { buildNativeAgent, processesMatching, waitUntil } from "../../helpers/agent.ts";
import { envelope, runCli } from "../../helpers/cli.ts";
import { writeFakeFirecracker } from "../../helpers/fake-firecracker-bin.ts";
import { netLabUnavailable } from "../../../bench/netlab.ts";

setDefaultTimeout(60_000);

let scratch: string;
let binDir: string;
let nativeAgent: string;
const savedPath = process.env.PATH;

interface Report {
  argv: string[];
  requests: Array<{ method: string; path: string; body: Record<string, unknown> }>;
  violations: string[];
  responseViolations: string[];
}

beforeAll(async () => {
  nativeAgent = await buildNativeAgent();
  scratch = mkdtempSync(join(tmpdir(), "smolvm-fc-sup-"));
  binDir = join(scratch, "bin");
  writeFileSync(join(scratch, "vmlinux"), "kernel");
  writeFileSync(join(scratch, "rootfs.ext4"), Buffer.alloc(256 * 1024));
  standIn();
  // The stand-in comes first on PATH, for this process and the supervisors and CLIs it starts.
  process.env.PATH = `${binDir}${delimiter}${savedPath}`;
  // KVM cannot run a guest on this host; the create's probe is told it can, and nothing else is.
  const probing = new FirecrackerBackend({ kvm: () => () => ({ usable: true }) });
  Object.assign(firecrackerBackend, { probe: probing.probe.bind(probing) });
}, 300_000);

afterAll(() => {
  process.env.PATH = savedPath;
  rmSync(scratch, { recursive: true, force: true });
});

/** (Re)writes the stand-in firecracker, optionally answering some requests with a 400. */
function standIn(faults?: Array<{ method: string; path: string; message: string }>): void {
  rmSync(binDir, { recursive: true, force: true });
  mkdirSync(binDir, { recursive: true });
  writeFakeFirecracker(binDir, { guestAgent: nativeAgent, report: join(scratch, "report.json"), ...(faults === undefined ? {} : { faults }) });
  writeFakeFirecracker(binDir, { mode: "jailer", guestAgent: nativeAgent, report: join(scratch, "report.json") });
}

function spec(): Report {
  return JSON.parse(readFileSync(join(scratch, "report.json"), "utf8")) as Report;
}

const FIRECRACKER = () => ({ backend: "firecracker" as const, kernelPath: join(scratch, "vmlinux"), rootfsPath: join(scratch, "rootfs.ext4"), bootTimeoutMs: 20_000 });

describe("a Firecracker sandbox on the stand-in VMM", () => {
  test("create, exec, env, files, pause/resume, stop/start, delete: every request kept to the spec, nothing left", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER(), name: "fc-standin", env: { GREETING: "hello" } });
    const id = vm.id;
    try {
      expect(vm.backend).toEqual({ name: "firecracker", reason: "asked for by the sandbox config", fellBack: false });
      expect(vm.accel).toEqual({ accel: "kvm", reason: "Firecracker runs guests on KVM only" });
      const info = await vm.info();
      expect(info.backend).toBe("firecracker");
      expect(info.network).toBe("none");
      expect(info.status).toBe("running");
      expect(existsSync(join(paths.sandboxDir(id), "disk.ext4"))).toBe(true);

      expect((await vm.commands.run(["sh", "-c", 'echo "$GREETING"; exit 4'])).stdout).toBe("hello\n");
      const note = join(scratch, "note");
      await vm.files.write(note, "kept\n");
      expect((await vm.files.read(note)).toString()).toBe("kept\n");

      await vm.pause();
      expect((await vm.info()).status).toBe("paused");
      await vm.resume();
      expect((await vm.commands.run(["echo", "resumed"])).stdout).toBe("resumed\n");

      const vmmPid = (await vm.info()).vmmPid!;
      await vm.stop();
      expect((await vm.info()).status).toBe("stopped");
      expect(pidAlive(vmmPid)).toBe(false);
      await vm.start();
      expect((await vm.info()).status).toBe("running");
      expect((await vm.commands.run(["cat", note])).stdout).toBe("kept\n");

      // The CLI reaches it the same way.
      const cliExec = await runCli(["exec", "fc-standin", "--", "echo", "from the cli"]);
      expect(cliExec.stdout).toBe("from the cli\n");
      const cliInfo = envelope(await runCli(["info", "fc-standin", "--json"]));
      expect(cliInfo.data.backend).toBe("firecracker");
    } finally {
      await vm.delete();
    }
    await waitUntil(() => !existsSync(paths.sandboxDir(id)) && processesMatching(id).length === 0, 5_000);
    expect(existsSync(paths.sandboxDir(id))).toBe(false);
    expect(processesMatching(id)).toEqual([]);
    expect(spec().violations).toEqual([]);
    expect(spec().responseViolations).toEqual([]);
  });

  test("Firecracker's 400 reaches the user of the CLI verbatim, and the sandbox is recorded failed with it", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER(), name: "fc-fault" });
    try {
      await vm.stop();
      const message = 'Invalid kernel image: "vmlinux" is not an ELF file (os error 8) -- \'quoted\' "double"';
      standIn([{ method: "PUT", path: "/boot-source", message }]);
      const start = await runCli(["start", "fc-fault"]);
      expect(start.code).not.toBe(0);
      expect(start.stderr).toContain(`Firecracker refused PUT /boot-source (400): ${message}`);
      const json = envelope(await runCli(["info", "fc-fault", "--json"]));
      expect(json.data.status).toBe("failed");
      expect(json.data.lastError.message).toContain(message);
      expect(processesMatching(vm.id)).toEqual([]);
    } finally {
      standIn();
      await vm.delete();
    }
  });

  test("a Firecracker whose supervisor was killed is found by what it is: delete --force ends it and its guest, nothing left", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER(), name: "fc-orphan" });
    const info = await vm.info();
    const vmmPid = info.vmmPid!;
    const supervisorPid = info.supervisorPid!;
    process.kill(supervisorPid, "SIGKILL");
    await waitUntil(() => !pidAlive(supervisorPid), 5_000);
    expect(pidAlive(vmmPid)).toBe(true);
    // The row's pids are cleared, as after a damaged store rebuilt without them: only what runs says which VMM is the sandbox's.
    withStore((store) => store.update(vm.id, { vmmPid: null, supervisorPid: null }));
    const deleted = await runCli(["delete", "fc-orphan", "--force"]);
    expect(deleted.code).toBe(0);
    expect(pidAlive(vmmPid)).toBe(false);
    expect(existsSync(paths.sandboxDir(vm.id))).toBe(false);
    // The stand-in's guest (the native agent) dies with its VMM, as a guest does.
    await waitUntil(() => processesMatching(vm.id).length === 0, 5_000);
    expect(processesMatching(vm.id)).toEqual([]);
    expect(envelope(await runCli(["list", "--all", "--json"])).data).toEqual([]);
  });

  test("Firecracker's log and metrics are bounded by the supervisor as the console log is", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER(), name: "fc-logs" });
    try {
      const dir = paths.sandboxDir(vm.id);
      const logs = [join(dir, "firecracker.log"), join(dir, "firecracker.metrics")];
      // What a guest that makes Firecracker complain for long enough leaves behind.
      for (const file of logs) appendFileSync(file, Buffer.alloc(CONSOLE_MAX_BYTES + 1024 * 1024, "x"));
      // A cut empties the file before it writes the kept tail back: wait for the whole cut.
      const cut = (file: string) => statSync(file).size < CONSOLE_MAX_BYTES && readFileSync(file, "utf8").startsWith("[smolvm: this log passed");
      await waitUntil(() => logs.every(cut), 30_000);
      for (const file of logs) {
        expect(statSync(file).size).toBeLessThan(2 * 1024 * 1024);
        expect(readFileSync(file, "utf8")).toStartWith("[smolvm: this log passed");
      }
    } finally {
      await vm.delete();
    }
  });

  test("start --backend qemu on a Firecracker sandbox is refused naming both backends", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER(), name: "fc-switch" });
    try {
      await vm.stop();
      const result = await runCli(["start", "fc-switch", "--backend", "qemu"]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('Cannot start sandbox "fc-switch" on the qemu backend: it was created on firecracker');
    } finally {
      await vm.delete();
    }
  });

  test("a snapshot or a fork of it is refused (smolvm's snapshots are QEMU's so far): the guest runs on, nothing is left", async () => {
    const vm = await SmolVM.create({ ...FIRECRACKER(), name: "fc-snap" });
    try {
      const refused = await vm.snapshot({ name: "fc-snap-1" }).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: "BACKEND_UNAVAILABLE", message: expect.stringContaining("the firecracker backend cannot take or restore snapshots yet") });
      const fork = await runCli(["fork", "fc-snap", "--name", "fc-twin", "--json"]);
      expect(fork.code).not.toBe(0);
      expect(envelope(fork).error.code).toBe("BACKEND_UNAVAILABLE");
      expect((await vm.info()).status).toBe("running");
      expect((await vm.commands.run(["echo", "on"])).stdout).toBe("on\n");
      expect(existsSync(paths.snapshotsDir()) ? readdirSync(paths.snapshotsDir()) : []).toEqual([]);
      expect(envelope(await runCli(["list", "--all", "--json"])).data.map((row: { name: string }) => row.name)).not.toContain("fc-twin");
    } finally {
      await vm.delete();
    }
  });

  test("create --backend firecracker where no firecracker is installed is refused before anything is made", async () => {
    const result = await runCli(["create", "--backend", "firecracker", "--name", "fc-none", "--kernel", join(scratch, "vmlinux"), "--rootfs", join(scratch, "rootfs.ext4")], {
      env: { PATH: savedPath ?? "/usr/bin:/bin" },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('Cannot use the firecracker backend (asked for by the sandbox config): "firecracker" is not on PATH');
    expect(result.stderr).toContain("smolvm setup --firecracker");
    expect(envelope(await runCli(["list", "--json"])).data).toEqual([]);
  });
});

describe("a jailed Firecracker sandbox on the stand-in jailer", () => {
  test("jailer: the jail and its user, exec, stop and start, a killed supervisor, delete --force; nothing left", async () => {
    // Through the SDK in this process: its KVM verdict is the faked one (a CLI would prove KVM itself).
    const { backend: _explicit, ...auto } = FIRECRACKER();
    const vm = await SmolVM.create({ ...auto, jailer: true, name: "fc-jailed" });
    const id = vm.id;
    expect(vm.backend).toEqual({ name: "firecracker", reason: "asked for by the jailer option", fellBack: false });
    expect(envelope(await runCli(["info", "fc-jailed", "--json"])).data).toMatchObject({ backend: "firecracker", jailer: true, network: "none" });
    const instance = join(paths.sandboxDir(id), "jail", "firecracker", id);
    const chroot = join(instance, "root");
    const jailUser = JAIL_ID_BASE + withStore((store) => store.get(id)).cid!;
    try {
      expect(existsSync(join(chroot, "api.sock")) && existsSync(join(chroot, "vsock.sock"))).toBe(true);
      expect(statSync(chroot).uid).toBe(jailUser);
      expect(statSync(join(paths.sandboxDir(id), "disk.ext4")).uid).toBe(jailUser);
      expect(spec().argv).toEqual(["--id", id, "--start-time-us", "0", "--start-time-cpu-us", "0", "--parent-cpu-time-us", "0", "--api-sock", "/api.sock"]);
      expect((await runCli(["exec", "fc-jailed", "--", "echo", "in the jail"])).stdout).toBe("in the jail\n");
      expect((await runCli(["info", "fc-jailed"])).stdout).toContain("firecracker (jailed)");

      // The supervisor that attached to it (the CLI that launched it is gone) removes the jail when it ends.
      await vm.stop();
      expect(existsSync(instance)).toBe(false);
      await vm.start();
      expect((await vm.commands.run(["echo", "again"])).stdout).toBe("again\n");

      const info = await vm.info();
      process.kill(info.supervisorPid!, "SIGKILL");
      await waitUntil(() => !pidAlive(info.supervisorPid!), 5_000);
      withStore((store) => store.update(id, { vmmPid: null, supervisorPid: null }));
      // Its arguments name no path of the sandbox's: it is found by its --id.
      expect(readFileSync(`/proc/${info.vmmPid}/cmdline`, "utf8")).not.toContain(paths.sandboxDir(id));
      const deleted = await runCli(["delete", "fc-jailed", "--force"]);
      expect(deleted.code).toBe(0);
      expect(pidAlive(info.vmmPid!)).toBe(false);
    } finally {
      await runCli(["delete", "fc-jailed", "--force"]);
    }
    await waitUntil(() => processesMatching(id).length === 0, 5_000);
    expect(processesMatching(id)).toEqual([]);
    expect(existsSync(paths.sandboxDir(id))).toBe(false);
    expect(spec().violations).toEqual([]);
  });

  test("--jailer with --backend qemu is refused before anything is made", async () => {
    const result = await runCli(["create", "--jailer", "--backend", "qemu", "--name", "fc-jail-qemu", "--kernel", join(scratch, "vmlinux"), "--rootfs", join(scratch, "rootfs.ext4")]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("Cannot run a sandbox under Firecracker's jailer on the qemu backend");
    expect(envelope(await runCli(["list", "--json"])).data).toEqual([]);
  });
});

// TAP mode needs root and a network namespace of the test's own (nothing is made on the host's).
const tapUnavailable = netLabUnavailable();
if (tapUnavailable !== undefined) console.log(`skip: a Firecracker sandbox with a TAP network: ${tapUnavailable}`);

describe.skipIf(tapUnavailable !== undefined)("a Firecracker sandbox with a TAP network, in a namespace of the test's own", () => {
  test("its TAP interface and rules while it runs, Firecracker's network interface on it, nothing left after delete --force", async () => {
    const ns = `smolvm-fctap-${process.pid}`;
    expect(spawnSync("ip", ["netns", "add", ns]).status).toBe(0);
    try {
      spawnSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
      const script = join(import.meta.dir, "..", "..", "helpers", "fc-tap-sandbox.ts");
      const run = spawnSync("ip", ["netns", "exec", ns, process.execPath, script, join(scratch, "vmlinux"), join(scratch, "rootfs.ext4")], { encoding: "utf8", env: process.env, timeout: 60_000 });
      expect(run.stderr).not.toContain("error");
      const seen = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
      const id = (seen.info as { id: string }).id;
      expect(seen).toMatchObject({
        info: { backend: "firecracker", network: "tap", guestIp: expect.stringMatching(/^172\.16\.0\.\d+$/) },
        tap: ["172.16.0.1"],
        rulesWhileRunning: true,
        run: "over vsock\n",
        tapAfter: false,
        rulesAfter: false,
        sandboxes: 0,
      });
      const interfaces = spec().requests.filter((r) => r.path.startsWith("/network-interfaces/"));
      expect(interfaces.map((r) => [r.method, r.body.host_dev_name])).toEqual([["PUT", `sm-${id}`]]);
      expect(spec().violations).toEqual([]);
    } finally {
      spawnSync("ip", ["netns", "del", ns]);
    }
  });
});
