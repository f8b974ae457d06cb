import { expect, test } from "bun:test";
import { commandOf } from "../../cmd/streams.ts";

test("exec runs a plain word or several words as they are, and one word with shell syntax through sh", () => {
  expect(commandOf(["true"])).toEqual(["true"]);
  expect(commandOf(["/usr/bin/env"])).toEqual(["/usr/bin/env"]);
  expect(commandOf(["ls", "-l", "/tmp"])).toEqual(["ls", "-l", "/tmp"]);
  expect(commandOf(["sh", "-c", "echo $HOME"])).toEqual(["sh", "-c", "echo $HOME"]);
  for (const script of ["ls | wc -l", "echo $HOME", "cd /tmp && ls", "ls *.txt", "echo hi > /tmp/x", "uname -a", "a;b", "`id`", "'quoted'"]) {
    expect(commandOf([script])).toBe(script);
  }
});
