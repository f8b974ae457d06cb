import { expect, test } from "bun:test";
import { compareVersions, isVersion } from "../../../lib/distribution/semver.ts";

test("versions order by semver precedence, numerically and with pre-releases before releases", () => {
  const ordered = ["0.1.0", "0.1.1", "0.2.0-alpha", "0.2.0-alpha.1", "0.2.0-alpha.beta", "0.2.0-beta", "0.2.0-beta.2", "0.2.0-beta.11", "0.2.0-rc.1", "0.2.0", "0.10.0", "1.0.0"];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      expect(`${ordered[i]} vs ${ordered[j]}: ${compareVersions(ordered[i]!, ordered[j]!)}`).toBe(`${ordered[i]} vs ${ordered[j]}: ${Math.sign(i - j)}`);
    }
  }
});

test("a leading v and build metadata do not change precedence", () => {
  expect(compareVersions("v1.2.3", "1.2.3")).toBe(0);
  expect(compareVersions("1.2.3+build.5", "1.2.3")).toBe(0);
});

test("only semantic versions are versions", () => {
  for (const good of ["0.1.0", "v10.20.30", "1.0.0-rc.1+sha.abc"]) expect(isVersion(good)).toBe(true);
  for (const bad of ["", "1.2", "1.2.3.4", "01.2.3", "1.2.3-", "latest", "<html>", "1.2.3\nrm -rf /"]) expect(isVersion(bad)).toBe(false);
  expect(() => compareVersions("1.2", "1.2.3")).toThrow('not a semantic version: "1.2"');
});
