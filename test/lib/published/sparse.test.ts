import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SparseWriter } from "../../../lib/published/sparse.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-sparse-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `data` in chunks of the given sizes (cycling), returns the file. */
async function writeChunked(data: Uint8Array, sizes: number[]): Promise<string> {
  const path = join(dir, `out-${sizes.join("-")}`);
  const writer = await SparseWriter.create(path);
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    await writer.write(data.subarray(at, at + n));
    at += n;
  }
  expect(await writer.finish()).toBe(data.length);
  return path;
}

describe("sparse writer", () => {
  test("the file has the same bytes whatever the chunking, and zero blocks take no disk", async () => {
    const data = new Uint8Array(64 * 2 ** 20 + 1234); // zeros, with data at a few places
    data.fill(0xab, 0, 10_000);
    data.fill(0xcd, 5 * 2 ** 20 + 7, 5 * 2 ** 20 + 7 + 3 * 4096);
    data[data.length - 1] = 1; // a non-zero last byte in a partial block
    for (const sizes of [[1 << 20], [4097, 333, 65536]]) {
      const path = await writeChunked(data, sizes);
      expect(Buffer.compare(readFileSync(path), Buffer.from(data))).toBe(0);
      // 10_000 + 3 pages + a tail: a handful of 4 KiB blocks, not 64 MiB.
      expect(statSync(path).blocks * 512).toBeLessThan(256 * 1024);
    }
  });

  test("trailing zeros become a hole and still count in the size", async () => {
    const data = new Uint8Array(3 * 4096 + 100);
    data[0] = 1;
    const path = await writeChunked(data, [5000]);
    expect(statSync(path).size).toBe(data.length);
    expect(Buffer.compare(readFileSync(path), Buffer.from(data))).toBe(0);
  });

  test("an existing file is never overwritten", async () => {
    const path = await writeChunked(new Uint8Array(10), [10]);
    expect(SparseWriter.create(path)).rejects.toThrow();
  });
});
