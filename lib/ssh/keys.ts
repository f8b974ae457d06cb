/**
 * SSH keys and host-key pinning.
 *
 * - One ed25519 user key per host: `<SMOLVM_HOME>/keys/id_ed25519` (0600) and `.pub`, made on
 *   first need (ssh-keygen when installed, else ssh2's generator). Its public half goes into
 *   every sandbox's root `authorized_keys`.
 * - One ed25519 host key per sandbox, made by smolvm (`vms/<id>/ssh_host_ed25519_key`) and
 *   written into the guest as `/etc/ssh/ssh_host_ed25519_key` on every boot, so the host knows it
 *   before the first connection: `vms/<id>/known_hosts` pins it (no trust on first use; a
 *   mismatch is refused by smolvm and by OpenSSH with StrictHostKeyChecking=yes).
 *
 * Keys are created under a temporary name and hard-linked into place, so concurrent first uses
 * agree on one key.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, link, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { SmolError } from "../errors.ts";
import { paths } from "../paths.ts";
import { runHostChecked, which } from "../host/process.ts";

export interface KeyPair {
  /** The private key file (OpenSSH format, 0600). */
  privatePath: string;
  privateKey: string;
  /** The public key as one authorized_keys line: `ssh-ed25519 AAAA... comment`. */
  publicKey: string;
}

export function userKeyPath(): string {
  return join(paths.keysDir(), "id_ed25519");
}

export function hostKeyPath(vmId: string): string {
  return join(paths.sandboxDir(vmId), "ssh_host_ed25519_key");
}

export function knownHostsPath(vmId: string): string {
  return join(paths.sandboxDir(vmId), "known_hosts");
}

/** The host's smolvm user key, made on first need. */
export function ensureUserKey(): Promise<KeyPair> {
  return ensureKeyPair(userKeyPath(), "smolvm", true);
}

/**
 * The sandbox's SSH host key, made on its first boot and kept with the sandbox. Its directory
 * must exist: a sandbox deleted meanwhile must not get it back.
 */
export function ensureHostKey(vmId: string, name: string): Promise<KeyPair> {
  return ensureKeyPair(hostKeyPath(vmId), `smolvm-host-${name}`, false);
}

/** How known_hosts names an endpoint: bare for port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Pins `publicKey` for host:port in the sandbox's known_hosts (replacing what was there). */
export async function writeKnownHosts(vmId: string, host: string, port: number, publicKey: string): Promise<string> {
  const file = knownHostsPath(vmId);
  const [type, blob] = publicKey.trim().split(/\s+/);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, `${knownHostsName(host, port)} ${type} ${blob}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return file;
}

/**
 * The raw key blobs pinned for host:port in a known_hosts file (what ssh2's host verifier is
 * given). Hashed entries and markers are not written by smolvm and are ignored.
 */
export function pinnedKeys(text: string, host: string, port: number): Buffer[] {
  const wanted = knownHostsName(host, port);
  const keys: Buffer[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("@")) continue;
    const [names, , blob] = line.split(/\s+/);
    if (names === undefined || blob === undefined) continue;
    if (names.split(",").includes(wanted)) keys.push(Buffer.from(blob, "base64"));
  }
  return keys;
}

/** Reads the sandbox's pinned host keys; empty when it has no known_hosts yet. */
export function readPinnedKeys(vmId: string, host: string, port: number): Buffer[] {
  const file = knownHostsPath(vmId);
  if (!existsSync(file)) return [];
  return pinnedKeys(readFileSync(file, "utf8"), host, port);
}

async function ensureKeyPair(privatePath: string, comment: string, makeDir: boolean): Promise<KeyPair> {
  const pubPath = `${privatePath}.pub`;
  if (!existsSync(privatePath)) {
    if (makeDir) await mkdir(dirname(privatePath), { recursive: true, mode: 0o700 });
    const scratch = `${privatePath}.${process.pid}.${randomBytes(4).toString("hex")}.new`;
    try {
      const made = await generateKeyPair(comment, scratch);
      try {
        await link(scratch, privatePath);
        await writeFile(`${pubPath}.${process.pid}.tmp`, `${made.publicKey}\n`, { mode: 0o644 });
        await rename(`${pubPath}.${process.pid}.tmp`, pubPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        // Another process made the key first: use theirs.
      }
    } finally {
      await rm(scratch, { force: true });
      await rm(`${scratch}.pub`, { force: true });
    }
  }
  const privateKey = await readFile(privatePath, "utf8");
  await chmod(privatePath, 0o600);
  let publicKey = existsSync(pubPath) ? (await readFile(pubPath, "utf8")).trim() : "";
  if (publicKey === "") {
    // The winner of a race has not written .pub yet, or it was removed: derive it.
    publicKey = await publicKeyOf(privateKey, comment);
    await writeFile(pubPath, `${publicKey}\n`, { mode: 0o644 });
  }
  return { privatePath, privateKey, publicKey };
}

/** Writes a new ed25519 private key to `file` (0600) and returns its public line. */
async function generateKeyPair(comment: string, file: string): Promise<{ publicKey: string }> {
  const keygen = which("ssh-keygen");
  if (keygen !== undefined) {
    await runHostChecked(keygen, ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], {
      action: "Cannot create an SSH key",
      timeoutMs: 30_000,
    });
    return { publicKey: (await readFile(`${file}.pub`, "utf8")).trim() };
  }
  const { utils } = await import("ssh2");
  const pair = utils.generateKeyPairSync("ed25519", { comment });
  await writeFile(file, pair.private, { mode: 0o600 });
  return { publicKey: pair.public.trim() };
}

async function publicKeyOf(privateKey: string, comment: string): Promise<string> {
  const { utils } = await import("ssh2");
  const parsed = utils.parseKey(privateKey);
  if (parsed instanceof Error || Array.isArray(parsed)) {
    throw new SmolError("STATE_CORRUPT", `Cannot read the SSH key: ${parsed instanceof Error ? parsed.message : "several keys in one file"}`, {
      hint: `remove ${userKeyPath()} to have smolvm make a new one (sandboxes get it on their next boot)`,
    });
  }
  return `${parsed.type} ${parsed.getPublicSSH().toString("base64")} ${comment}`;
}
