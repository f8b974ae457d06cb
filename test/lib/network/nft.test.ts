/**
 * The batches are pure text; these tests also load them into a real kernel, in a user and network
 * namespace of the test's own (never the host's rule set), because only nft itself can say that a
 * batch parses, is idempotent and removes what it should.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { parseIp, parseCidr } from "../../../lib/network/addresses.ts";
import {
  egressBatch, learnBatch, namespaceRuleset, objectNamesOf, tapSetupBatch, tapTeardownBatch, type TapSpec,
} from "../../../lib/network/nft.ts";
import { applyNft, listSmolvmTable } from "../../../lib/network/nft-run.ts";
import { parsePolicy } from "../../../lib/network/policy.ts";

const A = "aaaaaaaaaaaa";
const B = "bbbbbbbbbbbb";

function tap(id: string, last: number, policy = parsePolicy({})): TapSpec {
  return {
    id, ifname: `sm-${id}`, guest: parseIp(`172.16.0.${last}`)!, gateway: parseIp("172.16.0.1")!, dnsPort: 2300 + last,
    policy, pool: parseCidr("172.16.0.0/24")!,
  };
}

describe("batches as text", () => {
  test("a TAP sandbox's egress checks its source, then the closed sets, the deny list, the allow list, then the internet", () => {
    const text = tapSetupBatch(tap(A, 5));
    const rules = text.split("\n").filter((line) => line.startsWith(`add rule inet smolvm egress_${A} `)).map((l) => l.split(` egress_${A} `)[1]);
    expect(rules).toEqual([
      "ip saddr != 172.16.0.5 drop",
      "meta nfproto ipv6 drop",
      `ip daddr @never4_${A} goto refuse_${A}`,
      `ip6 daddr @never6_${A} goto refuse_${A}`,
      `ip daddr @deny4_${A} goto refuse_${A}`,
      `ip6 daddr @deny6_${A} goto refuse_${A}`,
      `ip daddr @allow4_${A} accept`,
      `ip6 daddr @allow6_${A} accept`,
      `ip daddr @learned4_${A} accept`,
      `ip6 daddr @learned6_${A} accept`,
      `ip daddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 } goto refuse_${A}`,
      `ip6 daddr { fc00::/7 } goto refuse_${A}`,
      "accept",
    ]);
    expect(text).toContain(`add element inet smolvm never4_${A} { 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4, 240.0.0.0/4, 172.16.0.0/24 }`);
    expect(text).toContain(`dnat ip to 172.16.0.1:2305`);
  });

  test("without the internet, egress ends in a reject after the allowed sets", () => {
    const text = egressBatch({ id: A, policy: parsePolicy({ allowHosts: ["203.0.113.0/24"] }), never: [] });
    expect(text.trimEnd().split("\n").at(-1)).toBe(`add rule inet smolvm egress_${A} goto refuse_${A}`);
    expect(text).toContain(`add rule inet smolvm refuse_${A} meta l4proto tcp reject with tcp reset`);
    expect(text).toContain(`add element inet smolvm allow4_${A} { 203.0.113.0/24 }`);
  });

  test("ids and interface names that could smuggle nft syntax are refused", () => {
    expect(() => tapSetupBatch({ ...tap(A, 5), ifname: 'x" ; flush ruleset' })).toThrow();
    expect(() => learnBatch("abc; flush ruleset", [parseIp("1.2.3.4")!])).toThrow();
  });
});

const haveTools = spawnSync("sh", ["-c", "command -v nft && command -v unshare && command -v nsenter"]).status === 0;
const userns = haveTools && spawnSync("unshare", ["-Urn", "true"]).status === 0;
if (!userns) console.log("skip: nft loading tests: nft, unshare or user namespaces are not available");

describe.skipIf(!userns)("batches in a real kernel (a namespace of the test's own)", () => {
  const holders: ReturnType<typeof spawn>[] = [];
  afterAll(() => holders.forEach((holder) => holder.kill("SIGKILL")));
  /** A fresh namespace per test: nothing one test loads can hide in another's. */
  const target = async () => {
    const holder = spawn("unshare", ["-Urn", "sleep", "600"], { stdio: "ignore" });
    holders.push(holder);
    const own = spawnSync("readlink", ["/proc/self/ns/net"]).stdout.toString();
    for (;;) {
      const theirs = spawnSync("readlink", [`/proc/${holder.pid}/ns/net`]).stdout.toString();
      if (theirs !== "" && theirs !== own) return { pid: holder.pid! };
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  test("a user-mode namespace's rule set loads, twice, and a policy change rewrites it", async () => {
    const where = await target();
    const spec = { id: A, policy: parsePolicy({}), never: [parseCidr("198.18.0.2")!, parseCidr("2001:db8::2")!] };
    await applyNft(namespaceRuleset(spec), where);
    await applyNft(namespaceRuleset(spec), where);
    let listed = await listSmolvmTable(where);
    expect(listed.match(/jump egress_/g)?.length).toBe(1);
    expect(listed).toContain("198.18.0.2");
    await applyNft(egressBatch({ ...spec, policy: parsePolicy({ allowHosts: ["10.0.0.0/8", "10.1.0.0/16", "a.example"] }) }), where);
    await applyNft(learnBatch(A, [parseIp("203.0.113.9")!, parseIp("2001:db8::9")!]), where);
    await applyNft(learnBatch(A, [parseIp("203.0.113.9")!]), where);
    listed = await listSmolvmTable(where);
    expect(listed).toContain("10.0.0.0/8");
    expect(listed).toContain("203.0.113.9");
    expect(listed).not.toContain("192.168.0.0/16"); // no internet: no private-range rule either
    await applyNft(egressBatch({ ...spec, policy: parsePolicy({}) }, { forgetLearned: true }), where);
    expect(await listSmolvmTable(where)).not.toContain("203.0.113.9");
  });

  test("TAP sandboxes load side by side, and a teardown (run twice) removes one's objects and only those", async () => {
    const where = await target();
    for (const link of [`sm-${A}`, `sm-${B}`]) {
      expect(spawnSync("nsenter", ["-t", String(where.pid), "-U", "-n", "--preserve-credentials", "ip", "tuntap", "add", link, "mode", "tap"]).status).toBe(0);
    }
    await applyNft(tapSetupBatch(tap(A, 5)), where);
    await applyNft(tapSetupBatch(tap(B, 6, parsePolicy({ allowHosts: ["a.example"] }))), where);
    await applyNft(tapSetupBatch(tap(A, 5)), where);
    let listed = await listSmolvmTable(where);
    for (const name of [...objectNamesOf(A), ...objectNamesOf(B)]) expect(listed).toContain(name);
    expect(listed.match(/iifname vmap @sandbox_egress/g)?.length).toBe(1);

    await applyNft(tapTeardownBatch(A, `sm-${A}`), where);
    await applyNft(tapTeardownBatch(A, `sm-${A}`), where);
    listed = await listSmolvmTable(where);
    expect(listed).not.toContain(A);
    for (const name of objectNamesOf(B)) expect(listed).toContain(name);
    await applyNft(tapTeardownBatch(B, `sm-${B}`), where);
    expect(await listSmolvmTable(where)).not.toContain(B);
  });
});
