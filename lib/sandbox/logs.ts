/**
 * A sandbox's console log (`smolvm logs`, `vm.logs()`): the whole file or its last lines, and,
 * when following, what the guest prints next until its VM ends. The end is learned from the
 * supervisor's socket, which it closes once the VM is gone; the file itself has to be looked at
 * again for new output.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { connect } from "node:net";
import type { SandboxRecord } from "../state/record.ts";
import { sleep } from "../util/poll.ts";
import { tailOf } from "../util/tail.ts";
import { sandboxFiles } from "./layout.ts";

export interface LogsOptions {
  /** Only the last N lines (then, when following, everything new). */
  tail?: number;
  /** Keep yielding new output until the sandbox's VM ends. */
  follow?: boolean;
}

const FOLLOW_INTERVAL_MS = 200;

export async function* consoleLog(vm: SandboxRecord, options: LogsOptions = {}): AsyncGenerator<string> {
  const files = sandboxFiles(vm.id);
  let offset = 0;
  if (options.tail !== undefined) {
    offset = sizeOf(files.consoleLog);
    const text = tailOf(files.consoleLog, options.tail);
    if (text !== "") yield `${text}\n`;
  } else {
    const read = readFrom(files.consoleLog, 0);
    offset = read.offset;
    yield* read.chunks;
  }
  if (options.follow !== true) return;
  const watch = connect(files.supervisorSocket);
  const ended = new Promise<void>((resolve) => {
    watch.on("error", () => resolve());
    watch.on("close", () => resolve());
    watch.on("data", () => {});
  });
  let done = false;
  void ended.then(() => (done = true));
  try {
    for (;;) {
      // After the end, one last read: what the guest printed as it went down.
      const last = done;
      const read = readFrom(files.consoleLog, offset);
      offset = read.offset;
      yield* read.chunks;
      if (last) return;
      await Promise.race([ended, sleep(FOLLOW_INTERVAL_MS)]);
    }
  } finally {
    watch.destroy();
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** What the file holds from `offset` on (from the start when a new boot truncated it), and where that ends. */
function readFrom(file: string, offset: number): { chunks: string[]; offset: number } {
  const chunks: string[] = [];
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return { chunks, offset };
  }
  try {
    const size = statSync(file).size;
    if (size < offset) offset = 0;
    const buffer = Buffer.alloc(64 * 1024);
    while (offset < size) {
      const read = readSync(fd, buffer, 0, Math.min(buffer.length, size - offset), offset);
      if (read <= 0) break;
      chunks.push(buffer.subarray(0, read).toString("utf8"));
      offset += read;
    }
  } finally {
    closeSync(fd);
  }
  return { chunks, offset };
}
