import { expect, test } from "bun:test";
import { DEFAULT_RELEASES_URL } from "../../../lib/distribution/release-url.ts";
import { upgradeCommand } from "../../../lib/distribution/upgrade.ts";

const base = DEFAULT_RELEASES_URL;

test("the upgrade command follows how smolvm was installed", () => {
  expect(upgradeCommand({ target: "source", execPath: "/usr/bin/bun", baseUrl: base })).toStartWith("git pull");
  expect(upgradeCommand({ target: "darwin-arm64", execPath: "/opt/homebrew/Cellar/smolvm/0.1.0/bin/smolvm", baseUrl: base })).toBe("brew upgrade smolvm");
  expect(upgradeCommand({ target: "linux-x64", execPath: "/home/linuxbrew/.linuxbrew/bin/smolvm", baseUrl: base })).toBe("brew upgrade smolvm");
  expect(upgradeCommand({ target: "linux-x64", execPath: "/home/u/.local/bin/smolvm", baseUrl: base, home: "/home/u" }))
    .toBe(`curl -fsSL ${base}/latest/download/install.sh | sh`);
});

test("a binary outside ~/.local/bin or from a mirror upgrades in place, from the same mirror", () => {
  expect(upgradeCommand({ target: "linux-x64", execPath: "/usr/local/bin/smolvm", baseUrl: "http://mirror/r", home: "/home/u" }))
    .toBe("curl -fsSL http://mirror/r/latest/download/install.sh | SMOLVM_INSTALL_URL=http://mirror/r sh -s -- --prefix /usr/local/bin");
});
