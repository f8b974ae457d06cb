/** Runs the CLI from source in a child process, the way a user would, with the test's home. */
import { spawn } from "node:child_process";
import { join } from "node:path";

export const repoRoot = join(import.meta.dir, "..", "..");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `input` is written to the CLI's stdin (a pipe); `devNullStdin` gives it /dev/null instead;
 * `prefix` runs it through another command (`ip netns exec NS`, `setpriv ...`).
 */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; input?: string; devNullStdin?: boolean; timeoutMs?: number; prefix?: readonly string[] } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const argv = [...(options.prefix ?? []), process.execPath, join(repoRoot, "main.ts"), ...args];
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      stdio: [options.devNullStdin === true ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (chunk) => (stdout += chunk));
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(options.input ?? "");
  });
}

/** Parses the single JSON document a `--json` command prints. */
export function envelope(result: CliResult): { ok: boolean; command: string; data: any; error: any } {
  return JSON.parse(result.stdout);
}
