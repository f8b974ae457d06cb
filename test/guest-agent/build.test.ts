import { beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { guestAgentBinary, guestAgentBinaryPath } from "../../lib/agent/binary.ts";
import { which } from "../../lib/host/process.ts";
import { makeAgent } from "../helpers/agent.ts";

/** ELF facts: machine, and whether it asks for a dynamic loader (a PT_INTERP segment). */
function elfInfo(bytes: Uint8Array): { machine: number; dynamic: boolean } {
  const b = Buffer.from(bytes);
  expect(b.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  let dynamic = false;
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) dynamic = true;
  return { machine: b.readUInt16LE(0x12), dynamic };
}

beforeAll(async () => {
  await makeAgent("guest");
}, 180_000);

describe("guest agent binaries", () => {
  test("x86_64 is static, stripped and under 200 KB", async () => {
    const path = guestAgentBinaryPath("x86_64");
    expect(statSync(path).size).toBeLessThan(200 * 1024);
    const info = elfInfo(readFileSync(path));
    expect(info).toEqual({ machine: 62 /* EM_X86_64 */, dynamic: false });
    expect(execFileSync(path, ["--version"], { encoding: "utf8" })).toBe("smolvm-agent 0.1.0\n");
  });

  test("aarch64 is static", async () => {
    const info = elfInfo(readFileSync(guestAgentBinaryPath("aarch64")));
    expect(info).toEqual({ machine: 183 /* EM_AARCH64 */, dynamic: false });
  });

  test.skipIf(!which("qemu-aarch64"))("aarch64 runs (under qemu-user)", () => {
    const out = execFileSync("qemu-aarch64", [guestAgentBinaryPath("aarch64"), "--version"], { encoding: "utf8" });
    expect(out).toBe("smolvm-agent 0.1.0\n");
  });

  test("guestAgentBinary reads the source build when nothing is embedded", async () => {
    const bytes = await guestAgentBinary("x86_64");
    expect(bytes.length).toBe(statSync(guestAgentBinaryPath("x86_64")).size);
  });

  test("an unknown arch is refused", async () => {
    await expect(guestAgentBinary("riscv64" as "x86_64")).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });
});
