import { expect, test } from "bun:test";
import { InvalidInputError } from "../../../lib/errors.ts";
import { guestTarget, requireGuestPath } from "../../../lib/sandbox/guest-paths.ts";

test("a relative guest path is refused with a hint that shows the absolute form", () => {
  expect(() => requireGuestPath("data.txt")).toThrow(InvalidInputError);
  try {
    requireGuestPath("./data.txt");
  } catch (error) {
    expect((error as InvalidInputError).hint).toContain('"/root/data.txt"');
  }
  expect(() => requireGuestPath("")).toThrow(InvalidInputError);
  expect(() => requireGuestPath("/a\0b")).toThrow(InvalidInputError);
});

test("guest paths are normalised and keep a trailing slash", () => {
  expect(requireGuestPath("//root/./a/../b")).toBe("/root/b");
  expect(requireGuestPath("/root/dir/")).toBe("/root/dir/");
  expect(requireGuestPath("/")).toBe("/");
});

test("a path that must name a file cannot end in a slash", () => {
  expect(() => requireGuestPath("/root/dir/", { file: true })).toThrow(/names a directory/);
});

test("an upload into dir/ lands as dir/<basename of the local file>", () => {
  expect(guestTarget("/root/dir/", "app.bin")).toBe("/root/dir/app.bin");
  expect(guestTarget("/", "x")).toBe("/x");
  expect(guestTarget("/root/renamed", "app.bin")).toBe("/root/renamed");
});
