/**
 * The managed environment of a sandbox: variables every command sees, persisted by the agent to
 * /etc/profile.d/smolvm-env.sh in the guest, so login shells and SSH sessions see them too and
 * they survive stop/start. Names and values are checked here, before anything is sent.
 */
import { InvalidInputError } from "../errors.ts";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Refuses a name a shell could not export. */
export function checkEnvName(name: string): void {
  if (!NAME.test(name)) {
    throw new InvalidInputError(`Invalid environment variable name ${JSON.stringify(name)}: it must match [A-Za-z_][A-Za-z0-9_]*`, {
      hint: "use letters, digits and underscores, not starting with a digit (e.g. API_KEY)",
    });
  }
}

/** Checks every name and value of a set request. */
export function checkEnvVars(vars: Record<string, string>): Record<string, string> {
  if (typeof vars !== "object" || vars === null || Array.isArray(vars)) {
    throw new InvalidInputError("Invalid environment: expected an object of NAME: value", { hint: 'e.g. { API_KEY: "secret" }' });
  }
  for (const [name, value] of Object.entries(vars)) {
    checkEnvName(name);
    if (typeof value !== "string") {
      throw new InvalidInputError(`Invalid value for ${name}: expected a string, got ${typeof value}`, { hint: "convert it with String(value)" });
    }
    if (value.includes("\0")) {
      throw new InvalidInputError(`Invalid value for ${name}: it contains a NUL byte`, { hint: "environment values cannot hold NUL; encode binary data (base64)" });
    }
  }
  return vars;
}

/** Parses `NAME=VALUE` words (the value may contain `=` and be empty). */
export function parseEnvAssignments(words: string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const word of words) {
    const at = word.indexOf("=");
    if (at < 0) {
      throw new InvalidInputError(`Invalid assignment "${word}": expected NAME=VALUE`, {
        hint: `write e.g. ${NAME.test(word) ? word : "API_KEY"}=value (quote it in your shell if the value has spaces)`,
      });
    }
    vars[word.slice(0, at)] = word.slice(at + 1);
  }
  return checkEnvVars(vars);
}

/** A value shown without revealing anything about it, not even its length. */
export const MASK = "********";
