import { describe, expect, test } from "bun:test";
import { randomInt } from "node:crypto";
import { text } from "node:stream/consumers";
import type { AgentClient } from "../../lib/agent/client.ts";
import { NotFoundError } from "../../lib/errors.ts";
import { processesMatching, withSharedAgent, waitUntil } from "../helpers/agent.ts";

let client: AgentClient;

withSharedAgent((_agent, c) => {
  client = c;
});


describe("exec", () => {
  test("reports exit codes", async () => {
    expect((await client.run("exit 0")).exitCode).toBe(0);
    const r = await client.run("exit 42");
    expect(r).toMatchObject({ exitCode: 42, signal: null, timedOut: false });
  });

  test("reports death by signal as a signal name with no exit code", async () => {
    const r = await client.run("kill -TERM $$");
    expect(r).toMatchObject({ exitCode: null, signal: "TERM" });
  });

  test("keeps stdout and stderr apart", async () => {
    const r = await client.run("for i in 1 2 3; do echo out$i; echo err$i >&2; done");
    expect(r.stdout).toBe("out1\nout2\nout3\n");
    expect(r.stderr).toBe("err1\nerr2\nerr3\n");
  });

  test("pipes stdin through and closes it at the end", async () => {
    const input = Buffer.alloc(3 * 1024 * 1024, "smolvm ");
    const r = await client.run(["wc", "-c"], { stdin: input });
    expect(r.stdout.trim()).toBe(String(input.length));
    const echo = await client.run(["cat"], { stdin: "line one\nline two\n" });
    expect(echo.stdout).toBe("line one\nline two\n");
  });

  test("without stdin the command reads /dev/null", async () => {
    expect((await client.run("cat; echo end")).stdout).toBe("end\n");
  });

  test("passes argv verbatim, without a shell", async () => {
    const r = await client.run(["printf", "[%s]", "a b", "$HOME", "'q'"]);
    expect(r.stdout).toBe("[a b][$HOME]['q']");
  });

  test("honours env and cwd over the base environment", async () => {
    const r = await client.run('printf "%s|%s|%s|%s|%s" "$FOO" "$HOME" "$LANG" "$PATH" "$(pwd)"', {
      env: { FOO: "bar baz", LANG: "C" },
      cwd: "/tmp",
    });
    expect(r.stdout).toBe("bar baz|/root|C|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/tmp");
  });

  test("defaults the working directory to /root", async () => {
    expect((await client.run("pwd")).stdout.trim()).toBe("/root");
  });

  test("refuses a working directory that does not exist", async () => {
    const err = await client.run("true", { cwd: "/no/such/dir" }).catch((e) => e);
    expect(err).toBeInstanceOf(NotFoundError);
  });

  test("a missing program exits 127 with the reason on stderr, as shells do", async () => {
    const r = await client.run(["no-such-program-smolvm"]);
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain("no-such-program-smolvm");
  });

  test("a timeout kills the whole process group, grandchildren included", async () => {
    const marker = `${1000000 + randomInt(1_000_000)}`;
    const t0 = Date.now();
    const r = await client.run(`sleep ${marker} & sleep ${marker}`, { timeoutMs: 300 });
    expect(r).toMatchObject({ timedOut: true, exitCode: null, signal: "KILL" });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await waitUntil(() => processesMatching(`sleep ${marker}`).length === 0, 3000)).toBe(true);
  });

  test("the host can signal a running command", async () => {
    const h = await client.exec({ shell: "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done" });
    const chunks: Buffer[] = [];
    h.stdout.on("data", (b: Buffer) => chunks.push(b));
    await waitUntil(() => Buffer.concat(chunks).toString().includes("ready"), 5000);
    h.signal("TERM");
    const r = await h.wait();
    expect(r.exitCode).toBe(3);
    expect(Buffer.concat(chunks).toString()).toContain("got-term");
  });

  test("kill() ends the command with SIGKILL", async () => {
    const h = await client.exec({ argv: ["sleep", "30"] });
    h.kill();
    expect(await h.wait()).toMatchObject({ exitCode: null, signal: "KILL" });
  });

  test("aborting the signal kills the command and rejects with the reason", async () => {
    const marker = `${2000000 + randomInt(1_000_000)}`;
    const ac = new AbortController();
    const pending = client.run(`sleep ${marker}`, { signal: ac.signal });
    await waitUntil(() => processesMatching(`sleep ${marker}`).length > 0, 3000);
    ac.abort(new Error("stop it"));
    expect(await pending.catch((e: Error) => e.message)).toBe("stop it");
    expect(await waitUntil(() => processesMatching(`sleep ${marker}`).length === 0, 3000)).toBe(true);
  });

  test("32 concurrent commands on one connection each get their own output", async () => {
    const runs = Array.from({ length: 32 }, (_, i) =>
      client.run(`echo start-${i}; sleep 0.0${i % 10}; echo end-${i} >&2; exit ${i}`),
    );
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      expect(r.stdout).toBe(`start-${i}\n`);
      expect(r.stderr).toBe(`end-${i}\n`);
      expect(r.exitCode).toBe(i);
    });
  }, 60_000);

  test("output is binary-safe", async () => {
    const r = await client.run(["head", "-c", "4096", "/dev/urandom"], { encoding: "buffer" });
    expect(r.stdout.length).toBe(4096);
  });
});

describe("exec on a PTY", () => {
  test("echoes typed input, runs it, and reports a resize", async () => {
    const h = await client.exec({ argv: ["/bin/sh"], pty: { rows: 24, cols: 80 } });
    let screen = "";
    h.stdout.setEncoding("utf8");
    h.stdout.on("data", (s: string) => (screen += s));
    const until = async (text: string) => {
      if (!(await waitUntil(() => screen.includes(text), 5000))) throw new Error(`no "${text}" in: ${screen}`);
    };
    h.stdin!.write("echo typed-$((40+2))\n");
    await until("echo typed-$((40+2))"); // the terminal echoed what we typed
    await until("typed-42\r\n"); // and the shell ran it
    h.stdin!.write("stty size\n");
    await until("24 80");
    h.resize(40, 100);
    h.stdin!.write("stty size; echo $TERM\n");
    await until("40 100");
    await until("xterm-256color");
    h.stdin!.write("exit 7\n");
    expect((await h.wait()).exitCode).toBe(7);
    expect((await text(h.stderr)).length).toBe(0); // a terminal has no separate stderr
  });
});
