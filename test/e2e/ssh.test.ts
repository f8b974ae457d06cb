/**
 * The SSH control channel on real VMs (the `debian` image, which has openssh-server), and the
 * rules that pick a channel. One Debian sandbox serves the whole file: the channel suite runs
 * once per channel with the same assertions, then the OpenSSH client, pinning, the loopback-only
 * forward and the resolution cases. Two short-lived `base` sandboxes prove the "no sshd" error.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { ensureImage } from "../../lib/images/build.ts";
import { SmolVM } from "../../lib/smolvm.ts";
import { SmolError } from "../../lib/errors.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import type { SandboxRecord } from "../../lib/state/record.ts";
import { AGENT_PROBE_MS } from "../../lib/channels/policy.ts";
import { openChannel } from "../../lib/sandbox/connection.ts";
import { sshEndpoint } from "../../lib/ssh/state.ts";
import { SshConnection } from "../../lib/ssh/channel.ts";
import { knownHostsPath, userKeyPath } from "../../lib/ssh/keys.ts";
import { readSshState } from "../../lib/ssh/state.ts";
import type { CommChannel } from "../../lib/channels/types.ts";
import { envelope, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts } from "../helpers/vm.ts";
import { GUEST_HOME } from "../../lib/guest.ts";
import { scratchDir } from "../helpers/scratch.ts";

setDefaultTimeout(180_000);

let vm: SmolVM;
const NAME = "chan";

function record(idOrName: string): SandboxRecord {
  const store = StateStore.open();
  try {
    return store.get(idOrName);
  } finally {
    store.close();
  }
}

function setPersisted(channel: "agent" | "ssh" | null): void {
  const store = StateStore.open();
  try {
    store.update(vm.id, { channel });
  } finally {
    store.close();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

beforeAll(async () => {
  await prepareArtifacts();
  await ensureImage("debian");
  // An explicit ssh is persisted, and create returns only once sshd is ready.
  vm = await SmolVM.create({ name: NAME, image: "debian", commChannel: "ssh" });
}, 30 * 60_000);
afterAll(() => vm?.close());
cleanupAfterAll();

test("create with commChannel ssh persists it and waits for sshd", () => {
  expect(record(NAME).channel).toBe("ssh");
  const state = readSshState(vm.id);
  expect(state?.state).toBe("ready");
  expect(state?.vmmPid).toBe(record(NAME).vmmPid);
  expect(statSync(userKeyPath()).mode & 0o777).toBe(0o600);
  console.log(`ssh set-up after the agent was ready: ${state?.setupMs} ms`);
});

describe.each(["vsock", "ssh"] as CommChannel[])("the channel suite over %s", (commChannel) => {
  let handle: SmolVM;
  const viaSsh = commChannel === "ssh";

  beforeAll(async () => {
    handle = await SmolVM.fromId(NAME, { commChannel });
  });
  afterAll(() => handle?.close());

  test("the command really goes over this channel", async () => {
    // sshd sets SSH_CONNECTION for its sessions; the agent's execs never have it.
    const { stdout } = await handle.commands.run('printf %s "${SSH_CONNECTION:+ssh}"');
    expect(stdout).toBe(viaSsh ? "ssh" : "");
    expect((await handle.probeChannel()).channel).toBe(viaSsh ? "ssh" : "agent");
  });

  test("run: argv and shell forms, stdout, stderr and the exit status", async () => {
    const argv = await handle.commands.run(["printf", "%s|", "a b", "it's", "$(id)"]);
    expect(argv).toMatchObject({ exitCode: 0, signal: null, timedOut: false, stdout: "a b|it's|$(id)|", stderr: "" });
    const shell = await handle.commands.run("echo out; echo err >&2; exit 3");
    expect(shell).toMatchObject({ exitCode: 3, stdout: "out\n", stderr: "err\n" });
    const missing = await handle.commands.run(["no-such-program-here"]);
    expect(missing.exitCode).toBe(127);
  });

  test("run: env, cwd and stdin; the base environment is the agent's", async () => {
    const r = await handle.commands.run('printf "%s|%s|%s|%s|" "$GREETING" "$PWD" "$HOME" "$LANG"; cat', {
      env: { GREETING: "hi 'there'" },
      cwd: "/tmp",
      stdin: "from stdin\n",
    });
    expect(r.stdout).toBe(`hi 'there'|/tmp|${GUEST_HOME}|C.UTF-8|from stdin\n`);
    expect((await handle.commands.run("pwd")).stdout).toBe(`${GUEST_HOME}\n`);
    await expect(handle.commands.run("true", { cwd: "/no/such/dir" })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  test("run: a timeout kills the whole process group", async () => {
    const tag = viaSsh ? "31.25" : "31.5";
    const r = await handle.commands.run(`sleep ${tag} & sleep ${tag}; echo never`, { timeoutMs: 1500 });
    expect(r).toMatchObject({ timedOut: true, exitCode: null, signal: "KILL", stdout: "" });
    const left = await handle.commands.run(`for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c "^sleep ${tag}" || true`);
    expect(left.stdout.trim()).toBe("0");
  });

  test("exec: output streams while the command runs, stdin streams in", async () => {
    const proc = await handle.commands.exec("echo first; read line; echo got:$line; sleep 1; echo last", { stdin: true });
    expect(proc.pid).toBeGreaterThan(1);
    const seen: string[] = [];
    proc.stdout.on("data", (chunk: Buffer) => seen.push(chunk.toString()));
    const t0 = Date.now();
    while (!seen.join("").includes("first")) {
      if (Date.now() - t0 > 20_000) throw new Error("no streamed output");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    proc.stdin!.write("hello\n");
    while (!seen.join("").includes("got:hello")) {
      if (Date.now() - t0 > 20_000) throw new Error("stdin did not arrive");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // "last" comes a second later: the earlier lines arrived while the command still ran.
    expect(seen.join("")).not.toContain("last");
    proc.stdin!.end();
    expect((await proc.wait()).exitCode).toBe(0);
    expect(seen.join("")).toBe("first\ngot:hello\nlast\n");
  });

  test("exec: output to callbacks, whole and in order before wait(); a slow callback holds it; the streams end empty", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const proc = await handle.commands.exec("echo one; echo two >&2; seq 1 50000; echo three >&2", {
      onStdout: async (chunk) => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        out.push(chunk.toString());
      },
      onStderr: (chunk) => void err.push(chunk.toString()),
    });
    expect((await proc.wait()).exitCode).toBe(0);
    expect(out.join("")).toBe(`one\n${Array.from({ length: 50000 }, (_, i) => `${i + 1}\n`).join("")}`);
    expect(err.join("")).toBe("two\nthree\n");
    for (const stream of [proc.stdout, proc.stderr]) {
      let rest = "";
      for await (const chunk of stream) rest += chunk;
      expect(rest).toBe("");
    }
    // A callback that throws: the rest is dropped without holding the command, and wait() says why.
    const gone = new Error("the reader went away");
    const dropped = await handle.commands.exec("head -c 2000000 /dev/zero", { onStdout: () => Promise.reject(gone) });
    await expect(dropped.wait()).rejects.toThrow("the reader went away");
  });

  test("exec: a signal goes to the command's process group", async () => {
    const proc = await handle.commands.exec("trap 'echo term; exit 9' TERM; while :; do sleep 0.1; done");
    let out = "";
    proc.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    proc.stderr.resume();
    await new Promise((resolve) => setTimeout(resolve, 300));
    proc.signal("TERM");
    const result = await proc.wait();
    expect(result.exitCode).toBe(9);
    expect(out).toBe("term\n");
  });

  test("exec: a PTY is a terminal of the asked size", async () => {
    const proc = await handle.commands.exec("tty; stty size", { pty: { rows: 33, cols: 101 } });
    let out = "";
    proc.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    expect((await proc.wait()).exitCode).toBe(0);
    expect(out).toMatch(/^\/dev\/pts\/\d+\r\n33 101\r\n$/);
  });

  test("files: a write lands atomically with its exact mode and reads back byte for byte", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const t0 = performance.now();
    const written = await handle.files.write(`${GUEST_HOME}/files/deep/blob.bin`, data, { mode: 0o640 });
    const writeMs = performance.now() - t0;
    expect(written.size).toBe(data.length);
    const mode = await handle.commands.run(`stat -c %a ${GUEST_HOME}/files/deep/blob.bin; ls -a ${GUEST_HOME}/files/deep`);
    expect(mode.stdout).toBe("640\n.\n..\nblob.bin\n");
    const t1 = performance.now();
    const back = await handle.files.read(`${GUEST_HOME}/files/deep/blob.bin`);
    const readMs = performance.now() - t1;
    expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
    const opened = await handle.files.readStream(`${GUEST_HOME}/files/deep/blob.bin`);
    expect(opened).toMatchObject({ size: data.length, mode: 0o640 });
    opened.stream.resume();
    console.log(`${commChannel}: 3 MiB write ${Math.round(writeMs)} ms, read ${Math.round(readMs)} ms`);
  });

  test("files: a missing file is NOT_FOUND, a directory is refused", async () => {
    await expect(handle.files.read("/no/such/file")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(handle.files.read("/etc")).rejects.toBeInstanceOf(SmolError);
    await expect(handle.files.write("/no/such/dir/f", "x", { mkdirParents: false })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  test("files: upload and download through the SDK keep content and mode", async () => {
    const dir = scratchDir("smolvm-ssh-files-");
    const local = join(dir, "script.sh");
    writeFileSync(local, "#!/bin/sh\necho uploaded\n", { mode: 0o755 });
    await handle.files.upload(local, `${GUEST_HOME}/up-${commChannel}/`);
    expect((await handle.commands.run([`${GUEST_HOME}/up-${commChannel}/script.sh`])).stdout).toBe("uploaded\n");
    const got = await handle.files.download(`${GUEST_HOME}/up-${commChannel}/script.sh`, join(dir, "back.sh"));
    expect(got.mode).toBe(0o755);
    expect(readFileSync(join(dir, "back.sh"), "utf8")).toBe("#!/bin/sh\necho uploaded\n");
  });

  test("env: set, list and unset; commands and login shells see the values exactly", async () => {
    const tricky = { [`T_${commChannel.toUpperCase()}`]: "it's \"quoted\"\n$(id) `x`", PLAIN: "p" };
    const all = await handle.env.set(tricky);
    expect(all).toMatchObject(tricky);
    const name = Object.keys(tricky)[0]!;
    expect((await handle.commands.run(`printf %s "$${name}"`)).stdout).toBe(tricky[name]!);
    expect((await handle.commands.run(["bash", "-lc", `printf %s "$${name}"`])).stdout).toBe(tricky[name]!);
    expect(await handle.env.list()).toMatchObject(tricky);
    const left = await handle.env.unset(["PLAIN"]);
    expect(left.PLAIN).toBeUndefined();
    expect((await handle.commands.run('printf %s "${PLAIN-unset}"')).stdout).toBe("unset");
  });

  test("env: what this channel sets, the other channel sees (one file, one set)", async () => {
    const other = await SmolVM.fromId(NAME, { commChannel: viaSsh ? "vsock" : "ssh" });
    try {
      await handle.env.set({ SHARED: `from-${commChannel}` });
      expect((await other.env.list()).SHARED).toBe(`from-${commChannel}`);
      expect((await other.commands.run('printf %s "$SHARED"')).stdout).toBe(`from-${commChannel}`);
      await other.env.set({ BACK: "1" });
      expect(await handle.env.list()).toMatchObject({ SHARED: `from-${commChannel}`, BACK: "1" });
    } finally {
      other.close();
    }
  });

  test("ports: vm.ports.expose reaches a server in the guest from 127.0.0.1", async () => {
    const guestPort = viaSsh ? 8702 : 8701;
    await handle.files.write(`${GUEST_HOME}/www-${commChannel}/index.txt`, `hello over ${commChannel}\n`);
    const server = await handle.commands.exec(["python3", "-m", "http.server", String(guestPort), "--bind", "127.0.0.1", "--directory", `${GUEST_HOME}/www-${commChannel}`]);
    server.stdout.resume();
    server.stderr.resume();
    try {
      const ready = await handle.commands.run(`for i in $(seq 600); do grep -qi ':${guestPort.toString(16)} 0*:0000 0A' /proc/net/tcp && exit 0; sleep 0.05; done; exit 1`);
      expect(ready.exitCode).toBe(0);
      const forward = await handle.ports.expose(guestPort);
      expect(forward.address).toBe("127.0.0.1");
      try {
        expect(await httpGet(forward.hostPort, "/index.txt")).toBe(`hello over ${commChannel}\n`);
      } finally {
        await forward.close();
      }
    } finally {
      server.kill();
      await server.wait().catch(() => {});
    }
  });
});

function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the SSH connection", () => {
  test("a dropped connection fails the call in flight and is replaced on the next one", async () => {
    const { channel } = await openChannel(record(NAME), "ssh");
    try {
      // $PPID is the sshd process serving this connection: killing it drops the connection.
      await expect(channel.run("kill -9 $PPID; sleep 5")).rejects.toMatchObject({ code: "CHANNEL_UNAVAILABLE" });
      expect((await channel.run("echo again")).stdout).toBe("again\n");
    } finally {
      await channel.close();
    }
  });
});

describe("latency", () => {
  test("ssh connect+auth, and `true` per exec on each channel", async () => {
    const connects: number[] = [];
    for (let i = 0; i < 3; i++) {
      const connection = await SshConnection.open(record(NAME), sshEndpoint(record(NAME))!);
      connects.push(connection.connectMs);
      connection.end();
    }
    const results: Record<string, number> = {};
    const channels = await Promise.all((["vsock", "ssh"] as const).map((c) => openChannel(record(NAME), c)));
    for (const { channel } of channels) await channel.run(["true"]); // warm
    const samples: Record<string, number[]> = { agent: [], ssh: [] };
    for (let i = 0; i < 15; i++) {
      for (const { channel } of channels) {
        const t0 = performance.now();
        const r = await channel.run(["true"]);
        samples[channel.kind]!.push(performance.now() - t0);
        expect(r.exitCode).toBe(0);
      }
    }
    for (const { channel } of channels) await channel.close();
    results.sshConnectAuthMs = median(connects);
    results.agentTrueMs = median(samples.agent!);
    results.sshTrueMs = median(samples.ssh!);
    console.log(`latency (medians): ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Math.round(v * 10) / 10])))}`);
  });
});

describe("the OpenSSH client", () => {
  test("`smolvm ssh NAME -- CMD` runs real ssh and passes the exit status through", async () => {
    const r = await runCli(["ssh", NAME, "--", "sh", "-c", "'echo $SSH_CONNECTION | wc -w; hostname; exit 7'"]);
    expect(r.stdout).toBe(`4\n${NAME}\n`);
    expect(r.code).toBe(7);
  });

  test("ssh and scp with the documented key and known_hosts work", async () => {
    const printed = envelope(await runCli(["ssh", NAME, "--print", "--json"])).data;
    expect(printed.keyPath).toBe(userKeyPath());
    expect(printed.knownHostsPath).toBe(knownHostsPath(vm.id));
    const info = envelope(await runCli(["info", NAME, "--json"])).data;
    expect(info.sshKeyPath).toBe(printed.keyPath);
    expect(info.sshKnownHostsPath).toBe(printed.knownHostsPath);
    const base = ["-i", printed.keyPath, "-o", `UserKnownHostsFile=${printed.knownHostsPath}`, "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes"];
    const ssh = Bun.spawnSync(["ssh", ...base, "-p", String(printed.port), "root@127.0.0.1", "uname -s"]);
    expect(ssh.stdout.toString()).toBe("Linux\n");
    const dir = scratchDir("smolvm-scp-");
    writeFileSync(join(dir, "up.txt"), "via scp\n");
    const up = Bun.spawnSync(["scp", ...base, "-P", String(printed.port), join(dir, "up.txt"), `root@127.0.0.1:${GUEST_HOME}/up.txt`]);
    expect(up.exitCode).toBe(0);
    expect((await vm.commands.run(`cat ${GUEST_HOME}/up.txt`)).stdout).toBe("via scp\n");
    const down = Bun.spawnSync(["scp", ...base, "-P", String(printed.port), `root@127.0.0.1:${GUEST_HOME}/up.txt`, join(dir, "down.txt")]);
    expect(down.exitCode).toBe(0);
    expect(readFileSync(join(dir, "down.txt"), "utf8")).toBe("via scp\n");
  });

  test("a tampered known_hosts is refused by OpenSSH and by smolvm", async () => {
    const file = knownHostsPath(vm.id);
    const original = readFileSync(file, "utf8");
    const otherKey = Bun.spawnSync(["sh", "-c", `d=$(mktemp -d); ssh-keygen -q -t ed25519 -N '' -f $d/k && cut -d' ' -f2 $d/k.pub`]).stdout.toString().trim();
    const [names, type] = original.trim().split(" ");
    const dir = scratchDir("smolvm-tamper-");
    copyFileSync(file, join(dir, "original"));
    try {
      writeFileSync(file, `${names} ${type} ${otherKey}\n`);
      const ssh = await runCli(["ssh", NAME, "--", "true"]);
      expect(ssh.code).toBe(255);
      expect(ssh.stderr).toMatch(/host key|Host key verification failed/i);
      const error = await SshConnection.open(record(NAME), sshEndpoint(record(NAME))!).then(() => undefined, (e: unknown) => e);
      expect(error).toMatchObject({ code: "CHANNEL_UNAVAILABLE" });
      expect((error as Error).message).toContain("does not match the one pinned");
    } finally {
      writeFileSync(file, original);
    }
    const again = await SshConnection.open(record(NAME), sshEndpoint(record(NAME))!);
    again.end();
  });

  test("the SSH forward listens on 127.0.0.1 only", async () => {
    const port = record(NAME).sshPort!;
    const hex = port.toString(16).toUpperCase().padStart(4, "0");
    const listeners = [readFileSync("/proc/net/tcp", "utf8"), readFileSync("/proc/net/tcp6", "utf8")]
      .flatMap((text) => text.split("\n").slice(1))
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(`:${hex}`) && f[3] === "0A")
      .map((f) => f[1]!.split(":")[0]);
    expect(listeners).toEqual(["0100007F"]);
    const external = Object.values(networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal);
    if (external === undefined) {
      console.log("no non-loopback IPv4 address on this host: skipped the outside connect");
      return;
    }
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host: external.address, port });
      socket.once("connect", () => {
        socket.destroy();
        resolve("connected");
      });
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    });
    expect(outcome).toBe("ECONNREFUSED");
  });
});

describe("channel resolution", () => {
  test("explicit beats persisted, persisted beats auto", async () => {
    setPersisted("ssh");
    const fromRecord = await openChannel(record(NAME));
    expect(fromRecord.resolution).toMatchObject({ kind: "ssh", source: "persisted" });
    await fromRecord.channel.close();
    const explicit = await openChannel(record(NAME), "vsock");
    expect(explicit.resolution).toMatchObject({ kind: "agent", source: "explicit" });
    await explicit.channel.close();
    setPersisted("agent");
    const persisted = await openChannel(record(NAME));
    expect(persisted.resolution).toMatchObject({ kind: "agent", source: "persisted", requested: "vsock" });
    await persisted.channel.close();
    const askedSsh = await openChannel(record(NAME), "ssh");
    expect(askedSsh.resolution).toMatchObject({ kind: "ssh", source: "explicit" });
    await askedSsh.channel.close();
    setPersisted(null);
    const auto = await openChannel(record(NAME));
    expect(auto.resolution).toMatchObject({ kind: "agent", source: "auto" });
    await auto.channel.close();
    const cli = envelope(await runCli(["info", NAME, "--json"])).data;
    expect(cli.channel).toBe("agent");
    expect(cli.channelReason).toMatch(/^auto: the agent answered/);
    const asked = envelope(await runCli(["info", NAME, "--comm-channel", "ssh", "--json"])).data;
    expect(asked).toMatchObject({ channel: "ssh", channelReason: "asked for ssh: sshd is ready" });
  });

  test("with the agent's host end frozen, explicit vsock fails fast and auto falls back to SSH", async () => {
    const supervisorPid = record(NAME).supervisorPid!;
    // SIGSTOP the supervisor, which holds the agent's only host connection: the guest runs on
    // (and so does its sshd), but nothing answers on the agent channel.
    process.kill(supervisorPid, "SIGSTOP");
    try {
      const t0 = Date.now();
      const vsock = await runCli(["exec", "--comm-channel", "vsock", NAME, "--", "true"]).then((r) => ({ ...r, ms: Date.now() - t0 }));
      expect(vsock.code).toBe(1);
      expect(vsock.stderr).toContain("over the agent channel (vsock)");
      expect(vsock.stderr).toContain("--comm-channel ssh");
      expect(vsock.ms).toBeLessThan(AGENT_PROBE_MS + 5_000);
      const t1 = Date.now();
      const auto = await runCli(["exec", NAME, "--", "sh", "-c", 'echo "${SSH_CONNECTION:+over ssh}"']);
      expect(auto.stdout).toBe("over ssh\n");
      expect(auto.code).toBe(0);
      const info = envelope(await runCli(["info", NAME, "--json"])).data;
      expect(info.channel).toBe("ssh");
      expect(info.channelReason).toMatch(/^auto: the agent did not answer/);
      console.log(`agent frozen: explicit vsock failed in ${vsock.ms} ms; auto over SSH took ${Date.now() - t1} ms`);
    } finally {
      process.kill(supervisorPid, "SIGCONT");
    }
    const agent = await SmolVM.fromId(NAME, { commChannel: "vsock" });
    expect((await agent.commands.run("echo back")).stdout).toBe("back\n");
    agent.close();
  });
});

describe("restart", () => {
  test("stop and start: keys are injected again, the pinned key still holds, SSH works", async () => {
    setPersisted("ssh");
    const pinned = readFileSync(knownHostsPath(vm.id), "utf8");
    await vm.stop();
    expect(readSshState(vm.id)?.state).toBe("ready"); // of the old boot: stale by its VMM pid
    await vm.start();
    // start() of a sandbox persisted as ssh returns once sshd is ready again.
    const state = readSshState(vm.id);
    expect(state).toMatchObject({ state: "ready", vmmPid: record(NAME).vmmPid });
    expect(readFileSync(knownHostsPath(vm.id), "utf8")).toBe(pinned);
    const handle = await SmolVM.fromId(NAME, { commChannel: "ssh" });
    try {
      expect((await handle.commands.run('printf %s "${SSH_CONNECTION:+ssh}"')).stdout).toBe("ssh");
    } finally {
      handle.close();
    }
    expect((await runCli(["ssh", NAME, "--", "cat", `${GUEST_HOME}/up.txt`])).stdout).toBe("via scp\n");
  });
});

describe("an image without sshd", () => {
  test("explicit ssh on a base sandbox fails fast with CHANNEL_UNAVAILABLE", async () => {
    const created = await runCli(["create", "--name", "nossh", "--image", "base", "--json"]);
    expect(created.code).toBe(0);
    const t0 = Date.now();
    const r = await runCli(["exec", "--comm-channel", "ssh", "nossh", "--", "true"]);
    const ms = Date.now() - t0;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Cannot reach sandbox "nossh" over SSH: its image "base" has no SSH server');
    expect(r.stderr).toContain("--image debian");
    const asJson = envelope(await runCli(["info", "nossh", "--comm-channel", "ssh", "--json"])).data;
    expect(asJson.channel).toBeNull();
    expect(ms).toBeLessThan(5_000);
    // auto still works there, over the agent.
    expect((await runCli(["exec", "nossh", "--", "echo", "agent"])).stdout).toBe("agent\n");
    console.log(`base + --comm-channel ssh: failed in ${ms} ms`);
    await runCli(["delete", "nossh"]);
  });

  test("create --image base --comm-channel ssh fails with the same error and leaves nothing", async () => {
    const r = await runCli(["create", "--name", "nossh2", "--image", "base", "--comm-channel", "ssh", "--json"]);
    expect(r.code).toBe(1);
    expect(envelope(r).error).toMatchObject({ code: "CHANNEL_UNAVAILABLE" });
    expect(envelope(r).error.message).toContain("has no SSH server");
    const list = envelope(await runCli(["list", "--all", "--json"])).data as { name: string }[];
    expect(list.map((s) => s.name)).not.toContain("nossh2");
  });
});
