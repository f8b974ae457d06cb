/**
 * action.yml, the composite GitHub Action: validated against the documented metadata syntax by
 * a strict checker (which is itself shown to catch each kind of mistake), and its shell steps
 * run as GitHub would run them (bash -eo pipefail, the same env and expressions) against a real
 * release server on 127.0.0.1 with the real binary.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, linkSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../helpers/cli.ts";
import { actionProblems, parseYamlStrict } from "../helpers/github-yaml.ts";
import { serveRelease, type ReleaseServer } from "../helpers/release-server.ts";

type Step = { name?: string; id?: string; if?: string; run?: string; shell?: string; uses?: string; env?: Record<string, string>; with?: Record<string, string> };
type Action = { inputs: Record<string, { default?: string }>; outputs: Record<string, { value: string }>; runs: { using: string; steps: Step[] } };

const action = parseYamlStrict(readFileSync(join(repoRoot, "action.yml"), "utf8")) as Action;

describe("action.yml against the action metadata syntax", () => {
  test("has no problems", () => {
    expect(actionProblems(action)).toEqual([]);
  });

  test("declares the inputs version, images and setup, and runs as a composite action", () => {
    expect(Object.keys(action.inputs).sort()).toEqual(["images", "setup", "version"]);
    expect(action.runs.using).toBe("composite");
    expect(action.runs.steps.map((s) => s.uses ?? s.name)).toContain("actions/cache@v4");
  });

  test("the checker catches each kind of mistake", () => {
    const broken = {
      name: "x",
      runs: {
        using: "node20",
        steps: [
          { run: "echo ${{ inputs.version }}" },
          { run: "true", uses: "actions/cache@v4", shell: "bash" },
          { uses: "not a ref" },
          { id: "a", run: "true", shell: "zsh", env: { X: "${{ steps.later.outputs.y }}" } },
          { id: "a", uses: "actions/cache@v4", shell: "bash" },
        ],
      },
      inputs: { "1bad": { description: "d" }, ok: { required: "yes", default: true }, typo: { description: "d", defualt: "x" } },
      outputs: { out: { value: "${{ steps.nowhere.outputs.v }}" } },
      branding: { color: "pink" },
      extra: 1,
    };
    expect(actionProblems(broken).sort()).toEqual([
      "action.extra: unknown key",
      'action.branding.color: unknown color "pink"',
      "action.inputs.1bad: an input id must start with a letter or _ and hold only letters, digits, - and _",
      'action.inputs.ok: missing required key "description"',
      "action.inputs.ok.default: must be a string (quote it)",
      "action.inputs.ok.required: must be a boolean",
      "action.inputs.typo.defualt: unknown key",
      'action.outputs.out: missing required key "description"',
      'action.outputs.out.value: refers to step "nowhere", which does not exist',
      'action.runs.steps[0].run: has a ${{ }} expression; pass values through `env` instead',
      'action.runs.steps[0].run: refers to input "version", which is not declared',
      "action.runs.steps[0]: a `run` step in a composite action needs `shell`",
      "action.runs.steps[1]: must have exactly one of `run` and `uses`",
      "action.runs.steps[2].uses: must be owner/repo[/path]@ref, ./path or docker://image",
      'action.runs.steps[3].env.X: refers to step "later", which no earlier step defines',
      'action.runs.steps[3].shell: unknown shell "zsh"',
      'action.runs.steps[4].id: duplicate step id "a"',
      "action.runs.steps[4].shell: only a `run` step takes `shell`",
      'action.runs.using: must be "composite" (got "node20")',
      'action: missing required key "description"',
    ].sort());
  });
});

const version = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;
const asset = `smolvm-${process.platform}-${process.arch}`;
const binary = join(repoRoot, "dist", asset);
if (!existsSync(binary)) console.log(`skipping the action's steps: ${binary} is missing (npm run build)`);
const withBinary = existsSync(binary) ? test : test.skip;

describe("the action's steps, run as GitHub runs them", () => {
  let work: string;
  let release: string;
  let server: ReleaseServer;
  const manifest = '{"schema":1,"rows":[]}\n';

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "smolvm-action-"));
    chmodSync(work, 0o755);
    release = join(work, "release");
    const dir = join(release, "download", `v${version}`);
    mkdirSync(dir, { recursive: true });
    mkdirSync(join(release, "latest"));
    symlinkSync(join("..", "download", `v${version}`), join(release, "latest", "download"));
    if (existsSync(binary)) {
      try {
        linkSync(binary, join(dir, asset));
      } catch {
        copyFileSync(binary, join(dir, asset));
      }
      writeFileSync(join(dir, "SHA256SUMS"), `${createHash("sha256").update(readFileSync(binary)).digest("hex")}  ${asset}\n`);
    }
    writeFileSync(join(dir, "manifest.json"), manifest);
    server = await serveRelease(release);
  });
  afterAll(async () => {
    await server.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs the step called `id` (or named `name`) with the given inputs and earlier outputs. */
  async function runStep(find: string, home: string, inputs: Record<string, string>, outputs: Record<string, Record<string, string>> = {}, options: { pathPrefix?: string; asUser?: number; env?: Record<string, string> } = {}) {
    const step = action.runs.steps.find((s) => s.id === find || s.name === find)!;
    const context: Record<string, string> = { "github.action_path": repoRoot, "runner.os": "Linux" };
    for (const [name, input] of Object.entries(action.inputs)) context[`inputs.${name}`] = inputs[name] ?? input.default ?? "";
    for (const [id, values] of Object.entries(outputs)) for (const [key, value] of Object.entries(values)) context[`steps.${id}.outputs.${key}`] = value;
    const evaluate = (text: string) => text.replace(/\$\{\{\s*([\w.-]+)\s*\}\}/g, (_, path: string) => {
      if (!(path in context)) throw new Error(`the test does not know ${path}`);
      return context[path]!;
    });
    const runnerTemp = mkdtempSync(join(home, "runner-temp-"));
    const files = { GITHUB_OUTPUT: join(runnerTemp, "output"), GITHUB_PATH: join(runnerTemp, "path") };
    for (const file of Object.values(files)) writeFileSync(file, "");
    const script = join(runnerTemp, "step.sh");
    writeFileSync(script, step.run!);
    const env = Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, evaluate(v)]));
    // Asynchronously: the release server answers from this same process.
    const bash = ["bash", "--noprofile", "--norc", "-eo", "pipefail", script];
    const argv = options.asUser === undefined ? bash : ["setpriv", `--reuid=${options.asUser}`, `--regid=${options.asUser}`, "--clear-groups", ...bash];
    if (options.asUser !== undefined) chownSync(runnerTemp, options.asUser, options.asUser);
    const child = spawn(argv[0]!, argv.slice(1), {
      env: {
        PATH: `${options.pathPrefix === undefined ? "" : `${options.pathPrefix}:`}${join(home, ".local", "bin")}:${process.env.PATH}`,
        HOME: home,
        TMPDIR: runnerTemp,
        RUNNER_TEMP: runnerTemp,
        RUNNER_OS: "Linux",
        RUNNER_ARCH: "X64",
        SMOLVM_INSTALL_URL: server.url,
        SMOLVM_HOME: join(home, ".smolvm"),
        ...files,
        ...env,
        ...options.env,
      },
    });
    let stdout = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
    const run = { status, stdout, stderr };
    const output = Object.fromEntries(readFileSync(files.GITHUB_OUTPUT, "utf8").split("\n").filter(Boolean).map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
    return { ...run, output, path: readFileSync(files.GITHUB_PATH, "utf8") };
  }

  withBinary("install puts the checked binary on PATH and reports its version; a pinned version downloads that release", async () => {
    const home = mkdtempSync(join(work, "home-"));
    const mark = server.requests.length;
    const install = await runStep("install", home, {});
    expect(install.status).toBe(0);
    expect(install.output).toEqual({ version });
    expect(install.path).toBe(`${join(home, ".local", "bin")}\n`);
    expect(server.requests.slice(mark)).toEqual(["/latest/download/SHA256SUMS", `/latest/download/${asset}`]);
    const pinnedHome = mkdtempSync(join(work, "home-"));
    const pinned = await runStep("install", pinnedHome, { version });
    expect(pinned.status).toBe(0);
    expect(server.requests.at(-1)).toBe(`/download/v${version}/${asset}`);
  });

  withBinary("the cache key follows the release's image manifest and the images asked for", async () => {
    const home = mkdtempSync(join(work, "home-"));
    const outputs = { install: (await runStep("install", home, {})).output };
    const digest = createHash("sha256").update(manifest).digest("hex").slice(0, 16);
    const key = await runStep("cache-key", home, {}, outputs);
    expect(key.status).toBe(0);
    expect(key.output).toEqual({ key: `smolvm-images-Linux-X64-${digest}-debian` });
    expect(server.requests.at(-1)).toBe(`/download/v${version}/manifest.json`);
    expect((await runStep("cache-key", home, { images: "base, debian" }, outputs)).output.key).toBe(`smolvm-images-Linux-X64-${digest}-base--debian`);
    rmSync(join(release, "download", `v${version}`, "manifest.json"));
    try {
      const fallback = await runStep("cache-key", home, {}, outputs);
      expect(fallback.status).toBe(0);
      expect(fallback.output.key).toBe(`smolvm-images-Linux-X64-no-manifest-v${version}-debian`);
    } finally {
      writeFileSync(join(release, "download", `v${version}`, "manifest.json"), manifest);
    }
  });

  withBinary("doctor with setup off reports without failing the job", async () => {
    const home = mkdtempSync(join(work, "home-"));
    expect((await runStep("install", home, {})).status).toBe(0);
    const doctor = await runStep("smolvm doctor", home, { setup: "false" });
    expect(doctor.status).toBe(0);
    expect(doctor.stdout).toContain("backend:");
  });

  test("makes /dev/kvm usable the way GitHub documents for hosted runners (a udev rule), or says there is none", async () => {
    const home = mkdtempSync(join(work, "home-"));
    chmodSync(home, 0o755);
    // sudo and udevadm are stand-ins that record what they were asked: the test must not
    // change the machine's udev rules or device modes.
    const fakes = join(home, "fake-bin");
    mkdirSync(fakes);
    const log = join(home, "sudo.log");
    writeFileSync(log, "");
    chmodSync(log, 0o666);
    writeFileSync(join(fakes, "sudo"), `#!/bin/sh\nprintf 'sudo %s\\n' "$*" >> "${log}"\nif [ "$1" = tee ]; then sed 's/^/stdin: /' >> "${log}"; fi\n`, { mode: 0o755 });
    writeFileSync(join(fakes, "udevadm"), "#!/bin/sh\necho 'udevadm must be run through sudo' >&2\nexit 1\n", { mode: 0o755 });
    const asRoot = process.getuid?.() === 0;
    const step = await runStep("Make /dev/kvm usable for the runner user", home, {}, {}, { pathPrefix: fakes, ...(asRoot ? { asUser: 65534 } : {}) });
    expect(`${step.status} ${step.stderr}`).toBe("0 ");
    if (!existsSync("/dev/kvm")) {
      expect(step.stdout).toContain("::notice title=smolvm::no /dev/kvm on this runner");
      return;
    }
    const writable = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "test", "-w", "/dev/kvm"]).status === 0;
    if (writable) return void console.log("skipping: /dev/kvm is already writable by everyone here");
    expect(readFileSync(log, "utf8").split("\n").filter(Boolean)).toEqual([
      "sudo tee /etc/udev/rules.d/99-kvm4all.rules",
      'stdin: KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"',
      "sudo udevadm control --reload-rules",
      "sudo udevadm trigger --name-match=kvm",
      // The stand-ins changed nothing, so the fallback runs too.
      "sudo chmod 666 /dev/kvm",
    ]);
  });
});
