/**
 * The Debian image, built for real with mmdebstrap from the host's configured mirror. Cold it
 * takes a few minutes (mostly package download and install); the root filesystem stage and the
 * image are kept in the shared test cache, so later runs take well under a second.
 */
import { describe, expect, test } from "bun:test";
import { ensureImage } from "../../../lib/images/build.ts";
import { AGENT_GUEST_PATH } from "../../../lib/kernel/cmdline.ts";
import { guestList, guestRead, guestStat } from "./_debugfs.ts";

const BUILD_TIMEOUT_MS = 30 * 60 * 1000;

describe("debian image", () => {
  test("is bookworm with the promised tools, the agent as init, and no baked-in SSH host keys", async () => {
    const image = await ensureImage("debian", { arch: "x86_64" });
    expect(image.name).toBe("debian");
    expect(image.sizeMiB).toBeGreaterThanOrEqual(image.usedMiB + 512);

    expect(await guestStat(image.path, AGENT_GUEST_PATH)).toMatchObject({ type: "regular", mode: 0o755, uid: 0 });
    expect(await guestRead(image.path, "/etc/debian_version")).toStartWith("12.");
    for (const tool of ["/usr/bin/bash", "/usr/bin/python3", "/usr/bin/git", "/usr/bin/curl", "/usr/bin/ps", "/usr/bin/ip", "/usr/sbin/sshd"]) {
      expect(await guestStat(image.path, tool)).toBeDefined();
    }
    expect(await guestStat(image.path, "/etc/ssl/certs/ca-certificates.crt")).toBeDefined();
    expect((await guestList(image.path, "/etc/ssh")).filter((n) => n.startsWith("ssh_host_"))).toEqual([]);
    // Ownership comes from the Debian tarball, not from whoever ran the build.
    expect(await guestStat(image.path, "/etc/shadow")).toMatchObject({ uid: 0, gid: 42, mode: 0o640 });
    expect(await guestRead(image.path, "/etc/resolv.conf")).toBe("nameserver 10.0.2.3\n");
    expect(await guestRead(image.path, "/etc/hostname")).toBe("smolvm\n");

    const again = await ensureImage("debian", { arch: "x86_64" });
    expect(again.path).toBe(image.path);
  }, BUILD_TIMEOUT_MS);
});
