/**
 * The state database: one SQLite file in WAL mode, opened by every smolvm process (CLI calls,
 * SDK users, supervisors) at once. Concurrency is SQLite's: writers serialise on
 * `BEGIN IMMEDIATE` and wait on a busy timeout instead of failing.
 *
 * Schema changes are numbered migrations applied in order and recorded in `user_version`, so a
 * newer smolvm upgrades an older home in place and an older smolvm refuses a newer home rather
 * than misreading it.
 */
import { closeSync, existsSync, fstatSync, linkSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { diskFullError, freeBytes, SmolError } from "../errors.ts";
import { paths } from "../paths.ts";
import { randomHex } from "../util/random.ts";
import { REPAIR_COMMAND } from "./record.ts";

const MIGRATIONS: readonly string[] = [
  // 1: sandboxes and the resources allocated to them. Allocated values are UNIQUE so that even a
  // logic error in allocation cannot hand one address to two sandboxes.
  `CREATE TABLE vms (
     id             TEXT PRIMARY KEY,
     name           TEXT NOT NULL UNIQUE,
     status         TEXT NOT NULL,
     config         TEXT NOT NULL,
     backend        TEXT,
     channel        TEXT,
     ip             TEXT UNIQUE,
     ssh_port       INTEGER UNIQUE,
     cid            INTEGER UNIQUE,
     supervisor_pid INTEGER,
     vmm_pid        INTEGER,
     last_error     TEXT,
     created_at     INTEGER NOT NULL,
     updated_at     INTEGER NOT NULL
   ) STRICT`,
  // 2: the host port of the sandbox's DNS responder (user and TAP networks).
  `ALTER TABLE vms ADD COLUMN dns_port INTEGER;
   CREATE UNIQUE INDEX vms_dns_port ON vms (dns_port)`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export type Db = DatabaseSync;

/**
 * Opens the state database (creating it if there is none) and brings its schema up to date.
 *
 * The store is never silently replaced: a new one is built whole under another name and linked
 * into place, so a `state.db` that exists was complete once, and one that is empty, cut short or
 * not a database at all stops every command with STATE_CORRUPT naming the file and the repair.
 */
export function openStateDb(file: string = paths.stateDb()): Db {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  if (!existsSync(file)) initialize(file);
  let db: DatabaseSync;
  try {
    if (statSync(file).size === 0) throw new SmolError("STATE_CORRUPT", `Cannot use the state store "${file}": the file is empty`, { hint: repairHint(file) });
    db = new DatabaseSync(file);
  } catch (cause) {
    throw storeFailure(file, cause);
  }
  try {
    // The busy timeout must be set before anything that can contend, including the WAL switch.
    db.exec("PRAGMA busy_timeout = 30000");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA foreign_keys = ON");
    // Every page is read (well under a millisecond for a store of sandbox rows): a file cut short
    // is found here, before anything is written over it.
    const check = db.prepare("PRAGMA quick_check(1)").get() as { quick_check?: string } | undefined;
    if (check?.quick_check !== "ok") {
      throw new SmolError("STATE_CORRUPT", `Cannot use the state store "${file}": it is damaged (${check?.quick_check ?? "no answer to its integrity check"})`, { hint: repairHint(file) });
    }
    migrate(db, file);
  } catch (cause) {
    db.close();
    throw storeFailure(file, cause);
  }
  keepReserve(file);
  return db;
}

/**
 * Whether the store's file can be whole, judged from its 100-byte header alone (SQLite's file
 * format): its magic string, a valid page size, and at least the pages the header counts. For
 * reads that take no row from the store (a sandbox reached through its mirror, mirror.ts), so
 * that a store that is empty, cut short or not a database stops them as it stops every other
 * command; damage within a page is found by the next command that opens the store.
 */
export function storeLooksWhole(file: string = paths.stateDb()): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const header = Buffer.alloc(100);
    if (readSync(fd, header, 0, header.length, 0) < header.length) return false;
    if (header.toString("latin1", 0, 16) !== "SQLite format 3\0") return false;
    const stored = header.readUInt16BE(16);
    const pageSize = stored === 1 ? 65536 : stored;
    if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) return false;
    // The page count is valid only while the version it was written at is the file's.
    const pages = header.readUInt32BE(92) === header.readUInt32BE(24) ? header.readUInt32BE(28) : 1;
    return fstatSync(fd).size >= pages * pageSize;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Room kept for the store's own records on a full disk (`state.db.reserve`): a guest or another
 * program filling the host's disk must not leave the store unable to say so. When a write finds
 * the disk full, the reserve is given up and the write tried again (writing), and the reserve is
 * made again once there is room.
 */
const RESERVE_BYTES = 1024 * 1024;
/** Below this much free space the reserve is not made again (it would take what is left). */
const RESERVE_REMAKE_FREE = 8 * RESERVE_BYTES;

function reservePath(file: string): string {
  return `${file}.reserve`;
}

function keepReserve(file: string): void {
  const reserve = reservePath(file);
  if (existsSync(reserve)) return;
  try {
    if ((freeBytes(dirname(file)) ?? 0) < RESERVE_REMAKE_FREE) return;
    // Written, not sized: a sparse file would hold no room at all.
    writeFileSync(`${reserve}.${process.pid}`, Buffer.alloc(RESERVE_BYTES));
    renameSync(`${reserve}.${process.pid}`, reserve);
  } catch {
    rmSync(`${reserve}.${process.pid}`, { force: true });
  }
}

/** Runs one write (a whole transaction); on a full disk, once more after giving up the reserve. */
export function writing<T>(file: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    const full = ((error as { errcode?: number }).errcode ?? 0) & 0xff;
    if (full !== 13 || !existsSync(reservePath(file))) throw error;
    rmSync(reservePath(file), { force: true });
    return work();
  }
}

/** Builds an empty store under another name and links it into place (unless another process won). */
function initialize(file: string): void {
  const temp = `${file}.new-${process.pid}-${randomHex(4)}`;
  try {
    const db = new DatabaseSync(temp);
    try {
      db.exec("PRAGMA journal_mode = WAL");
      migrate(db, temp);
    } finally {
      db.close();
    }
    try {
      linkSync(temp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  } catch (cause) {
    throw storeFailure(file, cause);
  } finally {
    for (const leftover of [temp, `${temp}-wal`, `${temp}-shm`]) rmSync(leftover, { force: true });
  }
}

function repairHint(file: string): string {
  return `\`${REPAIR_COMMAND}\` moves "${file}" aside and rebuilds the store from the sandbox directories (each keeps a sandbox.json); nothing in them is touched`;
}

/** Whether `error` came from SQLite (or the file system under it), not from the code using the store. */
export function isStoreError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === "ERR_SQLITE_ERROR" || code === "ENOSPC" || code === "EDQUOT" || code === "EIO";
}

/**
 * A failure of the state store as smolvm's own error: damage is STATE_CORRUPT with the repair, a
 * full disk HOST_DISK_FULL, anything else IO_ERROR; all name the file.
 */
export function storeFailure(file: string, error: unknown): SmolError {
  if (error instanceof SmolError) return error;
  const sqlite = error as { errcode?: number; errstr?: string; code?: string; message?: string };
  const primary = typeof sqlite.errcode === "number" ? sqlite.errcode & 0xff : undefined;
  const why = sqlite.errstr ?? sqlite.message ?? String(error);
  if (primary === 11 || primary === 26) {
    return new SmolError("STATE_CORRUPT", `Cannot use the state store "${file}": it is damaged (${why})`, { hint: repairHint(file), cause: error });
  }
  if (primary === 13 || sqlite.code === "ENOSPC") return diskFullError(file, { action: `Cannot write the state store "${file}"`, cause: error });
  if (primary === 5) {
    return new SmolError("IO_ERROR", `Cannot use the state store "${file}": another process holds it locked (${why})`, { hint: "try again; if it persists, look for a stuck smolvm process", cause: error });
  }
  return new SmolError("IO_ERROR", `Cannot use the state store "${file}": ${why}`, {
    hint: "check the file's permissions and the file system it is on",
    cause: error,
  });
}

function migrate(db: Db, file: string): void {
  const current = userVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new SmolError(
      "STATE_CORRUPT",
      `Cannot use the state database "${file}": it has schema version ${current}, this smolvm knows up to ${SCHEMA_VERSION}`,
      { hint: "upgrade smolvm, or point SMOLVM_HOME at another directory" },
    );
  }
  if (current === SCHEMA_VERSION) return;
  transaction(db, () => {
    // Another process may have migrated while this one waited for the write lock.
    for (let version = userVersion(db); version < SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version]!);
      db.exec(`PRAGMA user_version = ${version + 1}`);
    }
  });
}

function userVersion(db: Db): number {
  const row = db.prepare("PRAGMA user_version").get() as { user_version: number };
  return row.user_version;
}

/**
 * Runs `work` inside `BEGIN IMMEDIATE`: the write lock is taken up front, so a read-then-write
 * allocation cannot interleave with another process's.
 */
export function transaction<T>(db: Db, work: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = work();
    db.exec("COMMIT");
    return result;
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
}
