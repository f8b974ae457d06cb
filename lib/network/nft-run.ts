/**
 * Loading nft batches: in this process's network namespace (TAP mode), or in the namespace of a
 * user-mode sandbox, entered through its VMM's pid with nsenter (the namespace is owned by a user
 * namespace of the same user, so no privilege beyond the user's own is needed).
 */
import { spawn } from "node:child_process";
import { CommandFailedError, HostDependencyMissingError } from "../errors.ts";
import { aptInstallHint, DEBIAN_PACKAGES } from "../host/packages.ts";
import { which } from "../host/process.ts";

export interface NftTarget {
  /** A process inside the sandbox's own user and network namespace; absent: this process's namespace. */
  pid?: number;
}

export function nftBinary(): string {
  const nft = which("nft");
  if (nft === undefined) {
    throw new HostDependencyMissingError('Cannot set up the sandbox network: "nft" is not installed', {
      hint: aptInstallHint(DEBIAN_PACKAGES.nft),
    });
  }
  return nft;
}

/** The argv that runs `argv` inside the namespaces of `pid` (or as is, without one). */
export function inNamespaceOf(pid: number | undefined, argv: readonly string[]): string[] {
  if (pid === undefined) return [...argv];
  return ["nsenter", "-t", String(pid), "-U", "-n", "--preserve-credentials", "--", ...argv];
}

/** Runs a program with `input` on its stdin; resolves with its stdout, rejects with its stderr. */
export function runWithInput(argv: readonly string[], input: string, action: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.stdin.on("error", () => {}); // a child that exits early closes its stdin: its status says why
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new HostDependencyMissingError(`${action}: cannot run "${argv[0]}": ${error.message}`, {
        hint: aptInstallHint(DEBIAN_PACKAGES.nft, "util-linux"),
      }));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(Buffer.concat(out).toString("utf8"));
      const why = Buffer.concat(err).toString("utf8").trim().split("\n").filter(Boolean).slice(0, 4).join(" | ") ||
        (signal ? `killed by ${signal}` : `exit status ${code}`);
      reject(new CommandFailedError(`${action}: ${why}`, { details: { argv: [...argv], input } }));
    });
    child.stdin.end(input);
  });
}

/** Loads an nft batch (all of it or, on any error, none of it). */
export async function applyNft(batch: string, target: NftTarget = {}, action = "Cannot load the sandbox's firewall rules"): Promise<void> {
  if (batch.trim() === "") return;
  await runWithInput(inNamespaceOf(target.pid, [nftBinary(), "-f", "-"]), batch, action);
}

/** `nft list table inet smolvm` (empty when the table does not exist). */
export async function listSmolvmTable(target: NftTarget = {}): Promise<string> {
  try {
    return await runWithInput(inNamespaceOf(target.pid, [nftBinary(), "list", "table", "inet", "smolvm"]), "", "Cannot list the firewall rules");
  } catch (error) {
    if (error instanceof CommandFailedError && /No such file or directory/.test(error.message)) return "";
    throw error;
  }
}
