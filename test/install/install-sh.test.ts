/**
 * install.sh against a real HTTP server on 127.0.0.1 serving a release directory with the real
 * binary from `npm run build`, under several POSIX shells, with every fault the script promises
 * to survive. Each case gets its own HOME and TMPDIR, so "nothing left behind" is checked on
 * directories nothing else touches.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PROJECT_REPOSITORY } from "../../lib/distribution/release-url.ts";
import { repoRoot } from "../helpers/cli.ts";
import { serveRelease, type ReleaseServer } from "../helpers/release-server.ts";

const version = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;
const asset = `smolvm-${process.platform}-${process.arch}`;
const binary = join(repoRoot, "dist", asset);
const haveBinary = existsSync(binary);
if (!haveBinary) console.log(`skipping the install.sh runs: ${binary} is missing (build it with \`npm run build\`, or \`npx bun run scripts/build.ts --host-only\`)`);
const withBinary = haveBinary ? test : test.skip;

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

let work: string;
let release: string;
let script: string;
let server: ReleaseServer;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "smolvm-install-test-"));
  chmodSync(work, 0o755);
  release = join(work, "release");
  const dir = join(release, "download", `v${version}`);
  mkdirSync(dir, { recursive: true });
  mkdirSync(join(release, "latest"));
  symlinkSync(join("..", "download", `v${version}`), join(release, "latest", "download"));
  if (haveBinary) {
    linkOrCopy(binary, join(dir, asset));
    writeFileSync(join(dir, "SHA256SUMS"), `${sha256(binary)}  ${asset}\n`);
  }
  writeFileSync(join(dir, "VERSION"), `${version}\n`);
  // A copy anyone can read, for the run as an unprivileged user.
  script = join(work, "install.sh");
  copyFileSync(join(repoRoot, "install.sh"), script);
  chmodSync(script, 0o755);
  server = await serveRelease(release);
});

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

function linkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Sandbox {
  home: string;
  tmp: string;
  prefix: string;
  env: Record<string, string>;
}

/** A fresh HOME and TMPDIR, and the environment of a user with nothing of smolvm installed. */
function sandbox(): Sandbox {
  const home = mkdtempSync(join(work, "home-"));
  chmodSync(home, 0o755);
  const tmp = join(home, "tmp");
  mkdirSync(tmp, { mode: 0o1777 });
  chmodSync(tmp, 0o1777);
  return {
    home,
    tmp,
    prefix: join(home, ".local", "bin"),
    env: { HOME: home, TMPDIR: tmp, PATH: process.env.PATH ?? "/usr/bin:/bin", SMOLVM_INSTALL_URL: server.url, LC_ALL: "C" },
  };
}

function runInstall(
  box: Sandbox,
  args: string[] = [],
  options: { shell?: string[]; env?: Record<string, string>; unset?: string[]; asUser?: number; whenStarted?: (pid: number) => void } = {},
): Promise<Run> {
  const shell = options.shell ?? ["dash"];
  const argv = [...shell, script, ...args];
  const command = options.asUser === undefined
    ? argv
    : ["setpriv", `--reuid=${options.asUser}`, `--regid=${options.asUser}`, "--clear-groups", ...argv];
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = { ...box.env, ...options.env };
    for (const name of options.unset ?? []) delete env[name];
    const child = spawn(command[0]!, command.slice(1), {
      env,
      cwd: box.home,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so a test can interrupt it the way Ctrl-C does: the whole group.
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    options.whenStarted?.(child.pid!);
  });
}

/** Every file and directory under `dir`, relative, sorted (empty when it does not exist). */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).sort();
}

const completionFiles = (box: Sandbox) => ({
  bash: join(box.home, ".local", "share", "bash-completion", "completions", "smolvm"),
  zsh: join(box.home, ".zfunc", "_smolvm"),
  fish: join(box.home, ".config", "fish", "completions", "smolvm.fish"),
});

function requestsSince(mark: number): string[] {
  return server.requests.slice(mark);
}

describe("install.sh installs the real binary", () => {
  for (const shell of [["dash"], ["bash", "--posix"], ["busybox", "sh"]]) {
    withBinary(`under ${shell.join(" ")}: verified binary in ~/.local/bin, completions, next step printed`, async () => {
      if (spawnSync("which", [shell[0]!]).status !== 0) {
        console.log(`skipping: ${shell[0]} is not installed`);
        return;
      }
      const box = sandbox();
      const mark = server.requests.length;
      const run = await runInstall(box, [], { shell });
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const installed = join(box.prefix, "smolvm");
      expect(sha256(installed)).toBe(sha256(binary));
      expect(statSync(installed).mode & 0o777).toBe(0o755);
      expect(requestsSince(mark)).toEqual(["/latest/download/SHA256SUMS", `/latest/download/${asset}`]);
      const versionRun = spawnSync(installed, ["version", "--json"], { encoding: "utf8", env: { ...box.env, SMOLVM_HOME: join(box.home, ".smolvm") } });
      expect(JSON.parse(versionRun.stdout).data).toMatchObject({ version, target: `${process.platform}-${process.arch}` });
      for (const [shellName, file] of Object.entries(completionFiles(box))) {
        expect(readFileSync(file, "utf8")).toBe(spawnSync(installed, ["completions", shellName], { encoding: "utf8", env: box.env }).stdout);
      }
      expect(run.stdout).toContain(`Installed smolvm ${version}`);
      // ~/.local/bin is not on this PATH, so the script says so and names the full path.
      expect(run.stdout).toContain(`${box.prefix} is not on your PATH`);
      expect(run.stdout).toContain(`Next: ${installed} setup`);
      expect(tree(box.tmp)).toEqual([]);
    });
  }

  withBinary("a second run changes nothing, downloads only SHA256SUMS and says so", async () => {
    const box = sandbox();
    const env = { PATH: `${box.prefix}:${box.env.PATH}` };
    expect((await runInstall(box, [], { env })).code).toBe(0);
    const files = [join(box.prefix, "smolvm"), ...Object.values(completionFiles(box))];
    const before = files.map((f) => [statSync(f).ino, statSync(f).mtimeMs]);
    const mark = server.requests.length;
    const again = await runInstall(box, [], { env });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`smolvm ${version} (${runtimeOf(join(box.prefix, "smolvm"))}, ${process.platform}-${process.arch}) is already installed in ${box.prefix} and up to date; nothing to do.\n`);
    expect(files.map((f) => [statSync(f).ino, statSync(f).mtimeMs])).toEqual(before);
    expect(requestsSince(mark)).toEqual(["/latest/download/SHA256SUMS"]);
    // A completion file the user deleted comes back on the next run, and only it.
    rmSync(completionFiles(box).fish);
    const repair = await runInstall(box, [], { env });
    expect(repair.stdout).toContain("already current");
    expect(repair.stdout).toContain(`Installed fish completions to ${completionFiles(box).fish}`);
    expect(repair.stdout).not.toContain("bash completions");
    expect(repair.stdout).toContain("Next: smolvm setup");
  });

  withBinary("--version pins the release; a version that does not exist fails cleanly", async () => {
    const box = sandbox();
    const mark = server.requests.length;
    const pinned = await runInstall(box, ["--version", `v${version}`, "--no-completions"]);
    expect(pinned.code).toBe(0);
    expect(requestsSince(mark)).toEqual([`/download/v${version}/SHA256SUMS`, `/download/v${version}/${asset}`]);
    expect(tree(join(box.home, ".config"))).toEqual([]);
    const other = sandbox();
    const missing = await runInstall(other, ["--version", "9.9.9"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`Cannot download ${server.url}/download/v9.9.9/SHA256SUMS`);
    expect(tree(other.prefix)).toEqual([]);
    expect(tree(other.tmp)).toEqual([]);
    const bad = await runInstall(other, ["--version", "latest;rm"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Not a version");
  });

  withBinary("--prefix installs elsewhere, completions under that prefix's share/", async () => {
    const box = sandbox();
    const root = mkdtempSync(join(work, "system-"));
    const prefix = join(root, "usr", "local", "bin");
    const run = await runInstall(box, ["--prefix", prefix]);
    expect(run.code).toBe(0);
    expect(sha256(join(prefix, "smolvm"))).toBe(sha256(binary));
    const share = join(root, "usr", "local", "share");
    expect(tree(share)).toEqual([
      "bash-completion", "bash-completion/completions", "bash-completion/completions/smolvm",
      "fish", "fish/vendor_completions.d", "fish/vendor_completions.d/smolvm.fish",
      "zsh", "zsh/site-functions", "zsh/site-functions/_smolvm",
    ]);
    // Nothing went to the user's home.
    expect(tree(box.home)).toEqual(["tmp"]);
  });

  withBinary("without HOME: --prefix still installs, completions under its share/; no --prefix says what to do", async () => {
    const box = sandbox();
    const prefix = join(box.home, "opt", "bin");
    const run = await runInstall(box, ["--prefix", prefix], { unset: ["HOME"] });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(sha256(join(prefix, "smolvm"))).toBe(sha256(binary));
    expect(existsSync(join(box.home, "opt", "share", "zsh", "site-functions", "_smolvm"))).toBe(true);
    const noHome = await runInstall(box, [], { unset: ["HOME"] });
    expect(noHome.code).toBe(1);
    expect(noHome.stderr).toContain("Cannot pick an install directory: HOME is not set");
    expect(noHome.stderr).toContain("--prefix DIR");
  });

  withBinary("works with only wget and shasum (no curl, no sha256sum), as on a bare macOS-like host", async () => {
    const box = sandbox();
    const bin = join(box.home, "tools");
    mkdirSync(bin);
    for (const tool of ["dash", "uname", "mktemp", "mkdir", "rm", "awk", "cut", "cat", "cp", "mv", "chmod", "cmp", "wget", "shasum", "perl"]) {
      const found = spawnSync("which", [tool], { encoding: "utf8" }).stdout.trim();
      if (found === "") {
        console.log(`skipping: ${tool} is not installed`);
        return;
      }
      symlinkSync(found, join(bin, tool));
    }
    const mark = server.requests.length;
    const run = await runInstall(box, [], { env: { PATH: bin } });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(sha256(join(box.prefix, "smolvm"))).toBe(sha256(binary));
    expect(requestsSince(mark)).toEqual(["/latest/download/SHA256SUMS", `/latest/download/${asset}`]);
  });
});

function runtimeOf(installed: string): string {
  return /\((bun-[^,]+),/.exec(spawnSync(installed, ["--version"], { encoding: "utf8" }).stdout)![1]!;
}

describe("the shells find the installed completions", () => {
  withBinary("bash (bash-completion's user dir), zsh (~/.zfunc on fpath) and fish (its user dir)", async () => {
    const box = sandbox();
    const env = { PATH: `${box.prefix}:${box.env.PATH}` };
    expect((await runInstall(box, [], { env })).code).toBe(0);
    const shellEnv = { ...box.env, ...env };
    const bashCompletion = "/usr/share/bash-completion/bash_completion";
    if (existsSync(bashCompletion)) {
      const bash = spawnSync("bash", ["-c", `source ${bashCompletion}; __load_completion smolvm; complete -p smolvm`], { encoding: "utf8", env: shellEnv });
      expect(bash.stdout.trim()).toBe("complete -F _smolvm smolvm");
    } else {
      console.log("skipping the bash lookup: the bash-completion package is not installed");
    }
    if (spawnSync("which", ["zsh"]).status === 0) {
      const zsh = spawnSync("zsh", ["-fc", `fpath=(~/.zfunc $fpath); autoload -Uz compinit; compinit -u -d ${box.tmp}/zcompdump; print -r -- $_comps[smolvm]`], { encoding: "utf8", env: shellEnv });
      expect(zsh.stdout.trim()).toBe("_smolvm");
    }
    if (spawnSync("which", ["fish"]).status === 0) {
      const fish = spawnSync("fish", ["-c", "complete -C 'smolvm versi'"], { encoding: "utf8", env: shellEnv });
      expect(fish.stdout.split("\n")[0]).toStartWith("version");
    }
  });

  test("a /usr/local/bin install puts zsh completions in a directory on zsh's default fpath", () => {
    if (spawnSync("which", ["zsh"]).status !== 0) return void console.log("skipping: zsh is not installed");
    const fpath = spawnSync("zsh", ["-fc", "print -l $fpath"], { encoding: "utf8" }).stdout.split("\n");
    expect(fpath).toContain("/usr/local/share/zsh/site-functions");
  });
});

describe("install.sh refuses and leaves nothing behind", () => {
  withBinary("checksum mismatch: nothing installed, an existing binary untouched", async () => {
    const box = sandbox();
    mkdirSync(box.prefix, { recursive: true });
    writeFileSync(join(box.prefix, "smolvm"), "the previous smolvm\n");
    const bad = mkdtempSync(join(work, "bad-release-"));
    mkdirSync(join(bad, "latest", "download"), { recursive: true });
    linkOrCopy(binary, join(bad, "latest", "download", asset));
    writeFileSync(join(bad, "latest", "download", "SHA256SUMS"), `${"0".repeat(64)}  ${asset}\n`);
    const badServer = await serveRelease(bad);
    try {
      const run = await runInstall(box, [], { env: { SMOLVM_INSTALL_URL: badServer.url } });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`the checksum of ${asset} does not match SHA256SUMS (expected ${"0".repeat(64)}, got ${sha256(binary)}); nothing was installed`);
      expect(tree(box.prefix)).toEqual(["smolvm"]);
      expect(readFileSync(join(box.prefix, "smolvm"), "utf8")).toBe("the previous smolvm\n");
      expect(tree(box.tmp)).toEqual([]);
      expect(existsSync(join(box.home, ".zfunc"))).toBe(false);
    } finally {
      await badServer.close();
    }
  });

  withBinary("a download cut off halfway: an error, no partial file anywhere", async () => {
    const box = sandbox();
    server.faults.set(`/latest/download/${asset}`, "truncate");
    try {
      const run = await runInstall(box);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`Cannot download ${server.url}/latest/download/${asset}`);
      expect(tree(box.prefix)).toEqual([]);
      expect(tree(box.tmp)).toEqual([]);
    } finally {
      server.faults.clear();
    }
  });

  withBinary("interrupted mid-download (Ctrl-C to the process group): no partial file anywhere", async () => {
    const box = sandbox();
    server.faults.set(`/latest/download/${asset}`, "stall");
    try {
      let pid = 0;
      const running = runInstall(box, [], { whenStarted: (p) => (pid = p) });
      await server.stalled();
      // The script's temporary directory holds the half-written download at this moment.
      expect(tree(box.tmp).length).toBeGreaterThan(0);
      process.kill(-pid, "SIGINT");
      const run = await running;
      expect(run.code).toBe(130);
      expect(tree(box.prefix)).toEqual([]);
      expect(tree(box.tmp)).toEqual([]);
    } finally {
      server.faults.clear();
    }
  });

  withBinary("no write permission: says how to use --prefix, downloads nothing", async () => {
    const box = sandbox();
    const locked = mkdtempSync(join(work, "locked-"));
    chmodSync(locked, 0o755);
    const asRoot = process.getuid?.() === 0;
    // Root writes anywhere, so the run is made as `nobody`; anyone else just gets a read-only dir.
    if (asRoot) chownSync(box.home, 65534, 65534);
    else chmodSync(locked, 0o555);
    const mark = server.requests.length;
    const run = await runInstall(box, ["--prefix", join(locked, "bin")], asRoot ? { asUser: 65534 } : {});
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`Cannot install smolvm into ${join(locked, "bin")}: no permission to write there`);
    expect(run.stderr).toContain("--prefix \"$HOME/bin\"");
    expect(tree(locked)).toEqual([]);
    expect(requestsSince(mark)).toEqual([]);
    expect(tree(box.tmp)).toEqual([]);
  });

  test("unsupported CPU architecture or OS: a clear refusal before any download", async () => {
    for (const [os, machine, message] of [
      ["Linux", "riscv64", 'unsupported CPU architecture "riscv64"'],
      ["Linux", "i686", 'unsupported CPU architecture "i686"'],
      ["FreeBSD", "amd64", 'unsupported operating system "FreeBSD"'],
    ] as const) {
      const box = sandbox();
      const fake = join(box.home, "fake-bin");
      mkdirSync(fake);
      writeFileSync(join(fake, "uname"), `#!/bin/sh\ncase "$1" in -s) echo ${os} ;; -m) echo ${machine} ;; *) echo ${os} ;; esac\n`, { mode: 0o755 });
      const mark = server.requests.length;
      const run = await runInstall(box, [], { env: { PATH: `${fake}:${box.env.PATH}` } });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(message);
      expect(run.stderr).toContain("hint: smolvm runs on");
      expect(requestsSince(mark)).toEqual([]);
      expect(tree(box.prefix)).toEqual([]);
      expect(tree(box.tmp)).toEqual([]);
    }
  });

  test("bad options are usage errors (exit 2) and --help explains the script", async () => {
    const box = sandbox();
    const unknown = await runInstall(box, ["--frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown option "--frobnicate"');
    const noValue = await runInstall(box, ["--prefix"]);
    expect(noValue.code).toBe(2);
    const help = await runInstall(box, ["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: install.sh [--prefix DIR] [--version X.Y.Z]");
    const printed = await runInstall(box, ["--version", "1.2.3", "--print-url", "manifest.json"]);
    expect(printed.stdout).toBe(`${server.url}/download/v1.2.3/manifest.json\n`);
    expect(tree(box.prefix)).toEqual([]);
    expect((await runInstall(box, ["--print-url", "../etc/passwd"])).code).toBe(2);
    const badUrl = await runInstall(box, [], { env: { SMOLVM_INSTALL_URL: "ftp://mirror" } });
    expect(badUrl.code).toBe(1);
    expect(badUrl.stderr).toContain('Cannot use SMOLVM_INSTALL_URL "ftp://mirror"');
  });
});

describe("one place names the project's repository", () => {
  test("install.sh's default releases URL is the one lib/distribution names", () => {
    const text = readFileSync(join(repoRoot, "install.sh"), "utf8");
    expect(/^SMOLVM_REPOSITORY="([^"]+)"$/m.exec(text)?.[1]).toBe(PROJECT_REPOSITORY);
  });

  test("install.sh is POSIX: dash and busybox sh parse it, and it has no bashisms checkbashisms knows", () => {
    for (const shell of [["dash", "-n"], ["busybox", "sh", "-n"], ["bash", "--posix", "-n"]]) {
      if (spawnSync("which", [shell[0]!]).status !== 0) continue;
      const check = spawnSync(shell[0]!, [...shell.slice(1), join(repoRoot, "install.sh")], { encoding: "utf8" });
      expect(`${shell.join(" ")}: ${check.status} ${check.stderr}`).toBe(`${shell.join(" ")}: 0 `);
    }
    if (spawnSync("which", ["checkbashisms"]).status === 0) {
      const check = spawnSync("checkbashisms", ["--posix", join(repoRoot, "install.sh")], { encoding: "utf8" });
      expect(check.stderr + check.stdout).toBe("");
    }
  });
});
