/**
 * The state database: one SQLite file in WAL mode, opened by every smolvm process (CLI calls,
 * SDK users, supervisors) at once. Concurrency is SQLite's: writers serialise on
 * `BEGIN IMMEDIATE` and wait on a busy timeout instead of failing.
 *
 * Schema changes are numbered migrations applied in order and recorded in `user_version`, so a
 * newer smolvm upgrades an older home in place and an older smolvm refuses a newer home rather
 * than misreading it.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { SmolError } from "../errors.ts";
import { paths } from "../paths.ts";

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
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export type Db = DatabaseSync;

/** Opens (creating if needed) the state database and brings its schema up to date. */
export function openStateDb(file: string = paths.stateDb()): Db {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(file);
  } catch (cause) {
    throw new SmolError("STATE_CORRUPT", `Cannot open the state database "${file}": ${String(cause)}`, {
      hint: "check the file's permissions, or move it aside to start with an empty state",
      cause,
    });
  }
  // The busy timeout must be set before anything that can contend, including the WAL switch.
  db.exec("PRAGMA busy_timeout = 30000");
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = ON");
  migrate(db, file);
  return db;
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
