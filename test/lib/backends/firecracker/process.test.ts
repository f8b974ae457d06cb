/**
 * The firecracker process: version parsing, the can-it-run-here verdict (with the KVM verdict
 * injected, as the real one comes from a proven-KVM probe), and spawning a real child process (a
 * stand-in binary that serves the spec-checking fake API).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FirecrackerApi } from "../../../../lib/backends/firecracker/api.ts";
import {
  canRunHere, firecrackerVersion, parseFirecrackerVersion, spawnFirecracker, waitForApi,
} from "../../../../lib/backends/firecracker/process.ts";
import { NotRunningError, TimeoutError } from "../../../../lib/errors.ts";
import { pidAlive } from "../../../../lib/host/pids.ts";
import { writeFakeFirecracker } from "../../../helpers/fake-firecracker-bin.ts";

let dir: string;
const kvmOk = () => ({ usable: true as const });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-fc-proc-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe("version", () => {
  test("parses release, dev and old multi-line outputs", () => {
    expect(parseFirecrackerVersion("Firecracker v1.17.0\n")).toBe("1.17.0");
    expect(parseFirecrackerVersion("Firecracker v1.17.0-dev\n\nSupported snapshot data format versions: v8.0.0\n")).toBe("1.17.0-dev");
    expect(parseFirecrackerVersion("Firecracker v0.25.2\n\nSupported snapshot data format versions: v0.23.0 v0.24.0\n")).toBe("0.25.2");
    expect(parseFirecrackerVersion("jailer 1.0")).toBeUndefined();
  });

  test("runs --version; a binary that prints none is BACKEND_UNAVAILABLE with its output kept", async () => {
    expect(await firecrackerVersion(writeFakeFirecracker(dir))).toBe("1.17.0-dev");
    const liar = script("liar", "echo hello; exit 0");
    await expect(firecrackerVersion(liar)).rejects.toMatchObject({ code: "BACKEND_UNAVAILABLE", details: { stdout: "hello\n" } });
  });
});

describe("canRunHere", () => {
  test("says why not: the platform, the architecture, no binary, no version, no KVM", async () => {
    expect(await canRunHere({ platform: "darwin" })).toMatchObject({ ok: false, reason: "Firecracker runs on Linux only, not on darwin" });
    expect(await canRunHere({ platform: "linux", arch: undefined })).toMatchObject({ ok: false });
    expect(await canRunHere({ platform: "linux", arch: "x86_64", which: () => undefined, kvm: kvmOk }))
      .toEqual({ ok: false, reason: '"firecracker" is not on PATH', hint: expect.stringContaining("smolvm setup --firecracker") });
    const broken = script("firecracker", "exit 3");
    expect(await canRunHere({ platform: "linux", arch: "x86_64", binary: broken, kvm: kvmOk }))
      .toMatchObject({ ok: false, reason: expect.stringContaining("did not report a version") });
    const fake = writeFakeFirecracker(dir);
    const noKvm = await canRunHere({ platform: "linux", arch: "x86_64", binary: fake, kvm: () => ({ usable: false as const, reason: "a test guest did not run (kvm-pvm)" }) });
    expect(noKvm).toEqual({
      ok: false,
      reason: "KVM cannot run a guest here: a test guest did not run (kvm-pvm)",
      hint: expect.stringContaining("QEMU backend"),
    });
  });

  test("is ok with a binary that reports its version and a KVM verdict that says yes (sync or async)", async () => {
    const fake = writeFakeFirecracker(dir);
    expect(await canRunHere({ platform: "linux", arch: "x86_64", which: (p) => (p === "firecracker" ? fake : undefined), kvm: kvmOk }))
      .toEqual({ ok: true, binary: fake, version: "1.17.0-dev" });
    expect(await canRunHere({ platform: "linux", arch: "aarch64", binary: fake, kvm: async () => kvmOk() }))
      .toMatchObject({ ok: true });
  });
});

describe("spawnFirecracker", () => {
  test("stdout goes to the serial log, stderr to the VMM log, and the API answers once up", async () => {
    const vmm = await spawnFirecracker({
      binary: writeFakeFirecracker(dir),
      argv: ["--api-sock", join(dir, "api.sock"), "--id", "abc"],
      serialLogPath: join(dir, "console.log"),
      vmmLogPath: join(dir, "vmm.log"),
    });
    try {
      const api = new FirecrackerApi(join(dir, "api.sock"));
      await waitForApi(api, { timeoutMs: 10_000, exited: vmm.exited });
      expect((await api.describeInstance()).id).toBe("abc");
      expect(readFileSync(join(dir, "vmm.log"), "utf8")).toContain("fake firecracker: serving");
      expect(existsSync(join(dir, "console.log"))).toBe(true);
    } finally {
      vmm.kill();
      expect(await vmm.exited).toEqual({ code: null, signal: "SIGKILL" });
    }
    expect(pidAlive(vmm.pid)).toBe(false);
  });

  test("waitForApi stops as soon as the process exits, and at its deadline when nothing answers", async () => {
    const vmm = await spawnFirecracker({
      binary: writeFakeFirecracker(dir, { exitEarly: "Error: bad flag" }),
      argv: ["--api-sock", join(dir, "api.sock")],
      vmmLogPath: join(dir, "vmm.log"),
    });
    await expect(waitForApi(new FirecrackerApi(join(dir, "api.sock")), { timeoutMs: 10_000, exited: vmm.exited }))
      .rejects.toBeInstanceOf(NotRunningError);
    expect(readFileSync(join(dir, "vmm.log"), "utf8")).toBe("Error: bad flag\n");
    await expect(waitForApi(new FirecrackerApi(join(dir, "none.sock")), { timeoutMs: 100 })).rejects.toBeInstanceOf(TimeoutError);
  });

  test("a binary that does not exist is BACKEND_UNAVAILABLE", async () => {
    await expect(spawnFirecracker({ binary: join(dir, "nope"), argv: [] })).rejects.toMatchObject({ code: "BACKEND_UNAVAILABLE" });
  });
});
