/**
 * A restored sandbox's SSH host key is its own (the `debian` image, which has sshd): two
 * sandboxes from one snapshot of a sandbox whose sshd already ran each serve a new key, pinned
 * for them, which both smolvm's SSH channel and the system OpenSSH client (strict host key
 * checking) accept, and neither is the original's.
 */
import { beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { ensureImage } from "../../lib/images/build.ts";
import { SmolVM } from "../../lib/smolvm.ts";
import { knownHostsPath } from "../../lib/ssh/keys.ts";
import { cleanupAfterAll, prepareArtifacts } from "../helpers/vm.ts";

setDefaultTimeout(240_000);

beforeAll(async () => {
  await prepareArtifacts();
  await ensureImage("debian");
}, 30 * 60_000);
cleanupAfterAll();

/** The key blob (no comment) pinned for a sandbox, and the one its sshd serves over SSH. */
async function hostKeys(name: string): Promise<{ pinned: string; served: string; hostname: string }> {
  const vm = await SmolVM.fromId(name, { commChannel: "ssh" });
  try {
    // Over the SSH channel: it connects only to a server with the pinned key.
    const result = await vm.commands.run("cat /etc/ssh/ssh_host_ed25519_key.pub; hostname");
    expect(result.exitCode).toBe(0);
    const [served, hostname] = result.stdout.trim().split("\n");
    const pinned = readFileSync(knownHostsPath(vm.id), "utf8").trim().split(/\s+/).slice(1, 3).join(" ");
    return { pinned, served: served!.split(/\s+/).slice(0, 2).join(" "), hostname: hostname! };
  } finally {
    vm.close();
  }
}

test("two sandboxes from one snapshot each serve an SSH host key of their own, pinned, and not the original's", async () => {
  const source = await SmolVM.create({ name: "keyed", image: "debian", warm: false, commChannel: "ssh" });
  const original = await hostKeys("keyed");
  expect(original.served).toBe(original.pinned);
  await source.snapshot({ name: "keyed-snap" });
  const copies = [await SmolVM.create({ fromSnapshot: "keyed-snap", name: "keyed-a" }), await SmolVM.create({ fromSnapshot: "keyed-snap", name: "keyed-b" })];
  const [a, b] = [await hostKeys("keyed-a"), await hostKeys("keyed-b")];
  for (const [copy, name] of [[a, "keyed-a"], [b, "keyed-b"]] as const) {
    expect(copy.hostname).toBe(name);
    expect(copy.served).toBe(copy.pinned);
    expect(copy.served).not.toBe(original.served);
  }
  expect(a.served).not.toBe(b.served);
  // The system OpenSSH client, with StrictHostKeyChecking=yes against the sandbox's known_hosts.
  const { argv } = await copies[0]!.sshCommand(["hostname"]);
  const ssh = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 60_000 });
  expect(ssh.stderr).not.toContain("REMOTE HOST IDENTIFICATION HAS CHANGED");
  expect(ssh.stdout.trim()).toBe("keyed-a");
  for (const vm of [source, ...copies]) vm.close();
});
