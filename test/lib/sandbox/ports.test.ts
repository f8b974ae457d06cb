import { expect, test } from "bun:test";
import { InvalidInputError } from "../../../lib/errors.ts";
import { checkGuestPort, checkHostPort, parsePortSpec } from "../../../lib/sandbox/ports.ts";

test("GUEST picks any free host port; HOST:GUEST names one", () => {
  expect(parsePortSpec("8080")).toEqual({ hostPort: 0, guestPort: 8080 });
  expect(parsePortSpec("9000:8080")).toEqual({ hostPort: 9000, guestPort: 8080 });
});

test("ports out of range or malformed are refused with a hint", () => {
  for (const spec of ["0", "65536", "70000", "9000:0", "70000:80", "abc", "1.2", "a:80", "127.0.0.1:9000:80", ""]) {
    expect(() => parsePortSpec(spec)).toThrow(InvalidInputError);
  }
  expect(() => checkGuestPort(0)).toThrow(/from 1 to 65535/);
  expect(() => checkGuestPort(8080.5)).toThrow(InvalidInputError);
  expect(checkHostPort(0)).toBe(0);
  expect(() => checkHostPort(-1)).toThrow(InvalidInputError);
});
