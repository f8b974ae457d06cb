/**
 * Warm starts of a coding agent on real VMs, through the CLI: the first `claude start` boots and
 * leaves the claude image's warm template (taken before anything of the user went in), the next
 * one restores it and is a sandbox of its own with the repo, the credentials and a working
 * agent; `--no-warm` and a start of another shape boot.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureImage } from "../../lib/images/build.ts";
import { paths } from "../../lib/paths.ts";
import { ROOT_PREPARED } from "../../lib/presets/warmup.ts";
import { envelope, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts } from "../helpers/vm.ts";
import { commitAll } from "../helpers/git-repo.ts";

setDefaultTimeout(600_000);
const BUILD_MS = 45 * 60_000;

let work: string;
let repo: string;
const KEY = `sk-ant-smolvm-warm-${randomBytes(12).toString("hex")}`;
const MARKER = `workspace-marker-${randomBytes(8).toString("hex")}`;

beforeAll(async () => {
  await prepareArtifacts();
  await ensureImage("claude");
  work = mkdtempSync(join(tmpdir(), "smolvm-preset-warm-"));
  repo = join(work, "repo");
  mkdirSync(join(repo, "src"), { recursive: true });
  writeFileSync(join(repo, "README.md"), `# ${MARKER}\n`);
  writeFileSync(join(repo, "src/app.py"), "print('hi')\n");
  commitAll(repo);
  mkdirSync(join(work, "home"));
}, BUILD_MS);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});
cleanupAfterAll();

const cliEnv = () => ({ HOME: join(work, "home"), ANTHROPIC_API_KEY: KEY });
const start = (name: string, ...flags: string[]) =>
  runCli(["claude", "start", "--name", name, "--no-attach", "--workdir", repo, "--json", ...flags], { env: cliEnv(), timeoutMs: 400_000 });
const inside = async (name: string, script: string) => (await runCli(["exec", name, "--", "sh", "-c", script], { timeoutMs: 120_000 })).stdout;
const identity = (name: string) => inside(name, "cat /proc/sys/kernel/random/boot_id; hostname; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'");

describe("claude start, warm", () => {
  let firstIdentity: string;

  test("the first start boots and leaves the image's template, which holds nothing of the user", async () => {
    const first = await start("first");
    expect(first.code).toBe(0);
    expect(envelope(first).data).toMatchObject({ sandbox: "first", image: "claude", createdFrom: "boot" });
    const template = join(paths.warmDir(), "claude");
    const manifest = JSON.parse(readFileSync(join(template, "manifest.json"), "utf8"));
    expect(manifest).toMatchObject({ kind: "template", name: "claude", config: { memoryMiB: 2048, diskSizeMiB: 8192 } });
    // Its memory was saved before credentials and the workspace went in.
    const state = spawnSync("sh", ["-c", `zstd -dc "${join(template, "vmstate.zst")}" | grep -c -a -e "$1" -e "$2"`, "sh", KEY, MARKER]);
    expect(state.stdout.toString().trim()).toBe("0");
    // It was readied before the snapshot: the root grown to 8 GiB on its disk, and the marker a
    // start reads made (its name is in the saved kernel's memory; the file itself may be a dirty
    // page there, not yet on the disk layer).
    const raw = join(work, "template.raw");
    expect(spawnSync("qemu-img", ["convert", "-O", "raw", join(template, "disk.qcow2"), raw]).status).toBe(0);
    const blocks = spawnSync("sh", ["-c", `dumpe2fs -h "${raw}" 2>/dev/null | sed -n 's/^Block count: *//p; s/^Block size: *//p'`]).stdout.toString().trim().split("\n").map(Number);
    expect(blocks[0]! * blocks[1]!).toBeGreaterThan(7 * 2 ** 30);
    rmSync(raw);
    const marker = ROOT_PREPARED.slice(ROOT_PREPARED.lastIndexOf("/") + 1);
    const named = spawnSync("sh", ["-c", `zstd -dc "${join(template, "vmstate.zst")}" | grep -c -a -F "$1"`, "sh", marker]);
    expect(Number(named.stdout.toString().trim())).toBeGreaterThan(0);
    firstIdentity = await identity("first");
  });

  test("the next start restores it: claude answers, /workspace holds the repo, the key is there, and it is a machine of its own", async () => {
    const second = await start("second");
    expect(second.code).toBe(0);
    expect(envelope(second).data).toMatchObject({ sandbox: "second", image: "claude", createdFrom: "warm", forwardedKeys: ["ANTHROPIC_API_KEY"] });
    const version = await runCli(["exec", "second", "--", "claude", "--version"], { timeoutMs: 120_000 });
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+ \(Claude Code\)/);
    const workspace = await inside("second", "cd /workspace && git log --oneline | wc -l && cat README.md src/app.py && printenv ANTHROPIC_API_KEY IS_SANDBOX && df -m / | awk 'NR==2 {print ($2 > 4000) ? \"grown\" : \"small\"}'");
    expect(workspace).toBe(`1\n# ${MARKER}\nprint('hi')\n${KEY}\n1\ngrown\n`);

    const [bootId, hostname, random] = (await identity("second")).split("\n");
    const [firstBootId, firstHostname, firstRandom] = firstIdentity.split("\n");
    expect(hostname).toBe("second");
    expect(firstHostname).toBe("first");
    expect(bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(bootId).not.toBe(firstBootId);
    expect(random).not.toBe(firstRandom);
    const clock = Number(await inside("second", "date +%s"));
    expect(Math.abs(clock - Date.now() / 1000)).toBeLessThan(30);
  });

  test("a third restore differs from the second: each restore is its own", async () => {
    const third = await start("third", "--no-workdir");
    expect(envelope(third).data).toMatchObject({ createdFrom: "warm", workspace: null });
    const [a, b] = await Promise.all([identity("second"), identity("third")]);
    expect(a.split("\n")[0]).not.toBe(b.split("\n")[0]);
    expect((await inside("third", "ls -A /workspace | wc -l")).trim()).toBe("0");
  });

  test("--no-warm and a start of another shape boot, and leave the template as it was", async () => {
    const manifest = join(paths.warmDir(), "claude", "manifest.json");
    const before = spawnSync("sha256sum", [manifest]).stdout.toString();
    const cold = await start("cold", "--no-warm", "--no-workdir");
    expect(envelope(cold).data).toMatchObject({ createdFrom: "boot" });
    const other = await start("other", "--memory", "1024", "--no-workdir");
    expect(other.code).toBe(0);
    expect(envelope(other).data).toMatchObject({ createdFrom: "boot" });
    expect(spawnSync("sha256sum", [manifest]).stdout.toString()).toBe(before);
    for (const name of ["first", "second", "third", "cold", "other"]) expect((await runCli(["delete", name])).code).toBe(0);
  });
});
