import { expect, test } from "bun:test";
import { binaryAssetName, DEFAULT_RELEASES_URL, PROJECT_REPOSITORY, releaseAssetUrl, releasesUrl } from "../../../lib/distribution/release-url.ts";

test("the default base is the project's GitHub releases; SMOLVM_INSTALL_URL overrides it", () => {
  expect(releasesUrl({})).toBe(`https://github.com/${PROJECT_REPOSITORY}/releases`);
  expect(releasesUrl({ SMOLVM_INSTALL_URL: "" })).toBe(DEFAULT_RELEASES_URL);
  expect(releasesUrl({ SMOLVM_INSTALL_URL: "http://127.0.0.1:8080/mirror/" })).toBe("http://127.0.0.1:8080/mirror");
});

test("a SMOLVM_INSTALL_URL that is not an http(s) URL is refused with a hint", () => {
  expect(() => releasesUrl({ SMOLVM_INSTALL_URL: "not a url" })).toThrow('Cannot use SMOLVM_INSTALL_URL "not a url": not a URL');
  expect(() => releasesUrl({ SMOLVM_INSTALL_URL: "file:///etc" })).toThrow("only http and https");
});

test("asset URLs follow GitHub's release download layout", () => {
  expect(releaseAssetUrl("https://x/releases", "latest", "SHA256SUMS")).toBe("https://x/releases/latest/download/SHA256SUMS");
  expect(releaseAssetUrl("https://x/releases", "0.2.0", binaryAssetName("darwin-arm64"))).toBe("https://x/releases/download/v0.2.0/smolvm-darwin-arm64");
  expect(releaseAssetUrl("https://x/releases", "v0.2.0", "VERSION")).toBe("https://x/releases/download/v0.2.0/VERSION");
});
