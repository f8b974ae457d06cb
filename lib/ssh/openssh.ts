/**
 * The system OpenSSH client's command line against a sandbox: always real SSH, with smolvm's key
 * and the sandbox's pinned known_hosts (StrictHostKeyChecking=yes, so a changed host key is
 * refused). `smolvm ssh` runs it; `smolvm ssh --print` shows it for scripts and scp.
 */
import { ensureUserKey, knownHostsPath } from "./keys.ts";
import type { SandboxRecord } from "../state/record.ts";
import type { SshEndpoint } from "./state.ts";

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

/** The ssh argv (without the program) for a sandbox whose sshd is ready at `endpoint`. */
export async function sshArgs(vm: SandboxRecord, endpoint: SshEndpoint, command: string[] = []): Promise<{ args: string[]; keyPath: string; knownHosts: string }> {
  const key = await ensureUserKey();
  const knownHosts = knownHostsPath(vm.id);
  const args = [...openSshOptions(key.privatePath, knownHosts), "-p", String(endpoint.port), `root@${endpoint.host}`];
  return { args: command.length > 0 ? [...args, "--", ...command] : args, keyPath: key.privatePath, knownHosts };
}
