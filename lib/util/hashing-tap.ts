/**
 * A pass-through stream that hashes (SHA-256) and counts the bytes going through it: for a file
 * written from a download or a compressor whose checksum is recorded in the same pass.
 */
import { createHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";

export class HashingTap extends Transform {
  private readonly hash = createHash("sha256");
  bytes = 0;

  /** `onChunk` hears the running byte count (for progress). */
  constructor(private readonly onChunk?: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onChunk?.(this.bytes);
    done(null, chunk);
  }

  /** The SHA-256 of everything that went through, hex; once the stream has ended. */
  sha256(): string {
    return this.hash.digest("hex");
  }
}
