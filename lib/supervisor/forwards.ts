/**
 * The supervisor's port forwards: for each one a TCP listener on 127.0.0.1 only, and for each
 * accepted connection an agent `forward` stream to the guest port, piped both ways with
 * half-close. The streams go through an in-process client of the relay (local-client.ts), so
 * flow control stays end to end (agent ↔ AgentClient) and a slow side never makes the supervisor
 * buffer more than the protocol's windows. The supervisor is the source of truth; the list is
 * also kept in the sandbox's `forwards.json` so that a supervisor re-attaching after a crash opens
 * the same forwards again. A stop or delete ends them and removes the file.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { AgentClient } from "../agent/client.ts";
import type { PortForwardInfo } from "../agent/supervisor-messages.ts";
import { AlreadyExistsError, InvalidInputError, NotFoundError, NotRunningError, SmolError } from "../errors.ts";
import { logEvent } from "../log.ts";
import { z } from "../zod.ts";

const LOOPBACK = "127.0.0.1";

interface Forward {
  server: Server;
  hostPort: number;
  guestPort: number;
  sockets: Set<Socket>;
  createdAt: number;
}

export class PortForwards {
  private readonly forwards = new Map<number, Forward>();
  private client: Promise<AgentClient> | undefined;
  private closed = false;

  /**
   * `connect`: a new in-process client of the relay; `savedPath`: where the list of forwards is
   * kept for a re-attaching supervisor.
   */
  constructor(
    private readonly connect: () => Promise<AgentClient>,
    private readonly savedPath: string,
    private readonly vm: { id: string; name: string },
  ) {}

  /**
   * Opens the forwards a previous supervisor of this sandbox had (it crashed; the VM kept
   * running). A host port taken meanwhile is logged and dropped.
   */
  async restore(): Promise<void> {
    let saved: { hostPort: number; guestPort: number }[];
    try {
      saved = savedList.parse(JSON.parse(readFileSync(this.savedPath, "utf8")));
    } catch {
      return; // none saved (or unreadable: nothing sensible to restore)
    }
    for (const { hostPort, guestPort } of saved) {
      await this.expose({ hostPort, guestPort }).catch((error: Error) =>
        logEvent("warn", `port forward ${hostPort} -> ${guestPort} not restored: ${error.message}`, { vm: this.vm.id }),
      );
    }
    this.save();
  }

  /** Ports as the operation's schema checked them (supervisor-messages.ts). */
  async expose(request: { guestPort: number; hostPort?: number | undefined }): Promise<PortForwardInfo> {
    const guestPort = request.guestPort;
    const wanted = request.hostPort ?? 0;
    if (this.closed) throw new NotRunningError(`Cannot expose port ${guestPort} of "${this.vm.name}": the sandbox is stopping`);
    if (wanted !== 0 && this.forwards.has(wanted)) {
      const existing = this.forwards.get(wanted)!;
      throw new AlreadyExistsError(`Cannot expose port ${guestPort} of "${this.vm.name}" on ${LOOPBACK}:${wanted}: that host port already forwards to guest port ${existing.guestPort}`, {
        hint: `close it first with \`smolvm port close ${this.vm.name} ${wanted}\`, or leave the host port out to get a free one`,
      });
    }
    const forward: Forward = { server: createServer({ allowHalfOpen: true }), hostPort: wanted, guestPort, sockets: new Set(), createdAt: Date.now() };
    await new Promise<void>((resolve, reject) => {
      forward.server.once("error", (error: NodeJS.ErrnoException) => reject(listenError(error, this.vm.name, guestPort, wanted)));
      forward.server.listen({ port: wanted, host: LOOPBACK, exclusive: true }, () => resolve());
    });
    forward.hostPort = (forward.server.address() as { port: number }).port;
    forward.server.on("error", (error) => logEvent("warn", `port forward ${forward.hostPort}: ${error.message}`, { vm: this.vm.id }));
    forward.server.on("connection", (socket) => this.carry(forward, socket));
    this.forwards.set(forward.hostPort, forward);
    this.save();
    logEvent("info", "port forward opened", { vm: this.vm.id, hostPort: forward.hostPort, guestPort });
    return describe(forward);
  }

  /** Stops listening on `hostPort` and ends every connection through it. */
  close(port: number): PortForwardInfo {
    const forward = this.forwards.get(port);
    if (forward === undefined) {
      throw new NotFoundError(`Cannot close port ${port} of "${this.vm.name}": no forward listens there`, {
        hint: `\`smolvm port list ${this.vm.name}\` shows the forwards of this sandbox`,
      });
    }
    const info = describe(forward);
    this.end(forward);
    this.save();
    return info;
  }

  list(): PortForwardInfo[] {
    return [...this.forwards.values()].map(describe).sort((a, b) => a.hostPort - b.hostPort);
  }

  /** Ends every forward (the sandbox is stopping or gone). */
  closeAll(): void {
    this.closed = true;
    for (const forward of [...this.forwards.values()]) this.end(forward);
    rmSync(this.savedPath, { force: true });
    void this.client?.then((client) => client.close(), () => {});
    this.client = undefined;
  }

  /** Written whole and renamed into place, so a crash mid-write leaves the previous list. */
  private save(): void {
    if (this.closed) return;
    const list = [...this.forwards.values()].map(({ hostPort, guestPort }) => ({ hostPort, guestPort }));
    const temp = `${this.savedPath}.${process.pid}.tmp`;
    try {
      writeFileSync(temp, `${JSON.stringify(list)}\n`);
      renameSync(temp, this.savedPath);
    } catch (error) {
      logEvent("warn", `cannot save the port forwards: ${(error as Error).message}`, { vm: this.vm.id });
    }
  }

  private end(forward: Forward): void {
    this.forwards.delete(forward.hostPort);
    forward.server.close();
    for (const socket of forward.sockets) socket.destroy();
    logEvent("info", "port forward closed", { vm: this.vm.id, hostPort: forward.hostPort, guestPort: forward.guestPort });
  }

  /** One accepted connection: a forward stream to the guest port, piped both ways. */
  private carry(forward: Forward, socket: Socket): void {
    forward.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => forward.sockets.delete(socket));
    socket.on("error", () => {});
    socket.pause();
    this.agent()
      .then((client) => client.forward(forward.guestPort, { timeoutMs: 10_000 }))
      .then(
        (stream) => {
          if (socket.destroyed) {
            stream.destroy();
            return;
          }
          stream.on("error", () => socket.destroy());
          socket.on("close", () => stream.destroy());
          // pipe() ends the other side on EOF: the agent's FIN half-closes the socket and the
          // client's FIN half-closes the guest socket; the socket closes once both have ended.
          socket.pipe(stream);
          stream.pipe(socket);
          socket.resume();
        },
        (error: unknown) => {
          // Nothing listens on the guest port (or the agent is gone): refuse like a closed port.
          logEvent("info", `port forward ${forward.hostPort} -> ${forward.guestPort}: ${(error as Error).message}`, { vm: this.vm.id });
          if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
          else socket.destroy();
        },
      );
  }

  /** The in-process client, made once and remade if it drops. */
  private agent(): Promise<AgentClient> {
    const current = this.client;
    if (current !== undefined) {
      return current.then((client) => (client.isClosed ? this.reconnect(current) : client));
    }
    return this.reconnect(undefined);
  }

  private reconnect(stale: Promise<AgentClient> | undefined): Promise<AgentClient> {
    if (this.client !== stale) return this.agent();
    const made = this.connect();
    this.client = made;
    made.catch(() => {
      if (this.client === made) this.client = undefined;
    });
    return made;
  }
}

const port = z.int().check(z.minimum(1), z.maximum(65535));
const savedList = z.array(z.object({ hostPort: port, guestPort: port }));

function describe(forward: Forward): PortForwardInfo {
  return { hostPort: forward.hostPort, guestPort: forward.guestPort, address: LOOPBACK, connections: forward.sockets.size, createdAt: forward.createdAt };
}

function listenError(error: NodeJS.ErrnoException, name: string, guestPort: number, hostPort: number): SmolError {
  const what = `Cannot expose port ${guestPort} of "${name}" on ${LOOPBACK}:${hostPort}`;
  if (error.code === "EADDRINUSE") {
    return new AlreadyExistsError(`${what}: the host port is in use`, {
      hint: "pick another host port, or leave it out to get a free one",
    });
  }
  if (error.code === "EACCES") {
    return new InvalidInputError(`${what}: permission denied`, {
      hint: "ports below 1024 need root; pick a higher one",
    });
  }
  return new SmolError("IO_ERROR", `${what}: ${error.message}`, { cause: error });
}
