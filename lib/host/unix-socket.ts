/**
 * A client connection to a Unix socket, as an agent session uses it (lib/agent/session.ts): write,
 * destroy, and the connect, data, drain, end, close and error events of a node socket.
 *
 * On Bun it is Bun's own socket: a new process opens one in 0.03 ms, where node:net's module and
 * its first Socket cost 1.7 ms (measured, compiled binary), and `smolvm exec` opens exactly one
 * before it can send its command. Elsewhere (Deno) it is node:net's. This is the one module that
 * speaks to the runtime itself (architecture.md: "no `bun:` or `Deno.` outside one small adapter").
 */
import type { Socket as NodeSocket } from "node:net";

/**
 * A byte stream as an agent session uses it: a node socket or pipe satisfies it as it is, and so
 * does the runtime's own Unix socket below. What the session layer uses of a node Duplex.
 */
export interface ByteStream {
  write(chunk: Uint8Array): boolean;
  destroy(): void;
  // Node's EventEmitter signatures, so that a node Duplex is one without a cast.
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

type Listener = (...args: unknown[]) => void;

/**
 * Connects to `path`. The stream is returned at once: what is written before the connection is
 * made goes out once it is, in order. A failure is an `error` event (its `code` ENOENT,
 * ECONNREFUSED... as node gives it) followed by `close`.
 */
export async function connectUnix(path: string): Promise<ByteStream> {
  if (typeof Bun === "undefined") {
    const { connect } = await import("node:net");
    return connect(path) as NodeSocket & ByteStream;
  }
  return new BunUnixSocket(path);
}

class BunUnixSocket implements ByteStream {
  destroyed = false;
  private socket: Bun.Socket<undefined> | undefined;
  /** Bytes written before the connection was made, or that the kernel did not take yet. */
  private pending: Buffer[] = [];
  private closeSaid = false;
  private errorSaid = false;
  private readonly listeners = new Map<string, Array<{ listener: Listener; once: boolean }>>();

  constructor(path: string) {
    Bun.connect({
      unix: path,
      socket: {
        open: (socket) => {
          this.socket = socket;
          if (this.destroyed) return void socket.terminate();
          // What was written before the connection (a HELLO and the request behind it) goes out
          // in one write, which the peer reads in one wake-up.
          if (this.pending.length > 1) this.pending = [Buffer.concat(this.pending)];
          this.flush();
          this.emit("connect");
        },
        data: (_socket, data) => this.emit("data", data),
        drain: () => {
          if (this.flush()) this.emit("drain");
        },
        end: () => this.emit("end"),
        error: (_socket, error) => this.failed(error),
        // A reset can come with the close alone; node says it as an error first.
        close: (_socket, error) => {
          if (error !== undefined) this.failed(error);
          this.closed();
        },
      },
    }).catch((error: unknown) => {
      // A missing socket fails before the caller has had its stream back to listen on: said on
      // the next turn, as node says it.
      setImmediate(() => {
        this.failed(error);
        this.closed();
      });
    });
  }

  /** Like node's: false when the bytes had to wait (a `drain` follows once they are out). */
  write(chunk: Uint8Array): boolean {
    if (this.destroyed) return false;
    // Copied when kept: the caller may reuse its buffer once write returns.
    if (this.socket === undefined) {
      this.pending.push(Buffer.from(chunk));
      return true;
    }
    if (this.pending.length > 0) {
      this.pending.push(Buffer.from(chunk));
      return false;
    }
    const sent = this.socket.write(chunk);
    if (sent >= chunk.length) return true;
    this.pending.push(Buffer.from(chunk.subarray(Math.max(0, sent))));
    return false;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pending = [];
    if (this.socket !== undefined) this.socket.terminate();
  }

  on(event: string, listener: Listener): this {
    return this.add(event, listener, false);
  }

  once(event: string, listener: Listener): this {
    return this.add(event, listener, true);
  }

  off(event: string, listener: Listener): this {
    const list = this.listeners.get(event);
    const at = list?.findIndex((entry) => entry.listener === listener) ?? -1;
    if (at >= 0) list!.splice(at, 1);
    return this;
  }

  private add(event: string, listener: Listener, once: boolean): this {
    const list = this.listeners.get(event) ?? [];
    list.push({ listener, once });
    this.listeners.set(event, list);
    return this;
  }

  private emit(event: string, ...args: unknown[]): void {
    const list = this.listeners.get(event);
    if (list === undefined) return;
    for (const entry of [...list]) {
      if (entry.once) this.off(event, entry.listener);
      entry.listener(...args);
    }
  }

  /** Writes what waits, as far as the kernel takes it; true once nothing waits. */
  private flush(): boolean {
    while (this.pending.length > 0 && this.socket !== undefined && !this.destroyed) {
      const head = this.pending[0]!;
      const sent = this.socket.write(head);
      if (sent < head.length) {
        this.pending[0] = head.subarray(Math.max(0, sent));
        return false;
      }
      this.pending.shift();
    }
    return true;
  }

  private failed(error: unknown): void {
    if (this.errorSaid || this.destroyed) return;
    this.errorSaid = true;
    this.emit("error", error);
  }

  private closed(): void {
    if (this.closeSaid) return;
    this.closeSaid = true;
    this.destroyed = true;
    this.emit("close");
  }
}
