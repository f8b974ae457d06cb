import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatChecksums, parseChecksums, sha256File } from "../../../scripts/release/checksums.ts";
import { scratchDir } from "../../helpers/scratch.ts";

test("SHA256SUMS round-trips and is what `sha256sum -c` checks", async () => {
  const dir = scratchDir("smolvm-sums-");
  writeFileSync(join(dir, "b.bin"), "bravo");
  writeFileSync(join(dir, "a.txt"), "alpha\n");
  const sums = new Map([["b.bin", await sha256File(join(dir, "b.bin"))], ["a.txt", await sha256File(join(dir, "a.txt"))]]);
  const text = formatChecksums(sums);
  expect(text.split("\n")[0]).toEndWith("  a.txt");
  expect(parseChecksums(text)).toEqual(sums);
  writeFileSync(join(dir, "SHA256SUMS"), text);
  const check = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: dir, encoding: "utf8" });
  expect(check.stdout).toBe("a.txt: OK\nb.bin: OK\n");
});

test("binary-mode markers are read; malformed lines, paths and duplicates are refused", () => {
  const sha = "a".repeat(64);
  expect(parseChecksums(`${sha} *file\n`).get("file")).toBe(sha);
  expect(() => parseChecksums(`${sha}  ../etc/passwd\n`)).toThrow("line 1 is malformed");
  expect(() => parseChecksums(`${sha.slice(1)}  file\n`)).toThrow("line 1 is malformed");
  expect(() => parseChecksums(`${sha}  f\n${sha}  f\n`)).toThrow('lists "f" twice');
  expect(() => formatChecksums(new Map([["dir/file", sha]]))).toThrow("not a bare file name");
});
