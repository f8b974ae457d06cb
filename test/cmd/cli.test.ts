import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { parseSandboxConfig } from "../../lib/config.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import { envelope, repoRoot, runCli } from "../helpers/cli.ts";

describe("cli basics", () => {
  test("--version and version --json agree", async () => {
    const plain = await runCli(["--version"]);
    expect(plain.code).toBe(0);
    const json = envelope(await runCli(["version", "--json"]));
    expect(json).toMatchObject({ ok: true, command: "version", error: null });
    expect(plain.stdout).toContain(json.data.version);
    expect(json.data.runtime).toStartWith("bun-");
  });

  test("unknown command and unknown option are usage errors (exit 2) with a hint", async () => {
    const unknown = await runCli(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown command 'frobnicate'");
    expect(unknown.stderr).toContain("hint:");
    const badOption = await runCli(["list", "--json", "--wat"]);
    expect(badOption.code).toBe(2);
    const body = envelope(badOption);
    expect(body).toMatchObject({ ok: false, command: "list", data: null });
    expect(body.error.code).toBe("USAGE");
    expect(body.error.hint).toContain("smolvm list --help");
  });

  test("list shows what the state store holds; --all includes stopped ones", async () => {
    const empty = envelope(await runCli(["list", "--json"]));
    expect(empty.data).toEqual([]);
    const store = StateStore.open();
    const stopped = store.create({ config: parseSandboxConfig({ name: "sleepy", image: "base" }), backend: "qemu", allocate: {} });
    store.update(stopped.id, { status: "stopped" });
    // Recorded as running, but no process backs it: list must not show a ghost as running.
    const ghost = store.create({ config: parseSandboxConfig({ name: "ghost" }), backend: "qemu", allocate: {} });
    store.update(ghost.id, { status: "running", supervisorPid: 999_999_99, vmmPid: 999_999_98 });
    store.close();
    const live = envelope(await runCli(["list", "--json"]));
    expect(live.data).toEqual([]);
    const all = envelope(await runCli(["list", "--all", "--json"]));
    expect(all.data.map((vm: { name: string; status: string }) => `${vm.name}:${vm.status}`).sort()).toEqual(["ghost:failed", "sleepy:stopped"]);
    const table = await runCli(["list", "--all"]);
    expect(table.stdout).toMatch(/NAME\s+ID\s+STATUS/);
    expect(table.stdout).toContain("sleepy");
  });

  test("doctor --json reports checks, backend and accel; --strict fails on warnings", async () => {
    const result = await runCli(["doctor", "--json"]);
    const body = envelope(result);
    const report = body.ok ? body.data : body.error.details;
    expect(report.checks.length).toBeGreaterThan(8);
    for (const check of report.checks) expect(["ok", "warn", "fail"]).toContain(check.status);
    expect(["qemu", "firecracker", "none"]).toContain(report.backend);
    expect(result.code).toBe(body.ok ? 0 : 1);
    const hasWarning = report.checks.some((c: { status: string }) => c.status !== "ok");
    const strict = await runCli(["doctor", "--strict"]);
    expect(strict.code).toBe(hasWarning ? 1 : 0);
  });

  test("the plain `exec NAME -- CMD` skips the command tree but fails as the full parse does", async () => {
    const plain = await runCli(["exec", "nosuch", "--", "true"]);
    const parsed = await runCli(["exec", "nosuch", "--cwd", "/", "--", "true"]);
    expect(plain.code).toBe(parsed.code);
    expect(plain.stderr).toBe(parsed.stderr);
    expect(plain.stderr).toContain('Cannot find sandbox "nosuch"');
    // Options, --help and a missing command still go through commander.
    expect((await runCli(["exec", "--help"])).stdout).toContain("Usage: smolvm exec");
    expect((await runCli(["exec", "nosuch", "--"])).code).toBe(2);
  });

  // Colour follows the terminal: on a pty the error label is red, in a pipe or with NO_COLOR it
  // is plain text. The pty comes from util-linux `script`, as a user's terminal would.
  test("colour on a terminal only, and never with NO_COLOR", async () => {
    const line = `${process.execPath} ${repoRoot}/main.ts frobnicate`;
    const onTty = (env: Record<string, string | undefined>) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn("script", ["-qec", line, "/dev/null"], { env, stdio: ["ignore", "pipe", "pipe"] });
        let text = "";
        child.stdout.on("data", (chunk) => (text += chunk));
        child.once("error", reject);
        child.once("close", () => resolve(text));
      });
    const { NO_COLOR: _ignored, ...noColorUnset } = process.env;
    const coloured = await onTty({ ...noColorUnset, TERM: "xterm" });
    expect(coloured).toContain("\u001b[31merror:\u001b[0m Unknown command 'frobnicate'");
    const plainOnTty = await onTty({ ...noColorUnset, TERM: "xterm", NO_COLOR: "1" });
    expect(plainOnTty).toContain("error: Unknown command 'frobnicate'");
    expect(plainOnTty).not.toContain("\u001b[");
    const piped = await runCli(["frobnicate"], { env: { NO_COLOR: "" } });
    expect(piped.stderr).toStartWith("error: Unknown command");
  });
});
