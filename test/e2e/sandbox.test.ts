/**
 * A real sandbox end to end: real QEMU (TCG here), our kernel, the base image and the agent as
 * PID 1, driven through the CLI the way a user would.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { paths } from "../../lib/paths.ts";
import { StateStore } from "../../lib/state/sandboxes.ts";
import { envelope, repoRoot, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, processesMatching, waitUntil } from "../helpers/vm.ts";
import { GUEST_HOME } from "../../lib/guest.ts";

setDefaultTimeout(120_000);

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

function record(name: string) {
  const store = StateStore.open();
  try {
    return store.find(name);
  } finally {
    store.close();
  }
}

async function create(name: string, extra: string[] = []): Promise<void> {
  const result = await runCli(["create", "--name", name, "--image", "base", "--json", ...extra]);
  if (result.code !== 0) throw new Error(`create ${name} failed: ${result.stdout}${result.stderr}`);
}

describe("run", () => {
  test("output and exit code pass through, and the sandbox is gone afterwards", async () => {
    const result = await runCli(["run", "--image", "base", "--", "sh", "-c", "echo hi; echo oops >&2; exit 7"]);
    expect(result.stdout).toBe("hi\n");
    expect(result.stderr).toContain("oops");
    expect(result.code).toBe(7);
    await waitUntil(() => readdirSync(paths.sandboxesDir()).length === 0, 10_000, "the run sandbox's directory to go");
    expect(envelope(await runCli(["list", "--all", "--json"])).data).toEqual([]);
  });
});

describe("lifecycle", () => {
  test("create, exec, stop, start, exec, delete; files survive stop/start", async () => {
    await create("life");
    const write = await runCli(["exec", "life", "--", "sh", "-c", `echo kept > ${GUEST_HOME}/note; uname -s`]);
    expect(write.stdout).toBe("Linux\n");
    expect(write.code).toBe(0);
    const info = envelope(await runCli(["info", "life", "--json"])).data;
    expect(info.status).toBe("running");
    expect(info.vmmPid).toBeGreaterThan(0);

    expect((await runCli(["stop", "life"])).code).toBe(0);
    expect(record("life")?.status).toBe("stopped");
    const stopped = await runCli(["exec", "life", "--", "true"]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain("smolvm start life");

    expect((await runCli(["start", "life"])).code).toBe(0);
    const read = await runCli(["exec", "life", "--", "cat", `${GUEST_HOME}/note`]);
    expect(read.stdout).toBe("kept\n");

    const started = Date.now();
    const deleted = await runCli(["delete", "life"]);
    expect(deleted.code).toBe(0);
    // The CLI process itself takes a few hundred ms to start; the delete work is a small part.
    expect(Date.now() - started).toBeLessThan(3_000);
    const id = info.id as string;
    // The name is free when delete returns; the files and processes go behind it.
    expect(record("life")).toBeUndefined();
    await waitUntil(() => !existsSync(paths.sandboxDir(id)) && processesMatching(id).length === 0, 10_000, "cleanup after delete");
  });

  test("two isolated sandboxes from one image do not see each other's files", async () => {
    await Promise.all([create("iso-a"), create("iso-b")]);
    await runCli(["exec", "iso-a", "--", "sh", "-c", `echo mine > ${GUEST_HOME}/secret`]);
    const other = await runCli(["exec", "iso-b", "--", "sh", "-c", `cat ${GUEST_HOME}/secret 2>/dev/null || echo absent`]);
    expect(other.stdout).toBe("absent\n");
    expect((await runCli(["delete", "iso-a", "iso-b"])).code).toBe(0);
  });
});

describe("exec", () => {
  test("stdin, env, cwd, timeout and concurrent execs", async () => {
    await create("busy");
    const cat = await runCli(["exec", "busy", "--", "cat"], { input: "data\n" });
    expect(cat.stdout).toBe("data\n");
    const fromNull = await runCli(["exec", "busy", "--", "sh", "-c", "cat; echo out; echo err >&2"], { devNullStdin: true, timeoutMs: 30_000 });
    expect(fromNull).toEqual({ code: 0, stdout: "out\n", stderr: "err\n" });
    const env = await runCli(["exec", "busy", "--env", "GREETING=hello world", "--cwd", "/tmp", "--", "sh", "-c", 'echo "$GREETING from $(pwd)"']);
    expect(env.stdout).toBe("hello world from /tmp\n");
    // A timeout is status 124, as timeout(1) has it, and says what truly happened.
    const slow = await runCli(["exec", "busy", "--timeout", "1", "--", "sleep", "30"]);
    expect(slow.code).toBe(124);
    expect(slow.stderr).toBe("smolvm: command timed out after 1 s and was killed, with its whole process group\n");
    const leftBehind = await runCli(["exec", "busy", "--timeout", "1", "--", "sh", "-c", "sleep 100 &"]);
    expect(leftBehind.code).toBe(124);
    expect(leftBehind.stderr).toBe("smolvm: command exited with status 0, but processes it left behind kept its output open; they were killed when its 1 s timeout passed\n");

    // Much output arrives whole; a reader that goes away after its first piece (`| head`) neither
    // hangs the CLI nor changes the command's status.
    const many = await runCli(["exec", "busy", "--", "seq", "1", "200000"]);
    expect(many.stdout).toBe(Array.from({ length: 200000 }, (_, i) => `${i + 1}\n`).join(""));
    const headLike = spawn(process.execPath, [join(repoRoot, "main.ts"), "exec", "busy", "--", "seq", "1", "2000000"], { stdio: ["ignore", "pipe", "pipe"] });
    headLike.stdout.once("data", () => headLike.stdout.destroy());
    const quit = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => headLike.kill("SIGKILL"), 60_000);
      headLike.once("close", (code) => (clearTimeout(timer), resolve(code)));
    });
    expect(quit).toBe(0);

    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) => runCli(["exec", "busy", "--", "sh", "-c", `echo job-${i}; exit ${i}`])),
    );
    runs.forEach((result, i) => {
      expect(result.stdout).toBe(`job-${i}\n`);
      expect(result.code).toBe(i);
    });
  });

  test("4 sandboxes run at once", async () => {
    const names = ["quad-1", "quad-2", "quad-3", "quad-4"];
    await Promise.all(names.map((name) => create(name)));
    const outputs = await Promise.all(names.map((name) => runCli(["exec", name, "--", "hostname"])));
    expect(outputs.map((o) => o.stdout.trim())).toEqual(names);
    expect((await runCli(["delete", ...names])).code).toBe(0);
  });
});

describe("faults", () => {
  test("kill -9 of QEMU: list shows it failed, delete cleans up", async () => {
    await create("crashy");
    const vm = record("crashy")!;
    process.kill(vm.vmmPid!, "SIGKILL");
    await waitUntil(() => record("crashy")?.status === "failed", 10_000, "the crash to be recorded");
    const listed = envelope(await runCli(["list", "--all", "--json"])).data;
    expect(listed.find((s: { name: string }) => s.name === "crashy").status).toBe("failed");
    expect((await runCli(["delete", "crashy"])).code).toBe(0);
    await waitUntil(() => record("crashy") === undefined && !existsSync(paths.sandboxDir(vm.id)), 10_000, "cleanup");
  });

  test("kill -9 of the supervisor: the next exec re-attaches, with the port forwards it had", async () => {
    await create("orphan");
    const before = record("orphan")!;
    const serve = "mkdir -p /www && echo served > /www/index.html && busybox httpd -p 7000 -h /www";
    expect((await runCli(["exec", "orphan", "--", "sh", "-c", serve])).code).toBe(0);
    const exposed = envelope(await runCli(["port", "expose", "orphan", "7000", "--json"]));
    const hostPort = exposed.data.hostPort as number;
    process.kill(before.supervisorPid!, "SIGKILL");
    await waitUntil(() => !processesMatching(`__supervise ${before.id}`).length, 5_000, "the supervisor to die");
    const again = await runCli(["exec", "orphan", "--", "echo", "still here"]);
    expect(again.stdout).toBe("still here\n");
    const ports = envelope(await runCli(["port", "list", "orphan", "--json"]));
    expect(ports.data.map((p: { hostPort: number; guestPort: number }) => [p.hostPort, p.guestPort])).toEqual([[hostPort, 7000]]);
    const response = await fetch(`http://127.0.0.1:${hostPort}/`, { signal: AbortSignal.timeout(15_000) });
    expect(await response.text()).toBe("served\n");
    const after = record("orphan")!;
    expect(after.vmmPid).toBe(before.vmmPid);
    expect(after.supervisorPid).not.toBe(before.supervisorPid);
    expect((await runCli(["delete", "orphan"])).code).toBe(0);
  });

  test("a bad kernel path is a clear error and leaves nothing behind", async () => {
    const result = await runCli(["create", "--name", "nokernel", "--image", "base", "--kernel", "/nonexistent/vmlinux"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("/nonexistent/vmlinux");
    expect(result.stderr).toContain("hint:");
    expect(record("nokernel")).toBeUndefined();
  });

  test("a guest that never answers fails within the boot timeout with the console's last lines", async () => {
    const { base } = await prepareArtifacts();
    const dirsBefore = readdirSync(paths.sandboxesDir()).length;
    const started = Date.now();
    // busybox sh as PID 1 instead of the agent: the VM boots but nothing ever answers.
    const result = await runCli(["create", "--name", "mute", "--rootfs", base, "--boot-timeout", "4", "--boot-args", "init=/bin/sh", "--json"]);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.code).toBe(1);
    const error = envelope(result).error;
    expect(error.code).toBe("TIMEOUT");
    expect(error.message).toContain("did not answer within 4 s");
    expect(record("mute")).toBeUndefined();
    expect(readdirSync(paths.sandboxesDir()).length).toBe(dirsBefore);
  });
});

describe("debian image", () => {
  test("create, exec, stop, start, exec, delete on the default image", async () => {
    await create("deb", ["--image", "debian"]);
    const first = await runCli(["exec", "deb", "--", "bash", "-c", `echo kept > ${GUEST_HOME}/note; . /etc/os-release; echo $ID; python3 -c 'print(6*7)'`]);
    expect(first.stdout).toBe("debian\n42\n");
    expect((await runCli(["stop", "deb"])).code).toBe(0);
    expect((await runCli(["start", "deb"])).code).toBe(0);
    expect((await runCli(["exec", "deb", "--", "cat", `${GUEST_HOME}/note`])).stdout).toBe("kept\n");
    expect((await runCli(["delete", "deb"])).code).toBe(0);
  });
});

describe("shell and logs", () => {
  test("shell gives an interactive terminal and passes the exit status on", async () => {
    await create("tty");
    // `script` gives the CLI a real terminal, as a person's would be.
    const line = `${process.execPath} ${repoRoot}/main.ts shell tty`;
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("script", ["-qec", line, "/dev/null"], { env: { ...process.env, TERM: "xterm" }, stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (chunk) => (out += chunk));
      // Type into the guest shell once it has had time to start, like a person would.
      setTimeout(() => child.stdin.write("tty; echo \"cols=$(stty size)\"; exit 3\r"), 3_000);
      child.on("close", (code) => resolve({ code, out }));
    });
    expect(result.out).toContain("/dev/pts/");
    expect(result.out).toMatch(/cols=\d+ \d+/);
    expect(result.code).toBe(3);
  });

  test("logs shows the console, --tail limits it", async () => {
    const all = await runCli(["logs", "tty"]);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain("smolvm-agent: ready");
    const tail = await runCli(["logs", "tty", "--tail", "1"]);
    expect(tail.stdout.trim().split("\n").length).toBe(1);
    expect((await runCli(["delete", "tty"])).code).toBe(0);
  });
});

test("setup finds the packages, kernel and image in place", async () => {
  const result = await runCli(["setup", "--image", "base", "--json"]);
  expect(result.code).toBe(0);
  const data = envelope(result).data;
  expect(data.kernel).toContain("vmlinux");
  expect(data.image).toContain("rootfs.ext4");
  expect(Array.isArray(data.packages.installed)).toBe(true);
});
