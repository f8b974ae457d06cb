import { expect, test } from "bun:test";
import { mkdirSync, statSync } from "node:fs";
import { paths } from "../../../lib/paths.ts";
import { ensureHostKey, ensureUserKey, knownHostsName, pinnedKeys, readPinnedKeys, userKeyPath, writeKnownHosts } from "../../../lib/ssh/keys.ts";

test("the user key is made once, 0600, and concurrent first uses agree on it", async () => {
  const all = await Promise.all(Array.from({ length: 8 }, () => ensureUserKey()));
  expect(new Set(all.map((k) => k.publicKey)).size).toBe(1);
  expect(all[0]!.publicKey).toMatch(/^ssh-ed25519 AAAA\S+ /);
  expect(statSync(userKeyPath()).mode & 0o777).toBe(0o600);
  expect((await ensureUserKey()).privateKey).toBe(all[0]!.privateKey);
});

test("host keys are per sandbox and pinned by known_hosts for [127.0.0.1]:port", async () => {
  for (const id of ["vm-a", "vm-b"]) mkdirSync(paths.sandboxDir(id), { recursive: true });
  const a = await ensureHostKey("vm-a", "a");
  const b = await ensureHostKey("vm-b", "b");
  expect(a.publicKey).not.toBe(b.publicKey);
  await writeKnownHosts("vm-a", "127.0.0.1", 2222, a.publicKey);
  const pinned = readPinnedKeys("vm-a", "127.0.0.1", 2222);
  expect(pinned).toHaveLength(1);
  expect(pinned[0]!.toString("base64")).toBe(a.publicKey.split(" ")[1]!);
  expect(readPinnedKeys("vm-a", "127.0.0.1", 2223)).toEqual([]);
  expect(readPinnedKeys("vm-c", "127.0.0.1", 2222)).toEqual([]);
});

test("a host key is never made for a sandbox whose directory is gone", async () => {
  await expect(ensureHostKey("vm-deleted", "gone")).rejects.toThrow();
  expect(() => statSync(paths.sandboxDir("vm-deleted"))).toThrow();
});

test("known_hosts names: bare for port 22, bracketed otherwise; comments and markers ignored", () => {
  expect(knownHostsName("127.0.0.1", 22)).toBe("127.0.0.1");
  expect(knownHostsName("127.0.0.1", 2201)).toBe("[127.0.0.1]:2201");
  const text = "# c\n@revoked [127.0.0.1]:2201 ssh-ed25519 AAAA\nother,[127.0.0.1]:2201 ssh-ed25519 QUJD\n";
  expect(pinnedKeys(text, "127.0.0.1", 2201).map((k) => k.toString())).toEqual(["ABC"]);
});
