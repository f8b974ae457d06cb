/**
 * The managed-environment file, `/etc/profile.d/smolvm-env.sh`, exactly as the guest agent
 * writes and reads it (guest-agent/envstore.c, PROTOCOL.md "env"): a header comment, then one
 * `export NAME='value'` line per variable sorted by name, a `'` in a value written `'\''`.
 * The SSH channel reads and rewrites the same file, so both channels share one set.
 */
import { ENV_KEY_PATTERN } from "../config.ts";

export const ENV_FILE = "/etc/profile.d/smolvm-env.sh";
export const ENV_FILE_HEADER = "# Managed by smolvm-agent (smolvm env set/unset): edits here are overwritten.\n";
/** The agent refuses a set larger than this (it must fit one protocol frame). */
export const ENV_MAX_BYTES = 60_000;

export function serializeEnv(vars: Record<string, string>): string {
  const names = Object.keys(vars).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return ENV_FILE_HEADER + names.map((name) => `export ${name}='${vars[name]!.replaceAll("'", "'\\''")}'\n`).join("");
}

/**
 * Parses what `serializeEnv` (or the agent) writes, with the agent's own rules: a quoted piece
 * may span lines (values can hold newlines); comments, blank lines and malformed lines are
 * skipped rather than failing the whole file.
 */
export function parseEnv(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  const end = text.length;
  let p = 0;
  while (p < end) {
    while (p < end && (text[p] === " " || text[p] === "\t" || text[p] === "\n")) p++;
    if (p >= end) break;
    const line = p;
    let ok = false;
    if (text.startsWith("export ", p)) {
      p += 7;
      const nameStart = p;
      while (p < end && text[p] !== "=" && text[p] !== "\n") p++;
      const name = text.slice(nameStart, p);
      if (p < end && text[p] === "=" && ENV_KEY_PATTERN.test(name)) {
        p++;
        ok = true;
        let value = "";
        while (p < end && text[p] !== "\n" && text[p] !== " " && text[p] !== "\t") {
          const c = text[p]!;
          if (c === "'") {
            const close = text.indexOf("'", p + 1);
            if (close < 0) {
              ok = false;
              break;
            }
            value += text.slice(p + 1, close);
            p = close + 1;
          } else if (c === "\\" && p + 1 < end) {
            value += text[p + 1];
            p += 2;
          } else {
            value += c;
            p++;
          }
        }
        if (ok) vars[name] = value;
      }
    }
    if (!ok) {
      p = line;
      while (p < end && text[p] !== "\n") p++;
    }
  }
  return vars;
}
