import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { printable } from "../../../lib/util/printable.ts";
import { tailOf } from "../../../lib/util/tail.ts";
import { scratchDir } from "../../helpers/scratch.ts";

describe("printable: a guest's words on a person's terminal", () => {
  test("drops escape sequences and control characters, keeps newlines and tabs", () => {
    expect(printable("\u001b[2J\u001b[31mred\u001b[0m\tok\r\n\u0007bell\u001b]0;title\u0007 done\u009b1m")).toBe("red\tok\nbell done");
  });

  test("cuts long text and says how much was cut", () => {
    expect(printable("x".repeat(10), 4)).toBe("xxxx... (6 more characters)");
  });
});

describe("tailOf: the end of a log a guest writes", () => {
  test("reads only the last 64 KiB of a big file, and quotes it printable", () => {
    const file = join(scratchDir("smolvm-tail-"), "console.log");
    writeFileSync(file, Buffer.concat([Buffer.alloc(8 * 1024 * 1024, "a"), Buffer.from("\nlast \u001b[31mline\u001b[0m\n")]));
    expect(tailOf(file, 1)).toBe("last line");
  });

  test("a missing file is an empty tail", () => {
    expect(tailOf("/nonexistent/console.log")).toBe("");
  });
});
