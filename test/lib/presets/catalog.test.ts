import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NotFoundError } from "../../../lib/errors.ts";
import { getRecipe, knownImages } from "../../../lib/images/recipes.ts";
import { findPreset, presetNames, PRESETS } from "../../../lib/presets/catalog.ts";
import { collectCredentials, pickJsonFields } from "../../../lib/presets/credentials.ts";
import { installScript } from "../../../lib/presets/install.ts";
import { attachCommand } from "../../../lib/presets/start.ts";
import { COMMAND_GROUPS } from "../../../cmd/registry.ts";
import { diskSize } from "../../../cmd/options.ts";
import { scratchDir } from "../../helpers/scratch.ts";

describe("preset catalog", () => {
  test("every preset with an image names a Debian recipe with an npm layer, which the release builds", () => {
    for (const preset of PRESETS.filter((p) => p.image !== undefined)) {
      expect(knownImages()).toContain(preset.image!);
      const recipe = getRecipe(preset.image!);
      expect(recipe.rootfs.kind).toBe("mmdebstrap");
      if (recipe.rootfs.kind !== "mmdebstrap") continue;
      expect(recipe.rootfs.include).toEqual(expect.arrayContaining([...getRecipeIncludes("debian"), "tmux"]));
      expect(recipe.rootfs.npm?.packages.length).toBe(1);
    }
    expect(PRESETS.find((p) => p.id === "hermes")?.image).toBeUndefined();
  });

  test("names and aliases are unique, and the CLI registers every one of them", () => {
    const names = presetNames();
    expect(new Set(names).size).toBe(names.length);
    const agentGroup = COMMAND_GROUPS.find((g) => g.names.includes("claude"));
    expect([...agentGroup!.names].sort()).toEqual([...names].sort());
    expect(findPreset("claude-code").id).toBe("claude");
    expect(findPreset("claw").id).toBe("openclaw");
  });

  test("an unknown agent is NotFound and the hint lists the known ones", () => {
    let error: unknown;
    try {
      findPreset("cursor");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).hint).toBe("known agents: claude (claude-code), codex, pi (pi-coding-agent), openclaw (claw), hermes (hermes-agent)");
  });

  test("attach runs the agent in tmux when the guest has it, then a shell in /workspace", () => {
    const claude = findPreset("claude");
    const inTmux = attachCommand(claude, { hasTmux: true, term: "xterm" });
    expect(inTmux.argv.slice(0, 9)).toEqual(["tmux", "-f", "/etc/smolvm-tmux.conf", "-L", "smolvm", "new-session", "-A", "-s", "claude"]);
    expect(inTmux.argv.slice(-2)).toEqual(["sh", "claude"]);
    const plain = attachCommand(claude, { hasTmux: false, term: "xterm" });
    expect(plain.argv[0]).toBe("sh");
    expect(plain.cwd).toBe("/workspace");
  });

  test("--disk-size takes 8G, 4096M or bare GiB", () => {
    expect(diskSize("8G")).toBe(8192);
    expect(diskSize("4096M")).toBe(4096);
    expect(diskSize("20")).toBe(20480);
    expect(() => diskSize("lots")).toThrow();
  });

  test("hermes installs from Debian and PyPI into a venv", () => {
    const script = installScript(findPreset("hermes"), "x86_64");
    expect(script).toContain("apt-get install -y -qq --no-install-recommends 'python3-venv' 'python3-pip'");
    expect(script).toContain("/opt/hermes/bin/pip install");
  });
});

function getRecipeIncludes(name: string): string[] {
  const recipe = getRecipe(name);
  return recipe.rootfs.kind === "mmdebstrap" ? recipe.rootfs.include : [];
}

describe("credentials", () => {
  test("a JSON file is reduced to the listed fields; a non-object is dropped", () => {
    expect(JSON.parse(pickJsonFields('{"a":1,"b":{"c":2},"secret":3}', ["a", "b", "z"])!)).toEqual({ a: 1, b: { c: 2 } });
    expect(pickJsonFields("[1]", ["a"])).toBeUndefined();
    expect(pickJsonFields("not json", ["a"])).toBeUndefined();
  });

  test("keys come from the environment when set; files and directories from the allow-list only", async () => {
    const home = scratchDir("smolvm-creds-");
    mkdirSync(join(home, ".codex/sessions"), { recursive: true });
    mkdirSync(join(home, ".codex/rules"), { recursive: true });
    writeFileSync(join(home, ".codex/auth.json"), "{}");
    writeFileSync(join(home, ".codex/rules/a.rules"), "x");
    writeFileSync(join(home, ".codex/sessions/s1.jsonl"), "private");
    writeFileSync(join(home, ".codex/history.jsonl"), "private");
    const codex = await collectCredentials(findPreset("codex"), { env: { OPENAI_API_KEY: "sk-1", OPENAI_BASE_URL: "", OTHER: "x" }, home });
    expect(codex.env).toEqual({ OPENAI_API_KEY: "sk-1" });
    expect(codex.files.map((f) => f.path).sort()).toEqual([".codex/auth.json", ".codex/rules/a.rules"]);
    expect(codex.dirs.sort()).toEqual([".codex", ".codex/rules"]);

    mkdirSync(join(home, ".claude"));
    writeFileSync(join(home, ".claude.json"), JSON.stringify({ oauthAccount: { id: 1 }, projects: { "/x": {} } }));
    const claude = await collectCredentials(findPreset("claude"), { env: {}, home });
    expect(claude.files.map((f) => [f.path, f.content.toString()])).toEqual([[".claude.json", '{\n  "oauthAccount": {\n    "id": 1\n  }\n}\n']]);
    expect(claude.env).toEqual({});
  });
});
