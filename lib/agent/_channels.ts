/**
 * Credit-based flow control on the host side (PROTOCOL.md, "Flow control").
 *
 * Inbound: bytes the agent sends are queued and handed to a Readable only when it asks for
 * more; credit goes back to the agent as bytes move into the Readable, so memory per channel is
 * bounded by the window plus the Readable's high-water mark however slowly it is consumed.
 *
 * Outbound: writes wait for credit the agent grants as it passes bytes on, and for the socket
 * to drain.
 */
import { MAX_PAYLOAD } from "./frame.ts";

export interface ReadableSink {
  push(chunk: Buffer | null): boolean;
  readonly destroyed: boolean;
}

export class InboundChannel {
  private readonly queue: Buffer[] = [];
  private wanting = false;
  private ended = false;
  private finished = false;
  private ungranted = 0;
  private sink: ReadableSink | undefined;
  private readonly batch: number;

  /** `grant(n)` sends WINDOW for n bytes. */
  constructor(
    private readonly grant: (n: number) => void,
    window: number,
  ) {
    this.batch = Math.max(1, Math.floor(window / 4));
  }

  attach(sink: ReadableSink): void {
    this.sink = sink;
  }

  /** Called from the Readable's read(): it wants more. */
  pull(): void {
    this.wanting = true;
    this.drain();
  }

  push(data: Buffer): void {
    if (this.finished) return;
    if (data.length) this.queue.push(data);
    this.drain();
  }

  /** The agent sent FIN: end the Readable after what is queued. */
  end(): void {
    this.ended = true;
    this.drain();
  }

  private drain(): void {
    const sink = this.sink;
    if (!sink) return;
    if (sink.destroyed) {
      // Nobody reads any more: keep the remote process from blocking on credit.
      for (const b of this.queue.splice(0)) this.credit(b.length);
      return;
    }
    while (this.wanting && this.queue.length) {
      const b = this.queue.shift()!;
      this.credit(b.length);
      if (!sink.push(b)) this.wanting = false;
    }
    if (this.ended && !this.queue.length && !this.finished) {
      this.finished = true;
      sink.push(null);
    }
  }

  private credit(n: number): void {
    this.ungranted += n;
    if (this.ungranted >= this.batch) {
      const n2 = this.ungranted;
      this.ungranted = 0;
      this.grant(n2);
    }
  }
}

export interface OutboundTransport {
  /** Sends one DATA frame; false when the socket's buffer is full. */
  sendData(chunk: Buffer, fin: boolean): boolean;
  waitDrain(): Promise<void>;
}

export class OutboundChannel {
  private credit: number;
  private waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private failure: unknown;
  private finSent = false;
  private closed = false;

  constructor(
    private readonly transport: OutboundTransport,
    window: number,
  ) {
    this.credit = window;
  }

  addCredit(n: number): void {
    this.credit += n;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** The stream ended or broke: pending and future writes fail with this. */
  fail(error: unknown): void {
    this.failure ??= error;
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
  }

  /** The stream ended normally: writes still pending or to come are dropped, like on a closed pipe. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  async write(chunk: Uint8Array): Promise<void> {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let off = 0;
    while (off < buf.length) {
      if (this.failure !== undefined) throw this.failure;
      if (this.closed) return;
      if (this.finSent) throw new Error("write after end");
      if (this.credit <= 0) {
        await new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
        continue;
      }
      const n = Math.min(buf.length - off, this.credit, MAX_PAYLOAD);
      this.credit -= n;
      const ok = this.transport.sendData(buf.subarray(off, off + n), false);
      off += n;
      if (!ok) await this.transport.waitDrain();
    }
  }

  end(): void {
    if (this.finSent || this.closed || this.failure !== undefined) return;
    this.finSent = true;
    this.transport.sendData(Buffer.alloc(0), true);
  }
}
