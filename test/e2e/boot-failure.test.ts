/**
 * A VMM that dies at start, for real: QEMU given a file that is not a kernel. The user must see
 * QEMU's own reason, be pointed at the log that holds the whole of its output, and find nothing
 * left behind: no row, no sandbox directory, no QEMU or supervisor process.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { paths, smolvmHome } from "../../lib/paths.ts";
import { envelope, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts, processesMatching } from "../helpers/vm.ts";

setDefaultTimeout(120_000);

beforeAll(async () => {
  await prepareArtifacts();
}, 30 * 60_000);
cleanupAfterAll();

describe("a VMM that dies at start", () => {
  test("create with a file that is not a kernel: QEMU's first error line, the log named, nothing left", async () => {
    const scratch = mkdtempSync(join(tmpdir(), "smolvm-bad-kernel-"));
    try {
      const notAKernel = join(scratch, "vmlinux");
      writeFileSync(notAKernel, "this is a text file, not a Linux kernel\n");
      const result = await runCli(["create", "--name", "dies", "--image", "base", "--kernel", notAKernel]);
      expect(result.code).not.toBe(0);
      // QEMU's own words, not a generic "failed to boot".
      expect(result.stderr).toContain("failed to boot");
      expect(result.stderr).toMatch(/Cannot start QEMU: it exited with status \d+: qemu[^\n]*: [^\n]*kernel/i);
      expect(result.stderr).toContain(`hint: the VMM's full output is in ${paths.logFile()}`);
      // The log holds QEMU's output, although the sandbox directory it came from is gone.
      expect(readFileSync(paths.logFile(), "utf8")).toMatch(/"output":"qemu[^"]*kernel/i);

      expect(envelope(await runCli(["list", "--json"])).data).toEqual([]);
      expect(readdirSync(paths.sandboxesDir())).toEqual([]);
      expect(processesMatching(smolvmHome())).toEqual([]);

      // The same through --json: the envelope carries the code and the hint.
      const json = envelope(await runCli(["create", "--name", "dies", "--image", "base", "--kernel", notAKernel, "--json"]));
      expect(json.ok).toBe(false);
      expect(json.error.code).toBe("COMMAND_FAILED");
      expect(json.error.hint).toContain(paths.logFile());
      expect(readdirSync(paths.sandboxesDir())).toEqual([]);
      expect(processesMatching(smolvmHome())).toEqual([]);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
