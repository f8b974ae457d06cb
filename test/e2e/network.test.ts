/**
 * Sandbox networks through the CLI, the way a user gets them: every smolvm command runs inside
 * the "host" namespace of a lab the test builds (test/helpers/net-lab.ts), so sandboxes reach the
 * lab's "internet" and the test can put services on every door into the "host" without touching
 * the real host's routes or rules. Covers each mode's promise, the allow list and its run-time
 * changes, the SSH channel and port forwards in every mode, bad input that must create nothing,
 * a store rebuilt by `doctor --repair` that keeps what the networks hold, and cleanup after a
 * kill -9 that must leave no pasta, TAP, rule, namespace or address behind.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { objectNamesOf } from "../../lib/network/nft.ts";
import { paths } from "../../lib/paths.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import { parseSandboxConfig } from "../../lib/config.ts";
import { envelope, repoRoot, runCli, type CliResult } from "../helpers/cli.ts";
import { createLab, LAB, labUnavailable, type Lab } from "../helpers/net-lab.ts";
import { prepareArtifacts, waitUntil } from "../helpers/vm.ts";
import { ensureImage } from "../../lib/images/build.ts";

setDefaultTimeout(240_000);
const why = labUnavailable();
if (why) console.log(`skip: network e2e tests: ${why}`);

let lab: Lab;
const smolvm = (args: string[], timeoutMs = 180_000): Promise<CliResult> =>
  runCli(args, { prefix: ["ip", "netns", "exec", lab.host], timeoutMs });

async function ok(args: string[]): Promise<any> {
  const result = await smolvm([...args, "--json"]);
  if (result.code !== 0) throw new Error(`smolvm ${args.join(" ")} failed: ${result.stdout}${result.stderr}`);
  return envelope(result).data;
}

async function guest(name: string, argv: string[]): Promise<CliResult> {
  return smolvm(["exec", name, "--", ...argv]);
}

const PROBE = "import socket,sys\nfor t in sys.argv[1:]:\n h,p=t.rsplit(':',1)\n try:\n  socket.create_connection((h,int(p)),timeout=4).close(); print(t,'connected')\n except OSError as e: print(t,'closed')";

async function connected(name: string, targets: string[]): Promise<string[]> {
  const run = await guest(name, ["python3", "-c", PROBE, ...targets]);
  return run.stdout.trim().split("\n").filter((line) => line.endsWith(" connected")).map((line) => line.split(" ")[0]!);
}

function inHost(argv: string[]): { status: number | null; stdout: string } {
  const run = spawnSync("ip", ["netns", "exec", lab.host, ...argv], { encoding: "utf8" });
  return { status: run.status, stdout: run.stdout };
}

/** What of smolvm's is left on the host for sandbox `id`: processes, TAP interface, rules. */
function leftovers(id: string): string[] {
  const found: string[] = [];
  const processes = spawnSync("pgrep", ["-af", id], { encoding: "utf8" }).stdout.split("\n").filter((l) => l && !l.includes("pgrep"));
  found.push(...processes.map((line) => `process: ${line.slice(0, 120)}`));
  if (inHost(["ip", "link", "show", `sm-${id}`]).status === 0) found.push(`interface sm-${id}`);
  const table = inHost(["nft", "list", "table", "inet", "smolvm"]).stdout;
  found.push(...objectNamesOf(id).filter((name) => table.includes(name)).map((name) => `nft ${name}`));
  if (existsSync(paths.sandboxDir(id))) found.push(`directory ${paths.sandboxDir(id)}`);
  const store = StateStore.open();
  try {
    if (store.find(id) !== undefined) found.push("state row (and its allocations)");
  } finally {
    store.close();
  }
  return found;
}

describe.skipIf(why !== undefined)("sandbox networks from the CLI", () => {
  beforeAll(async () => {
    await prepareArtifacts();
    await ensureImage("debian");
    lab = await createLab();
  }, 30 * 60_000);
  afterAll(async () => {
    await smolvm(["delete", "--all", "--force"], 30_000).catch(() => {});
    await waitUntil(() => !existsSync(paths.sandboxesDir()) || readdirSync(paths.sandboxesDir()).length === 0, 20_000, "the sandboxes to be deleted").catch(() => {});
    lab?.close();
  }, 60_000);

  test("bad input is refused with a clear error and creates nothing", async () => {
    const usage = await smolvm(["create", "--network", "bridge", "--image", "base"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("bridge");
    for (const [host, words] of [["10.0.0.0/33", "not a valid CIDR"], ["bad host!", "not an address"], ["169.254.169.254", "never reaches"]] as const) {
      const result = await smolvm(["create", "--image", "base", "--allow-host", host, "--json"]);
      expect(result.code).toBe(1);
      expect(envelope(result).error).toMatchObject({ code: "INVALID_INPUT" });
      expect(envelope(result).error.message).toContain(words);
    }
    // TAP mode without CAP_NET_ADMIN: told what is missing, before anything exists.
    const unprivileged = await runCli(["create", "--image", "base", "--network", "tap", "--json"], {
      prefix: ["ip", "netns", "exec", lab.host, "setpriv", "--bounding-set", "-net_admin"],
    });
    expect(envelope(unprivileged).error.message).toContain("CAP_NET_ADMIN");
    // The pool of TAP addresses exhausted.
    const store = StateStore.open();
    const fillers: string[] = [];
    try {
      for (let i = 0; i < 253; i++) {
        fillers.push(store.create({ config: parseSandboxConfig({ name: `filler-${i}`, network: "tap" }), backend: "qemu", allocate: { ip: true } }).id);
      }
      const exhausted = await smolvm(["create", "--image", "base", "--network", "tap", "--json"]);
      expect(envelope(exhausted).error).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
      expect(envelope(exhausted).error.message).toContain("IP address");
    } finally {
      for (const id of fillers) store.delete(id);
      store.close();
    }
    expect((await ok(["list", "--all"])).length ?? 0).toBe(0);
    expect(existsSync(paths.sandboxesDir()) ? readdirSync(paths.sandboxesDir()) : []).toEqual([]);
    expect(inHost(["sh", "-c", "ip -o link | grep -c ' sm-' || true"]).stdout.trim()).toBe("0");
  });

  for (const mode of ["user", "tap"] as const) {
    describe(`--network ${mode}`, () => {
      const name = `net-${mode}`;
      const gateway = mode === "user" ? "10.0.2.2" : "172.16.0.1";

      beforeAll(async () => {
        // Allowing the private range the host sits in must still not open the host itself.
        await ok(["create", "--name", name, "--image", "debian", "--network", mode, "--allow-host", "internet", "--allow-host", "10.99.0.0/24"]);
      }, 300_000);

      test("info shows the mode, the guest's address and the egress policy", async () => {
        const info = await ok(["info", name]);
        expect(info).toMatchObject({ network: mode, allowHosts: ["internet", "10.99.0.0/24"], denyHosts: [] });
        expect(info.guestIp).toBe(mode === "user" ? "10.0.2.15" : "172.16.0.2");
        expect((await guest(name, ["ip", "-4", "-o", "addr", "show", "eth0"])).stdout).toContain(`${info.guestIp}/24`);
      });

      test("the internet answers by name and address; no door into the host opens", async () => {
        expect((await guest(name, ["curl", "-s", "-m", "5", "http://internet.test/"])).stdout).toBe("internet\n");
        expect((await guest(name, ["curl", "-s", "-m", "5", `http://${LAB.internet}/`])).stdout).toBe("internet\n");
        const doors = [gateway, LAB.hostUplink, LAB.hostPublic, LAB.hostPrivate, LAB.router].flatMap((host) =>
          [LAB.hostAnyPort, LAB.hostLoopbackPort].map((port) => `${host}:${port}`));
        expect(await connected(name, [...doors, `${LAB.metadata}:80`])).toEqual([]);
      });

      test("the SSH channel and port forwards work", async () => {
        expect((await smolvm(["exec", "--comm-channel", "ssh", name, "--", "hostname"])).stdout).toBe(`${name}\n`);
        await guest(name, ["sh", "-c", "mkdir -p /srv && echo forwarded > /srv/index.html && (cd /srv && nohup python3 -m http.server 8080 >/dev/null 2>&1 &)"]);
        // Ready once it listens (python starts slowly under emulation), with a deadline.
        const listening = await guest(name, ["timeout", "60", "bash", "-c", "until (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; do sleep 0.1; done"]);
        expect(listening.code).toBe(0);
        const forward = await ok(["port", "expose", name, "8080"]);
        expect(inHost(["curl", "-s", "-m", "5", `http://127.0.0.1:${forward.hostPort}/`]).stdout).toBe("forwarded\n");
      });

      test("network deny and allow change what the running sandbox reaches", async () => {
        const policy = await ok(["network", "deny", name, "internet"]);
        expect(policy.allowHosts).toEqual(["10.99.0.0/24"]);
        await ok(["network", "allow", name, "internet.test"]);
        expect((await guest(name, ["curl", "-s", "-m", "5", "http://internet.test/"])).stdout).toBe("internet\n");
        const started = Date.now();
        const refused = await guest(name, ["curl", "-s", "-m", "5", "http://other.test/"]);
        expect(refused.code).toBe(6); // could not resolve host
        expect(Date.now() - started).toBeLessThan(4_000);
        expect(await connected(name, [`${LAB.other}:80`])).toEqual([]);
        expect((await ok(["info", name])).allowHosts).toEqual(["10.99.0.0/24", "internet.test"]);
      });
    });
  }

  test("a TAP interface of the same name that is not the sandbox's is refused at start, and nothing is made", async () => {
    const vm = await ok(["info", "net-tap"]);
    await ok(["stop", "net-tap"]);
    // Stopped: the TAP interface and its rules are gone (the supervisor's own exit may take a moment more).
    await waitUntil(() => leftovers(vm.id).every((what) => what.startsWith("directory") || what.startsWith("state")), 10_000, "the stop to leave nothing running");
    expect(inHost(["ip", "tuntap", "add", "dev", `sm-${vm.id}`, "mode", "tap"]).status).toBe(0);
    try {
      const clash = await smolvm(["start", "net-tap", "--json"]);
      expect(envelope(clash).error).toMatchObject({ code: "ALREADY_EXISTS" });
      expect(envelope(clash).error.message).toContain(`sm-${vm.id}`);
      expect(envelope(clash).error.hint).toContain(`ip link del sm-${vm.id}`);
      const table = inHost(["nft", "list", "table", "inet", "smolvm"]).stdout;
      expect(objectNamesOf(vm.id).filter((object) => table.includes(object))).toEqual([]);
    } finally {
      inHost(["ip", "link", "del", `sm-${vm.id}`]);
    }
    await ok(["start", "net-tap"]);
    expect((await guest("net-tap", ["curl", "-s", "-m", "5", "http://internet.test/"])).stdout).toBe("internet\n");
  });

  test("a fork has a network of its own in its source's mode: its own address, its source's policy, no door into the host", async () => {
    for (const [mode, gateway] of [["user", "10.0.2.2"], ["tap", "172.16.0.1"]] as const) {
      const [source, name] = [`net-${mode}`, `fork-${mode}`];
      await ok(["fork", source, "--name", name]);
      const [was, info] = [await ok(["info", source]), await ok(["info", name])];
      expect(info).toMatchObject({ network: mode, allowHosts: was.allowHosts, denyHosts: was.denyHosts });
      if (mode === "tap") expect(info.guestIp).not.toBe(was.guestIp);
      expect((await guest(name, ["ip", "-4", "-o", "addr", "show", "eth0"])).stdout).toContain(`${info.guestIp}/24`);
      // The source's policy (internet.test allowed, the rest of the internet denied) on a network of its own.
      expect((await guest(name, ["curl", "-s", "-m", "5", "http://internet.test/"])).stdout).toBe("internet\n");
      expect((await guest(name, ["curl", "-s", "-m", "5", "http://other.test/"])).code).toBe(6);
      expect(await connected(name, [`${gateway}:${LAB.hostAnyPort}`, `${LAB.hostPublic}:${LAB.hostAnyPort}`, `${LAB.metadata}:80`])).toEqual([]);
      expect((await guest(source, ["curl", "-s", "-m", "5", "http://internet.test/"])).stdout).toBe("internet\n");
      await ok(["delete", "--force", name]);
      expect(leftovers(info.id)).toEqual([]);
    }
  });

  test("--network none: no interface but loopback; commands, SSH and forwards still work; no policy to change", async () => {
    const info = await ok(["create", "--name", "net-none", "--image", "debian", "--network", "none"]);
    expect(info).toMatchObject({ network: "none", guestIp: null });
    expect((await guest("net-none", ["cat", "/proc/net/dev"])).stdout).not.toContain("eth0");
    // SSH rides the agent's forward here: there is no network to carry it.
    expect((await smolvm(["exec", "--comm-channel", "ssh", "net-none", "--", "hostname"])).stdout).toBe("net-none\n");
    const refused = await smolvm(["network", "allow", "net-none", "internet", "--json"]);
    expect(envelope(refused).error).toMatchObject({ code: "INVALID_INPUT" });
    await ok(["delete", "net-none"]);
  });

  test("doctor --repair rebuilds a lost store with what the networks hold: address, ports, policy", async () => {
    const before = await Promise.all(["net-user", "net-tap"].map((name) => ok(["info", name])));
    writeFileSync(paths.stateDb(), "");
    const repair = await ok(["doctor", "--repair"]);
    expect(repair.restored.map((vm: { name: string; status: string }) => [vm.name, vm.status]).sort()).toEqual([["net-tap", "running"], ["net-user", "running"]]);
    for (const vm of before) {
      const after = await ok(["info", vm.name]);
      expect(after).toMatchObject({ guestIp: vm.guestIp, sshPort: vm.sshPort, allowHosts: vm.allowHosts, denyHosts: vm.denyHosts });
      expect((await guest(vm.name, ["curl", "-s", "-m", "5", "http://internet.test/"])).stdout).toBe("internet\n");
    }
  });

  test("after kill -9 of supervisors and VMMs, cleanup leaves no pasta, TAP, rule, namespace or address", async () => {
    const sandboxes = await Promise.all(["net-user", "net-tap"].map((name) => ok(["info", name])));
    for (const vm of sandboxes) {
      expect(leftovers(vm.id).length).toBeGreaterThan(0);
      for (const pid of [vm.supervisorPid, vm.vmmPid]) process.kill(pid, "SIGKILL");
    }
    await waitUntil(() => sandboxes.every((vm) => spawnSync("kill", ["-0", String(vm.vmmPid)]).status !== 0), 5_000, "the VMMs to be gone");
    // pasta outlives the VMM it served; the TAP interface and rules outlive everything.
    expect(spawnSync("pgrep", ["-f", `${sandboxes[0].id}/pasta.pid`]).status).toBe(0);
    expect(inHost(["ip", "link", "show", `sm-${sandboxes[1].id}`]).status).toBe(0);
    const dry = await ok(["cleanup", "--dry-run"]);
    expect(dry.networks.join("\n")).toContain(`TAP interface "sm-${sandboxes[1].id}"`);
    expect(leftovers(sandboxes[1].id)).toContain(`interface sm-${sandboxes[1].id}`);
    // Crashed sandboxes keep their disks until named, but nothing of their networks.
    const cleaned = await ok(["cleanup"]);
    expect(cleaned.kept.map((vm: { name: string }) => vm.name).sort()).toEqual(["net-tap", "net-user"]);
    expect(cleaned.networks.join("\n")).toContain(`TAP interface "sm-${sandboxes[1].id}"`);
    expect(cleaned.networks.join("\n")).toContain("firewall rules");
    expect(cleaned.networks.join("\n")).toContain("pasta (pid");
    for (const vm of sandboxes) expect(leftovers(vm.id).filter((what) => !what.startsWith("directory") && !what.startsWith("state row"))).toEqual([]);
    const named = await ok(["cleanup", "net-user", "net-tap"]);
    expect(named.sandboxes.sort()).toEqual(["net-tap", "net-user"]);
    for (const vm of sandboxes) expect(leftovers(vm.id)).toEqual([]);
  });

  test("a create killed once its TAP interface exists leaves none after cleanup", async () => {
    const child = spawn("ip", ["netns", "exec", lab.host, process.execPath, join(repoRoot, "main.ts"), "create", "--name", "net-killed", "--image", "base", "--network", "tap"], {
      env: { ...process.env, NO_COLOR: "1" }, stdio: "ignore",
    });
    let id = "";
    await waitUntil(() => {
      const dirs = existsSync(paths.sandboxesDir()) ? readdirSync(paths.sandboxesDir()) : [];
      id = dirs.find((dir) => inHost(["ip", "link", "show", `sm-${dir}`]).status === 0) ?? "";
      return id !== "";
    }, 60_000, "the create to make its TAP interface");
    child.kill("SIGKILL");
    await waitUntil(async () => (await ok(["cleanup"])).sandboxes.includes("net-killed") || leftovers(id).length === 0, 30_000, "cleanup to remove the interrupted create");
    await waitUntil(() => leftovers(id).length === 0, 10_000, `nothing of sandbox ${id} to be left (left: ${leftovers(id).join(", ")})`);
  });
});
