/**
 * Coding agents in real sandboxes, through the CLI as a user runs it: Claude Code, Codex and Pi
 * from their images (built into the shared cache on first use, several minutes each), Codex
 * installed at boot, attach under a real terminal (tmux on the host), credentials that reach the
 * guest and nothing on the host outside the sandbox's disk, sync, and the faults.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureImage } from "../../lib/images/build.ts";
import { listSandboxes } from "../../lib/sandbox/status.ts";
import { GUEST_HOME } from "../../lib/guest.ts";
import { envelope, repoRoot, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, waitUntil } from "../helpers/vm.ts";
import { commitAll } from "../helpers/git-repo.ts";

setDefaultTimeout(600_000);
const BUILD_MS = 45 * 60_000;

let work: string;
let repo: string;
let home: string;
const KEY = `sk-ant-smolvm-test-${randomBytes(12).toString("hex")}`;
const OAUTH_SECRET = `oauth-${randomBytes(12).toString("hex")}`;

beforeAll(async () => {
  await prepareArtifacts();
  await ensureImage("debian");
  work = mkdtempSync(join(tmpdir(), "smolvm-presets-"));
  repo = join(work, "repo");
  mkdirSync(join(repo, "src"), { recursive: true });
  writeFileSync(join(repo, "README.md"), "# demo\n");
  writeFileSync(join(repo, "src/app.py"), "print('hi')\n");
  writeFileSync(join(repo, ".gitignore"), "node_modules/\n");
  symlinkSync("/etc/passwd", join(repo, "outside-link"));
  commitAll(repo);
  mkdirSync(join(repo, "node_modules/junk"), { recursive: true });
  writeFileSync(join(repo, "node_modules/junk/index.js"), "ignored\n");
  // A host home with Claude Code's files: the account fields travel, the rest does not.
  home = join(work, "home");
  mkdirSync(join(home, ".claude"), { recursive: true });
  writeFileSync(join(home, ".claude.json"), JSON.stringify({ oauthAccount: { emailAddress: "t@example.com" }, hasCompletedOnboarding: true, projects: { "/secret/path": {} }, numStartups: 9 }));
  writeFileSync(join(home, ".claude/.credentials.json"), JSON.stringify({ claudeAiOauth: { accessToken: OAUTH_SECRET } }));
}, BUILD_MS);
afterAll(() => {
  spawnSync("tmux", ["kill-session", "-t", "smolvm-presets-test"]);
  if (work) rmSync(work, { recursive: true, force: true });
});
cleanupAfterAll();

const cliEnv = () => ({ HOME: home, ANTHROPIC_API_KEY: KEY, OPENAI_API_KEY: "" });

describe("claude", () => {
  beforeAll(async () => {
    await ensureImage("claude");
  }, BUILD_MS);

  test("start --no-attach copies the repo and the credentials; claude answers --version", async () => {
    const start = await runCli(["claude", "start", "--name", "cc", "--no-attach", "--workdir", repo, "--json"], { env: cliEnv(), timeoutMs: 300_000 });
    expect(start.code).toBe(0);
    const data = envelope(start).data;
    expect(data).toMatchObject({ sandbox: "cc", preset: "claude", image: "claude", installedAtBoot: false, forwardedKeys: ["ANTHROPIC_API_KEY"], credentials: true });
    expect(data.copiedConfig.sort()).toEqual([".claude.json", ".claude/.credentials.json"]);
    expect(JSON.stringify(data)).not.toContain(KEY);

    const version = await runCli(["exec", "cc", "--", "claude", "--version"], { timeoutMs: 120_000 });
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+ \(Claude Code\)/);

    const inside = await runCli(["exec", "cc", "--", "sh", "-c", `cd /workspace && git log --oneline | wc -l && ls -A && readlink outside-link && printenv ANTHROPIC_API_KEY && stat -c %a ${GUEST_HOME}/.claude.json ${GUEST_HOME}/.claude/.credentials.json ${GUEST_HOME}/.claude && cat ${GUEST_HOME}/.claude.json`]);
    const lines = inside.stdout.split("\n");
    expect(lines[0]).toBe("1");
    expect(inside.stdout).toContain("README.md");
    expect(inside.stdout).not.toContain("node_modules");
    expect(inside.stdout).toContain("/etc/passwd\n"); // the link travelled as a link
    expect(inside.stdout).toContain(`${KEY}\n600\n600\n700\n`);
    expect(inside.stdout).toContain('"hasCompletedOnboarding": true');
    expect(inside.stdout).not.toContain("/secret/path");
  });

  test("the API key is nowhere on the host but the sandbox's disk: not in list, info, logs or command lines", async () => {
    const list = await runCli(["list", "--json"]);
    const info = await runCli(["info", "cc", "--json"]);
    const env = await runCli(["env", "list", "cc", "--json"]);
    for (const output of [list.stdout, info.stdout, env.stdout]) {
      expect(output).not.toContain(KEY);
      expect(output).not.toContain(OAUTH_SECRET);
    }
    // Every file under the smolvm home but the sandbox's disk overlay (the documented store).
    const hits: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const info = statSync(path);
        if (info.isDirectory()) walk(path);
        else if (info.isFile() && !name.endsWith(".qcow2") && info.size < 64 * 2 ** 20) {
          const text = readFileSync(path, "latin1");
          if (text.includes(KEY) || text.includes(OAUTH_SECRET)) hits.push(path);
        }
      }
    };
    walk(process.env.SMOLVM_HOME!);
    expect(hits).toEqual([]);
    for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
      const cmdline = (() => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "latin1");
        } catch {
          return "";
        }
      })();
      expect(cmdline.includes(KEY)).toBe(false);
    }
  });

  test("attach under a real terminal shows the agent's first screen, follows a resize, and Ctrl-] detaches", async () => {
    const session = "smolvm-presets-test";
    const command = `cd ${repoRoot} && SMOLVM_HOME=${process.env.SMOLVM_HOME!} SMOLVM_CACHE=${process.env.SMOLVM_CACHE} ${process.execPath} main.ts claude attach cc; echo HOST-EXIT=$?; sleep 600`;
    spawnSync("tmux", ["new-session", "-d", "-s", session, "-x", "120", "-y", "40", command]);
    const screen = () => spawnSync("tmux", ["capture-pane", "-p", "-t", session]).stdout.toString();
    await waitUntil(() => screen().includes("Claude Code"), 180_000, "Claude Code's first screen");
    spawnSync("tmux", ["resize-window", "-t", session, "-x", "100", "-y", "30"]);
    const size = async () => (await runCli(["exec", "cc", "--", "tmux", "-L", "smolvm", "display-message", "-p", "-t", "claude", "#{window_width}x#{window_height}"])).stdout.trim();
    const deadline = Date.now() + 30_000;
    while ((await size()) !== "100x30" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    expect(await size()).toBe("100x30");
    expect(screen()).not.toContain("HOST-EXIT");
    spawnSync("tmux", ["send-keys", "-t", session, "C-]"]);
    await waitUntil(() => screen().includes("HOST-EXIT=0"), 30_000, "the detach");
    expect(screen()).toContain("detached from cc");
    // The sandbox, and the agent's tmux session, are still there.
    expect((await runCli(["exec", "cc", "--", "tmux", "-L", "smolvm", "has-session", "-t", "claude"])).code).toBe(0);
  });

  test("sync brings changes back to the working directory, minus what Git ignores", async () => {
    await runCli(["exec", "cc", "--", "sh", "-c", "cd /workspace && echo changed > README.md && echo new > NEW.md && mkdir -p node_modules/x && echo no > node_modules/x/y.js"]);
    const sync = await runCli(["claude", "sync", "cc", "--json"]);
    expect(sync.code).toBe(0);
    expect(readFileSync(join(repo, "README.md"), "utf8")).toBe("changed\n");
    expect(readFileSync(join(repo, "NEW.md"), "utf8")).toBe("new\n");
    expect(existsSync(join(repo, "node_modules/x"))).toBe(false);
  });

  test("start on an existing name attaches again instead of creating", async () => {
    const again = await runCli(["claude", "start", "--name", "cc", "--no-attach", "--json"]);
    expect(again.code).toBe(0);
    expect(envelope(again).data).toMatchObject({ sandbox: "cc", existing: true });
    expect((await listSandboxes()).filter((s) => s.name === "cc").length).toBe(1);
    expect((await runCli(["delete", "cc"])).code).toBe(0);
  });
});

describe.each(["codex", "pi"])("%s from its image", (agent) => {
  beforeAll(async () => {
    await ensureImage(agent);
  }, BUILD_MS);

  test(`start --no-attach, then ${agent} --version answers and /workspace holds the repo`, async () => {
    const start = await runCli([agent, "start", "--name", agent, "--no-attach", "--workdir", repo, "--json"], { env: cliEnv(), timeoutMs: 300_000 });
    expect(start.code).toBe(0);
    expect(envelope(start).data).toMatchObject({ image: agent, installedAtBoot: false });
    const version = await runCli(["exec", agent, "--", agent, "--version"], { timeoutMs: 180_000 });
    expect(version.code).toBe(0);
    // Pi prints to stderr when stdin is not a terminal.
    expect(version.stdout + version.stderr).toMatch(/\d+\.\d+\.\d+/);
    expect((await runCli(["exec", agent, "--", "cat", "/workspace/src/app.py"])).stdout).toBe("print('hi')\n");
    await runCli(["delete", agent]);
  });
});

describe("install at boot and faults", () => {
  test("codex installed at boot on the default image answers --version", async () => {
    const start = await runCli(["codex", "start", "--name", "codex-boot", "--no-attach", "--no-workdir", "--install-at-boot", "--json"], { env: cliEnv(), timeoutMs: 600_000 });
    // An install that fails says why (a download, the registry, a timeout): keep it in the report.
    if (start.code !== 0) throw new Error(`codex start --install-at-boot exited ${start.code}: ${start.stdout}${start.stderr}`);
    expect(envelope(start).data).toMatchObject({ image: "debian", installedAtBoot: true, workspace: null });
    const version = await runCli(["exec", "codex-boot", "--", "codex", "--version"], { timeoutMs: 120_000 });
    expect(version.stdout).toMatch(/codex-cli \d+\.\d+\.\d+/);
    await runCli(["delete", "codex-boot"]);
  });

  test("an install that outlives --install-timeout fails clearly and removes the sandbox", async () => {
    const start = await runCli(["codex", "start", "--name", "slow", "--no-attach", "--no-workdir", "--install-at-boot", "--install-timeout", "2", "--json"], { env: cliEnv(), timeoutMs: 300_000 });
    expect(start.code).toBe(1);
    expect(envelope(start).error).toMatchObject({ code: "TIMEOUT" });
    expect(envelope(start).error.message).toContain("did not finish within 2 s");
    await waitUntil(async () => (await listSandboxes()).every((s) => s.name !== "slow"), 30_000, "the sandbox to go");
  });

  test("hermes installs at boot; where PyPI cannot be reached the error shows the installer's last lines", async () => {
    const start = await runCli(["hermes", "start", "--name", "herm", "--no-attach", "--no-workdir", "--json"], { env: cliEnv(), timeoutMs: 600_000 });
    if (start.code === 0) {
      // A network that reaches PyPI: hermes is installed.
      expect(envelope(start).data).toMatchObject({ installedAtBoot: true });
      await runCli(["delete", "herm"]);
      return;
    }
    const error = envelope(start).error;
    expect(error.code).toBe("COMMAND_FAILED");
    expect(error.message).toContain("Cannot install Hermes Agent");
    expect(error.hint).toContain("its last output:");
    expect(error.details.output.length).toBeGreaterThan(0);
    await waitUntil(async () => (await listSandboxes()).every((s) => s.name !== "herm"), 30_000, "the sandbox to go");
  });

  test("bad input: an unknown agent, a missing workdir, a huge workdir without --yes; nothing is created", async () => {
    const unknown = await runCli(["cursor", "start"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("known agents: claude (claude-code), codex, pi");
    const missing = await runCli(["claude", "start", "--no-attach", "--workdir", join(work, "nope"), "--json"]);
    expect(missing.code).toBe(1);
    expect(envelope(missing).error.message).toContain("does not exist");
    const big = join(work, "big");
    mkdirSync(big);
    writeFileSync(join(big, "huge.bin"), "");
    truncateSync(join(big, "huge.bin"), 300 * 2 ** 20); // sparse: large to list, cheap to make
    const huge = await runCli(["claude", "start", "--no-attach", "--workdir", big, "--json"]);
    expect(huge.code).toBe(1);
    expect(envelope(huge).error.hint).toContain("--yes");
    expect(await listSandboxes()).toEqual([]);
  });
});
