/**
 * Running host programs (qemu-img, mkfs.ext4, make, apt-get) and finding them on PATH.
 */
import { execFile, type ExecFileOptions } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { CommandFailedError, HostDependencyMissingError } from "../errors.ts";

export interface HostResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion and returns its output, whatever its exit status. */
export function runHost(
  file: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<HostResult> {
  const execOptions: ExecFileOptions = {
    timeout: options.timeoutMs ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
    env: options.env ?? process.env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  };
  return new Promise((resolve, reject) => {
    execFile(file, args, { ...execOptions, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === "ENOENT") {
        reject(new HostDependencyMissingError(`Cannot run "${file}": it is not installed`, {
          hint: "run `smolvm doctor` to see what is missing and `smolvm setup` to install it",
        }));
        return;
      }
      const failure = error as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({
        code: failure ? (typeof failure.code === "number" ? failure.code : null) : 0,
        signal: failure?.signal ?? null,
        stdout: String(stdout),
        stderr: String(stderr),
      });
    });
  });
}

/** Like runHost, but a non-zero exit is a CommandFailedError carrying the program's stderr. */
export async function runHostChecked(
  file: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string; action?: string } = {},
): Promise<HostResult> {
  const result = await runHost(file, args, options);
  if (result.code !== 0) {
    const why = result.stderr.trim().split("\n").slice(-3).join(" | ") ||
      (result.signal ? `killed by ${result.signal}` : `exit status ${result.code}`);
    throw new CommandFailedError(`${options.action ?? `Cannot run ${file}`}: ${file} failed: ${why}`, {
      details: { file, args: [...args], code: result.code, signal: result.signal },
    });
  }
  return result;
}

/** The full path of a program on PATH (plus the sbin directories root tools live in), if any. */
export function which(program: string, path: string = process.env.PATH ?? ""): string | undefined {
  if (program.includes("/")) return isExecutable(program) ? program : undefined;
  const dirs = [...path.split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, program);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
