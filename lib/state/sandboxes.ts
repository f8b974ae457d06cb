/**
 * Sandbox records in the state database, and the allocation of everything a sandbox holds
 * (name, TAP address, SSH port, DNS responder port, vsock CID) in the same transaction as the
 * row itself.
 */
import type { SandboxConfig } from "../config.ts";
import { AlreadyExistsError, NotFoundError } from "../errors.ts";
import { boundUdpPorts, listeningTcpPorts } from "../host/ports.ts";
import { allocateCid, allocateDnsPort, allocateIp, allocateSshPort, generateId, generateName } from "./allocate.ts";
import { paths } from "../paths.ts";
import { unlinkName, writeMirror } from "./mirror.ts";
import { isStoreError, openStateDb, storeFailure, transaction, writing, type Db } from "./db.ts";
import { toRecord, type SandboxRecord } from "./record.ts";

export interface NewSandbox {
  /** Chosen by the caller when it must name the sandbox's directory before the row exists. */
  id?: string;
  config: SandboxConfig;
  backend: "qemu" | "firecracker";
  /** Which pooled resources this sandbox needs; decided by its backend and network mode. */
  allocate: { ip?: boolean; sshPort?: boolean; dnsPort?: boolean; cid?: boolean };
}

/** `config` changes only where the sandbox's owner may change it while it lives (its egress policy). */
export type SandboxPatch = Partial<
  Pick<SandboxRecord, "status" | "channel" | "supervisorPid" | "vmmPid" | "lastError" | "backend" | "config">
>;

const PATCH_COLUMNS: Record<keyof SandboxPatch, string> = {
  status: "status",
  channel: "channel",
  supervisorPid: "supervisor_pid",
  vmmPid: "vmm_pid",
  lastError: "last_error",
  backend: "backend",
  config: "config",
};

export class StateStore {
  private constructor(
    private readonly db: Db,
    private readonly file: string,
  ) {}

  static open(file: string = paths.stateDb()): StateStore {
    return new StateStore(openStateDb(file), file);
  }

  close(): void {
    this.db.close();
  }

  /** Inserts a sandbox with a unique name and fresh allocations, all in one write transaction. */
  create(request: NewSandbox): SandboxRecord {
    const now = Date.now();
    const created = writing(this.file, () => transaction(this.db, () => {
      const names = new Set(this.column<string>("name"));
      const wanted = request.config.name;
      if (wanted !== undefined && names.has(wanted)) {
        throw new AlreadyExistsError(`Cannot create sandbox "${wanted}": the name is taken`, {
          hint: `pick another --name, or remove the old one with \`smolvm delete ${wanted}\``,
        });
      }
      const name = wanted ?? generateName(names);
      const id = request.id ?? generateId();
      const ip = request.allocate.ip ? allocateIp(this.column<string>("ip")) : null;
      const sshPort = request.allocate.sshPort ? allocateSshPort(this.hostPorts()) : null;
      const dnsPort = request.allocate.dnsPort ? allocateDnsPort([...this.hostPorts(), ...boundUdpPorts(), ...(sshPort === null ? [] : [sshPort])]) : null;
      const cid = request.allocate.cid ? allocateCid(this.column<number>("cid")) : null;
      const config = { ...request.config, name };
      this.db
        .prepare(
          `INSERT INTO vms (id, name, status, config, backend, ip, ssh_port, dns_port, cid, created_at, updated_at)
           VALUES (?, ?, 'creating', ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(id, name, JSON.stringify(config), request.backend, ip, sshPort, dnsPort, cid, now, now);
      return this.mustGet(id);
    }));
    writeMirror(created);
    return created;
  }

  /**
   * Puts back the row of a sandbox whose store was lost (doctor --repair), as its mirror had it.
   * Its allocations are its own again unless another row holds them meanwhile: then it gets new
   * ones, and the repair says so.
   */
  restore(record: SandboxRecord): { record: SandboxRecord; reallocated: string[] } {
    const restored = writing(this.file, () => transaction(this.db, () => {
      if (this.column<string>("name").includes(record.name)) {
        throw new AlreadyExistsError(`Cannot restore sandbox "${record.name}" (${record.id}): another sandbox has its name`);
      }
      const reallocated: string[] = [];
      const keep = <T extends string | number>(value: T | null, column: "ip" | "ssh_port" | "dns_port" | "cid", taken: T[], fresh: (taken: T[]) => T): T | null => {
        if (value === null) return null;
        if (!taken.includes(value)) return value;
        reallocated.push(column);
        return fresh(taken);
      };
      const ip = keep(record.ip, "ip", this.column<string>("ip"), allocateIp);
      // Both port columns draw on one range of host ports: each is checked against both.
      const ports = [...this.column<number>("ssh_port"), ...this.column<number>("dns_port")];
      const sshPort = keep(record.sshPort, "ssh_port", ports, () => allocateSshPort(this.hostPorts()));
      const dnsPort = keep(record.dnsPort, "dns_port", [...ports, ...(sshPort === null ? [] : [sshPort])], (taken) =>
        allocateDnsPort([...taken, ...this.hostPorts(), ...boundUdpPorts()]));
      const cid = keep(record.cid, "cid", this.column<number>("cid"), allocateCid);
      this.db
        .prepare(
          `INSERT INTO vms (id, name, status, config, backend, channel, ip, ssh_port, dns_port, cid, supervisor_pid, vmm_pid, last_error, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(record.id, record.name, record.status, JSON.stringify(record.config), record.backend, record.channel, ip, sshPort, dnsPort, cid,
          record.supervisorPid, record.vmmPid, record.lastError === null ? null : JSON.stringify(record.lastError), record.createdAt, Date.now());
      return { record: this.mustGet(record.id), reallocated };
    }));
    writeMirror(restored.record);
    return restored;
  }

  /** Finds a sandbox by id or by name. */
  find(idOrName: string): SandboxRecord | undefined {
    const row = this.db.prepare("SELECT * FROM vms WHERE id = ? OR name = ? LIMIT 1").get(idOrName, idOrName);
    return row === undefined ? undefined : toRecord(row);
  }

  get(idOrName: string): SandboxRecord {
    const found = this.find(idOrName);
    if (found === undefined) {
      throw new NotFoundError(`Cannot find sandbox "${idOrName}"`, {
        hint: "`smolvm list` shows the sandboxes that exist",
      });
    }
    return found;
  }

  list(): SandboxRecord[] {
    return this.db.prepare("SELECT * FROM vms ORDER BY created_at, name").all().map(toRecord);
  }

  update(id: string, patch: SandboxPatch): SandboxRecord {
    const entries = Object.entries(patch) as [keyof SandboxPatch, unknown][];
    const sets = entries.map(([key]) => `${PATCH_COLUMNS[key]} = ?`);
    const values = entries.map(([key, value]) =>
      (key === "lastError" || key === "config") && value !== null ? JSON.stringify(value) : (value as string | number | null));
    const result = writing(this.file, () => this.db
      .prepare(`UPDATE vms SET ${[...sets, "updated_at = ?"].join(", ")} WHERE id = ?`)
      .run(...values, Date.now(), id));
    if (result.changes === 0) throw new NotFoundError(`Cannot update sandbox "${id}": it no longer exists`);
    const updated = this.mustGet(id);
    writeMirror(updated);
    return updated;
  }

  /**
   * Moves a sandbox to another free SSH port: the pool is per state database, so a sandbox of
   * another smolvm home (or any program) can take a port between allocation and QEMU's bind.
   */
  reallocateSshPort(id: string, avoid: number): SandboxRecord {
    const moved = writing(this.file, () => transaction(this.db, () => {
      const port = allocateSshPort([...this.hostPorts(), avoid]);
      this.db.prepare("UPDATE vms SET ssh_port = ?, updated_at = ? WHERE id = ?").run(port, Date.now(), id);
      return this.mustGet(id);
    }));
    writeMirror(moved);
    return moved;
  }

  /**
   * Allocates what the sandbox's network mode needs and its row lacks: rows written before the
   * mode needed it (an older smolvm) get it at their next start.
   */
  completeNetworkAllocations(id: string): SandboxRecord {
    const vm = this.get(id);
    const mode = vm.config.network;
    const missing = (mode === "tap" && vm.ip === null) || (mode !== "tap" && vm.sshPort === null) || (mode !== "none" && vm.dnsPort === null);
    if (!missing) return vm;
    const completed = writing(this.file, () => transaction(this.db, () => {
      const set = (column: "ip" | "ssh_port" | "dns_port", value: string | number) =>
        this.db.prepare(`UPDATE vms SET ${column} = ?, updated_at = ? WHERE id = ?`).run(value, Date.now(), id);
      const now = this.mustGet(id);
      if (mode === "tap" && now.ip === null) set("ip", allocateIp(this.column<string>("ip")));
      if (mode !== "tap" && now.sshPort === null) set("ssh_port", allocateSshPort(this.hostPorts()));
      if (mode !== "none" && now.dnsPort === null) set("dns_port", allocateDnsPort([...this.hostPorts(), ...boundUdpPorts()]));
      return this.mustGet(id);
    }));
    writeMirror(completed);
    return completed;
  }

  /** Removes the row, which releases its name and every allocation with it. */
  delete(id: string): boolean {
    const named = this.db.prepare("SELECT name FROM vms WHERE id = ?").get(id) as { name?: unknown } | undefined;
    if (typeof named?.name === "string") unlinkName(named.name, id);
    return writing(this.file, () => this.db.prepare("DELETE FROM vms WHERE id = ?").run(id).changes > 0);
  }

  /** Host ports the pool must not hand out: every sandbox's SSH and DNS ports, and whatever listens. */
  private hostPorts(): number[] {
    return [...this.column<number>("ssh_port"), ...this.column<number>("dns_port"), ...listeningTcpPorts()];
  }

  private column<T extends string | number>(name: "name" | "ip" | "ssh_port" | "dns_port" | "cid"): T[] {
    return this.db
      .prepare(`SELECT ${name} AS v FROM vms WHERE ${name} IS NOT NULL`)
      .all()
      .map((row) => (row as { v: T }).v);
  }

  private mustGet(id: string): SandboxRecord {
    const row = this.db.prepare("SELECT * FROM vms WHERE id = ?").get(id);
    if (row === undefined) throw new NotFoundError(`Cannot find sandbox "${id}"`);
    return toRecord(row);
  }
}

/**
 * Opens the state store for one short piece of work and closes it again, whatever happens. A
 * failure of the store itself (damage, a full disk) comes out as smolvm's error naming the file.
 */
export function withStore<T>(body: (store: StateStore) => T): T {
  const store = StateStore.open();
  try {
    return body(store);
  } catch (error) {
    throw isStoreError(error) ? storeFailure(paths.stateDb(), error) : error;
  } finally {
    store.close();
  }
}
