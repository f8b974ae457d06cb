/**
 * The system OpenSSH client against a sandbox: always real SSH, with smolvm's key and the
 * sandbox's pinned known_hosts (StrictHostKeyChecking=yes, so a changed host key is refused).
 * `smolvm ssh` runs it; `smolvm ssh --print` shows the same command line for scripts and scp.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { HostDependencyMissingError } from "../errors.ts";
import { which } from "../host/process.ts";
import { ensureUserKey, knownHostsPath } from "./keys.ts";
import { waitForSsh } from "./state.ts";

/** The options every OpenSSH tool (ssh, scp, sftp) needs for a sandbox. */
export function openSshOptions(keyPath: string, knownHosts: string): string[] {
  return [
    "-i", keyPath,
    "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "UpdateHostKeys=no",
    "-o", "IdentitiesOnly=yes",
    "-o", "PasswordAuthentication=no",
    "-o", "LogLevel=ERROR",
  ];
}

/** The ssh argv (without the program) for a running sandbox, once its sshd is ready. */
export async function sshArgs(idOrName: string, command: string[] = []): Promise<{ args: string[]; port: number; keyPath: string; knownHosts: string }> {
  const { vm, endpoint } = await waitForSsh(idOrName);
  const key = await ensureUserKey();
  const knownHosts = knownHostsPath(vm.id);
  const args = [...openSshOptions(key.privatePath, knownHosts), "-p", String(endpoint.port), `root@${endpoint.host}`];
  return { args: command.length > 0 ? [...args, "--", ...command] : args, port: endpoint.port, keyPath: key.privatePath, knownHosts };
}

/** Runs the system `ssh` with the terminal attached; resolves to its exit status. */
export async function runOpenSsh(args: string[]): Promise<number> {
  const ssh = which("ssh");
  if (ssh === undefined) {
    throw new HostDependencyMissingError("Cannot run `smolvm ssh`: the OpenSSH client (ssh) is not installed", {
      hint: "install it (`apt-get install openssh-client`), or use `smolvm shell`, which needs no SSH",
    });
  }
  // Ctrl-C belongs to the remote side while ssh runs: ssh sees it, smolvm must not die of it.
  const ignore = () => {};
  process.on("SIGINT", ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(ssh, args, { stdio: "inherit" });
      child.once("error", reject);
      child.once("exit", (code, signal) =>
        resolve(code ?? 128 + ((constants.signals as Record<string, number>)[signal ?? "SIGKILL"] ?? 9)),
      );
    });
  } finally {
    process.off("SIGINT", ignore);
  }
}
