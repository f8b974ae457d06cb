import { describe, expect, test } from "bun:test";
import { ensureFloorImage, FLOOR_INIT_PATH } from "../../../lib/images/floor.ts";
import { isStaticElf } from "../../../lib/images/tree.ts";
import { guestList, guestStat } from "./_debugfs.ts";

describe("floor image", () => {
  test("holds only a static /init (plus mount points) and is cached", async () => {
    const image = await ensureFloorImage({ arch: "x86_64" });
    expect(image.name).toBe("floor");
    expect(image.init).toBe(FLOOR_INIT_PATH);
    expect(await guestStat(image.path, "/init")).toMatchObject({ type: "regular", mode: 0o755, uid: 0 });
    expect((await guestList(image.path, "/")).sort()).toEqual(["dev", "init", "lost+found", "proc", "sys"]);
    const again = await ensureFloorImage({ arch: "x86_64" });
    expect(again.path).toBe(image.path);
  });

  test("the static-ELF check tells busybox-static from a dynamic program", async () => {
    expect(await isStaticElf("/bin/busybox")).toBe(true);
    expect(await isStaticElf(process.execPath)).toBe(false);
    expect(await isStaticElf("/etc/hostname")).toBe(false);
  });
});
