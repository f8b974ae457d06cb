import { describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { AgentClient } from "../../lib/agent/client.ts";
import { InvalidInputError, NotFoundError, SmolError } from "../../lib/errors.ts";
import { startTestAgent, withSharedAgent, type TestAgent } from "../helpers/agent.ts";

let agent: TestAgent;
let client: AgentClient;
let dir: string;

withSharedAgent((a, c) => {
  agent = a;
  client = c;
  dir = join(agent.dir, "files");
  mkdirSync(dir);
});

/** Deterministic pseudo-random bytes in 1 MiB chunks, hashed as they are produced. */
function* pseudoRandom(total: number, hash: ReturnType<typeof createHash>): Generator<Buffer> {
  const block = randomBytes(1024 * 1024);
  for (let sent = 0, i = 0; sent < total; i++) {
    const n = Math.min(block.length, total - sent);
    const chunk = Buffer.from(block.subarray(0, n));
    chunk.writeUInt32BE(i, 0); // no two chunks alike
    hash.update(chunk);
    sent += n;
    yield chunk;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("files", () => {
  test("a 100 MB file round trip is byte-identical and keeps its mode", async () => {
    const path = join(dir, "big.bin");
    const total = 100 * 1024 * 1024;
    const sent = createHash("sha256");
    const w = await client.writeFile(path, Readable.from(pseudoRandom(total, sent)), { mode: 0o640 });
    expect(w.size).toBe(total);
    const sentHash = sent.digest("hex");
    expect(statSync(path).mode & 0o7777).toBe(0o640);

    const r = await client.readFile(path);
    expect(r.size).toBe(total);
    expect(r.mode).toBe(0o640);
    const got = createHash("sha256");
    let n = 0;
    for await (const chunk of r.stream as AsyncIterable<Buffer>) {
      got.update(chunk);
      n += chunk.length;
    }
    expect(n).toBe(total);
    expect(got.digest("hex")).toBe(sentHash);
    expect(createHash("sha256").update(readFileSync(path)).digest("hex")).toBe(sentHash);
  }, 120_000);

  test("the mode is applied exactly, whatever the umask, and strings and buffers work", async () => {
    const path = join(dir, "script.sh");
    await client.writeFile(path, "#!/bin/sh\necho hi\n", { mode: 0o755 });
    expect(statSync(path).mode & 0o7777).toBe(0o755);
    expect(readFileSync(path, "utf8")).toBe("#!/bin/sh\necho hi\n");
    await client.writeFile(path, new Uint8Array([1, 2, 3]));
    expect(statSync(path).mode & 0o7777).toBe(0o644);
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    await client.writeFile(join(dir, "empty"), "");
    expect(statSync(join(dir, "empty")).size).toBe(0);
  });

  test("a reader never sees a half-written file: absent or old, then complete", async () => {
    const path = join(dir, "atomic.txt");
    const chunk = Buffer.alloc(64 * 1024, "n");
    const chunks = 25;
    async function* slowly() {
      for (let i = 0; i < chunks; i++) {
        await sleep(8);
        yield chunk;
      }
    }
    const seen = new Set<number>();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        if (existsSync(path)) {
          try {
            seen.add(readFileSync(path).length);
          } catch {
            // renamed away between the check and the read
          }
        } else {
          seen.add(-1);
        }
        await sleep(1);
      }
    })();
    await client.writeFile(path, Readable.from(slowly()));
    writeFileSync(join(dir, "marker"), "");
    // Rewrite over the complete file: the old version stays whole until the new one replaces it.
    const first = chunks * chunk.length;
    await client.writeFile(path, Readable.from(slowly()));
    polling = false;
    await poller;
    expect([...seen].every((n) => n === -1 || n === first)).toBe(true);
    expect(seen.has(-1)).toBe(true);
    expect(seen.has(first)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes(".smolvm-"))).toEqual([]);
  });

  test("a missing parent directory is NOT_FOUND unless mkdirParents is set", async () => {
    const path = join(dir, "a", "b", "c.txt");
    const err = await client.writeFile(path, "x").catch((e) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toContain("mkdirParents");
    await client.writeFile(path, "x", { mkdirParents: true });
    expect(readFileSync(path, "utf8")).toBe("x");
  });

  test("writing over a directory or a device fails clearly", async () => {
    const isDir = await client.writeFile(dir, "x").catch((e) => e);
    expect(isDir).toBeInstanceOf(InvalidInputError);
    expect(isDir.details.agentCode).toBe("IS_DIRECTORY");
    const dev = await client.writeFile("/dev/null", "x").catch((e) => e);
    expect(dev.details.agentCode).toBe("NOT_REGULAR");
  });

  test("reading a missing file, a directory or a device fails clearly", async () => {
    const missing = await client.readFile(join(dir, "nope")).catch((e) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((await client.readFile(dir).catch((e) => e)).details.agentCode).toBe("IS_DIRECTORY");
    expect((await client.readFile("/dev/zero").catch((e) => e)).details.agentCode).toBe("NOT_REGULAR");
  });

  // Root reads everything: as root, the question goes to a second agent running as nobody.
  test("an unreadable file is a permission error, not a crash", async () => {
    const unprivileged = process.getuid?.() === 0 ? await startTestAgent([], { asNobody: true }) : undefined;
    const asker = unprivileged ? await unprivileged.connect() : client;
    try {
      const path = join(unprivileged?.dir ?? dir, "secret");
      writeFileSync(path, "s");
      chmodSync(path, 0);
      const err = await asker.readFile(path).catch((e) => e);
      expect(err.details.agentCode).toBe("PERMISSION_DENIED");
      expect((await asker.ping()).timeMs).toBeGreaterThan(0);
    } finally {
      if (unprivileged) {
        await asker.close();
        await unprivileged.stop();
      }
    }
  });

  test("relative paths are refused before anything is sent", async () => {
    await expect(client.writeFile("relative.txt", "x")).rejects.toBeInstanceOf(InvalidInputError);
    await expect(client.readFile("relative.txt")).rejects.toBeInstanceOf(InvalidInputError);
  });

  test("a cancelled write leaves neither the file nor its temporary behind", async () => {
    const path = join(dir, "cancelled.bin");
    const ac = new AbortController();
    async function* forever() {
      for (;;) {
        yield Buffer.alloc(64 * 1024);
        await sleep(1);
      }
    }
    setTimeout(() => ac.abort(new Error("enough")), 100);
    const err = await client.writeFile(path, Readable.from(forever()), { signal: ac.signal }).catch((e) => e);
    expect(err.message).toBe("enough");
    const end = Date.now() + 2000;
    while (Date.now() < end && readdirSync(dir).some((f) => f.includes("cancelled"))) await sleep(10);
    expect(readdirSync(dir).filter((f) => f.includes("cancelled"))).toEqual([]);
  });

  test("a write that takes too long rejects with a timeout", async () => {
    async function* stalls() {
      yield Buffer.from("x");
      await sleep(10_000);
    }
    const err = await client.writeFile(join(dir, "slow"), Readable.from(stalls()), { timeoutMs: 150 }).catch((e) => e);
    expect(err).toBeInstanceOf(SmolError);
    expect(err.code).toBe("TIMEOUT");
  });
});
