/**
 * Snapshots, restores and forks on real VMs (QEMU, TCG here), on the `base` image: what carries
 * over (files, managed env, a process started before the snapshot), what each restored sandbox
 * gets of its own (name, hostname, boot id, RNG, clock), the original left as it was, a fork
 * while a command streams, warm creates, and the faults: stopped and paused sources, damaged and
 * foreign snapshots, a full disk, kill -9 during a save or a restore, a removed snapshot. The SSH
 * host key, which needs sshd, is proven on `debian` in snapshot-ssh.test.ts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GUEST_HOME } from "../../lib/guest.ts";
import { paths } from "../../lib/paths.ts";
import { connectSupervisor } from "../../lib/sandbox/supervisor-client.ts";
import { SmolVM } from "../../lib/smolvm.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import { envelope, repoRoot, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, processesMatching, waitUntil } from "../helpers/vm.ts";

setDefaultTimeout(180_000);

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

/** A shell loop started before the snapshot: it must still run in every restore. */
const TICKER = `(i=0; while :; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.1; done) >/dev/null 2>&1 </dev/null & echo $! > /tmp/ticker.pid`;

function record(name: string) {
  const store = StateStore.open();
  try {
    return store.find(name);
  } finally {
    store.close();
  }
}

async function sh(vm: SmolVM, script: string): Promise<string> {
  const result = await vm.commands.run(script);
  if (result.exitCode !== 0) throw new Error(`"${script}" exited ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

/** The guest's wall clock against the host's, in ms (the agent reports it with each ping). */
async function clockSkewMs(vm: SmolVM): Promise<number> {
  const session = await connectSupervisor(vm, { timeoutMs: 10_000 });
  try {
    const before = Date.now();
    const ping = await session.ping();
    const after = Date.now();
    return ping.timeMs - (before + after) / 2;
  } finally {
    await session.close();
  }
}

/** What a restore must make its own: hostname, boot id, and 32 bytes of /dev/urandom read first. */
async function identityOf(vm: SmolVM): Promise<{ random: string; hostname: string; bootId: string }> {
  const [random, hostname, bootId] = (await sh(vm, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; hostname; cat /proc/sys/kernel/random/boot_id")).split("\n");
  return { random: random!, hostname: hostname!, bootId: bootId! };
}

/** Polls every millisecond: the guest stays stopped for a save only ~0.1 s. */
async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Root and util-linux's unshare: what a mount namespace of the test's own needs. */
const canUnshare = process.getuid?.() === 0 && spawnSync("unshare", ["-m", "true"]).status === 0;

function stagingDirs(): string[] {
  return [paths.snapshotsDir(), paths.warmDir()].flatMap((root) => (existsSync(root) ? readdirSync(root).filter((n) => n.startsWith(".")) : []));
}

describe("snapshot and restore", () => {
  let source: SmolVM;
  let sourceBootId: string;

  beforeAll(async () => {
    source = await SmolVM.create({ name: "src", image: "base", warm: false });
    await source.env.set({ GREETING: "from-before" });
    await sh(source, `echo kept > ${GUEST_HOME}/note; ${TICKER}`);
    sourceBootId = (await identityOf(source)).bootId;
  });

  test("two sandboxes from one snapshot have its files, env and running process, and each its own name, boot id, RNG and clock", async () => {
    const saved = await runCli(["snapshot", "create", "src", "--name", "s1", "--json"]);
    expect(saved.code).toBe(0);
    const info = envelope(saved).data;
    expect(info.name).toBe("s1");
    expect(info.files.map((f: { role: string }) => f.role).sort()).toEqual(["disk", "state"]);
    const listed = envelope(await runCli(["snapshot", "list", "--json"])).data;
    expect(listed.map((s: { name: string }) => s.name)).toEqual(["s1"]);
    expect(listed[0].bytes).toBeGreaterThan(100_000);
    // Stored compressed: a 512 MiB guest's state is tens of MB raw.
    expect(listed[0].bytes).toBeLessThan(40 * 2 ** 20);
    // Long enough that a guest clock left at the snapshot's time would be seconds behind.
    await new Promise((resolve) => setTimeout(resolve, 2_500));

    const restored = await runCli(["create", "--from-snapshot", "s1", "--name", "copy-a", "--json"]);
    expect(restored.code).toBe(0);
    expect(envelope(restored).data.createdFrom).toEqual({ kind: "snapshot", name: "s1" });
    const b = await SmolVM.create({ fromSnapshot: "s1", name: "copy-b" });
    const a = await SmolVM.fromId("copy-a");
    const [idA, idB] = [await identityOf(a), await identityOf(b)];

    for (const [vm, id, name] of [[a, idA, "copy-a"], [b, idB, "copy-b"]] as const) {
      expect(await sh(vm, `cat ${GUEST_HOME}/note`)).toBe("kept\n");
      expect(await sh(vm, 'printf %s "$GREETING"')).toBe("from-before");
      const ticks = Number(await sh(vm, "kill -0 $(cat /tmp/ticker.pid) && cat /tmp/tick"));
      await waitUntil(async () => Number(await sh(vm, "cat /tmp/tick")) > ticks, 10_000, `the ticker to go on in ${name}`);
      expect(id.hostname).toBe(name);
      expect(id.bootId).not.toBe(sourceBootId);
      expect(Math.abs(await clockSkewMs(vm))).toBeLessThan(1_000);
    }
    expect(idA.bootId).not.toBe(idB.bootId);
    expect(idA.random).toMatch(/^[0-9a-f]{64}$/);
    expect(idA.random).not.toBe(idB.random);

    // Each has its own disk: a write in one is seen by neither the other nor the original.
    await sh(a, `echo only-a > ${GUEST_HOME}/mine`);
    expect(await sh(b, `cat ${GUEST_HOME}/mine 2>/dev/null || echo absent`)).toBe("absent\n");
    // The original is untouched and runs on.
    expect(record("src")?.status).toBe("running");
    expect(await sh(source, `cat ${GUEST_HOME}/mine 2>/dev/null || echo absent; hostname; cat /proc/sys/kernel/random/boot_id`))
      .toBe(`absent\nsrc\n${sourceBootId}\n`);
    a.close();
    b.close();
  });

  test("a fork while a command streams: the stream goes on without a gap and the fork runs", async () => {
    const stream = await source.commands.exec("i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo $i; sleep 0.01; done");
    let text = "";
    stream.stdout.setEncoding("utf8");
    stream.stdout.on("data", (chunk: string) => (text += chunk));
    await waitUntil(() => text.split("\n").length > 20, 30_000, "the stream to start");
    const forked = await runCli(["fork", "src", "--name", "twin", "--json"]);
    expect(forked.code).toBe(0);
    expect(envelope(forked).data.createdFrom).toEqual({ kind: "fork", sandbox: "src" });
    const linesAtFork = text.split("\n").length;
    const result = await stream.wait();
    expect(result.exitCode).toBe(0);
    const numbers = text.trim().split("\n").map(Number);
    expect(numbers).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(numbers.length).toBeGreaterThan(linesAtFork);
    const twin = await SmolVM.fromId("twin");
    expect(await sh(twin, `hostname; cat ${GUEST_HOME}/note`)).toBe("twin\nkept\n");
    // The fork is no snapshot of its own.
    expect(envelope(await runCli(["snapshot", "list", "--json"])).data.map((s: { name: string }) => s.name)).toEqual(["s1"]);
    twin.close();
  });

  test("removing a snapshot leaves the sandboxes made from it working, across a stop and start too", async () => {
    const removed = await runCli(["snapshot", "rm", "s1", "--json"]);
    expect(removed.code).toBe(0);
    expect(existsSync(join(paths.snapshotsDir(), "s1"))).toBe(false);
    const a = await SmolVM.fromId("copy-a");
    expect(await sh(a, `cat ${GUEST_HOME}/note ${GUEST_HOME}/mine; sync`)).toBe("kept\nonly-a\n");
    await a.stop();
    await a.start();
    expect(await sh(a, `cat ${GUEST_HOME}/note ${GUEST_HOME}/mine`)).toBe("kept\nonly-a\n");
    const gone = await runCli(["create", "--from-snapshot", "s1"]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('Cannot find snapshot "s1"');
    a.close();
  });
});

describe("what a snapshot refuses", () => {
  test("a stopped sandbox has no memory to save; a paused one is saved and stays paused", async () => {
    const vm = await SmolVM.create({ name: "still", image: "base", warm: false });
    await vm.pause();
    const paused = await vm.snapshot({ name: "from-paused" });
    expect(paused.files.some((f) => f.role === "state")).toBe(true);
    expect((await vm.info()).status).toBe("paused");
    const copy = await SmolVM.create({ fromSnapshot: "from-paused" });
    expect(await sh(copy, "echo runs")).toBe("runs\n");
    await copy.delete();
    await vm.resume();
    await vm.stop();
    const refused = await runCli(["snapshot", "create", "still", "--json"]);
    expect(refused.code).not.toBe(0);
    const error = envelope(refused).error;
    expect(error.code).toBe("NOT_RUNNING");
    expect(error.message).toBe('Cannot snapshot sandbox "still": it is stopped');
    expect(error.hint).toContain("smolvm start still");
    await vm.delete();
  });

  test("a truncated or altered file is refused by its checksum before any VMM reads it; nothing is left behind", async () => {
    const vm = await SmolVM.create({ name: "victim", image: "base", warm: false });
    const info = await vm.snapshot({ name: "damaged" });
    await vm.delete();
    await waitUntil(() => !existsSync(paths.sandboxDir(vm.id)), 10_000, "the deleted sandbox's files to go");
    const state = info.files.find((f) => f.role === "state")!;
    const disk = info.files.find((f) => f.role === "disk")!;
    const before = readdirSync(paths.sandboxesDir()).length;
    // This test's own VMMs: their command lines name sockets under this home (other runs on the host have theirs).
    const qemus = processesMatching(`qemu-system.*${paths.sandboxesDir()}`).length;

    truncateSync(join(info.dir, state.file), state.bytes - 1000);
    const truncated = await runCli(["create", "--from-snapshot", "damaged", "--json"]);
    expect(truncated.code).not.toBe(0);
    expect(envelope(truncated).error.code).toBe("INTEGRITY_FAILED");
    expect(envelope(truncated).error.message).toContain(`its state file "${state.file}" does not match its checksum`);

    rmSync(join(info.dir, state.file));
    writeFileSync(join(info.dir, state.file), "");
    const layer = readFileSync(join(info.dir, disk.file));
    layer[layer.length - 10] ^= 0xff;
    writeFileSync(join(info.dir, disk.file), layer);
    const altered = await runCli(["create", "--from-snapshot", "damaged", "--json"]);
    expect(envelope(altered).error.code).toBe("INTEGRITY_FAILED");

    expect(readdirSync(paths.sandboxesDir()).length).toBe(before);
    expect(processesMatching(`qemu-system.*${paths.sandboxesDir()}`).length).toBe(qemus);
    expect((await runCli(["snapshot", "rm", "damaged"])).code).toBe(0);
  });

  test("a snapshot made by another QEMU build or with another kernel build is refused, saying which", async () => {
    const vm = await SmolVM.create({ name: "proud", image: "base", warm: false });
    const info = await vm.snapshot({ name: "foreign" });
    await vm.delete();
    const manifestPath = join(info.dir, "manifest.json");
    const original = readFileSync(manifestPath, "utf8");
    const edit = (change: (m: any) => void) => {
      const m = JSON.parse(original);
      change(m);
      writeFileSync(manifestPath, JSON.stringify(m));
    };

    edit((m) => (m.vmm = { version: "QEMU emulator version 9.9.9", fingerprint: "elsewhere" }));
    const otherQemu = envelope(await runCli(["create", "--from-snapshot", "foreign", "--json"])).error;
    expect(otherQemu.code).toBe("INVALID_INPUT");
    expect(otherQemu.message).toContain("it was made by QEMU emulator version 9.9.9, and this host has QEMU emulator version");

    edit((m) => (m.kernel = { ...m.kernel, size: m.kernel.size + 1, sha256: "0".repeat(64) }));
    const otherKernel = envelope(await runCli(["create", "--from-snapshot", "foreign", "--json"])).error;
    expect(otherKernel.code).toBe("INVALID_INPUT");
    expect(otherKernel.message).toContain("the kernel it was made with");
    expect(otherKernel.hint).toContain("take a new one");
    await runCli(["snapshot", "rm", "foreign"]);
  });

  test.skipIf(!canUnshare)("a disk that fills while saving: an error, nothing listed or left half-written, and the sandbox runs on", () => {
    const run = spawnSync("unshare", ["-m", "--propagation", "private", process.execPath, join(repoRoot, "test/e2e/_snapshot-full-disk.ts")], {
      encoding: "utf8",
      env: { ...process.env },
      timeout: 280_000,
    });
    const report = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}");
    expect(report.error).toBeUndefined();
    const { steps, left } = report as { left: string[]; steps: Record<string, { code: number; stdout: string; stderr: string }> };
    expect(steps.create!.code).toBe(0);
    expect(steps.snapshot!.code).not.toBe(0);
    const error = envelope(steps.snapshot!).error;
    expect(error.code).toBe("HOST_DISK_FULL");
    expect(error.message).toStartWith('Cannot save snapshot "toobig" of sandbox "full"');
    expect(error.hint).toContain("the sandbox runs on");
    expect(left).toEqual([]);
    expect(JSON.parse(steps.list!.stdout).data.find((vm: { name: string }) => vm.name === "full")).toMatchObject({ status: "running" });
    expect(steps.after!.stdout).toBe("still\n");
    expect(steps.delete!.code).toBe(0);
  });
});

describe("kill -9", () => {
  test("of a snapshot's caller, or of the supervisor stopped for it: the source runs on, and cleanup leaves no files", async () => {
    const vm = await SmolVM.create({ name: "hardy", image: "base", warm: false });
    await sh(vm, TICKER);
    // The caller: killed while the guest is stopped for its save (the supervisor's marker says so).
    const marker = join(paths.sandboxDir(vm.id), "snapshotting.json");
    const child = spawn(process.execPath, [join(repoRoot, "main.ts"), "snapshot", "create", "hardy", "--name", "never"], { stdio: "ignore" });
    await waitFor(() => existsSync(marker), "the guest to be stopped for the first save");
    child.kill("SIGKILL");
    await waitUntil(() => !existsSync(marker), 30_000, "the supervisor to finish the orphaned save");
    // The supervisor: killed while the guest is stopped for a save.
    const saving = vm.snapshot({ name: "never-either" }).catch((error: Error) => error);
    await waitFor(() => existsSync(marker), "the guest to be stopped for the second save");
    process.kill(record("hardy")!.supervisorPid!, "SIGKILL");
    expect(await saving).toBeInstanceOf(Error);

    // The next command starts a new supervisor, which runs the stopped guest again.
    const ticks = Number(await sh(vm, "cat /tmp/tick"));
    await waitUntil(async () => Number(await sh(vm, "cat /tmp/tick")) > ticks, 10_000, "the guest to run again");
    expect((await vm.info()).status).toBe("running");
    const cleaned = envelope(await runCli(["cleanup", "--json"])).data;
    expect(cleaned.sandboxes).toEqual([]);
    await waitUntil(() => stagingDirs().length === 0, 10_000, "the staging directories to go");
    expect(envelope(await runCli(["snapshot", "list", "--json"])).data.filter((s: { name: string }) => s.name.startsWith("never"))).toEqual([]);
    await vm.delete();
  });

  test("of a create restoring a snapshot: its supervisor undoes it, and nothing of it survives cleanup", async () => {
    const vm = await SmolVM.create({ name: "origin", image: "base", warm: false });
    await vm.snapshot({ name: "base-point" });
    await vm.delete();
    const child = spawn(process.execPath, [join(repoRoot, "main.ts"), "create", "--from-snapshot", "base-point", "--name", "doomed"], { stdio: "ignore" });
    await waitUntil(() => record("doomed")?.status === "creating" && existsSync(join(paths.sandboxDir(record("doomed")!.id), "restored.json")), 30_000, "the restore to begin");
    const id = record("doomed")!.id;
    child.kill("SIGKILL");
    // An abandoned create: the supervisor started beside the restore removes it, the VM its
    // creator was restoring included; cleanup takes what a creator killed before its supervisor
    // was spawned leaves. A create that had returned just before the kill (its launcher record
    // gone) is its caller's.
    const finished = () => record("doomed")?.status === "running" && !existsSync(join(paths.sandboxDir(id), "launcher.json"));
    const unsupervised = () => processesMatching(`__supervise ${id}`).length === 0;
    await waitUntil(() => record("doomed") === undefined || finished() || unsupervised(), 30_000, "the abandoned restore to be undone");
    if (finished()) {
      const done = await SmolVM.fromId("doomed");
      expect((await done.commands.run("true")).exitCode).toBe(0);
      await done.delete();
    }
    await runCli(["cleanup"]);
    await waitUntil(() => !existsSync(paths.sandboxDir(id)) && processesMatching(id).length === 0, 15_000, "the restore's files and processes to go");
    expect(record("doomed")).toBeUndefined();
    await runCli(["snapshot", "rm", "base-point"]);
  });

});

describe("warm creates", () => {
  afterAll(async () => {
    await runCli(["image", "warm", "base", "--remove"]);
  });

  test("a plain create restores the image's template when it fits, and boots, silently, when it does not", async () => {
    const made = await runCli(["image", "warm", "base", "--json"]);
    expect(made.code).toBe(0);
    expect(envelope(made).data.kind).toBe("template");
    const warm = await SmolVM.create({ image: "base", name: "warm-1" });
    expect(warm.createdFrom).toEqual({ kind: "warm", image: "base" });
    expect(await sh(warm, "hostname")).toBe("warm-1\n");
    const other = await SmolVM.create({ image: "base", name: "cold-1", memoryMiB: 384 });
    expect(other.createdFrom).toEqual({ kind: "boot" });
    const refused = await SmolVM.create({ image: "base", name: "cold-2", warm: false });
    expect(refused.createdFrom).toEqual({ kind: "boot" });

    // A template whose image was rebuilt is stale: a plain create boots, a warm one makes it again.
    const manifest = join(paths.warmDir(), "base", "manifest.json");
    const m = JSON.parse(readFileSync(manifest, "utf8"));
    writeFileSync(manifest, JSON.stringify({ ...m, image: { ...m.image, mtimeMs: m.image.mtimeMs - 1000 } }));
    expect((await SmolVM.create({ image: "base", name: "cold-3" })).createdFrom).toEqual({ kind: "boot" });
    expect((await SmolVM.create({ image: "base", name: "remade", warm: true })).createdFrom).toEqual({ kind: "boot" });
    expect((await SmolVM.create({ image: "base", name: "warm-2" })).createdFrom).toEqual({ kind: "warm", image: "base" });
    for (const name of ["warm-1", "cold-1", "cold-2", "cold-3", "remade", "warm-2"]) await (await SmolVM.fromId(name)).delete();
  });
});
