import { expect, test } from "bun:test";
import { InvalidInputError } from "../../../lib/errors.ts";
import { checkEnvName, checkEnvVars } from "../../../lib/config.ts";
import { parseEnvAssignments } from "../../../lib/sandbox/env.ts";

test("NAME=VALUE words parse with = and newlines inside the value, and empty values", () => {
  expect(parseEnvAssignments(["A=1", "B=x=y", "C=", "D=line1\nline2 'q' $HOME"])).toEqual({
    A: "1",
    B: "x=y",
    C: "",
    D: "line1\nline2 'q' $HOME",
  });
});

test("a word without = is refused with an example", () => {
  expect(() => parseEnvAssignments(["API_KEY"])).toThrow(/expected NAME=VALUE/);
});

test("names a shell cannot export are refused with a hint", () => {
  for (const bad of ["1A", "A-B", "", "A B", "Ä"]) {
    expect(() => checkEnvName(bad)).toThrow(InvalidInputError);
  }
  for (const good of ["A", "_x", "API_KEY_2"]) checkEnvName(good);
  try {
    parseEnvAssignments(["BAD-NAME=1"]);
  } catch (error) {
    expect((error as InvalidInputError).hint).toContain("letters, digits and underscores");
  }
});

test("values with NUL or of the wrong type are refused", () => {
  expect(() => checkEnvVars({ A: "a\0b" })).toThrow(/NUL/);
  expect(() => checkEnvVars({ A: 1 as unknown as string })).toThrow(/expected a string/);
});
