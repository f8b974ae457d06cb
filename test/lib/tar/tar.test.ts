/**
 * The tar codec against real trees and GNU tar: what we pack GNU tar reads, what GNU tar packs
 * we unpack, and a hostile stream never writes or follows anything outside its target.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BLOCK, decodeHeader, encodeHeader, END_OF_ARCHIVE, padding } from "../../../lib/tar/header.ts";
import { extractTar, linkStaysInside, safeEntryPath, UnsafeEntryError } from "../../../lib/tar/extract.ts";
import { packTree } from "../../../lib/tar/pack.ts";
import { DEFAULT_IGNORES, listTree, listWorkspace } from "../../../lib/tar/tree.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-tar-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* once(data: Buffer, chunk = 700): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += chunk) yield data.subarray(at, at + chunk);
}

const LONG = `${"deep/".repeat(30)}file-with-a-name-well-past-one-hundred-bytes.txt`;

/** A tree with the cases that matter: modes, an empty dir, links in and out, long and UTF-8 names. */
function makeTree(root: string): void {
  mkdirSync(join(root, "src/empty"), { recursive: true });
  writeFileSync(join(root, "src/main.c"), "int main(void) { return 0; }\n");
  writeFileSync(join(root, "run.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(join(root, "run.sh"), 0o750);
  writeFileSync(join(root, "secret.txt"), "s3cret\n");
  chmodSync(join(root, "secret.txt"), 0o600);
  chmodSync(join(root, "src/empty"), 0o711);
  symlinkSync("src/main.c", join(root, "link-in"));
  symlinkSync("/etc/passwd", join(root, "link-out"));
  mkdirSync(join(root, LONG, ".."), { recursive: true });
  writeFileSync(join(root, LONG), "long\n");
  writeFileSync(join(root, "naïve ünïcode.txt"), "utf-8\n");
  writeFileSync(join(root, "big.bin"), Buffer.alloc(300_000, 7));
}

describe("tar codec", () => {
  test("a packed tree unpacks to the same files, modes, empty dirs and links", async () => {
    const src = join(dir, "src-tree");
    const out = join(dir, "out");
    mkdirSync(src);
    mkdirSync(out);
    makeTree(src);
    const listing = await listTree(src);
    const result = await extractTar(packTree(src, listing.entries), out);
    expect(readFileSync(join(out, "src/main.c"), "utf8")).toBe("int main(void) { return 0; }\n");
    expect(lstatSync(join(out, "run.sh")).mode & 0o777).toBe(0o750);
    expect(lstatSync(join(out, "secret.txt")).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(out, "src/empty")).mode & 0o777).toBe(0o711);
    expect(readdirSync(join(out, "src/empty"))).toEqual([]);
    expect(readlinkSync(join(out, "link-in"))).toBe("src/main.c");
    expect(readFileSync(join(out, LONG), "utf8")).toBe("long\n");
    expect(readFileSync(join(out, "naïve ünïcode.txt"), "utf8")).toBe("utf-8\n");
    expect(readFileSync(join(out, "big.bin")).equals(Buffer.alloc(300_000, 7))).toBe(true);
    // A link pointing out of the tree is not created on the way out of a sandbox.
    expect(existsSync(join(out, "link-out"))).toBe(false);
    expect(result.skipped).toEqual([{ path: "link-out", reason: 'a symlink to "/etc/passwd", outside the target' }]);
    expect(result.files).toBe(6);
  });

  test("GNU tar reads what we pack, long and UTF-8 names and outside links included", async () => {
    const src = join(dir, "src-tree");
    mkdirSync(src);
    makeTree(src);
    const archive = await collect(packTree(src, (await listTree(src)).entries));
    const out = join(dir, "gnu");
    mkdirSync(out);
    const run = spawnSync("tar", ["-x", "-f", "-", "-C", out], { input: archive });
    expect(run.status).toBe(0);
    expect(readFileSync(join(out, LONG), "utf8")).toBe("long\n");
    expect(readlinkSync(join(out, "link-out"))).toBe("/etc/passwd");
    expect(lstatSync(join(out, "run.sh")).mode & 0o777).toBe(0o750);
    expect(readdirSync(join(out, "src/empty"))).toEqual([]);
  });

  test("we unpack what GNU tar packs (gnu and pax formats)", async () => {
    const src = join(dir, "src-tree");
    mkdirSync(src);
    makeTree(src);
    for (const format of ["gnu", "pax"]) {
      const run = spawnSync("tar", ["-c", "-f", "-", `--format=${format}`, "-C", src, "."], { maxBuffer: 64 * 2 ** 20 });
      expect(run.status).toBe(0);
      const out = join(dir, `from-${format}`);
      mkdirSync(out);
      await extractTar(once(run.stdout, 1000), out);
      expect(readFileSync(join(out, LONG), "utf8")).toBe("long\n");
      expect(readFileSync(join(out, "naïve ünïcode.txt"), "utf8")).toBe("utf-8\n");
      expect(lstatSync(join(out, "src/empty")).mode & 0o777).toBe(0o711);
    }
  });

  test("headers round-trip and pax records carry what ustar cannot", () => {
    const short = decodeHeader(encodeHeader({ name: "a/b.txt", type: "file", mode: 0o644, size: 12, mtime: 1_700_000_000 }));
    expect(short).toMatchObject({ name: "a/b.txt", type: "file", mode: 0o644, size: 12, mtime: 1_700_000_000 });
    const long = encodeHeader({ name: LONG, type: "symlink", mode: 0o777, size: 0, mtime: 0, linkname: "x".repeat(150) });
    expect(decodeHeader(long.subarray(0, BLOCK)).type).toBe("pax");
  });
});

/** A stream built entry by entry, for the hostile cases. */
function stream(...parts: Buffer[]): AsyncGenerator<Buffer> {
  return once(Buffer.concat([...parts, END_OF_ARCHIVE]));
}

function fileEntry(name: string, content: string, mode = 0o644): Buffer {
  const data = Buffer.from(content);
  return Buffer.concat([encodeHeader({ name, type: "file", mode, size: data.length, mtime: 0 }), data, padding(data.length)]);
}

function rawHeader(name: string, flag: string, linkname = ""): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0);
  block.write("0000644\0", 100);
  block.write("0000000\0", 108);
  block.write("0000000\0", 116);
  block.write("00000000000\0", 124);
  block.write("00000000000\0", 136);
  block.write(flag, 156);
  block.write(linkname, 157);
  block.write("ustar\0", 257);
  block.write("00", 263);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return block;
}

describe("hostile streams", () => {
  let target: string;
  let outside: string;
  beforeEach(() => {
    target = join(dir, "target");
    outside = join(dir, "outside");
    mkdirSync(target);
    mkdirSync(outside);
  });

  const refused = async (source: AsyncIterable<Buffer>) => {
    const error = await extractTar(source, target).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsafeEntryError);
    expect(readdirSync(outside)).toEqual([]);
    return error as UnsafeEntryError;
  };

  test("a name with .. is refused", async () => {
    expect((await refused(stream(fileEntry("../outside/x", "pwned")))).message).toContain("climbs out");
  });

  test("an absolute name is refused", async () => {
    expect((await refused(stream(fileEntry(join(outside, "x"), "pwned")))).message).toContain("absolute");
  });

  test("a symlink planted first is never followed by a later entry", async () => {
    // An inside-pointing link to a directory is created, then a file through it is refused.
    mkdirSync(join(target, "real"));
    const planted = stream(
      encodeHeader({ name: "via", type: "symlink", mode: 0o777, size: 0, mtime: 0, linkname: "real" }),
      fileEntry("via/x", "through a link"),
    );
    expect((await refused(planted)).message).toContain("symlink");
    expect(readdirSync(join(target, "real"))).toEqual([]);
  });

  test("an existing host symlink out of the target is never followed", async () => {
    symlinkSync(outside, join(target, "escape"));
    expect((await refused(stream(fileEntry("escape/x", "pwned")))).message).toContain("never followed");
  });

  test("a file entry replaces an existing symlink instead of writing through it", async () => {
    writeFileSync(join(outside, "victim"), "original");
    symlinkSync(join(outside, "victim"), join(target, "f"));
    await extractTar(stream(fileEntry("f", "new")), target);
    expect(readFileSync(join(outside, "victim"), "utf8")).toBe("original");
    expect(lstatSync(join(target, "f")).isFile()).toBe(true);
  });

  test("device nodes and FIFOs are refused", async () => {
    expect((await refused(stream(rawHeader("dev", "3")))).message).toContain("device nodes");
    expect((await refused(stream(rawHeader("blk", "4")))).message).toContain("device nodes");
    expect((await refused(stream(rawHeader("fifo", "6")))).message).toContain("FIFOs");
  });

  test("a hard link to anything but a file of the same stream is refused", async () => {
    writeFileSync(join(target, "existing"), "host file");
    expect((await refused(stream(rawHeader("h", "1", "existing")))).message).toContain("hard link");
    expect((await refused(stream(rawHeader("h", "1", "../outside/x")))).message).toContain("climbs out");
  });

  test("setuid bits do not reach the host", async () => {
    await extractTar(stream(fileEntry("suid", "x", 0o4755)), target);
    expect(lstatSync(join(target, "suid")).mode & 0o7777).toBe(0o755);
  });

  test("sizes are bounded: bytes, entries and metadata records", async () => {
    const big = stream(fileEntry("a", "x".repeat(2000)));
    expect(await extractTar(big, target, { maxBytes: 1000 }).catch((e: Error) => e.message)).toContain("over its limit");
    const many = stream(fileEntry("a", "1"), fileEntry("b", "2"), fileEntry("c", "3"));
    expect(await extractTar(many, target, { maxEntries: 2 }).catch((e: Error) => e.message)).toContain("more than 2 entries");
    const header = rawHeader("././@LongLink", "L");
    header.write("00010000000\0", 124); // 2 MiB of "name"
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    expect(await extractTar(stream(header), target).catch((e: Error) => e.message)).toContain("limit");
  });

  test("garbage and truncated streams are errors, and leave no temporary files", async () => {
    expect(await extractTar(once(Buffer.alloc(1024, 1)), target).catch((e: Error) => e.message)).toContain("bad checksum");
    const cut = fileEntry("partial", "y".repeat(5000)).subarray(0, 2000);
    expect(await extractTar(once(cut), target).catch((e: Error) => e.message)).toContain("ended inside");
    expect(readdirSync(target)).toEqual([]);
  });

  test("entry names are normalised and checked as pure functions", () => {
    expect(safeEntryPath("./a//b/./c")).toBe("a/b/c");
    expect(safeEntryPath("./")).toBe("");
    expect(() => safeEntryPath("a/../../b")).toThrow(UnsafeEntryError);
    expect(linkStaysInside("a/b", "../c")).toBe(true);
    expect(linkStaysInside("a/b", "../../c")).toBe(false);
    expect(linkStaysInside("a", "/etc")).toBe(false);
  });
});

describe("workspace listing", () => {
  test("a Git work tree lists what Git shows plus .git, never the ignored files", async () => {
    const repo = join(dir, "repo");
    mkdirSync(join(repo, "node_modules/x"), { recursive: true });
    writeFileSync(join(repo, ".gitignore"), "build/\n*.log\n");
    writeFileSync(join(repo, "tracked.txt"), "t\n");
    writeFileSync(join(repo, "debug.log"), "ignored\n");
    mkdirSync(join(repo, "build"));
    writeFileSync(join(repo, "build/out.o"), "ignored\n");
    writeFileSync(join(repo, "node_modules/x/index.js"), "not ignored by git here\n");
    spawnSync("git", ["init", "-q"], { cwd: repo });
    spawnSync("git", ["add", "tracked.txt", ".gitignore"], { cwd: repo });
    writeFileSync(join(repo, "untracked.txt"), "u\n");
    const listing = await listWorkspace(repo);
    const paths = listing.entries.map((e) => e.path);
    expect(listing.selection).toBe("git");
    expect(paths).toEqual(expect.arrayContaining(["tracked.txt", "untracked.txt", ".gitignore", ".git", ".git/HEAD", "node_modules", "node_modules/x/index.js"]));
    expect(paths.filter((p) => p.startsWith("build") || p.endsWith(".log"))).toEqual([]);
  });

  test("a plain directory leaves out the default ignore list", async () => {
    const plain = join(dir, "plain");
    mkdirSync(join(plain, "node_modules/x"), { recursive: true });
    writeFileSync(join(plain, "a.txt"), "a\n");
    const listing = await listWorkspace(plain);
    expect(DEFAULT_IGNORES).toContain("node_modules");
    expect(listing.selection).toBe("default-ignores");
    expect(listing.entries.map((e) => e.path)).toEqual(["a.txt"]);
  });
});
