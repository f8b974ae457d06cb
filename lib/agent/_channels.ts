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

/**
 * A channel's output handed to a callback (ExecSpec.onStdout) instead of a Readable: a returned
 * promise holds further output until it settles; `delivered` settles once the last piece was
 * taken (rejected with what the callback threw, the rest of the output discarded).
 */
export class CallbackSink implements ReadableSink {
  destroyed = false;
  readonly delivered: Promise<void>;
  private settle!: (error?: unknown) => void;
  /** The last piece's promise, still pending: the end waits for it. */
  private pending: Promise<void> | undefined;

  constructor(
    private readonly callback: (chunk: Buffer) => void | Promise<void>,
    /** Asks the channel for more (InboundChannel.pull). */
    private readonly more: () => void,
  ) {
    this.delivered = new Promise<void>((resolve, reject) => (this.settle = (error) => (error === undefined ? resolve() : reject(error))));
    this.delivered.catch(() => {}); // seen through wait(); never an unhandled rejection
  }

  push(chunk: Buffer | null): boolean {
    if (chunk === null) {
      if (this.pending === undefined) this.settle();
      else void this.pending.then(() => this.settle());
      return false;
    }
    let returned: void | Promise<void>;
    try {
      returned = this.callback(chunk);
    } catch (error) {
      return this.failed(error);
    }
    if (returned === undefined || typeof returned.then !== "function") return true;
    this.pending = returned.then(() => {
      this.pending = undefined;
      this.more();
    }, (error: unknown) => void this.failed(error));
    return false;
  }

  private failed(error: unknown): false {
    this.destroyed = true;
    this.settle(error ?? new Error("the output callback failed"));
    this.more(); // the channel gives the credit of what it still holds back
    return false;
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
