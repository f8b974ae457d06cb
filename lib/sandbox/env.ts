/**
 * `vm.env`: the managed environment of a sandbox, variables every command sees. The agent
 * persists them to /etc/profile.d/smolvm-env.sh in the guest, so login shells and SSH sessions
 * see them too and they survive stop/start. Names and values are checked here, before anything
 * is sent.
 */
import type { Channel } from "../channels/types.ts";
import { checkEnvName, checkEnvVars, ENV_KEY_PATTERN } from "../config.ts";
import { InvalidInputError } from "../errors.ts";

export class EnvVars {
  /** `channel`: the sandbox's open channel (the SDK handle opens it on first use). */
  constructor(private readonly channel: () => Promise<Channel>) {}

  /**
   * Sets variables every later command sees (also login shells and SSH sessions, and after
   * stop/start). Resolves to the whole managed set.
   *
   * ```ts
   * await vm.env.set({ API_KEY: "secret", MODE: "dev" });
   * ```
   */
  async set(vars: Record<string, string>): Promise<Record<string, string>> {
    checkEnvVars(vars);
    return (await this.channel()).env.set(vars);
  }

  /**
   * Removes variables (names that are not set are ignored). Resolves to what is left.
   *
   * ```ts
   * await vm.env.unset(["MODE"]);
   * ```
   */
  async unset(names: string[]): Promise<Record<string, string>> {
    if (!Array.isArray(names)) throw new InvalidInputError("Invalid names: expected an array of variable names", { hint: 'e.g. ["API_KEY"]' });
    names.forEach(checkEnvName);
    return (await this.channel()).env.unset(names);
  }

  /**
   * The managed variables and their values.
   *
   * ```ts
   * const { API_KEY } = await vm.env.list();
   * ```
   */
  async list(): Promise<Record<string, string>> {
    return (await this.channel()).env.list();
  }
}

/** Parses `NAME=VALUE` words, as the CLI takes them (the value may contain `=` and be empty). */
export function parseEnvAssignments(words: string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const word of words) {
    const at = word.indexOf("=");
    if (at < 0) {
      throw new InvalidInputError(`Invalid assignment "${word}": expected NAME=VALUE`, {
        hint: `write e.g. ${ENV_KEY_PATTERN.test(word) ? word : "API_KEY"}=value (quote it in your shell if the value has spaces)`,
      });
    }
    vars[word.slice(0, at)] = word.slice(at + 1);
  }
  return checkEnvVars(vars);
}
