/**
 * The state store is never silently replaced: a damaged file stops every use with STATE_CORRUPT
 * naming it and the repair, a new store appears whole or not at all, and every row is mirrored
 * into its sandbox's directory for `doctor --repair` to rebuild from.
 */
import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { SmolError } from "../../../lib/errors.ts";
import { paths } from "../../../lib/paths.ts";
import { mirrorPath } from "../../../lib/state/mirror.ts";
import { StateStore, withStore } from "../../../lib/state/sandboxes.ts";
import { scratchDir } from "../../helpers/scratch.ts";

function home(): string {
  const dir = scratchDir("smolvm-damage-");
  process.env.SMOLVM_HOME = dir;
  return dir;
}

function newRow(name: string) {
  return withStore((store) => {
    const vm = store.create({ config: parseSandboxConfig({ name, image: "base", network: "none" }), backend: "qemu", allocate: {} });
    mkdirSync(paths.sandboxDir(vm.id), { recursive: true });
    return store.update(vm.id, { status: "stopped" });
  });
}

const DAMAGE: Array<[string, (file: string) => void, RegExp]> = [
  ["empty", (file) => writeFileSync(file, ""), /: the file is empty$/],
  ["cut to its first page", (file) => truncateSync(file, 4096), /: it is damaged \(database disk image is malformed\)$/],
  ["cut inside its header", (file) => truncateSync(file, 100), /: it is damaged \(database disk image is malformed\)$/],
  ["garbage", (file) => writeFileSync(file, Buffer.alloc(20_000, 0x41)), /: it is damaged \(file is not a database\)$/],
];

describe("a damaged state store", () => {
  for (const [what, damage, message] of DAMAGE) {
    test(`${what}: every use stops with STATE_CORRUPT naming the file and the repair, and the file is left as it was`, () => {
      home();
      for (let i = 0; i < 4; i++) newRow(`vm-${i}`);
      const file = paths.stateDb();
      withStore((store) => store.list()); // checkpointed: everything is in the main file
      for (const leftover of [`${file}-wal`, `${file}-shm`]) rmSync(leftover, { force: true });
      damage(file);
      const before = readFileSync(file);
      for (const use of [() => withStore((store) => store.list()), () => withStore((store) => store.find("vm-1"))]) {
        let error: unknown;
        try {
          use();
        } catch (thrown) {
          error = thrown;
        }
        expect(error).toBeInstanceOf(SmolError);
        expect((error as SmolError).code).toBe("STATE_CORRUPT");
        expect((error as SmolError).message).toMatch(new RegExp(`^Cannot use the state store "${file.replaceAll("/", "\\/")}"`));
        expect((error as SmolError).message).toMatch(message);
        expect((error as SmolError).hint).toContain("smolvm doctor --repair");
      }
      expect(readFileSync(file).equals(before)).toBe(true);
    });
  }

  test("a row no smolvm wrote is STATE_CORRUPT too, not a bug", () => {
    home();
    const vm = newRow("edited");
    withStore(() => {}); // make sure the file exists
    const store = StateStore.open();
    // Through SQLite itself: the file is sound, the row is not.
    (store as unknown as { db: { exec(sql: string): void } }).db.exec(`UPDATE vms SET config = '{"nope": true' WHERE id = '${vm.id}'`);
    store.close();
    expect(() => withStore((s) => s.list())).toThrow(expect.objectContaining({ code: "STATE_CORRUPT", hint: expect.stringContaining("doctor --repair") }));
  });

  test("a row whose config is JSON of the wrong shape is STATE_CORRUPT once its config is read", () => {
    home();
    const vm = newRow("reshaped");
    const store = StateStore.open();
    (store as unknown as { db: { exec(sql: string): void } }).db.exec(`UPDATE vms SET config = '{"vcpus": "many"}' WHERE id = '${vm.id}'`);
    store.close();
    // Commands that never read the config (exec) still work on the rest of the row.
    const [row] = withStore((s) => s.list());
    expect(row).toMatchObject({ id: vm.id, name: "reshaped" });
    expect(() => row!.config).toThrow(expect.objectContaining({ code: "STATE_CORRUPT", message: expect.stringContaining("vcpus"), hint: expect.stringContaining("doctor --repair") }));
    expect(() => JSON.stringify(row)).toThrow(expect.objectContaining({ code: "STATE_CORRUPT" }));
  });

  for (const [column, value, said] of [
    ["status", "'exploded'", 'column status holds "exploded"'],
    ["backend", "'vmware'", 'column backend holds "vmware"'],
    ["ip", "NULL", undefined],
  ] as const) {
    test(`a row whose ${column} is ${value} is ${said === undefined ? "read as it is" : "STATE_CORRUPT naming the column"}`, () => {
      home();
      const vm = newRow(`edited-${column}`);
      const store = StateStore.open();
      (store as unknown as { db: { exec(sql: string): void } }).db.exec(`UPDATE vms SET ${column} = ${value} WHERE id = '${vm.id}'`);
      store.close();
      if (said === undefined) expect(withStore((s) => s.get(vm.id))).toMatchObject({ id: vm.id, [column]: null });
      else expect(() => withStore((s) => s.get(vm.id))).toThrow(expect.objectContaining({ code: "STATE_CORRUPT", message: expect.stringContaining(said), hint: expect.stringContaining("doctor --repair") }));
    });
  }
});

describe("a new state store", () => {
  test("appears whole: 12 processes opening a fresh home at once all succeed, and no file is left but the store's", async () => {
    const dir = home();
    const file = join(dir, "state.db");
    const script = `import { StateStore } from ${JSON.stringify(join(import.meta.dirname, "../../../lib/state/sandboxes.ts"))}; const s = StateStore.open(${JSON.stringify(file)}); s.list(); s.close();`;
    const runs = await Promise.all(Array.from({ length: 12 }, () => new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "ignore", "inherit"] });
      child.on("exit", (code) => resolve(code));
    })));
    expect(runs).toEqual(Array(12).fill(0));
    expect(statSync(file).size).toBeGreaterThan(0);
    expect(readdirSync(dir).filter((name) => name.includes(".new-"))).toEqual([]);
  }, 60_000);
});

describe("the mirror", () => {
  test("every write of a row is mirrored into its sandbox's directory", () => {
    home();
    const vm = newRow("mirrored");
    const mirror = JSON.parse(readFileSync(mirrorPath(vm.id), "utf8"));
    expect(mirror).toMatchObject({ version: 1, id: vm.id, name: "mirrored", status: "stopped", config: { image: "base" } });
    withStore((store) => store.update(vm.id, { status: "failed", lastError: { code: "NOT_RUNNING", message: "gone" } }));
    expect(JSON.parse(readFileSync(mirrorPath(vm.id), "utf8"))).toMatchObject({ status: "failed", lastError: { code: "NOT_RUNNING", message: "gone" } });
  });

  test("a sandbox without a directory has no mirror made for it", () => {
    home();
    const vm = withStore((store) => store.create({ config: parseSandboxConfig({ name: "dirless" }), backend: "qemu", allocate: {} }));
    expect(existsSync(paths.sandboxDir(vm.id))).toBe(false);
  });

  test("the copy of a sound store is a sound store (the test's own check of its damage)", () => {
    home();
    newRow("copy");
    const file = paths.stateDb();
    withStore(() => {});
    copyFileSync(file, `${file}.copy`);
    expect(StateStore.open(`${file}.copy`).list().map((vm) => vm.name)).toEqual(["copy"]);
  });
});
