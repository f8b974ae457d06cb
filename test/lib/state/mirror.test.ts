/**
 * The mirror of each row in its sandbox's directory, the by-name links next to it, and the read
 * that reaches a running sandbox without the store (lib/state/mirror.ts): found by name or id as
 * the store has it, and never when the mirror cannot vouch for it.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { SmolVM } from "../../../lib/index.ts";
import { paths } from "../../../lib/paths.ts";
import { storeLooksWhole } from "../../../lib/state/db.ts";
import { mirrorPath, runningFromMirror } from "../../../lib/state/mirror.ts";
import type { SandboxRecord } from "../../../lib/state/record.ts";
import { withStore, type SandboxPatch } from "../../../lib/state/sandboxes.ts";
import { scratchDir } from "../../helpers/scratch.ts";

beforeEach(() => {
  process.env.SMOLVM_HOME = scratchDir("smolvm-mirror-");
});

function sandbox(name: string, patch: SandboxPatch = { status: "running", supervisorPid: 4242, vmmPid: 4243 }): SandboxRecord {
  return withStore((store) => {
    const vm = store.create({ config: parseSandboxConfig({ name, image: "base" }), backend: "qemu", allocate: { sshPort: true } });
    mkdirSync(paths.sandboxDir(vm.id), { recursive: true });
    return store.update(vm.id, patch);
  });
}

/** A record as plain data (its config is a getter that checks on first read). */
const plain = (record: SandboxRecord | undefined) => (record === undefined ? undefined : JSON.parse(JSON.stringify(record)));
const link = (name: string) => join(paths.namesDir(), name);

describe("the by-name links", () => {
  test("lead to the sandbox's directory from its first mirrored write, and go with the row", () => {
    const vm = sandbox("web");
    expect(readlinkSync(link("web"))).toBe(join("..", "vms", vm.id));
    expect(existsSync(join(link("web"), "sandbox.json"))).toBe(true);
    withStore((store) => store.delete(vm.id));
    expect(existsSync(link("web"))).toBe(false);
  });

  test("follow a name to the sandbox that takes it next, and a delete leaves another sandbox's link alone", () => {
    const first = sandbox("dev");
    // Its row went without its link (an older smolvm, a crash): the next holder's link replaces it.
    const db = new DatabaseSync(paths.stateDb());
    db.prepare("DELETE FROM vms WHERE id = ?").run(first.id);
    db.close();
    const second = sandbox("dev");
    expect(readlinkSync(link("dev"))).toBe(join("..", "vms", second.id));
    // A link that is not this row's is not this row's to remove.
    rmSync(link("dev"));
    symlinkSync(join("..", "vms", first.id), link("dev"));
    withStore((store) => store.delete(second.id));
    expect(readlinkSync(link("dev"))).toBe(join("..", "vms", first.id));
  });

  test("a sandbox made before the links gets one with its next change", () => {
    const vm = sandbox("old");
    rmSync(paths.namesDir(), { recursive: true });
    withStore((store) => store.update(vm.id, { status: "stopped" }));
    expect(readlinkSync(link("old"))).toBe(join("..", "vms", vm.id));
  });
});

describe("a running sandbox from its mirror", () => {
  test("is found by name and by id as the store has it", () => {
    const vm = sandbox("alpha");
    const stored = plain(withStore((store) => store.get("alpha")));
    expect(plain(runningFromMirror("alpha"))).toEqual(stored);
    expect(plain(runningFromMirror(vm.id))).toEqual(stored);
    expect(runningFromMirror("alpha")!.config.image).toBe("base");
  });

  test("reads no row: the sandbox is found with its row gone from a sound store", () => {
    const vm = sandbox("alpha");
    const db = new DatabaseSync(paths.stateDb());
    db.prepare("DELETE FROM vms WHERE id = ?").run(vm.id);
    db.close();
    expect(runningFromMirror("alpha")?.id).toBe(vm.id);
  });

  test("is not found when it is not running: the store then says what it is", () => {
    sandbox("parked", { status: "stopped" });
    sandbox("held", { status: "paused" });
    sandbox("booting", { status: "creating" });
    for (const name of ["parked", "held", "booting"]) expect(runningFromMirror(name)).toBeUndefined();
  });

  test("is not found when the mirror cannot vouch for it", () => {
    const alpha = sandbox("alpha");
    const beta = sandbox("beta");
    expect(runningFromMirror("gamma")).toBeUndefined(); // no link, no such id
    // A link left leading to another sandbox's directory.
    rmSync(link("beta"));
    symlinkSync(join("..", "vms", alpha.id), link("beta"));
    expect(runningFromMirror("beta")).toBeUndefined();
    rmSync(link("beta"));
    symlinkSync(join("..", "vms", beta.id), link("beta"));
    expect(runningFromMirror("beta")?.id).toBe(beta.id);
    // A link this module did not write.
    rmSync(link("beta"));
    symlinkSync(paths.sandboxDir(beta.id), link("beta"));
    expect(runningFromMirror("beta")).toBeUndefined();
    // Damaged mirrors.
    const good = readFileSync(mirrorPath(alpha.id), "utf8");
    const damage: Array<(mirror: Record<string, unknown>) => unknown> = [
      (m) => ({ ...m, version: 2 }),
      (m) => ({ ...m, status: "sleeping" }),
      (m) => ({ ...m, supervisorPid: "4242" }),
      (m) => ({ ...m, id: beta.id }),
      (m) => ({ ...m, config: undefined }),
    ];
    for (const wreck of damage) {
      writeFileSync(mirrorPath(alpha.id), JSON.stringify(wreck(JSON.parse(good))));
      expect(runningFromMirror("alpha")).toBeUndefined();
    }
    writeFileSync(mirrorPath(alpha.id), "{ not json");
    expect(runningFromMirror("alpha")).toBeUndefined();
    writeFileSync(mirrorPath(alpha.id), good);
    expect(runningFromMirror("alpha")?.id).toBe(alpha.id);
  });

  test("a name that is no sandbox name is never looked up", () => {
    sandbox("alpha");
    for (const name of ["../alpha", "Alpha", "alpha/", "", ".", "a".repeat(64)]) expect(runningFromMirror(name)).toBeUndefined();
  });

  test("is not found while the store's header says it is damaged, so the store's error stops the command", () => {
    sandbox("alpha");
    const file = paths.stateDb();
    const sound = readFileSync(file);
    expect(storeLooksWhole(file)).toBe(true);
    const wrecks: Array<[string, () => void]> = [
      ["empty", () => writeFileSync(file, "")],
      ["cut short", () => truncateSync(file, 4096)],
      ["not a database", () => writeFileSync(file, Buffer.alloc(sound.length, 0x41))],
      ["gone", () => rmSync(file)],
    ];
    for (const [what, wreck] of wrecks) {
      for (const leftover of [`${file}-wal`, `${file}-shm`]) rmSync(leftover, { force: true });
      wreck();
      expect(`${what}: ${storeLooksWhole(file)}`).toBe(`${what}: false`);
      expect(runningFromMirror("alpha")).toBeUndefined();
      writeFileSync(file, sound);
      expect(runningFromMirror("alpha")?.name).toBe("alpha");
    }
  });
});

describe("SmolVM.fromId", () => {
  const dropRow = (id: string) => {
    const db = new DatabaseSync(paths.stateDb());
    db.prepare("DELETE FROM vms WHERE id = ?").run(id);
    db.close();
  };

  test("attaches to a running sandbox by its mirror, and to anything else by the store", async () => {
    const running = sandbox("alpha");
    const parked = sandbox("parked", { status: "stopped" });
    for (const vm of [running, parked]) dropRow(vm.id);
    // The row is gone: only the mirror can have found the running one.
    const attached = await SmolVM.fromId("alpha");
    expect([attached.id, attached.name]).toEqual([running.id, "alpha"]);
    attached.close();
    await expect(SmolVM.fromId("parked")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  test("a store whose header is damaged stops it with the store's own error", async () => {
    sandbox("alpha");
    const file = paths.stateDb();
    for (const leftover of [`${file}-wal`, `${file}-shm`]) rmSync(leftover, { force: true });
    writeFileSync(file, "");
    await expect(SmolVM.fromId("alpha")).rejects.toMatchObject({ code: "STATE_CORRUPT", message: expect.stringContaining("the file is empty") });
  });
});
