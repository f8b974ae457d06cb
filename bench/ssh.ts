/**
 * The SSH side of the bench: the same operations as the agent phases, through smolvm's SSH
 * channel (ssh2 for commands, its SFTP for files) and the system `scp` as an outside peer, with
 * smolvm's key and the sandbox's pinned host key. When the image has no sshd (or set-up failed)
 * every SSH phase reports "unavailable: <reason>" instead of a number.
 */
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { which } from "../lib/host/process.ts";
import type { SmolVM } from "../lib/smolvm.ts";

export interface SshBench {
  /** Connect + authenticate + `exec true`, on a fresh connection that stays open afterwards. */
  firstCommand(): Promise<number>;
  /** `exec true` on the open connection. */
  warmCommand(): Promise<number>;
  /** SFTP put / get of one file, ms. */
  sftpUpload(data: Uint8Array, guestPath: string): Promise<number>;
  sftpDownload(guestPath: string): Promise<{ ms: number; bytes: number }>;
  /** System scp of a host file to / from the guest, ms. */
  scpUpload(hostPath: string, guestPath: string): Promise<number>;
  scpDownload(guestPath: string, hostPath: string): Promise<number>;
  /** Why scp cannot be measured, or undefined when it can. */
  readonly scpUnavailable: string | undefined;
  close(): Promise<void>;
}

/** `readyAt`: when the supervisor recorded sshd as ready for this boot (epoch ms). */
export type SshOpening = { ok: true; ssh: SshBench; readyAt: number } | { ok: false; reason: string };

const SSH_READY_TIMEOUT_MS = 60_000;

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`scp exited with ${code}: ${stderr.trim().split("\n")[0] ?? ""}`))));
  });
}

/**
 * Waits for the sandbox's sshd to be set up and prepares the SSH side, or resolves with the
 * reason SSH cannot be measured. Connecting is left to `firstCommand`, which times it.
 */
export async function openSshBench(vm: SmolVM): Promise<SshOpening> {
  const [{ sshEndpointWhenReady }, { readSandbox }, { readSshState }, { SshChannel }, { ensureUserKey, knownHostsPath }, { openSshOptions }] = await Promise.all([
    import("../lib/sandbox/connection.ts"),
    import("../lib/sandbox/status.ts"),
    import("../lib/ssh/state.ts"),
    import("../lib/ssh/channel.ts"),
    import("../lib/ssh/keys.ts"),
    import("../lib/ssh/openssh.ts"),
  ]);
  let ready: { vm: ReturnType<typeof readSandbox>; endpoint: Awaited<ReturnType<typeof sshEndpointWhenReady>> };
  try {
    const record = readSandbox(vm.id);
    ready = { vm: record, endpoint: await sshEndpointWhenReady(record, SSH_READY_TIMEOUT_MS) };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  const readyAt = readSshState(vm.id)?.at ?? Date.now();
  // Load ssh2 now (~85 ms the first time), so the first command times SSH and not module loading.
  await import("ssh2");
  const key = await ensureUserKey();
  const scp = which("scp");
  const scpBase = [...openSshOptions(key.privatePath, knownHostsPath(vm.id)), "-q", "-P", String(ready.endpoint.port)];
  const remote = (path: string) => `root@${ready.endpoint.host}:${path}`;
  let channel: Awaited<ReturnType<typeof SshChannel.open>> | undefined;
  const open = () => {
    if (channel === undefined) throw new Error("the SSH connection is not open: call firstCommand() first");
    return channel;
  };
  const exec = async () => {
    const result = await open().run(["true"]);
    if (result.exitCode !== 0) throw new Error(`\`true\` over SSH exited with ${result.exitCode}: ${result.stderr.trim()}`);
  };
  const timed = async (body: () => Promise<unknown>) => {
    const t0 = performance.now();
    await body();
    return performance.now() - t0;
  };
  const ssh: SshBench = {
    scpUnavailable: scp === undefined ? "the system scp is not installed (package openssh-client)" : undefined,
    firstCommand: () => timed(async () => {
      channel = await SshChannel.open(ready.vm, ready.endpoint);
      await exec();
    }),
    warmCommand: () => timed(exec),
    sftpUpload: (data, guestPath) => timed(() => open().writeFile(guestPath, data)),
    sftpDownload: async (guestPath) => {
      const t0 = performance.now();
      const handle = await open().readFile(guestPath);
      let bytes = 0;
      for await (const chunk of handle.stream) bytes += (chunk as Buffer).length;
      return { ms: performance.now() - t0, bytes };
    },
    scpUpload: (hostPath, guestPath) => timed(() => run(scp!, [...scpBase, hostPath, remote(guestPath)])),
    scpDownload: async (guestPath, hostPath) => {
      const ms = await timed(() => run(scp!, [...scpBase, remote(guestPath), hostPath]));
      await rm(hostPath, { force: true });
      return ms;
    },
    close: async () => {
      await channel?.close();
    },
  };
  return { ok: true, ssh, readyAt };
}
