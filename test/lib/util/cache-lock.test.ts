import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildInto, withLock } from "../../../lib/util/cache-lock.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-cache-lock-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("build lock", () => {
  test("a second builder waits for the first and is told who holds the lock", async () => {
    const lock = join(dir, ".lock-x");
    const order: string[] = [];
    let waitedFor: number | undefined;
    let release!: () => void;
    const first = withLock(lock, async () => {
      order.push("first start");
      await new Promise<void>((r) => (release = r));
      order.push("first end");
    });
    await new Promise((r) => setTimeout(r, 20));
    const second = withLock(lock, async () => {
      order.push("second");
    }, { onWait: (pid) => (waitedFor = pid) });
    await new Promise((r) => setTimeout(r, 300));
    expect(order).toEqual(["first start"]);
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(["first start", "first end", "second"]);
    expect(waitedFor).toBe(process.pid);
    expect(existsSync(lock)).toBe(false);
  });

  test("a lock left by a dead process is taken over at once", async () => {
    const lock = join(dir, ".lock-y");
    writeFileSync(lock, "2147483646");
    const started = performance.now();
    expect(await withLock(lock, async () => "built")).toBe("built");
    expect(performance.now() - started).toBeLessThan(200);
  });

  test("the lock is released when the build throws", async () => {
    const lock = join(dir, ".lock-z");
    await expect(withLock(lock, async () => {
      throw new Error("boom");
    })).rejects.toThrow("boom");
    expect(existsSync(lock)).toBe(false);
  });
});

describe("build dirs", () => {
  test("a new build dir clears leftovers of the same key only, and publishing renames it into place", async () => {
    mkdirSync(join(dir, ".tmp-key1-OLD111"));
    mkdirSync(join(dir, ".tmp-key2-OTHER1"));
    let temp = "";
    await buildInto(dir, "key1", join(dir, "key1"), {}, async (tempDir) => {
      temp = tempDir;
      expect(readdirSync(dir).sort()).toEqual([".tmp-key2-OTHER1", tempDir.split("/").pop()!].sort());
      writeFileSync(join(tempDir, "artifact"), "x");
    });
    expect(existsSync(join(dir, "key1", "artifact"))).toBe(true);
    expect(existsSync(temp)).toBe(false);
  });

  test("a failed build leaves no temp dir and no entry", async () => {
    let temp = "";
    const failing = buildInto(dir, "key", join(dir, "key"), {}, async (tempDir) => {
      temp = tempDir;
      writeFileSync(join(tempDir, "half"), "x");
      throw new Error("compiler exploded");
    });
    expect(failing).rejects.toThrow("compiler exploded");
    await failing.catch(() => {});
    expect(existsSync(temp)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("publishing over an existing entry keeps the first one", async () => {
    mkdirSync(join(dir, "key"));
    writeFileSync(join(dir, "key", "artifact"), "first");
    let temp = "";
    await buildInto(dir, "key", join(dir, "key"), {}, async (tempDir) => {
      temp = tempDir;
      writeFileSync(join(tempDir, "artifact"), "second");
    });
    expect(readFileSync(join(dir, "key", "artifact"), "utf8")).toBe("first");
    expect(existsSync(temp)).toBe(false);
  });
});
