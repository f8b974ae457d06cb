/**
 * A bad day on the host, through the CLI with real sandboxes: a damaged state store (empty, cut
 * short, garbage) stops every command naming the file and the repair, and `doctor --repair`
 * brings every sandbox back, the running one still running; a full disk under the home (a
 * small tmpfs in a mount namespace of the test's own) is said, with the path and the room
 * needed, leaves every record true and loses nothing the guest had written.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { paths } from "../../lib/paths.ts";
import { envelope, repoRoot, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts } from "../helpers/vm.ts";

setDefaultTimeout(300_000);

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

describe("a damaged state store", () => {
  const DAMAGE: Array<[string, (file: string) => void, string]> = [
    ["empty", (file) => writeFileSync(file, ""), "the file is empty"],
    ["cut short", (file) => truncateSync(file, 4096), "it is damaged (database disk image is malformed)"],
    ["garbage", (file) => writeFileSync(file, Buffer.alloc(20_000, 0x41)), "it is damaged (file is not a database)"],
  ];

  test("stops every command with STATE_CORRUPT naming the file; doctor --repair brings the sandboxes back as they are", async () => {
    expect((await runCli(["create", "--name", "alive", "--image", "base"])).code).toBe(0);
    expect((await runCli(["create", "--name", "parked", "--image", "base"])).code).toBe(0);
    expect((await runCli(["stop", "parked"])).code).toBe(0);
    const file = paths.stateDb();
    for (const [what, damage, why] of DAMAGE) {
      for (const leftover of [`${file}-wal`, `${file}-shm`]) rmSync(leftover, { force: true });
      damage(file);
      for (const args of [["list", "--json"], ["info", "alive", "--json"], ["create", "--name", "new", "--json"], ["stop", "parked", "--json"], ["cleanup", "--json"], ["delete", "parked", "--json"]]) {
        const result = await runCli(args);
        expect(`${what}: ${args[0]} exits ${result.code}`).toBe(`${what}: ${args[0]} exits 1`);
        expect(envelope(result).error).toEqual({
          code: "STATE_CORRUPT",
          message: `Cannot use the state store "${file}": ${why}`,
          hint: `\`smolvm doctor --repair\` moves "${file}" aside and rebuilds the store from the sandbox directories (each keeps a sandbox.json); nothing in them is touched`,
        });
      }
      const plain = await runCli(["exec", "alive", "--", "true"]);
      expect(plain.code).toBe(1);
      expect(plain.stderr).toContain(`error: Cannot use the state store "${file}": ${why}`);

      const repair = envelope(await runCli(["doctor", "--repair", "--json"])).data;
      expect(repair.damage).toBe(`Cannot use the state store "${file}": ${why}`);
      expect(repair.restored.map((vm: { name: string; status: string }) => [vm.name, vm.status]).sort()).toEqual([["alive", "running"], ["parked", "stopped"]]);
      const listed = envelope(await runCli(["list", "--all", "--json"])).data;
      expect(listed.map((vm: { name: string; status: string }) => [vm.name, vm.status]).sort()).toEqual([["alive", "running"], ["parked", "stopped"]]);
      expect((await runCli(["exec", "alive", "--", "echo", "still here"])).stdout).toBe("still here\n");
    }
    // The running sandbox's supervisor writes to the rebuilt store, not the one set aside.
    expect((await runCli(["stop", "alive"])).code).toBe(0);
    expect(envelope(await runCli(["list", "--all", "--json"])).data.map((vm: { status: string }) => vm.status)).toEqual(["stopped", "stopped"]);
    expect((await runCli(["start", "parked"])).code).toBe(0);
    expect((await runCli(["exec", "parked", "--", "echo", "back"])).stdout).toBe("back\n");
  });
});

/** Root and util-linux's unshare: what a mount namespace of the test's own needs. */
const canUnshare = process.getuid?.() === 0 && spawnSync("unshare", ["-m", "true"]).status === 0;

describe.skipIf(!canUnshare)("a full disk under the home", () => {
  test("is said with the path and the room needed, every record stays true, and nothing the guest wrote is lost", async () => {
    const run = spawnSync("unshare", ["-m", "--propagation", "private", process.execPath, join(repoRoot, "test/e2e/_full-disk.ts")], {
      encoding: "utf8",
      env: { ...process.env },
      timeout: 280_000,
    });
    const report = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}");
    expect(report.error).toBeUndefined();
    const { steps, home } = report as { home: string; steps: Record<string, { code: number; stdout: string; stderr: string; ms: number }> };
    const disk = new RegExp(`^${home.replaceAll("/", "\\/")}\\/vms\\/[0-9a-f]{12}\\/disk\\.qcow2$`);
    expect(steps.create!.code).toBe(0);
    expect(steps.before!.stdout).toBe("written\n");

    // The command whose writes cannot land is told, at once, not left hanging.
    expect(steps.write!.code).toBe(1);
    expect(steps.write!.ms).toBeLessThan(30_000);
    expect(steps.write!.stderr).toMatch(/error: Sandbox "full" is paused: its disk "[^"]+" cannot grow: the host file system is full \(\d+(\.\d+)? (bytes|MiB) free, \d+(\.\d+)? MiB more at most, for the disk to reach its full size\)/);
    const path = /its disk "([^"]+)"/.exec(steps.write!.stderr)![1]!;
    expect(path).toMatch(disk);
    // list says what is true.
    const listed = JSON.parse(steps.list!.stdout).data[0];
    expect(listed).toMatchObject({ name: "full", status: "paused", lastError: { code: "HOST_DISK_FULL" } });
    // Another command is refused with the reason; a stop says it cannot finish yet, quickly.
    expect(steps.small!.code).toBe(1);
    expect(steps.small!.stderr).toContain("the host file system is full");
    expect(steps.small!.ms).toBeLessThan(10_000);
    expect(steps.stop!.code).toBe(1);
    expect(steps.stop!.ms).toBeLessThan(10_000);
    expect(steps.stop!.stderr).toMatch(/^error: Cannot (stop|finish stopping) sandbox "full" (now|yet): it is paused: its disk/);
    expect(steps.stop!.stderr).not.toContain("this is a bug");
    expect(JSON.parse(steps.listAfterStop!.stdout).data[0]).toMatchObject({ status: "paused", lastError: { code: "HOST_DISK_FULL" } });
    // A new sandbox is refused before anything is made.
    expect(steps.createFull!.code).toBe(1);
    expect(steps.createFull!.stderr).toMatch(/^error: Cannot create sandbox "more": the host file system is full \(\d+ bytes free, 16\.0 MiB needed\)/);

    // Room again: it goes on, with what it had written.
    expect(steps.resume!.code).toBe(0);
    expect(steps.after!.stdout).toBe("precious\n");
    expect(steps.stopAfter!.code).toBe(0);
    expect(steps.delete!.code).toBe(0);
    expect(JSON.parse(steps.left!.stdout).data).toEqual([]);
  });
});
