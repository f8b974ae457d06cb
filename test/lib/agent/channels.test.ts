import { describe, expect, test } from "bun:test";
import { Readable } from "node:stream";
import { InboundChannel, OutboundChannel } from "../../../lib/agent/_channels.ts";

const WINDOW = 256 * 1024;

describe("InboundChannel", () => {
  test("grants credit only as the Readable takes bytes, so an idle reader bounds memory", async () => {
    let granted = 0;
    const ch = new InboundChannel((n) => (granted += n), WINDOW);
    const r = new Readable({ highWaterMark: 64 * 1024, read: () => ch.pull() });
    ch.attach(r);
    const chunk = Buffer.alloc(16 * 1024, 1);
    for (let sent = 0; sent < WINDOW; sent += chunk.length) ch.push(chunk); // a full window arrives
    await new Promise((res) => setTimeout(res, 10));
    // Nothing reads: at most the Readable's buffer (64 KiB) was credited back.
    expect(granted).toBeLessThanOrEqual(64 * 1024);
    let read = 0;
    r.on("data", (b: Buffer) => (read += b.length));
    ch.end();
    await new Promise((res) => r.once("end", res));
    expect(read).toBe(WINDOW);
    expect(granted).toBe(WINDOW); // a whole number of 64 KiB batches
  });

  test("a destroyed Readable still credits what arrives, so the sender never stalls", () => {
    let granted = 0;
    const ch = new InboundChannel((n) => (granted += n), WINDOW);
    const r = new Readable({ read: () => ch.pull() });
    ch.attach(r);
    r.destroy();
    for (let i = 0; i < 8; i++) ch.push(Buffer.alloc(32 * 1024));
    expect(granted).toBe(WINDOW);
  });
});

describe("OutboundChannel", () => {
  function transport() {
    const sent: Array<{ n: number; fin: boolean }> = [];
    return {
      sent,
      sendData: (chunk: Buffer, fin: boolean) => (sent.push({ n: chunk.length, fin }), true),
      waitDrain: async () => {},
    };
  }

  test("splits writes into frames of at most 64 KiB and waits for credit beyond the window", async () => {
    const t = transport();
    const ch = new OutboundChannel(t, 100_000);
    let done = false;
    const writing = ch.write(Buffer.alloc(300_000)).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(done).toBe(false);
    expect(t.sent.reduce((a, s) => a + s.n, 0)).toBe(100_000);
    expect(Math.max(...t.sent.map((s) => s.n))).toBeLessThanOrEqual(65536);
    ch.addCredit(200_000);
    await writing;
    expect(t.sent.reduce((a, s) => a + s.n, 0)).toBe(300_000);
    ch.end();
    expect(t.sent.at(-1)).toEqual({ n: 0, fin: true });
  });

  test("a failed stream rejects the waiting write; a closed one drops it quietly", async () => {
    const failing = new OutboundChannel(transport(), 0);
    const w = failing.write(Buffer.alloc(10));
    failing.fail(new Error("stream ended"));
    await expect(w).rejects.toThrow("stream ended");
    const t = transport();
    const closing = new OutboundChannel(t, 0);
    const w2 = closing.write(Buffer.alloc(10));
    closing.close();
    await w2;
    expect(t.sent).toEqual([]);
  });
});
