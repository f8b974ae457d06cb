/**
 * The coding-agent presets: what each one installs, runs, and takes from the host. Plain data,
 * checked by tests against the image recipes (images/*.json) it names.
 *
 * Credentials: `apiKeys` are copied from the host's environment into the sandbox's managed
 * environment when set; `config` names host files (or directories, minus `skip`) copied into
 * the guest's home with mode 0600, each optionally reduced by `pick` to the fields listed.
 */
import { NotFoundError } from "../errors.ts";

export type PresetId = "claude" | "codex" | "pi" | "openclaw" | "hermes";

export interface ConfigCopy {
  /** Relative to the home directory, on the host and in the guest alike. */
  path: string;
  kind: "file" | "directory";
  /** For a JSON file: keep only these top-level fields. */
  pick?: readonly string[];
  /** For a directory: names (at any depth) left out. */
  skip?: readonly string[];
}

export type InstallSpec =
  /** The npm layer of the preset's image recipe (Node.js, npm, the agent), run in the sandbox. */
  | { kind: "recipe" }
  /** A Python package into a virtual environment; `apt` packages first (from Debian). */
  | { kind: "pip"; package: string; bin: string; apt: readonly string[] };

export interface Preset {
  id: PresetId;
  /** Other names `smolvm <agent>` answers to. */
  aliases: readonly string[];
  title: string;
  /** The preset image's recipe, when there is one; else install at boot on the default image. */
  image?: string;
  /** What the image has, or what an install at boot puts in. */
  install: InstallSpec;
  /** What `attach` runs, in /workspace. */
  command: readonly string[];
  /** What proves the agent is installed (it prints a version). */
  versionCommand: readonly string[];
  apiKeys: readonly string[];
  /** Fixed variables the agent needs in a sandbox. */
  env: Readonly<Record<string, string>>;
  config: readonly ConfigCopy[];
  /** Said when no credential was found on the host. */
  loginHint: string;
}

const PI_KEYS = [
  "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY",
  "MISTRAL_API_KEY", "GROQ_API_KEY", "CEREBRAS_API_KEY", "XAI_API_KEY", "AI_GATEWAY_API_KEY", "ZAI_API_KEY", "OPENCODE_API_KEY",
  "HF_TOKEN", "FIREWORKS_API_KEY", "KIMI_API_KEY", "MINIMAX_API_KEY", "CLOUDFLARE_API_KEY", "CLOUDFLARE_ACCOUNT_ID",
  "CLOUDFLARE_GATEWAY_ID",
] as const;

export const PRESETS: readonly Preset[] = [
  {
    id: "claude",
    aliases: ["claude-code"],
    title: "Claude Code",
    image: "claude",
    install: { kind: "recipe" },
    command: ["claude"],
    versionCommand: ["claude", "--version"],
    apiKeys: ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL"],
    // Claude Code refuses --dangerously-skip-permissions as root unless it is told it is sandboxed.
    env: { IS_SANDBOX: "1" },
    config: [
      { path: ".claude.json", kind: "file", pick: ["oauthAccount", "userID", "hasCompletedOnboarding", "lastOnboardingVersion", "customApiKeyResponses", "primaryApiKey"] },
      { path: ".claude/.credentials.json", kind: "file" },
      { path: ".claude/settings.json", kind: "file" },
    ],
    loginHint: "run `/login` inside Claude Code, or set ANTHROPIC_API_KEY before `smolvm claude start`",
  },
  {
    id: "codex",
    aliases: [],
    title: "Codex CLI",
    image: "codex",
    install: { kind: "recipe" },
    command: ["codex"],
    versionCommand: ["codex", "--version"],
    apiKeys: ["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID"],
    env: {},
    config: [{ path: ".codex", kind: "directory", skip: ["log", "logs", "sessions", "archived_sessions", "history.jsonl", "cache", ".cache", "tmp"] }],
    loginHint: "run `codex login --device-auth` inside, or set OPENAI_API_KEY before `smolvm codex start`",
  },
  {
    id: "pi",
    aliases: ["pi-coding-agent"],
    title: "Pi coding agent",
    image: "pi",
    install: { kind: "recipe" },
    command: ["pi"],
    versionCommand: ["pi", "--version"],
    apiKeys: PI_KEYS,
    env: {},
    config: [
      { path: ".pi/agent/auth.json", kind: "file" },
      { path: ".pi/agent/settings.json", kind: "file" },
      { path: ".pi/agent/models.json", kind: "file" },
      { path: ".pi/agent/keybindings.json", kind: "file" },
    ],
    loginHint: "run `/login` inside pi, or set a provider key (e.g. ANTHROPIC_API_KEY) before `smolvm pi start`",
  },
  {
    id: "openclaw",
    aliases: ["claw"],
    title: "OpenClaw",
    image: "openclaw",
    install: { kind: "recipe" },
    // "Chat with OpenClaw; onboard when setup is incomplete" (bare `openclaw` prints its help).
    command: ["openclaw", "setup"],
    versionCommand: ["openclaw", "--version"],
    apiKeys: ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY", "GEMINI_API_KEY", "OPENCLAW_GATEWAY_TOKEN"],
    env: {},
    config: [{ path: ".openclaw", kind: "directory", skip: ["logs", "sessions", "workspace", "media", "browser", "cache", ".cache", "tmp"] }],
    loginHint: "run `openclaw onboard` inside, or set ANTHROPIC_API_KEY (or OPENAI_API_KEY) before `smolvm openclaw start`",
  },
  {
    id: "hermes",
    aliases: ["hermes-agent"],
    title: "Hermes Agent",
    // A Python package on PyPI only: no image; installed at boot from PyPI by the sandbox.
    install: { kind: "pip", package: "hermes-agent", bin: "hermes", apt: ["python3-venv", "python3-pip"] },
    command: ["hermes"],
    versionCommand: ["hermes", "--version"],
    apiKeys: ["OPENROUTER_API_KEY", "NOUS_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"],
    env: {},
    config: [
      { path: ".hermes/.env", kind: "file" },
      { path: ".hermes/config.yaml", kind: "file" },
      { path: ".hermes/auth.json", kind: "file" },
    ],
    loginHint: "run `hermes setup` inside, or set OPENROUTER_API_KEY before `smolvm hermes start`",
  },
];

/** Every name `smolvm <agent>` answers to, ids first. */
export function presetNames(): string[] {
  return [...PRESETS.map((p) => p.id), ...PRESETS.flatMap((p) => p.aliases)];
}

/** The preset called `name` (an id or an alias), or NotFoundError listing the known ones. */
export function findPreset(name: string): Preset {
  const preset = PRESETS.find((p) => p.id === name || p.aliases.includes(name));
  if (preset === undefined) {
    throw new NotFoundError(`Cannot find coding agent "${name}": there is no preset by that name`, {
      hint: `known agents: ${PRESETS.map((p) => (p.aliases.length ? `${p.id} (${p.aliases.join(", ")})` : p.id)).join(", ")}`,
      details: { name, known: presetNames() },
    });
  }
  return preset;
}

/** The preset whose image is `image` (e.g. "claude"), or undefined for any other image. */
export function findPresetOfImage(image: string): Preset | undefined {
  return PRESETS.find((p) => p.image === image);
}
