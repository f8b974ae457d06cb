/**
 * The busybox base image, built for real (under a second) in a cache private to this file, so
 * removing it cannot disturb other suites using the shared cache.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { NotFoundError } from "../../../lib/errors.ts";
import { runHost } from "../../../lib/host/process.ts";
import { agentBinary } from "../../../lib/images/agent.ts";
import { currentRecipeHash, ensureImage, type ImageProgress } from "../../../lib/images/build.ts";
import { listImages, removeImage } from "../../../lib/images/store.ts";
import { AGENT_GUEST_PATH } from "../../../lib/kernel/cmdline.ts";
import { guestList, guestRead, guestStat } from "./_debugfs.ts";

let savedCache: string | undefined;
let cache: string;
let agent: Uint8Array;

beforeAll(async () => {
  savedCache = process.env.SMOLVM_CACHE;
  cache = mkdtempSync(join(tmpdir(), "smolvm-base-image-"));
  process.env.SMOLVM_CACHE = cache;
  agent = await agentBinary("x86_64");
});

afterAll(() => {
  if (savedCache === undefined) delete process.env.SMOLVM_CACHE;
  else process.env.SMOLVM_CACHE = savedCache;
  rmSync(cache, { recursive: true, force: true });
});

describe("base image", () => {
  test("builds into the cache with a manifest beside the ext4 file, reporting progress", async () => {
    const phases: ImageProgress["phase"][] = [];
    const image = await ensureImage("base", { arch: "x86_64", onProgress: (p) => phases.push(p.phase) });
    expect(isAbsolute(image.path)).toBe(true);
    expect(image.path.startsWith(join(cache, "images"))).toBe(true);
    expect(image.name).toBe("base");
    expect(image.arch).toBe("x86_64");
    expect(image.init).toBe(AGENT_GUEST_PATH);
    expect(image.recipeHash).toBe(await currentRecipeHash("base", { arch: "x86_64" }));
    expect(statSync(image.path).size).toBe(image.sizeMiB * 1024 * 1024);
    const manifest = JSON.parse(readFileSync(join(dirname(image.path), "manifest.json"), "utf8"));
    expect(manifest).toMatchObject({ name: "base", arch: "x86_64", recipeHash: image.recipeHash, sizeMiB: image.sizeMiB });
    expect(typeof manifest.createdAt).toBe("string");
    expect(phases[0]).toBe("prepare");
    expect(phases).toContain("mkfs");
    expect(phases.at(-1)).toBe("done");
    expect((await runFsck(image.path)).code).toBe(0);
  });

  test("a second ensure is a cache hit: same path, file untouched, fast", async () => {
    const first = await ensureImage("base", { arch: "x86_64" });
    const mtime = statSync(first.path).mtimeMs;
    const started = performance.now();
    const second = await ensureImage("base", { arch: "x86_64" });
    expect(performance.now() - started).toBeLessThan(500);
    expect(second.path).toBe(first.path);
    expect(statSync(second.path).mtimeMs).toBe(mtime);
  });

  test("holds the agent at /sbin/smolvm-agent, root-owned, mode 0755, byte for byte", async () => {
    const { path } = await ensureImage("base", { arch: "x86_64" });
    const st = await guestStat(path, AGENT_GUEST_PATH);
    expect(st).toMatchObject({ type: "regular", mode: 0o755, uid: 0, gid: 0, size: agent.length });
  });

  test("has busybox with its applets linked, and no init applet competing with the agent", async () => {
    const { path } = await ensureImage("base", { arch: "x86_64" });
    expect(await guestStat(path, "/bin/busybox")).toMatchObject({ type: "regular", mode: 0o755, uid: 0 });
    for (const applet of ["/bin/sh", "/bin/ls", "/bin/cat", "/bin/echo", "/bin/mount", "/sbin/reboot", "/usr/bin/env"]) {
      expect(await guestStat(path, applet)).toMatchObject({ type: "symlink", linkTarget: "/bin/busybox" });
    }
    expect(await guestStat(path, "/sbin/init")).toBeUndefined();
  });

  test("has the minimal /etc and the top-level directories the agent mounts on", async () => {
    const { path } = await ensureImage("base", { arch: "x86_64" });
    expect(await guestRead(path, "/etc/passwd")).toStartWith("root:x:0:0:root:/root:/bin/sh\n");
    expect(await guestRead(path, "/etc/group")).toStartWith("root:x:0:\n");
    expect(await guestRead(path, "/etc/hostname")).toBe("smolvm\n");
    expect(await guestRead(path, "/etc/profile")).toContain("/etc/profile.d/*.sh");
    expect(await guestStat(path, "/etc/shadow")).toMatchObject({ mode: 0o600, uid: 0 });
    const top = await guestList(path, "/");
    for (const dir of ["proc", "sys", "dev", "tmp", "run", "root", "etc", "var", "bin", "sbin", "usr"]) expect(top).toContain(dir);
    expect(await guestStat(path, "/tmp")).toMatchObject({ type: "directory", mode: 0o1777 });
    expect(await guestStat(path, "/root")).toMatchObject({ type: "directory", mode: 0o700 });
    expect(await guestStat(path, "/etc/profile.d")).toMatchObject({ type: "directory" });
  });

  test("another agent binary gives another recipe hash and another image", async () => {
    const current = await ensureImage("base", { arch: "x86_64" });
    const other = await ensureImage("base", { arch: "x86_64", agent: new Uint8Array([...agent, 0]) });
    expect(other.recipeHash).not.toBe(current.recipeHash);
    expect(other.path).not.toBe(current.path);
    expect((await guestStat(other.path, AGENT_GUEST_PATH))!.size).toBe(agent.length + 1);
  });

  test("listImages shows the builds and removeImage deletes every build of the name", async () => {
    const image = await ensureImage("base", { arch: "x86_64" });
    expect((await listImages()).some((i) => i.path === image.path)).toBe(true);
    const removed = await removeImage("base");
    expect(removed).toContain(dirname(image.path));
    expect(existsSync(image.path)).toBe(false);
    expect((await listImages()).filter((i) => i.name === "base")).toEqual([]);
    expect(await removeImage("base")).toEqual([]);
  });

  test("removing an unknown image is NotFoundError listing the known ones", async () => {
    const error = await removeImage("windows").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).hint).toContain("base, debian");
    await expect(ensureImage("windows")).rejects.toThrow(/Cannot find image "windows"/);
  });
});

function runFsck(path: string) {
  return runHost("e2fsck", ["-fn", path]);
}
