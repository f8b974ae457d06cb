/** A sandbox's console log: `logs --tail` and `logs --follow`. */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { tailOf } from "../util/tail.ts";

interface LogSource {
  info(): Promise<{ consoleLog: string; status: string }>;
}

/** Writes the log (or its last `tail` lines); with `follow`, keeps writing until the VM stops. */
export async function printLog(vm: LogSource, options: { tail?: number; follow: boolean }, write: (chunk: string) => void): Promise<void> {
  const { consoleLog } = await vm.info();
  let offset = 0;
  try {
    offset = statSync(consoleLog).size;
  } catch {
    // No output yet.
  }
  if (options.tail !== undefined) {
    const text = tailOf(consoleLog, options.tail);
    if (text !== "") write(`${text}\n`);
  } else {
    offset = copyFrom(consoleLog, 0, write);
  }
  if (!options.follow) return;
  for (;;) {
    offset = copyFrom(consoleLog, offset, write);
    const { status } = await vm.info();
    if (status !== "running" && status !== "paused" && status !== "creating") {
      copyFrom(consoleLog, offset, write);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function copyFrom(file: string, offset: number, write: (chunk: string) => void): number {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return offset;
  }
  try {
    const size = statSync(file).size;
    if (size < offset) offset = 0; // a new boot truncated the log
    const buffer = Buffer.alloc(64 * 1024);
    while (offset < size) {
      const read = readSync(fd, buffer, 0, Math.min(buffer.length, size - offset), offset);
      if (read <= 0) break;
      write(buffer.subarray(0, read).toString("utf8"));
      offset += read;
    }
    return offset;
  } finally {
    closeSync(fd);
  }
}
