/**
 * The coding-agent images, built for real (several minutes each when not cached): Debian plus
 * tmux, the pinned Node.js and npm under /usr/local, the agent on PATH, and no npm download
 * cache left behind. Claude Code's 400 MB binary is hard-linked by its installer, not copied.
 */
import { describe, expect, test } from "bun:test";
import { runHost } from "../../../lib/host/process.ts";
import { ensureImage } from "../../../lib/images/build.ts";
import { nodeRuntime } from "../../../lib/images/recipes.ts";
import { GUEST_HOME } from "../../../lib/guest.ts";
import { guestList, guestStat } from "./_debugfs.ts";

const BUILD_TIMEOUT_MS = 45 * 60 * 1000;

describe.each([
  ["claude", "/usr/local/bin/claude"],
  ["codex", "/usr/local/bin/codex"],
  ["pi", "/usr/local/bin/pi"],
])("%s image", (name, bin) => {
  test("has tmux, Node.js and npm from the pin, the agent on PATH, and no npm cache", async () => {
    const image = await ensureImage(name, { arch: "x86_64" });
    expect(image.sizeMiB).toBeGreaterThanOrEqual(image.usedMiB + 1024);
    expect(await guestStat(image.path, "/usr/bin/tmux")).toBeDefined();
    expect(await guestStat(image.path, "/usr/local/bin/node")).toMatchObject({ type: "regular", mode: 0o755, uid: 0 });
    expect((await guestStat(image.path, "/usr/local/bin/npm"))?.linkTarget).toBe("../lib/node_modules/npm/bin/npm-cli.js");
    expect((await guestStat(image.path, bin))?.type).toBe("symlink");
    expect(await guestList(image.path, `${GUEST_HOME}/.npm`)).toEqual([]);
    const { stdout } = await runHost("debugfs", ["-R", "cat /usr/local/lib/node_modules/npm/package.json", image.path]);
    expect(JSON.parse(stdout).version).toBe(nodeRuntime().npm.version);
  }, BUILD_TIMEOUT_MS);
});

test("Claude Code's native binary is linked into place, not copied", async () => {
  const image = await ensureImage("claude", { arch: "x86_64" });
  const { stdout } = await runHost("debugfs", ["-R", "stat /usr/local/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe", image.path]);
  expect(stdout).toMatch(/Links: 2/);
  expect(Number(/Size: (\d+)/.exec(stdout)?.[1])).toBeGreaterThan(100 * 2 ** 20);
}, BUILD_TIMEOUT_MS);
