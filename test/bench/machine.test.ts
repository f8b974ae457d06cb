import { expect, test } from "bun:test";
import { parseCpuModel, parseOsRelease } from "../../bench/machine.ts";

test("the CPU model comes from /proc/cpuinfo's model name", () => {
  expect(parseCpuModel("processor\t: 0\nmodel name\t: AMD EPYC 7B13\ncpu MHz\t\t: 2450.000\n")).toBe("AMD EPYC 7B13");
  expect(parseCpuModel("processor\t: 0\n")).toBeUndefined();
});

test("the OS name comes from os-release's PRETTY_NAME", () => {
  expect(parseOsRelease('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')).toBe("Debian GNU/Linux 12 (bookworm)");
  expect(parseOsRelease("NAME=x\n")).toBeUndefined();
});
