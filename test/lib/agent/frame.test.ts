import { describe, expect, test } from "bun:test";
import {
  dataFlags,
  encodeFrame,
  FLAG_FIN,
  FrameDecodeError,
  FrameDecoder,
  FrameType,
  HEADER_SIZE,
  isSupervisorType,
  MAX_PAYLOAD,
  readStreamId,
  RESYNC_PAD_SIZE,
  rewriteStreamId,
  type Frame,
} from "../../../lib/agent/frame.ts";

function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]): { frames: Frame[]; errors: FrameDecodeError[] } {
  const frames: Frame[] = [];
  const errors: FrameDecodeError[] = [];
  for (const c of chunks) decoder.push(c, (f) => frames.push({ ...f, payload: Buffer.from(f.payload) }), (e) => errors.push(e));
  return { frames, errors };
}

function splitRandomly(buf: Buffer, seed: number): Buffer[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) & 0x7fffffff);
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + (next() % 300);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

describe("frame codec", () => {
  test("a header is 16 bytes: magic, version, type, flags, zero reserved, stream id, length", () => {
    const f = encodeFrame(FrameType.DATA, 0x01020304, Buffer.from("hi"), dataFlags(2, true));
    expect([...f.subarray(0, HEADER_SIZE)]).toEqual([0x53, 0x56, 1, 0x10, 0x82, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 2]);
    expect(f.subarray(HEADER_SIZE).toString()).toBe("hi");
  });

  test("frames survive any chunking, including one byte at a time", () => {
    const frames = [
      encodeFrame(FrameType.OPEN, 1, '{"op":"ping"}'),
      encodeFrame(FrameType.DATA, 7, Buffer.alloc(MAX_PAYLOAD, 0xab)),
      encodeFrame(FrameType.CANCEL, 9),
      encodeFrame(FrameType.DATA, 2, undefined, dataFlags(1, true)),
    ];
    const all = Buffer.concat(frames);
    for (const chunks of [[all], splitRandomly(all, 1), splitRandomly(all, 2), [...all].map((b) => Buffer.from([b]))]) {
      const { frames: got, errors } = decodeAll(new FrameDecoder(), chunks);
      expect(errors).toEqual([]);
      expect(got.map((f) => [f.type, f.streamId, f.payload.length, f.flags])).toEqual([
        [FrameType.OPEN, 1, 13, 0],
        [FrameType.DATA, 7, MAX_PAYLOAD, 0],
        [FrameType.CANCEL, 9, 0, 0],
        [FrameType.DATA, 2, 0, 1 | FLAG_FIN],
      ]);
    }
  });

  test("raw is the frame as received, so a proxy can forward it after rewriting the stream id", () => {
    const sent = encodeFrame(FrameType.OPEN, 5, '{"op":"ping"}');
    const { frames } = decodeAll(new FrameDecoder(), [sent]);
    const raw = Buffer.from(frames[0]!.raw);
    expect(raw.equals(sent)).toBe(true);
    rewriteStreamId(raw, 0xfffffffe);
    expect(readStreamId(raw)).toBe(0xfffffffe);
    const { frames: again } = decodeAll(new FrameDecoder(), [raw]);
    expect(again[0]!.streamId).toBe(0xfffffffe);
    expect(again[0]!.payload.toString()).toBe('{"op":"ping"}');
  });

  test("a length over 64 KiB is a framing error, reported without crashing", () => {
    const bad = encodeFrame(FrameType.DATA, 1);
    bad.writeUInt32BE(MAX_PAYLOAD + 1, 12);
    const { errors } = decodeAll(new FrameDecoder(), [bad]);
    expect(errors.map((e) => e.reason)).toEqual(["too-large"]);
    expect(() => new FrameDecoder().push(bad, () => {})).toThrow(FrameDecodeError);
  });

  test("bad magic, version or reserved bytes are framing errors", () => {
    for (const [offset, reason] of [[0, "magic"], [2, "version"], [6, "reserved"]] as const) {
      const f = encodeFrame(FrameType.OPEN, 1, "{}");
      f[offset] ^= 0xff;
      expect(decodeAll(new FrameDecoder(), [f]).errors[0]?.reason).toBe(reason);
    }
  });

  test("after a framing error the decoder hunts for a HELLO and ignores everything else", () => {
    const garbage = Buffer.from("SV\x01garbage that is not a frame");
    const skipped = encodeFrame(FrameType.OPEN, 3, "{}");
    const hello = encodeFrame(FrameType.HELLO, 0, '{"nonce":"n"}');
    const after = encodeFrame(FrameType.RESULT, 3, "{}");
    const all = Buffer.concat([garbage, skipped, hello, after]);
    for (const chunks of [[all], splitRandomly(all, 3)]) {
      const { frames, errors } = decodeAll(new FrameDecoder(), chunks);
      expect(errors.length).toBe(1);
      expect(frames.map((f) => f.type)).toEqual([FrameType.HELLO, FrameType.RESULT]);
    }
  });

  test("the resync pad finishes any stale partial frame, so the next HELLO is always found", () => {
    const stale = encodeFrame(FrameType.DATA, 1, Buffer.alloc(MAX_PAYLOAD, 7)).subarray(0, 1000);
    const hello = encodeFrame(FrameType.HELLO, 0, '{"nonce":"after-pad"}');
    const decoder = new FrameDecoder();
    const { frames } = decodeAll(decoder, [stale, Buffer.alloc(RESYNC_PAD_SIZE), hello]);
    expect(frames.at(-1)?.payload.toString()).toBe('{"nonce":"after-pad"}');
  });

  test("a decoder started in hunting mode skips leftovers of an old session", () => {
    const old = encodeFrame(FrameType.DATA, 4, Buffer.alloc(300, 1)).subarray(100);
    const hello = encodeFrame(FrameType.HELLO, 0, "{}");
    const decoder = new FrameDecoder({ hunt: true });
    const { frames, errors } = decodeAll(decoder, [old, hello]);
    expect(errors).toEqual([]);
    expect(frames.map((f) => f.type)).toEqual([FrameType.HELLO]);
    expect(decoder.isHunting).toBe(false);
  });

  test("types 0x80 and up are the supervisor's", () => {
    expect(isSupervisorType(0x80)).toBe(true);
    expect(isSupervisorType(0xff)).toBe(true);
    expect(isSupervisorType(FrameType.WINDOW)).toBe(false);
  });

  test("an oversized payload cannot be encoded", () => {
    expect(() => encodeFrame(FrameType.DATA, 1, Buffer.alloc(MAX_PAYLOAD + 1))).toThrow(RangeError);
  });
});
