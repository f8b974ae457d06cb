import { describe, expect, test } from "bun:test";
import { SmolError } from "../../../lib/errors.ts";
import {
  describePolicy, judgeName, parseAllowEntry, parseHostEntry, parsePolicy, policyLists, updatePolicy,
} from "../../../lib/network/policy.ts";

function errorOf(body: () => unknown): SmolError {
  try {
    body();
  } catch (error) {
    return error as SmolError;
  }
  throw new Error("expected an error");
}

describe("parseHostEntry", () => {
  test("reads names, wildcards, addresses, ranges and the internet", () => {
    expect(parseHostEntry("Example.COM.")).toEqual({ kind: "name", name: "example.com", wildcard: false });
    expect(parseHostEntry("*.npmjs.org")).toEqual({ kind: "name", name: "npmjs.org", wildcard: true });
    expect(parseHostEntry("_acme.example.com").kind).toBe("name");
    expect(parseHostEntry("10.1.2.3/16")).toMatchObject({ kind: "cidr", cidr: { prefix: 16 } });
    expect(parseHostEntry("2001:db8::1").kind).toBe("cidr");
    expect(parseHostEntry("internet")).toEqual({ kind: "internet" });
  });

  test("refuses malformed hosts and ranges with an INVALID_INPUT error that says what is accepted", () => {
    for (const text of ["10.0.0.0/33", "10.0.0.256", "exa mple.com", "-bad.com", "a..b", "", "*.", "localhost", "x/y", "1.2.3", "*.*.com"]) {
      const error = errorOf(() => parseHostEntry(text));
      expect(error.code).toBe("INVALID_INPUT");
      expect(error.message).toContain(`"${text}"`);
      expect(error.hint).toContain("CIDR");
    }
  });

  test("an allow entry may not open loopback, link-local, metadata or multicast", () => {
    for (const text of ["127.0.0.1", "169.254.169.254", "169.254.0.0/16", "0.0.0.0/0", "::1", "fe80::/10", "224.0.0.0/4"]) {
      const error = errorOf(() => parseAllowEntry(text));
      expect(error.code).toBe("INVALID_INPUT");
      expect(error.message).toContain("never reaches");
    }
    expect(parseAllowEntry("10.0.0.0/8").kind).toBe("cidr");
  });
});

describe("policies", () => {
  test("the default is the internet, and lists round-trip in canonical form", () => {
    const policy = parsePolicy({});
    expect(policyLists(policy)).toEqual({ allowHosts: ["internet"], denyHosts: [] });
    expect(policyLists(parsePolicy({ allowHosts: ["A.example.com", "a.example.com", "10.1.2.3/8"] })).allowHosts)
      .toEqual(["a.example.com", "10.0.0.0/8"]);
  });

  test("the internet resolves every name not denied; named hosts are learned; a list without it refuses the rest", () => {
    const open = parsePolicy({ denyHosts: ["*.evil.example"] });
    expect(judgeName(open, "example.org")).toBe("resolve");
    expect(judgeName(open, "x.evil.example")).toBe("refuse");
    expect(judgeName(open, "evil.example")).toBe("resolve");
    const closed = parsePolicy({ allowHosts: ["api.github.com", "*.npmjs.org"] });
    expect(judgeName(closed, "API.github.com.")).toBe("learn");
    expect(judgeName(closed, "registry.npmjs.org")).toBe("learn");
    expect(judgeName(closed, "npmjs.org")).toBe("refuse");
    expect(judgeName(closed, "github.com")).toBe("refuse");
    const both = parsePolicy({ allowHosts: ["internet", "corp.internal"] });
    expect(judgeName(both, "corp.internal")).toBe("learn");
    expect(judgeName(both, "example.org")).toBe("resolve");
  });

  test("allow and deny move an entry between the lists; the last word wins", () => {
    let policy = parsePolicy({ allowHosts: ["a.example"] });
    policy = updatePolicy(policy, { allow: ["b.example", "10.9.0.0/16"] });
    expect(policyLists(policy)).toEqual({ allowHosts: ["a.example", "b.example", "10.9.0.0/16"], denyHosts: [] });
    policy = updatePolicy(policy, { deny: ["a.example"] });
    expect(policyLists(policy)).toEqual({ allowHosts: ["b.example", "10.9.0.0/16"], denyHosts: ["a.example"] });
    expect(judgeName(policy, "a.example")).toBe("refuse");
    policy = updatePolicy(policy, { allow: ["a.example"] });
    expect(policyLists(policy).denyHosts).toEqual([]);
    expect(judgeName(policy, "a.example")).toBe("learn");
  });

  test("denying the internet closes it without putting it on the deny list; an emptied allow list stays closed", () => {
    let policy = updatePolicy(parsePolicy({}), { deny: ["internet"] });
    expect(policyLists(policy)).toEqual({ allowHosts: [], denyHosts: [] });
    expect(judgeName(policy, "example.org")).toBe("refuse");
    expect(describePolicy(policy)).toBe("nothing");
    policy = updatePolicy(policy, { allow: ["internet"], deny: ["evil.example"] });
    expect(describePolicy(policy)).toBe("internet; deny: evil.example");
  });

  test("an update with a bad entry throws and changes nothing", () => {
    const policy = parsePolicy({});
    expect(errorOf(() => updatePolicy(policy, { allow: ["ok.example", "169.254.169.254"] })).code).toBe("INVALID_INPUT");
    expect(policyLists(policy).allowHosts).toEqual(["internet"]);
  });
});
