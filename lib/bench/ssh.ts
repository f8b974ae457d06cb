/**
 * The SSH side of the bench: the same operations as the agent phases, over the sandbox's sshd
 * (ssh2 for commands and SFTP; the system `scp` as an outside peer). When this build or the
 * image cannot do SSH, every SSH phase reports "unavailable: <reason>" instead of a number.
 */
import type { SmolVM } from "../smolvm.ts";

export interface SshBench {
  /** Connect + authenticate + `exec true`, on a fresh connection that stays open afterwards. */
  firstCommand(): Promise<number>;
  /** `exec true` on the open connection. */
  warmCommand(): Promise<number>;
  /** SFTP put / get of one file, ms. */
  sftpUpload(data: Uint8Array, guestPath: string): Promise<number>;
  sftpDownload(guestPath: string): Promise<{ ms: number; bytes: number }>;
  /** System scp of a host file to / from the guest, ms; undefined with the reason when scp is not installed. */
  scpUpload(hostPath: string, guestPath: string): Promise<number>;
  scpDownload(guestPath: string, hostPath: string): Promise<number>;
  /** Why scp cannot be measured, or undefined when it can. */
  readonly scpUnavailable: string | undefined;
  close(): Promise<void>;
}

/** `readyAt`: when the supervisor recorded sshd as ready for this boot (epoch ms). */
export type SshOpening = { ok: true; ssh: SshBench; readyAt: number } | { ok: false; reason: string };

/**
 * Opens the SSH side for a running sandbox, waiting for its sshd to be set up. Resolves with the
 * reason instead when SSH cannot be measured.
 */
export async function openSshBench(_vm: SmolVM): Promise<SshOpening> {
  return { ok: false, reason: "this build has no SSH channel yet (lib/channels/ssh.ts is not there)" };
}
