/**
 * A sandbox's record: what the state store keeps of it, and the one check of a stored row. The
 * store (sandboxes.ts) reads rows through `toRecord`; a sandbox's mirror in its directory
 * (mirror.ts) is read through `recordFromMirror`, which applies the same check to the same
 * columns, so a record means the same whichever of the two it came from.
 */
import { sandboxConfigSchema, type SandboxConfig } from "../config.ts";
import { isErrorCode, SmolError, type ErrorCode } from "../errors.ts";
import { paths } from "../paths.ts";

/** What to run when the store is damaged: it rebuilds it from the sandboxes' own directories. */
export const REPAIR_COMMAND = "smolvm doctor --repair";

export const SANDBOX_STATUSES = ["creating", "running", "paused", "stopped", "failed", "deleting"] as const;
export type SandboxStatus = (typeof SANDBOX_STATUSES)[number];

/** A row as stored; its config (JSON) is checked when first read (`toRecord`). */
interface StoredRow {
  id: string;
  name: string;
  status: SandboxStatus;
  config: string;
  backend: "qemu" | "firecracker" | null;
  channel: "agent" | "ssh" | null;
  ip: string | null;
  ssh_port: number | null;
  dns_port: number | null;
  cid: number | null;
  supervisor_pid: number | null;
  vmm_pid: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

/**
 * What each column may hold: a type (`?`: or null) or the values allowed. Checked by hand, not
 * with zod: every `smolvm exec` reads one row and nothing else that needs zod, and building and
 * first running a schema for it cost that new process 1-2 ms (measured, compiled binary).
 */
const ROW_COLUMNS: Record<keyof StoredRow, "string" | "number" | "string?" | "number?" | readonly (string | null)[]> = {
  id: "string",
  name: "string",
  status: SANDBOX_STATUSES,
  config: "string",
  backend: ["qemu", "firecracker", null],
  channel: ["agent", "ssh", null],
  ip: "string?",
  ssh_port: "number?",
  dns_port: "number?",
  cid: "number?",
  supervisor_pid: "number?",
  vmm_pid: "number?",
  last_error: "string?",
  created_at: "number",
  updated_at: "number",
};

/** The row, or the first column that holds what smolvm never writes there. */
function checkedRow(row: unknown): StoredRow {
  if (typeof row !== "object" || row === null) throw new Error("a sandbox record is not a row");
  for (const [column, allowed] of Object.entries(ROW_COLUMNS)) {
    const value = (row as Record<string, unknown>)[column];
    const fits = typeof allowed !== "string" ? allowed.includes(value as string | null)
      : (value === null && allowed.endsWith("?")) || typeof value === allowed.replace("?", "");
    if (!fits) {
      const expected = typeof allowed === "string" ? allowed.replace("?", " or null") : allowed.map((v) => JSON.stringify(v)).join(", ");
      throw new Error(`sandbox record column ${column} holds ${JSON.stringify(value) ?? "nothing"}, not ${expected}`);
    }
  }
  return row as StoredRow;
}

export interface SandboxRecord {
  id: string;
  name: string;
  status: SandboxStatus;
  config: SandboxConfig;
  backend: "qemu" | "firecracker" | null;
  /** The channel persisted for this sandbox (`agent` = virtio-serial or vsock), if one was chosen. */
  channel: "agent" | "ssh" | null;
  ip: string | null;
  sshPort: number | null;
  /** The host port of the sandbox's DNS responder (user and TAP networks). */
  dnsPort: number | null;
  cid: number | null;
  supervisorPid: number | null;
  vmmPid: number | null;
  /** Why the sandbox last failed (its boot, or its VM exiting unexpectedly); null once it runs again. */
  lastError: SandboxError | null;
  createdAt: number;
  updatedAt: number;
}

/** A failure as the record keeps it: the error code scripts branch on, and the message. */
export interface SandboxError {
  code: ErrorCode;
  message: string;
}

/** A stored row as a record; STATE_CORRUPT naming the column when it holds what smolvm never writes. */
export function toRecord(row: unknown): SandboxRecord {
  let r: StoredRow;
  try {
    r = checkedRow(row);
  } catch (error) {
    throw corruptRow(error);
  }
  const record = {
    id: r.id,
    name: r.name,
    status: r.status,
    backend: r.backend,
    channel: r.channel,
    ip: r.ip,
    sshPort: r.ssh_port,
    dnsPort: r.dns_port,
    cid: r.cid,
    supervisorPid: r.supervisor_pid,
    vmmPid: r.vmm_pid,
    lastError: r.last_error === null ? null : parseLastError(r.last_error),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
  // Read as JSON with the row, but checked against its schema only when first read: most
  // commands that read a sandbox (a plain `smolvm exec`) never look at its config, and building
  // the config's schema cost each of them 2 ms. A config of the wrong shape fails the same way
  // (STATE_CORRUPT), when it is read.
  const stored = storedConfig(r.config);
  let config: SandboxConfig | undefined;
  return Object.defineProperty(record, "config", {
    enumerable: true,
    configurable: true,
    get: () => (config ??= checkedConfig(stored)),
  }) as SandboxRecord;
}

function storedConfig(text: string): object {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw corruptRow(new Error(`config is not JSON: ${(error as Error).message}`, { cause: error }));
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw corruptRow(new Error("config is not a JSON object"));
  return value;
}

function checkedConfig(stored: object): SandboxConfig {
  const parsed = sandboxConfigSchema.safeParse(stored);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw corruptRow(new Error(`config is not a valid sandbox config: ${issue?.path.join(".") || "config"}: ${issue?.message}`, { cause: parsed.error }));
}

/** A row no smolvm wrote: the store was edited or damaged. */
function corruptRow(error: unknown): SmolError {
  return new SmolError("STATE_CORRUPT", `Cannot use the state store "${paths.stateDb()}": ${(error as Error).message}`, {
    hint: `\`${REPAIR_COMMAND}\` rebuilds the store from the sandbox directories`,
    cause: error,
  });
}

/**
 * The stored failure: JSON `{code, message}`, or the "CODE: message" text rows of earlier
 * versions kept.
 */
function parseLastError(text: string): SandboxError {
  let parsed: { code?: unknown; message?: unknown } | null | undefined;
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // An older row: plain text.
  }
  // A code this smolvm does not know (a newer one wrote it) is kept as INTERNAL with its message.
  if (typeof parsed?.message === "string") return { code: isErrorCode(parsed.code) ? parsed.code : "INTERNAL", message: parsed.message };
  const match = /^([A-Z_]+): ([\s\S]*)$/.exec(text);
  return match !== null && isErrorCode(match[1]) ? { code: match[1], message: match[2]! } : { code: "INTERNAL", message: text };
}

/** The version of `sandbox.json` this smolvm writes and reads. */
export const MIRROR_VERSION = 1;

/**
 * A record as its mirror keeps it (`sandbox.json`: the record's own JSON, lib/state/mirror.ts),
 * checked column by column as a stored row is: the one reader of that file, for the commands
 * that reach a running sandbox by it and for `doctor --repair`. Throws what a damaged row throws.
 */
export function recordFromMirror(value: unknown): SandboxRecord {
  const m = (typeof value === "object" && value !== null ? value : {}) as Partial<Record<keyof SandboxRecord | "version", unknown>>;
  if (m.version !== MIRROR_VERSION) throw corruptRow(new Error(`a sandbox.json of version ${JSON.stringify(m.version) ?? "none"}, not ${MIRROR_VERSION}`));
  const row: Record<keyof StoredRow, unknown> = {
    id: m.id,
    name: m.name,
    status: m.status,
    config: m.config === undefined ? undefined : JSON.stringify(m.config),
    backend: m.backend,
    channel: m.channel,
    ip: m.ip,
    ssh_port: m.sshPort,
    // Mirrors written before sandboxes had a DNS responder lack it; the next start allocates one.
    dns_port: m.dnsPort === undefined ? null : m.dnsPort,
    cid: m.cid,
    supervisor_pid: m.supervisorPid,
    vmm_pid: m.vmmPid,
    last_error: m.lastError === null || m.lastError === undefined ? m.lastError : JSON.stringify(m.lastError),
    created_at: m.createdAt,
    updated_at: m.updatedAt,
  };
  return toRecord(row);
}
