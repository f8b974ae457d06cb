import { expect, test } from "bun:test";
import { killSignal, parseMarker, remoteCommand, shQuote } from "../../../lib/ssh/command.ts";

/** Runs the wrapper the way sshd would (`$SHELL -c COMMAND`) on this host, in a scratch dir. */
function runWrapper(command: string, cwd = "/tmp"): { stdout: string; stderr: string; code: number } {
  const r = Bun.spawnSync(["/bin/sh", "-c", command], { cwd, env: { PATH: "/usr/bin:/bin" } });
  return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), code: r.exitCode };
}

test("shQuote makes any word one shell word", () => {
  for (const word of ["plain", "", "a b", "it's", "$(id)", "`x`", "a\nb", "*", "-n"]) {
    expect(runWrapper(`printf %s ${shQuote(word)}`).stdout).toBe(word);
  }
});

test("the wrapper reports its pid first, then runs the argv with the base environment", () => {
  const r = runWrapper(remoteCommand({ argv: ["sh", "-c", 'printf "%s|%s|%s|%s" "$0" "$HOME" "$LANG" "$PWD"', "arg0"], cwd: "/" }));
  const [first, ...rest] = r.stderr.split("\n");
  expect(parseMarker(first!)).toEqual({ pid: expect.any(Number) });
  expect(rest.join("")).toBe("");
  expect(r.stdout).toBe("arg0|/root|C.UTF-8|/");
});

test("the wrapper runs a shell string with the call's env, and stdin is /dev/null unless asked", () => {
  const r = runWrapper(remoteCommand({ shell: 'echo "$A $B"; cat; echo done', env: { A: "it's", B: "$(id)" }, cwd: "/tmp" }));
  expect(r.stdout).toBe("it's $(id)\ndone\n");
  expect(r.code).toBe(0);
});

test("a missing working directory is reported before anything runs", () => {
  const r = runWrapper(remoteCommand({ shell: "echo ran", cwd: "/no/such/dir" }));
  expect(parseMarker(r.stderr.split("\n")[0]!)).toEqual({ noCwd: true });
  expect(r.stdout).toBe("");
  expect(r.code).toBe(1);
});

test("the exit status passes through exec", () => {
  expect(runWrapper(remoteCommand({ shell: "exit 7", cwd: "/" })).code).toBe(7);
});

test("markers: a terminal's CR is tolerated, anything else is not a marker", () => {
  expect(parseMarker("smolvm:pid:42\r")).toEqual({ pid: 42 });
  expect(parseMarker("smolvm:pid:x")).toBeUndefined();
  expect(parseMarker("hello")).toBeUndefined();
});

test("signals: names with or without SIG and numbers; anything else is refused", () => {
  expect(killSignal("SIGTERM")).toBe("TERM");
  expect(killSignal("kill")).toBe("KILL");
  expect(killSignal(9)).toBe("9");
  expect(killSignal("TERM; rm -rf /")).toBeUndefined();
  expect(killSignal(-1)).toBeUndefined();
});
