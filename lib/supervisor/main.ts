/**
 * The per-sandbox supervisor process (`smolvm __supervise ID`, started detached by the SDK).
 *
 * It listens on the sandbox's socket first, says so to whoever started it (one line on the pipe
 * named by SMOLVM_SUPERVISOR_READY_FD), and then runs the sandbox (runtime.ts): clients that
 * connect while the VM boots get their HELLO answered once it is ready, or an ERROR with the
 * reason it failed. When the VMM is gone and its end recorded, it hangs up on every client and
 * exits; a stop's caller waits for exactly that hang-up.
 */
import { closeSync, existsSync, rmSync, statSync, writeSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { backendFor } from "../backends/select.ts";
import type { Backend } from "../backends/types.ts";
import { AlreadyExistsError } from "../errors.ts";
import { sandboxFiles } from "../sandbox/layout.ts";
import { paths } from "../paths.ts";
import { isStoreError, storeFailure } from "../state/db.ts";
import { StateStore } from "../state/sandboxes.ts";
import { ClientSession } from "./client-session.ts";
import { FrameType, sendJson } from "./frames.ts";
import { missingSandbox, SandboxRuntime, type RuntimeOptions } from "./runtime.ts";

/** The environment variable naming the pipe on which a new supervisor says it is listening. */
export const READY_FD_ENV = "SMOLVM_SUPERVISOR_READY_FD";

export interface SuperviseOptions {
  /** Default: the backend the sandbox's record names. */
  backend?: Backend;
  /** The pipe to say "listening" on (default: SMOLVM_SUPERVISOR_READY_FD, if set). */
  readyFd?: number;
  /** Called once the socket accepts clients (a supervisor run in-process, by tests). */
  onListening?: () => void;
  /** How the runtime judges a silent agent; tests shorten it. */
  runtime?: RuntimeOptions;
}

export async function runSupervisor(id: string, options: SuperviseOptions = {}): Promise<void> {
  const store = new LongLivedStore();
  try {
    await supervise(id, store, options);
  } finally {
    store.close();
  }
}

/**
 * One connection for the supervisor's life (opening one per update costs ~3 ms, and the update
 * that records a stop is on the caller's clock), opened again when the file behind it is a new
 * one: a store rebuilt by `doctor --repair` must get this sandbox's next records, not the old file.
 */
class LongLivedStore {
  private store: StateStore;
  private inode: number;

  constructor() {
    this.store = StateStore.open();
    this.inode = statSync(paths.stateDb()).ino;
  }

  get current(): StateStore {
    const inode = statSync(paths.stateDb(), { throwIfNoEntry: false })?.ino;
    if (inode !== undefined && inode !== this.inode) {
      this.store.close();
      this.store = StateStore.open();
      this.inode = inode;
    }
    return this.store;
  }

  close(): void {
    this.store.close();
  }
}

async function supervise(id: string, stores: LongLivedStore, options: SuperviseOptions): Promise<void> {
  const vm = stores.current.find(id);
  if (vm === undefined) throw missingSandbox(id);
  const files = sandboxFiles(id);
  const server = await listenExclusive(files.supervisorSocket);
  const bound = statSync(files.supervisorSocket, { throwIfNoEntry: false })?.ino;
  tellSpawner(options.readyFd ?? readyFdFromEnv());
  options.onListening?.();
  // The store's own failures (a full disk, damage) are smolvm's errors naming the file.
  const guarded = <T>(work: () => T): T => {
    try {
      return work();
    } catch (error) {
      throw isStoreError(error) ? storeFailure(paths.stateDb(), error) : error;
    }
  };
  const runtime = new SandboxRuntime(vm, files, options.backend ?? backendFor(vm.backend ?? "qemu"), {
    update: (patch) => guarded(() => {
      const store = stores.current;
      if (store.find(id) !== undefined) store.update(id, patch);
    }),
    remove: () => guarded(() => void stores.current.delete(id)),
    reallocateSshPort: (taken) => guarded(() => stores.current.reallocateSshPort(id, taken).sshPort!),
  }, options.runtime);
  const clients = new Set<Socket>();
  server.on("connection", (socket) => {
    clients.add(socket);
    new ClientSession(socket, runtime.context, () => clients.delete(socket));
  });
  try {
    await runtime.run();
  } finally {
    server.close();
    // Only its own: a supervisor started for the next boot may be listening there already.
    if (statSync(files.supervisorSocket, { throwIfNoEntry: false })?.ino === bound) rmSync(files.supervisorSocket, { force: true });
    // Clients still connected learn the end by the hang-up, and only now, with the row written;
    // a refused HELLO's ERROR goes out first. They are told why first (AgentClient keeps it as
    // the reason its connection ended), so a lost session never reads as a guest that hung up.
    await new Promise((resolve) => setImmediate(resolve));
    const farewell = runtime.farewell();
    for (const socket of clients) {
      sendJson(socket, FrameType.ERROR, 0, farewell);
      socket.end();
    }
  }
  await runtime.syncDisk();
}

function readyFdFromEnv(): number | undefined {
  const fd = Number(process.env[READY_FD_ENV]);
  return Number.isInteger(fd) && fd > 2 ? fd : undefined;
}

/** One line on the spawner's pipe: the socket accepts connections now. */
function tellSpawner(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    writeSync(fd, "listening\n");
    closeSync(fd);
  } catch {
    // The spawner gave up waiting; clients find the socket anyway.
  }
}

/** Listens on the supervisor socket, refusing to run beside a live supervisor of the same VM. */
async function listenExclusive(path: string): Promise<Server> {
  if (existsSync(path) && (await serving(path))) {
    throw new AlreadyExistsError("Cannot supervise the sandbox: another supervisor is serving it");
  }
  rmSync(path, { force: true });
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  return server;
}

/**
 * Whether a live supervisor answers on `path`: it accepts and keeps the connection open. One that
 * is dying may still accept into its backlog; that connection is reset within moments.
 */
function serving(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (alive: boolean) => {
      clearTimeout(timer);
      probe.destroy();
      resolve(alive);
    };
    probe.once("connect", () => {
      timer = setTimeout(() => done(true), 100);
    });
    probe.once("error", () => done(false));
    probe.once("close", () => done(false));
  });
}
