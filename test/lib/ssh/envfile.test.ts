import { expect, test } from "bun:test";
import { ENV_FILE_HEADER, parseEnv, serializeEnv } from "../../../lib/ssh/envfile.ts";

const TRICKY: Record<string, string> = {
  SINGLE: "it's 'quoted'",
  NEWLINES: "line1\nline2\n\n",
  DOLLAR: "$HOME $(id) `id`",
  BACKSLASH: "a\\b",
  EMPTY: "",
  SPACES: "  a  b  ",
  UNICODE: "héllo 😀",
};

test("serialize writes the agent's format: header, sorted export NAME='value' lines, ' as '\\''", () => {
  expect(serializeEnv({ B: "it's", A: "x" })).toBe(`${ENV_FILE_HEADER}export A='x'\nexport B='it'\\''s'\n`);
});

test("parse inverts serialize for values with quotes, newlines, dollars and blanks", () => {
  expect(parseEnv(serializeEnv(TRICKY))).toEqual(TRICKY);
});

test("parse skips comments, blank and malformed lines the way the agent does", () => {
  const text = "# c\n\nexport GOOD='1'\nexport 1BAD='x'\nexport OPEN='never closed\nnot an export\nexport LAST=plain\n";
  expect(parseEnv(text)).toEqual({ GOOD: "1", LAST: "plain" });
});

test("a later line wins over an earlier one for the same name", () => {
  expect(parseEnv("export A='1'\nexport A='2'\n")).toEqual({ A: "2" });
});

test("the serialized file is valid sh that yields the same values", () => {
  const script = `${serializeEnv(TRICKY)}${Object.keys(TRICKY).map((k) => `printf '%s\\0' "$${k}"`).join("\n")}\n`;
  const out = Bun.spawnSync(["/bin/sh", "-c", script], { env: {} }).stdout.toString();
  expect(out.split("\0").slice(0, -1)).toEqual(Object.keys(TRICKY).map((k) => TRICKY[k]!));
});
