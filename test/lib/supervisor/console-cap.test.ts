import { expect, test } from "bun:test";
import { appendFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { trimConsoleLog } from "../../../lib/supervisor/console-cap.ts";
import { scratchDir } from "../../helpers/scratch.ts";

test("a console log past its cap is cut to its last MiB with a line saying so, and a writer appending goes on after it", () => {
  const file = join(scratchDir("smolvm-console-"), "console.log");
  writeFileSync(file, Buffer.alloc(3 * 1024 * 1024, "x"));
  appendFileSync(file, "the last line\n");
  expect(trimConsoleLog(file, 1024 * 1024 * 2)).toBe(true);
  const text = readFileSync(file, "utf8");
  expect(text).toMatch(/^\[smolvm: this log passed 2097152 bytes; \d+ bytes before this line were dropped\]\n/);
  expect(text.endsWith("the last line\n")).toBe(true);
  expect(statSync(file).size).toBeLessThan(1024 * 1024 + 200);
  // The VMM appends (O_APPEND): its next line follows what was kept.
  appendFileSync(file, "next\n");
  expect(readFileSync(file, "utf8").endsWith("the last line\nnext\n")).toBe(true);
  expect(trimConsoleLog(file, 1024 * 1024 * 2)).toBe(false);
});
