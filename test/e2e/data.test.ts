/**
 * Data in and out of a real sandbox: files, the managed environment, port forwards and
 * pause/resume, through the CLI the way a user drives them (and the SDK for the byte and stream
 * variants). One sandbox serves every test in order, to keep the shared machine's load low.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { SmolVM } from "../../lib/smolvm.ts";
import { InvalidInputError } from "../../lib/errors.ts";
import { paths } from "../../lib/paths.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import { envelope, runCli, type CliResult } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, processesMatching, waitUntil } from "../helpers/vm.ts";
import { GUEST_HOME } from "../../lib/guest.ts";

setDefaultTimeout(120_000);

const NAME = "data";
const scratch = mkdtempSync(join(tmpdir(), "smolvm-data-"));

beforeAll(async () => {
  await prepareArtifacts();
  const created = await runCli(["create", "--name", NAME, "--image", "base", "--json"]);
  if (created.code !== 0) throw new Error(`create failed: ${created.stdout}${created.stderr}`);
}, 30 * 60_000);
cleanupAfterAll();
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function sh(command: string, options: { login?: boolean } = {}): Promise<string> {
  const argv = options.login ? ["env", "-i", "sh", "-l", "-c", command] : ["sh", "-c", command];
  const result = await runCli(["exec", NAME, "--", ...argv]);
  if (result.code !== 0) throw new Error(`exec ${command} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

async function withVm<T>(body: (vm: SmolVM) => Promise<T>): Promise<T> {
  const vm = await SmolVM.fromId(NAME);
  try {
    return await body(vm);
  } finally {
    vm.close();
  }
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** A failed command as a user sees it: exit 1, one JSON error with a code and a hint. */
/** A command that must succeed; when it does not, its own words are the failure. */
function succeeded(result: CliResult): void {
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}${result.stdout}`);
}

function expectFailure(result: CliResult, code: string, message: RegExp): void {
  expect(result.code).toBe(1);
  const { ok, error } = envelope(result);
  expect(ok).toBe(false);
  expect(error.code).toBe(code);
  expect(error.message).toMatch(message);
  expect(typeof error.hint).toBe("string");
  expect(error.hint.length).toBeGreaterThan(5);
}

function tcpConnect(port: number, host = "127.0.0.1"): Promise<"connected" | string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.setTimeout(3_000, () => {
      socket.destroy();
      resolve("timeout");
    });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

async function httpGet(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(15_000) });
  return response.text();
}

async function portList(): Promise<{ hostPort: number; guestPort: number }[]> {
  return envelope(await runCli(["port", "list", NAME, "--json"])).data;
}

describe("files", () => {
  test("a 100 MB random file uploaded and downloaded back is byte-identical", async () => {
    const local = join(scratch, "big.bin");
    const out = createWriteStream(local);
    for (let i = 0; i < 100; i++) out.write(randomBytes(1024 * 1024));
    await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
    const digest = sha256(local);

    const up = await runCli(["file", "upload", NAME, local, `${GUEST_HOME}/big/`, "--json"]);
    expect(up.code).toBe(0);
    expect(envelope(up).data).toMatchObject({ path: `${GUEST_HOME}/big/big.bin`, size: 100 * 1024 * 1024 });
    expect((await sh(`sha256sum ${GUEST_HOME}/big/big.bin`)).split(" ")[0]).toBe(digest);

    const back = join(scratch, "back", "big.copy");
    const down = await runCli(["file", "download", NAME, `${GUEST_HOME}/big/big.bin`, back, "--json"]);
    expect(down.code).toBe(0);
    expect(envelope(down).data).toMatchObject({ path: back, size: 100 * 1024 * 1024 });
    expect(sha256(back)).toBe(digest);
    rmSync(local);
    rmSync(back);
    await sh(`rm ${GUEST_HOME}/big/big.bin`);
  });

  test("a binary keeps its mode both ways and runs in the guest", async () => {
    const tool = join(scratch, "hello-tool");
    writeFileSync(tool, "#!/bin/sh\necho tool says hi\n");
    chmodSync(tool, 0o751);
    const up = await runCli(["file", "upload", NAME, tool, "/usr/local/bin/hello-tool"]);
    expect(up.code).toBe(0);
    expect(up.stdout).toContain("mode 0751");
    expect(await sh("stat -c %a /usr/local/bin/hello-tool && hello-tool")).toBe("751\ntool says hi\n");

    await sh(`printf secret > ${GUEST_HOME}/private && chmod 640 ${GUEST_HOME}/private`);
    const down = await runCli(["file", "download", NAME, `${GUEST_HOME}/private`, `${scratch}/`]);
    expect(down.code).toBe(0);
    expect(statSync(join(scratch, "private")).mode & 0o777).toBe(0o640);
    expect(readFileSync(join(scratch, "private"), "utf8")).toBe("secret");
  });

  test("an upload into dir/ lands as dir/<basename>, creating the directories; --no-create-dirs refuses", async () => {
    const local = join(scratch, "notes.txt");
    writeFileSync(local, "into the directory\n");
    expect((await runCli(["file", "upload", NAME, local, "/srv/deep/er/"])).code).toBe(0);
    expect(await sh("cat /srv/deep/er/notes.txt")).toBe("into the directory\n");

    const refused = await runCli(["file", "upload", NAME, local, "/nowhere/at/all/", "--no-create-dirs", "--json"]);
    expectFailure(refused, "NOT_FOUND", /does not exist/);
    expect(await sh("test -e /nowhere && echo there || echo absent")).toBe("absent\n");
  });

  test("SDK byte and stream variants: files.write, files.read, files.readStream", async () => {
    await withVm(async (vm) => {
      await vm.files.write(`${GUEST_HOME}/sdk/a.txt`, "from a string\n");
      expect((await vm.files.read(`${GUEST_HOME}/sdk/a.txt`)).toString()).toBe("from a string\n");

      const bytes = randomBytes(3 * 1024 * 1024 + 17);
      const written = await vm.files.write(`${GUEST_HOME}/sdk/b.bin`, Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), { mode: 0o600 });
      expect(written).toEqual({ path: `${GUEST_HOME}/sdk/b.bin`, size: bytes.length, mode: 0o600 });
      const handle = await vm.files.readStream(`${GUEST_HOME}/sdk/b.bin`);
      expect(handle.size).toBe(bytes.length);
      expect(handle.mode & 0o777).toBe(0o600);
      const chunks: Buffer[] = [];
      for await (const chunk of handle.stream) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);

      await expect(vm.files.read("relative/path")).rejects.toThrow(/must be absolute/);
      await expect(vm.files.read(`${GUEST_HOME}/sdk/missing`)).rejects.toMatchObject({ code: "NOT_FOUND" });
    });
  });
});

const tricky = {
  SPACES: "a b  c ",
  QUOTES: `it's "quoted" \\ back`,
  DOLLAR: "$HOME $(id -u) `uname` ${X:-y}",
  NEWLINES: "line1\nline2\n\nend\n",
};

describe("env", () => {
  test("set is seen by the next exec and by a login shell; values survive exactly; list masks values", async () => {
    const set = await runCli(["env", "set", NAME, ...Object.entries(tricky).map(([k, v]) => `${k}=${v}`), "--json"]);
    expect(set.code).toBe(0);
    expect(envelope(set).data.set).toEqual(Object.keys(tricky));
    for (const [name, value] of Object.entries(tricky)) {
      expect(await sh(`printf %s "$${name}"`)).toBe(value);
      // env -i: nothing inherited, so the value can only come from /etc/profile.d.
      expect(await sh(`printf %s "$${name}"`, { login: true })).toBe(value);
    }

    const masked = await runCli(["env", "list", NAME]);
    expect(masked.stdout).toContain("SPACES");
    expect(masked.stdout).not.toContain("line1");
    expect(envelope(await runCli(["env", "list", NAME, "--json"])).data.vars.QUOTES).toBe("********");
    expect(envelope(await runCli(["env", "list", NAME, "--show-values", "--json"])).data.vars).toEqual(tricky);
    expect(await withVm((vm) => vm.env.list())).toEqual(tricky);
  });

  test("unset removes a variable from execs and login shells", async () => {
    const unset = await runCli(["env", "unset", NAME, "DOLLAR", "--json"]);
    expect(unset.code).toBe(0);
    expect(envelope(unset).data.names).not.toContain("DOLLAR");
    expect(await sh('echo "[${DOLLAR-unset}]"')).toBe("[unset]\n");
    expect(await sh('echo "[${DOLLAR-unset}]"', { login: true })).toBe("[unset]\n");
    expect(await sh('printf %s "$SPACES"')).toBe(tricky.SPACES);
  });
});

describe("ports", () => {
  let hostPort = 0;

  test("expose serves the guest's httpd on 127.0.0.1 only", async () => {
    await sh("mkdir -p /www && echo 'hello from the guest' > /www/index.html && busybox httpd -p 8080 -h /www");
    const exposed = await runCli(["port", "expose", NAME, "8080", "--json"]);
    expect(exposed.code).toBe(0);
    const data = envelope(exposed).data;
    expect(data).toMatchObject({ guestPort: 8080, address: "127.0.0.1" });
    hostPort = data.hostPort;
    expect(hostPort).toBeGreaterThan(0);
    expect(await httpGet(hostPort)).toBe("hello from the guest\n");
    // Several at once through the one forward.
    const pages = await Promise.all(Array.from({ length: 5 }, () => httpGet(hostPort)));
    expect(pages.every((page) => page === "hello from the guest\n")).toBe(true);
    expect(await portList()).toMatchObject([{ hostPort, guestPort: 8080 }]);

    const external = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined && a.family === "IPv4" && !a.internal);
    if (external.length === 0) console.log("note: no non-loopback IPv4 address on this host; only 127.0.0.1 was checked");
    for (const address of external) {
      expect(await tcpConnect(hostPort, address!.address)).toBe("ECONNREFUSED");
    }
  });

  test("port close ends the forward and its open connections", async () => {
    const open = connect({ port: hostPort, host: "127.0.0.1" });
    await new Promise((resolve) => open.once("connect", resolve));
    const closed = new Promise((resolve) => open.once("close", resolve));
    open.on("error", () => {});
    const result = await runCli(["port", "close", NAME, String(hostPort), "--json"]);
    expect(result.code).toBe(0);
    await closed;
    expect(await tcpConnect(hostPort)).toBe("ECONNREFUSED");
    expect(await portList()).toEqual([]);
    expectFailure(await runCli(["port", "close", NAME, String(hostPort), "--json"]), "NOT_FOUND", /no forward listens there/);
  });

  test("SDK ports.expose picks a host port and close() ends it", async () => {
    await withVm(async (vm) => {
      const web = await vm.ports.expose(8080);
      expect(await httpGet(web.hostPort)).toBe("hello from the guest\n");
      expect((await vm.ports.list()).map((p) => p.hostPort)).toEqual([web.hostPort]);
      await web.close();
      await web.close(); // already gone: no error
      expect(await tcpConnect(web.hostPort)).toBe("ECONNREFUSED");
    });
  });
});

describe("pause and resume", () => {
  test("a paused sandbox runs nothing and resumes intact", async () => {
    await withVm(async (vm) => {
      await vm.commands.run("(i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.2; done) >/dev/null 2>&1 &");
      const counter = async () => Number((await vm.files.read("/tmp/c")).toString().trim());
      await waitUntil(async () => (await vm.commands.run("test -s /tmp/c")).exitCode === 0 && (await counter()) >= 3, 20_000, "the counter to run");

      const before = await counter();
      const t1 = Date.now();
      const pause = await runCli(["pause", NAME, "--json"]);
      expect(pause.code).toBe(0);
      expect(envelope(pause).data.status).toBe("paused");
      const t2 = Date.now();

      // While paused: commands are refused with a hint, and the guest's clock stands still.
      const refused = await runCli(["exec", NAME, "--", "true"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`smolvm resume ${NAME}`);
      const pausedFor = 2_500;
      await new Promise((resolve) => setTimeout(resolve, pausedFor));

      const t3 = Date.now();
      const resume = await runCli(["resume", NAME, "--json"]);
      expect(resume.code).toBe(0);
      expect(envelope(resume).data.status).toBe("running");
      const after = await counter();
      const t4 = Date.now();
      // At 5 ticks a second the counter could advance only while the guest ran (t1..t2, t3..t4),
      // plus one tick of slack at each edge; a guest running through the pause would add ~12.
      const ranMs = t2 - t1 + (t4 - t3);
      expect(after - before).toBeLessThanOrEqual(Math.ceil(ranMs / 200) + 2);
      expect(Math.ceil(ranMs / 200) + 2).toBeLessThan(Math.floor((t4 - t1) / 200));

      // Intact: the loop goes on, earlier files are there.
      await waitUntil(async () => (await counter()) >= after + 3, 10_000, "the counter to advance after resume");
      expect((await vm.files.read(`${GUEST_HOME}/sdk/a.txt`)).toString()).toBe("from a string\n");
    });
  });

  test("a paused sandbox whose supervisor was killed stays paused, and resume re-attaches and thaws it", async () => {
    expect((await runCli(["pause", NAME])).code).toBe(0);
    const store = StateStore.open();
    const before = (() => {
      try {
        return store.get(NAME);
      } finally {
        store.close();
      }
    })();
    process.kill(before.supervisorPid!, "SIGKILL");
    await waitUntil(() => !processesMatching(`__supervise ${before.id}`).length, 5_000, "the supervisor to die");
    expect(envelope(await runCli(["info", NAME, "--json"])).data.status).toBe("paused");
    const resumed = await runCli(["resume", NAME, "--json"]);
    expect(resumed.code).toBe(0);
    expect(envelope(resumed).data).toMatchObject({ status: "running", vmmPid: before.vmmPid });
    expect(envelope(resumed).data.supervisorPid).not.toBe(before.supervisorPid);
    const first = Number(await sh("cat /tmp/c"));
    await waitUntil(async () => Number(await sh("cat /tmp/c")) > first, 10_000, "the counter to advance");
  });

  test("pause and resume of a running or paused sandbox are idempotent, and stop works while paused", async () => {
    expect((await runCli(["resume", NAME])).code).toBe(0); // already running
    expect((await runCli(["pause", NAME])).code).toBe(0);
    expect((await runCli(["pause", NAME])).code).toBe(0);
    succeeded(await runCli(["stop", NAME]));
    expectFailure(await runCli(["pause", NAME, "--json"]), "NOT_RUNNING", /is stopped/);
    succeeded(await runCli(["start", NAME]));
  });
});

describe("after stop and start", () => {
  test("env survives stop/start; forwards die with the stop", async () => {
    const exposed = envelope(await runCli(["port", "expose", NAME, "8080", "--json"])).data;
    succeeded(await runCli(["stop", NAME]));
    expect(await tcpConnect(exposed.hostPort)).toBe("ECONNREFUSED");
    succeeded(await runCli(["start", NAME]));
    expect(await portList()).toEqual([]);
    expect(await sh('printf %s "$NEWLINES"')).toBe(tricky.NEWLINES);
    expect(await sh('printf %s "$QUOTES"', { login: true })).toBe(tricky.QUOTES);
    expect(await sh('echo "[${DOLLAR-unset}]"')).toBe("[unset]\n");
  });
});

describe("bad input", () => {
  function vmRecord() {
    const store = StateStore.open();
    try {
      return store.get(NAME);
    } finally {
      store.close();
    }
  }

  test("each is a clear error with a hint, exit 1, and changes nothing", async () => {
    const local = join(scratch, "ok.txt");
    writeFileSync(local, "ok\n");
    const envBefore = await withVm((vm) => vm.env.list());
    const record = vmRecord();

    expectFailure(await runCli(["file", "upload", NAME, local, "root/ok.txt", "--json"]), "INVALID_INPUT", /must be absolute/);
    expectFailure(await runCli(["file", "download", NAME, "etc/hostname", scratch, "--json"]), "INVALID_INPUT", /must be absolute/);
    expectFailure(await runCli(["file", "upload", NAME, join(scratch, "missing.txt"), `${GUEST_HOME}/`, "--json"]), "NOT_FOUND", /no such file on this host/);
    // A directory is no file: the CLI sends it as a tree (uploadDir), the SDK's upload refuses it.
    const refused = await withVm((vm) => vm.files.upload(scratch, `${GUEST_HOME}/`).catch((e: unknown) => e));
    expect(refused).toBeInstanceOf(InvalidInputError);
    expect((refused as Error).message).toContain("it is a directory");
    expect((refused as InvalidInputError).hint).toContain("uploadDir");
    expect(await sh(`ls ${GUEST_HOME}/ok.txt ${GUEST_HOME}/missing.txt 2>&1 | grep -c 'No such' || true`)).toBe("2\n");

    for (const args of [["file", "upload", "no-such-vm", local, `${GUEST_HOME}/`], ["env", "set", "no-such-vm", "A=1"], ["port", "expose", "no-such-vm", "80"], ["pause", "no-such-vm"], ["env", "list", "no-such-vm"]]) {
      expectFailure(await runCli([...args, "--json"]), "NOT_FOUND", /Cannot find sandbox "no-such-vm"/);
    }

    expectFailure(await runCli(["env", "set", NAME, "GOOD=1", "1BAD=2", "--json"]), "INVALID_INPUT", /Invalid environment variable name "1BAD"/);
    expectFailure(await runCli(["env", "set", NAME, "NOEQUALS", "--json"]), "INVALID_INPUT", /expected NAME=VALUE/);
    expectFailure(await runCli(["env", "unset", NAME, "BAD-NAME", "--json"]), "INVALID_INPUT", /BAD-NAME/);
    expect(await withVm((vm) => vm.env.list())).toEqual(envBefore);

    expectFailure(await runCli(["port", "expose", NAME, "70000", "--json"]), "INVALID_INPUT", /from 1 to 65535/);
    expectFailure(await runCli(["port", "expose", NAME, "0", "--json"]), "INVALID_INPUT", /from 1 to 65535/);
    expectFailure(await runCli(["port", "expose", NAME, "80:99999", "--json"]), "INVALID_INPUT", /from 1 to 65535/);
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", () => resolve()));
    const takenPort = (taken.address() as { port: number }).port;
    try {
      expectFailure(await runCli(["port", "expose", NAME, `${takenPort}:8080`, "--json"]), "ALREADY_EXISTS", /host port is in use/);
    } finally {
      taken.close();
    }
    expect(await portList()).toEqual([]);

    const after = vmRecord();
    expect(after.status).toBe(record.status);
    expect(after.vmmPid).toBe(record.vmmPid);
    expect(after.supervisorPid).toBe(record.supervisorPid);
  });
});

describe("delete", () => {
  test("forwards die with the sandbox", async () => {
    await sh("busybox httpd -p 8080 -h /www");
    const { hostPort } = envelope(await runCli(["port", "expose", NAME, "8080", "--json"])).data;
    expect(await httpGet(hostPort)).toBe("hello from the guest\n");
    const id = (await withVm(async (vm) => vm.id)) as string;
    expect((await runCli(["delete", NAME])).code).toBe(0);
    await waitUntil(() => !existsSync(paths.sandboxDir(id)), 10_000, "the sandbox to be gone");
    expect(await tcpConnect(hostPort)).toBe("ECONNREFUSED");
  });
});
