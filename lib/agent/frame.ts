/**
 * The agent protocol's framing (guest-agent/PROTOCOL.md): a 16-byte header, then the payload.
 *
 * Pure code, shared by the client and by the supervisor's proxy, which multiplexes many clients
 * over one agent connection by rewriting stream ids in place (`rewriteStreamId`) without
 * re-encoding frames.
 */

export const MAGIC0 = 0x53; // "S"
export const MAGIC1 = 0x56; // "V"
export const FRAME_VERSION = 1;
export const HEADER_SIZE = 16;
export const MAX_PAYLOAD = 65536;
export const INITIAL_WINDOW = 262144;
/** Offset of the big-endian u32 stream id inside a header. */
export const STREAM_ID_OFFSET = 8;
export const LENGTH_OFFSET = 12;
/** Zero bytes a reconnecting host writes before HELLO to finish any stale frame. */
export const RESYNC_PAD_SIZE = HEADER_SIZE + MAX_PAYLOAD;

export const FrameType = {
  HELLO: 0x01,
  ERROR: 0x02,
  OPEN: 0x03,
  CONTROL: 0x04,
  CANCEL: 0x05,
  EVENT: 0x06,
  RESULT: 0x07,
  DATA: 0x10,
  WINDOW: 0x11,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** Frame types 0x80-0xff belong to the supervisor <-> client link and never reach the agent. */
export const SUPERVISOR_TYPE_MIN = 0x80;
/** OPEN requests whose op starts with this are answered by the supervisor itself. */
export const SUPERVISOR_OP_PREFIX = "supervisor.";

export function isSupervisorType(type: number): boolean {
  return type >= SUPERVISOR_TYPE_MIN && type <= 0xff;
}

export const Channel = { IN: 0, OUT: 1, ERR: 2 } as const;
export type ChannelId = (typeof Channel)[keyof typeof Channel];
export const CHANNEL_MASK = 0x03;
export const FLAG_FIN = 0x80;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** Header and payload as received, for forwarding without re-encoding. */
  raw: Buffer;
}

export function encodeHeader(type: number, streamId: number, length: number, flags = 0): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  writeHeader(h, 0, type, streamId, length, flags);
  return h;
}

function writeHeader(b: Buffer, at: number, type: number, streamId: number, length: number, flags: number): void {
  if (length > MAX_PAYLOAD) throw new RangeError(`frame payload of ${length} bytes exceeds ${MAX_PAYLOAD}`);
  b[at] = MAGIC0;
  b[at + 1] = MAGIC1;
  b[at + 2] = FRAME_VERSION;
  b[at + 3] = type;
  b[at + 4] = flags;
  b[at + 5] = b[at + 6] = b[at + 7] = 0;
  b.writeUInt32BE(streamId >>> 0, at + STREAM_ID_OFFSET);
  b.writeUInt32BE(length, at + LENGTH_OFFSET);
}

/** One frame as bytes. A string payload is UTF-8 (JSON control messages). */
export function encodeFrame(type: number, streamId: number, payload?: Uint8Array | string, flags = 0): Buffer {
  const body = payload === undefined ? undefined : typeof payload === "string" ? Buffer.from(payload) : payload;
  const len = body?.length ?? 0;
  const out = Buffer.allocUnsafe(HEADER_SIZE + len);
  writeHeader(out, 0, type, streamId, len, flags);
  if (body && len) out.set(body, HEADER_SIZE);
  return out;
}

export function dataFlags(channel: number, fin = false): number {
  return (channel & CHANNEL_MASK) | (fin ? FLAG_FIN : 0);
}

/** Rewrites the stream id of an encoded frame in place (a proxy's id remapping) and returns it. */
export function rewriteStreamId(raw: Uint8Array, streamId: number): Uint8Array {
  new DataView(raw.buffer, raw.byteOffset, raw.byteLength).setUint32(STREAM_ID_OFFSET, streamId >>> 0);
  return raw;
}

export function readStreamId(raw: Uint8Array): number {
  return new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getUint32(STREAM_ID_OFFSET);
}

export type FrameErrorReason = "magic" | "version" | "reserved" | "too-large";

/** A framing error: the byte stream cannot be trusted past this point. */
export class FrameDecodeError extends Error {
  readonly reason: FrameErrorReason;
  constructor(reason: FrameErrorReason, message: string) {
    super(message);
    this.name = "FrameDecodeError";
    this.reason = reason;
  }
}

/** The 12 fixed bytes of a HELLO header on stream 0, which is what a hunting decoder looks for. */
const HELLO_PREFIX = Buffer.from([MAGIC0, MAGIC1, FRAME_VERSION, FrameType.HELLO, 0, 0, 0, 0, 0, 0, 0, 0]);
const EMPTY = Buffer.alloc(0);

function checkHeader(b: Buffer, at: number): FrameDecodeError | undefined {
  if (b[at] !== MAGIC0 || b[at + 1] !== MAGIC1) return new FrameDecodeError("magic", "bad frame magic");
  if (b[at + 2] !== FRAME_VERSION) return new FrameDecodeError("version", `unsupported frame version ${b[at + 2]}`);
  if (b[at + 5] || b[at + 6] || b[at + 7]) return new FrameDecodeError("reserved", "reserved header bytes are not zero");
  const len = b.readUInt32BE(at + LENGTH_OFFSET);
  if (len > MAX_PAYLOAD) return new FrameDecodeError("too-large", `frame payload of ${len} bytes exceeds ${MAX_PAYLOAD}`);
  return undefined;
}

/**
 * Incremental decoder. Chunks go in as they arrive; complete frames come out through the
 * callback, their payloads sliced from the input without copying where possible.
 *
 * In hunting mode (after a framing error, or from the start with `{ hunt: true }` when
 * reconnecting to a virtio port) it discards bytes until a HELLO header on stream 0.
 */
export class FrameDecoder {
  private parts: Buffer[] = [];
  private partsLen = 0;
  /** Bytes needed before parsing can make progress. */
  private need = HEADER_SIZE;
  private hunting: boolean;

  constructor(options: { hunt?: boolean } = {}) {
    this.hunting = options.hunt ?? false;
  }

  get isHunting(): boolean {
    return this.hunting;
  }

  /** Discard buffered bytes and look for the next HELLO header. */
  hunt(): void {
    this.hunting = true;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.partsLen;
  }

  /**
   * Feeds bytes. On a framing error the decoder starts hunting for a HELLO header and goes on;
   * the error goes to `onError`, or without one is thrown once the chunk is processed (frames
   * before it were delivered). Either way the caller may keep feeding the decoder.
   */
  push(chunk: Uint8Array, onFrame: (frame: Frame) => void, onError?: (error: FrameDecodeError) => void): void {
    if (chunk.length === 0) return;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.parts.push(buf);
    this.partsLen += buf.length;
    if (this.partsLen < this.need && !this.hunting) return;
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLen);
    this.parts = [];
    this.partsLen = 0;
    let pos = 0;
    let error: FrameDecodeError | undefined;
    while (pos < data.length) {
      if (this.hunting) {
        const at = data.indexOf(HELLO_PREFIX, pos);
        if (at < 0) {
          // Keep a tail that could be the start of the prefix.
          pos = Math.max(pos, data.length - (HELLO_PREFIX.length - 1));
          break;
        }
        if (data.length - at < HEADER_SIZE) {
          pos = at;
          break;
        }
        if (data.readUInt32BE(at + LENGTH_OFFSET) > MAX_PAYLOAD) {
          pos = at + 1;
          continue;
        }
        this.hunting = false;
        pos = at;
      }
      if (data.length - pos < HEADER_SIZE) break;
      const bad = checkHeader(data, pos);
      if (bad) {
        if (onError) onError(bad);
        else error ??= bad;
        this.hunting = true;
        pos += 1;
        continue;
      }
      const len = data.readUInt32BE(pos + LENGTH_OFFSET);
      const end = pos + HEADER_SIZE + len;
      if (end > data.length) break;
      const raw = data.subarray(pos, end);
      pos = end;
      onFrame({
        type: raw[3]!,
        flags: raw[4]!,
        streamId: raw.readUInt32BE(STREAM_ID_OFFSET),
        payload: len ? raw.subarray(HEADER_SIZE) : EMPTY,
        raw,
      });
    }
    const rest = data.subarray(pos);
    if (rest.length) {
      this.parts.push(rest);
      this.partsLen = rest.length;
    }
    this.need = !this.hunting && rest.length >= HEADER_SIZE
      ? HEADER_SIZE + rest.readUInt32BE(LENGTH_OFFSET)
      : HEADER_SIZE;
    if (error) throw error;
  }
}
