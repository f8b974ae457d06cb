import { describe, expect, test } from "bun:test";
import { parseFloorUptimeMs, rawChannelInit, rawChannelScript, RAW_DONE } from "../../bench/floors.ts";

describe("raw channel floor program", () => {
  test("has no double quotes and no dot-named words, so it survives the kernel command line", () => {
    const script = rawChannelScript(16 * 2 ** 20);
    expect(script).not.toContain('"');
    const { path, args } = rawChannelInit(16 * 2 ** 20);
    expect(path).toBe("/bin/sh");
    // Three words: the environment variable with the script, then `-c` and the eval for argv.
    expect(args).toMatch(/^SMOLVM_RAW="set \+f; [^"]+" -c "set -f; eval \$SMOLVM_RAW"$/);
    expect(args).not.toContain(" -- ");
  });

  test("streams the requested bytes each way in 32 KiB writes and says done on the port", () => {
    const script = rawChannelScript(2 ** 20);
    expect(script).toContain("dd if=/dev/zero bs=32768 count=32 ");
    expect(script).toContain("dd bs=32768 count=32 iflag=fullblock of=/dev/null 2>/dev/null <&3");
    expect(script).toContain(`echo ${RAW_DONE} >&3`);
    expect(script).toContain("org.smolvm.agent");
    expect(script).toContain("mount -o remount,ro /");
  });

  test("refuses a size that is not a positive multiple of 32 KiB", () => {
    expect(() => rawChannelScript(0)).toThrow(RangeError);
    expect(() => rawChannelScript(1.5)).toThrow(RangeError);
    expect(() => rawChannelScript(40_000)).toThrow(RangeError);
  });
});

test("the floor init's line carries the guest's boot clock", () => {
  expect(parseFloorUptimeMs("smolvm-floor: init reached at 0.812345 s")).toBeCloseTo(812.345, 6);
  expect(parseFloorUptimeMs("garbage")).toBeUndefined();
});
