/**
 * The network's owner (lib/network/index.ts): which mode a platform gives, decided with the
 * platform injected; and, in a namespace of the test's own, that what a TAP sandbox's network
 * makes is listed while it exists, removed whole by a reclaim that says what it found, and that
 * an interface of a sandbox's name that is not the sandbox's is neither taken over nor removed.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BackendUnavailableError } from "../../../lib/errors.ts";
import { chooseNetwork } from "../../../lib/network/index.ts";
import { repoRoot } from "../../helpers/cli.ts";

describe("the network a new sandbox gets", () => {
  test("on Linux: what was asked, else user, without a notice", () => {
    expect(chooseNetwork(undefined, "linux")).toEqual({ mode: "user" });
    for (const mode of ["user", "tap", "none"] as const) expect(chooseNetwork(mode, "linux")).toEqual({ mode });
  });

  test("on macOS: none by default, with a notice that says why and what still works", () => {
    const choice = chooseNetwork(undefined, "darwin");
    expect(choice.mode).toBe("none");
    expect(choice.notice).toContain("on macOS sandboxes have no network");
    expect(choice.notice).toContain("port forwards and SSH still work");
    expect(chooseNetwork("none", "darwin")).toEqual({ mode: "none" });
  });

  test("on macOS: an explicit user or TAP network is refused with the reason and what to do", () => {
    for (const mode of ["user", "tap"] as const) {
      let thrown: unknown;
      try {
        chooseNetwork(mode, "darwin");
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(BackendUnavailableError);
      expect((thrown as Error).message).toBe(`Cannot use --network ${mode} on macOS: it keeps a guest from the host's own services with Linux network namespaces and nftables, which macOS does not have`);
      expect((thrown as BackendUnavailableError).hint).toContain("--network none");
    }
  });
});

const why = process.getuid?.() !== 0 ? "needs root (a network namespace of the test's own)" : spawnSync("which", ["nft"]).status !== 0 ? "nft is not installed" : undefined;
if (why) console.log(`skip: TAP objects of the network's owner: ${why}`);

describe.skipIf(why !== undefined)("a TAP sandbox's objects, in a namespace of the test's own", () => {
  test("are listed while they exist, reclaimed whole, and a foreign interface of the same name is left alone", () => {
    const ns = `smolvm-owner-${process.pid}`;
    const dir = mkdtempSync(join(tmpdir(), "smolvm-owner-"));
    expect(spawnSync("ip", ["netns", "add", ns]).status).toBe(0);
    try {
      const run = spawnSync("ip", ["netns", "exec", ns, process.execPath, join(repoRoot, "test", "helpers", "net-owner.ts"), dir], { encoding: "utf8", timeout: 60_000 });
      expect(run.stderr).toBe("");
      const seen = JSON.parse(run.stdout);
      expect(seen.before).toEqual([]);
      expect(seen.prepared).toEqual({ mode: "tap", ifname: "sm-0123456789ab" });
      expect(seen.left).toEqual([
        'TAP interface "sm-0123456789ab"',
        expect.stringMatching(/^firewall rules of sandbox 0123456789ab in table inet smolvm \(egress_0123456789ab, refuse_0123456789ab, ingress_0123456789ab, /),
      ]);
      expect(seen.reclaimed).toEqual(seen.left);
      expect(seen.after).toEqual([]);
      expect(seen.tableAfter).not.toContain("0123456789ab");
      expect(seen.foreignLeft).toEqual([]);
      expect(seen.clash).toMatchObject({ code: "ALREADY_EXISTS", hint: expect.stringContaining("ip link del sm-ba9876543210") });
      expect(seen.foreignAfterClash).toEqual([]);
      expect(seen.foreignReclaimed).toEqual([]);
      expect(seen.foreignStillThere).toBe(true);
    } finally {
      spawnSync("ip", ["netns", "del", ns]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
