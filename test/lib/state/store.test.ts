import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { SmolError } from "../../../lib/errors.ts";
import { lowestFree } from "../../../lib/state/allocate.ts";
import { StateStore } from "../../../lib/state/sandboxes.ts";
import { scratchDir } from "../../helpers/scratch.ts";

function freshStore(): StateStore {
  return StateStore.open(join(scratchDir("smolvm-state-"), "state.db"));
}

describe("state store", () => {
  test("creates, finds by id or name, updates and deletes", () => {
    const store = freshStore();
    const vm = store.create({ config: parseSandboxConfig({ name: "alpha" }), backend: "qemu", allocate: { sshPort: true, ip: true, cid: true } });
    expect(vm.name).toBe("alpha");
    expect(vm.status).toBe("creating");
    // The lowest free port: 2200 unless something on this host already listens there.
    expect(vm.sshPort).toBeGreaterThanOrEqual(2200);
    expect(vm.sshPort).toBeLessThanOrEqual(2999);
    expect(vm.ip).toBe("172.16.0.2");
    expect(vm.cid).toBe(3);
    expect(store.get(vm.id).name).toBe("alpha");
    expect(store.get("alpha").id).toBe(vm.id);
    expect(store.update(vm.id, { status: "running", supervisorPid: 42 }).supervisorPid).toBe(42);
    expect(store.delete(vm.id)).toBe(true);
    expect(store.find("alpha")).toBeUndefined();
    store.close();
  });

  test("a taken name is refused and a deleted one's allocations are reused", () => {
    const store = freshStore();
    const first = store.create({ config: parseSandboxConfig({ name: "dup" }), backend: "qemu", allocate: { sshPort: true } });
    expect(() => store.create({ config: parseSandboxConfig({ name: "dup" }), backend: "qemu", allocate: {} })).toThrow(/name is taken/);
    const second = store.create({ config: parseSandboxConfig({}), backend: "qemu", allocate: { sshPort: true } });
    expect(second.sshPort).toBeGreaterThan(first.sshPort!);
    store.delete(first.id);
    const third = store.create({ config: parseSandboxConfig({}), backend: "qemu", allocate: { sshPort: true } });
    expect(third.sshPort).toBe(first.sshPort);
    expect(third.name).toMatch(/^[a-z]+-[a-z]+(-\d+)?$/);
    store.close();
  });

  test("unknown sandbox is a NOT_FOUND error with a hint", () => {
    const store = freshStore();
    try {
      store.get("nope");
      throw new Error("expected a failure");
    } catch (error) {
      expect(error).toBeInstanceOf(SmolError);
      expect((error as SmolError).code).toBe("NOT_FOUND");
      expect((error as SmolError).hint).toContain("smolvm list");
    }
    store.close();
  });

  test("an exhausted pool says so", () => {
    expect(() => lowestFree([1, 2, 3], 1, 3, "SSH port")).toThrow(/SSH port/);
  });

  test("50 processes allocating at once get unique names, IPs, ports and CIDs, and no row is lost", async () => {
    const dir = scratchDir("smolvm-race-");
    const db = join(dir, "state.db");
    StateStore.open(db).close(); // migrate once so the racers only contend on inserts
    const worker = join(import.meta.dir, "allocate-worker.ts");
    const results = await Promise.all(
      Array.from({ length: 50 }, () => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, [worker, db], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (chunk) => (out += chunk));
        child.stderr.on("data", (chunk) => (err += chunk));
        child.on("close", (code) => resolve({ code, out, err }));
      })),
    );
    for (const r of results) expect(r.err + (r.code === 0 ? "" : ` exit ${r.code}`)).toBe("");
    const store = StateStore.open(db);
    const rows = store.list();
    store.close();
    expect(rows.length).toBe(50);
    for (const key of ["name", "ip", "sshPort", "cid", "id"] as const) {
      expect(new Set(rows.map((r) => r[key])).size).toBe(50);
    }
    const reported = results.map((r) => JSON.parse(r.out).id as string).sort();
    expect(reported).toEqual(rows.map((r) => r.id).sort());
  }, 120_000);
});

describe("sandbox config", () => {
  test("defaults", () => {
    const config = parseSandboxConfig({});
    expect(config).toMatchObject({ image: "debian", vcpus: 1, memoryMiB: 512, diskMode: "isolated", network: "user", backend: "auto", channel: "auto" });
  });

  test("each invalid value names the field, the value and what is allowed", () => {
    const cases: [unknown, RegExp][] = [
      [{ vcpus: 0 }, /vcpus.*0/],
      [{ memoryMiB: 64 }, /memoryMiB.*64/],
      [{ name: "Bad_Name" }, /name.*Bad_Name.*lowercase/],
      [{ diskMode: "cow" }, /diskMode.*cow.*isolated.*shared/],
      [{ network: "bridge" }, /network.*bridge.*user/],
      [{ env: { "1BAD": "x" } }, /env.*1BAD/],
      [{ colour: "blue" }, /colour/],
    ];
    for (const [input, pattern] of cases) {
      let message = "";
      try {
        parseSandboxConfig(input);
      } catch (error) {
        expect((error as SmolError).code).toBe("INVALID_INPUT");
        message = (error as SmolError).message;
      }
      expect(message).toMatch(pattern);
    }
  });
});

test("an SSH port something else on the host listens on is skipped", async () => {
  const { createServer } = await import("node:net");
  const store = freshStore();
  // Learn which port the pool would hand out next, then occupy it from outside the store.
  const probe = store.create({ config: parseSandboxConfig({}), backend: "qemu", allocate: { sshPort: true } });
  store.delete(probe.id);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(probe.sshPort!, "127.0.0.1", () => resolve()));
  try {
    const vm = store.create({ config: parseSandboxConfig({}), backend: "qemu", allocate: { sshPort: true } });
    expect(vm.sshPort).not.toBe(probe.sshPort);
  } finally {
    server.close();
    store.close();
  }
});

describe("network allocations", () => {
  test("a DNS port never shares a number with an SSH port, its own sandbox's included", () => {
    const store = freshStore();
    try {
      const ports: number[] = [];
      for (let i = 0; i < 5; i++) {
        const vm = store.create({ config: parseSandboxConfig({}), backend: "qemu", allocate: { sshPort: true, dnsPort: true } });
        ports.push(vm.sshPort!, vm.dnsPort!);
      }
      expect(new Set(ports).size).toBe(10);
    } finally {
      store.close();
    }
  });

  test("a row from before a mode needed something gets it on its next start, and only that", () => {
    const store = freshStore();
    try {
      const user = store.create({ config: parseSandboxConfig({ network: "user" }), backend: "qemu", allocate: { sshPort: true } });
      const tap = store.create({ config: parseSandboxConfig({ network: "tap" }), backend: "qemu", allocate: {} });
      const none = store.create({ config: parseSandboxConfig({ network: "none" }), backend: "qemu", allocate: {} });
      const u = store.completeNetworkAllocations(user.id);
      expect(u).toMatchObject({ sshPort: user.sshPort, ip: null });
      expect(u.dnsPort).not.toBeNull();
      const t = store.completeNetworkAllocations(tap.id);
      expect(t).toMatchObject({ ip: "172.16.0.2", sshPort: null });
      expect(t.dnsPort).not.toBeNull();
      const n = store.completeNetworkAllocations(none.id);
      expect(n).toMatchObject({ ip: null, dnsPort: null });
      expect(n.sshPort).not.toBeNull();
      expect(store.completeNetworkAllocations(user.id)).toEqual(u);
    } finally {
      store.close();
    }
  });

  test("a restored row keeps its DNS port unless another row holds it, and says so", () => {
    const store = freshStore();
    try {
      const vm = store.create({ config: parseSandboxConfig({ name: "kept" }), backend: "qemu", allocate: { sshPort: true, dnsPort: true } });
      store.delete(vm.id);
      expect(store.restore(vm)).toMatchObject({ record: { dnsPort: vm.dnsPort }, reallocated: [] });
      store.delete(vm.id);
      const other = store.create({ config: parseSandboxConfig({ name: "taker" }), backend: "qemu", allocate: { sshPort: true } });
      store.delete(other.id);
      // Another row now has the old DNS port as its SSH port: both pools share the host's ports.
      const taker = store.restore({ ...other, sshPort: vm.dnsPort });
      const restored = store.restore(vm);
      expect(restored.reallocated).toContain("dns_port");
      expect(restored.record.dnsPort).not.toBe(taker.record.sshPort);
    } finally {
      store.close();
    }
  });

  test("an egress policy change is kept in the row's config", () => {
    const store = freshStore();
    try {
      const vm = store.create({ config: parseSandboxConfig({}), backend: "qemu", allocate: {} });
      expect(vm.config).toMatchObject({ allowHosts: ["internet"], denyHosts: [] });
      const changed = store.update(vm.id, { config: { ...vm.config, allowHosts: ["api.example.com"], denyHosts: ["internet"] } });
      expect(store.get(vm.id).config).toEqual(changed.config);
      expect(changed.config).toMatchObject({ allowHosts: ["api.example.com"], denyHosts: ["internet"] });
    } finally {
      store.close();
    }
  });

  test("a state database of schema 1 is migrated in place: its rows keep everything and gain a DNS port column", () => {
    const file = join(scratchDir("smolvm-state-"), "state.db");
    const old = new DatabaseSync(file);
    old.exec(`CREATE TABLE vms (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, status TEXT NOT NULL, config TEXT NOT NULL,
      backend TEXT, channel TEXT, ip TEXT UNIQUE, ssh_port INTEGER UNIQUE, cid INTEGER UNIQUE, supervisor_pid INTEGER,
      vmm_pid INTEGER, last_error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) STRICT`);
    old.exec("PRAGMA user_version = 1");
    old.prepare("INSERT INTO vms (id, name, status, config, ssh_port, created_at, updated_at) VALUES ('abcabcabcabc', 'old', 'stopped', ?, 2200, 1, 1)")
      .run(JSON.stringify({ name: "old", network: "user" }));
    old.close();
    const store = StateStore.open(file);
    try {
      expect(store.get("old")).toMatchObject({ sshPort: 2200, dnsPort: null, config: { allowHosts: ["internet"], denyHosts: [] } });
    } finally {
      store.close();
    }
  });
});
