/**
 * `doctor --repair` (lib/sandbox/repair.ts): the damaged store is moved aside, never deleted, and
 * every sandbox directory gets its row back from its mirror, with the state that is true now.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { paths } from "../../../lib/paths.ts";
import { repairStore } from "../../../lib/sandbox/repair.ts";
import { mirrorPath } from "../../../lib/state/mirror.ts";
import { withStore, type SandboxPatch } from "../../../lib/state/sandboxes.ts";
import { scratchDir } from "../../helpers/scratch.ts";

beforeEach(() => {
  process.env.SMOLVM_HOME = scratchDir("smolvm-repair-");
});

function sandbox(name: string, patch: SandboxPatch, allocate = {}) {
  return withStore((store) => {
    const vm = store.create({ config: parseSandboxConfig({ name, image: "base" }), backend: "qemu", allocate });
    mkdirSync(paths.sandboxDir(vm.id), { recursive: true });
    return store.update(vm.id, patch);
  });
}

function wreck(): void {
  const file = paths.stateDb();
  withStore(() => {});
  for (const leftover of [`${file}-wal`, `${file}-shm`]) rmSync(leftover, { force: true });
  writeFileSync(file, "");
}

describe("doctor --repair", () => {
  test("moves a damaged store aside and gives every sandbox its row back, true to what runs now", () => {
    const stopped = sandbox("kept-stopped", { status: "stopped" }, { sshPort: true });
    const crashed = sandbox("was-running", { status: "running", supervisorPid: 999_999, vmmPid: 999_998 });
    const failed = sandbox("had-failed", { status: "failed", lastError: { code: "TIMEOUT", message: "no answer" } });
    wreck();
    const report = repairStore();
    expect(report.damage).toMatch(/the file is empty/);
    expect(report.movedAside).toMatch(/state\.db\.damaged-/);
    expect(existsSync(report.movedAside!)).toBe(true);
    expect(readFileSync(report.movedAside!).length).toBe(0);
    expect(report.restored.map((vm) => vm.name).sort()).toEqual(["had-failed", "kept-stopped", "was-running"]);
    const rows = withStore((store) => store.list());
    expect(rows.find((vm) => vm.id === stopped.id)).toMatchObject({ status: "stopped", sshPort: stopped.sshPort, config: stopped.config, createdAt: stopped.createdAt });
    expect(rows.find((vm) => vm.id === crashed.id)).toMatchObject({
      status: "failed",
      vmmPid: null,
      supervisorPid: null,
      lastError: { code: "NOT_RUNNING", message: expect.stringContaining("its VM ended while the state store was damaged") },
    });
    expect(rows.find((vm) => vm.id === failed.id)).toMatchObject({ status: "failed", lastError: { code: "TIMEOUT", message: "no answer" } });
  });

  test("on a sound store it only adds what is missing, and says what it could not", () => {
    const present = sandbox("present", { status: "stopped" });
    const lost = sandbox("lost", { status: "stopped" });
    withStore((store) => store.delete(lost.id)); // the row is gone, the directory and mirror are not
    mkdirSync(join(paths.sandboxesDir(), "not-a-sandbox"));
    const report = repairStore();
    expect(report.damage).toBeNull();
    expect(report.unchanged).toBe(1);
    expect(report.restored).toEqual([{ id: lost.id, name: "lost", status: "stopped", reallocated: [] }]);
    expect(report.skipped).toEqual([{ dir: join(paths.sandboxesDir(), "not-a-sandbox"), reason: expect.stringContaining("no sandbox.json") }]);
    expect(withStore((store) => store.list()).map((vm) => vm.id).sort()).toEqual([present.id, lost.id].sort());
  });

  test("reads mirrors as the store reads rows: an older one without a DNS port, a newer error code, a damaged one, a bad name", () => {
    const old = sandbox("older", { status: "failed", lastError: { code: "TIMEOUT", message: "no answer" } });
    const broken = sandbox("broken", { status: "stopped" });
    const renamed = sandbox("renamed", { status: "stopped" });
    for (const vm of [old, broken, renamed]) withStore((store) => store.delete(vm.id));
    const edit = (id: string, change: (mirror: Record<string, unknown>) => void) => {
      const mirror = JSON.parse(readFileSync(mirrorPath(id), "utf8"));
      change(mirror);
      writeFileSync(mirrorPath(id), JSON.stringify(mirror));
    };
    edit(old.id, (m) => {
      delete m.dnsPort;
      m.lastError = { code: "FROM_A_NEWER_SMOLVM", message: "no answer" };
    });
    edit(broken.id, (m) => (m.config = { ...(m.config as object), memoryMiB: "lots" }));
    edit(renamed.id, (m) => (m.name = "../escaped"));
    const report = repairStore();
    expect(report.skipped).toEqual([{ dir: paths.sandboxDir(broken.id), reason: "its sandbox.json is not valid" }]);
    expect(withStore((store) => store.get(old.id))).toMatchObject({ dnsPort: null, lastError: { code: "INTERNAL", message: "no answer" } });
    // Restored as it was written, but no path is made of a name `create` would refuse.
    expect(withStore((store) => store.get(renamed.id)).name).toBe("../escaped");
    expect(existsSync(join(paths.namesDir(), "..", "escaped"))).toBe(false);
    expect(readdirSync(paths.namesDir()).sort()).toEqual(["older"]);
  });

  test("an allocation another sandbox holds meanwhile is replaced, and the repair says so", () => {
    const lost = sandbox("lost-port", { status: "stopped" }, { sshPort: true });
    withStore((store) => store.delete(lost.id));
    const taker = sandbox("taker", { status: "stopped" }, { sshPort: true });
    expect(taker.sshPort).toBe(lost.sshPort);
    const report = repairStore();
    expect(report.restored).toEqual([{ id: lost.id, name: "lost-port", status: "stopped", reallocated: ["ssh_port"] }]);
    expect(withStore((store) => store.get(lost.id)).sshPort).not.toBe(taker.sshPort);
  });
});
