import { describe, expect, test } from "bun:test";
import { NotFoundError } from "../../../lib/errors.ts";
import { canonicalJson, getRecipe, knownImages, parseRecipe, recipeHash } from "../../../lib/images/recipes.ts";

const inputs = { arch: "x86_64", agentSha256: "a".repeat(64) };

describe("image recipes", () => {
  test("base and debian are known and valid", () => {
    expect(knownImages()).toEqual(expect.arrayContaining(["base", "debian"]));
    expect(getRecipe("base").rootfs.kind).toBe("busybox");
    const debian = getRecipe("debian");
    expect(debian.rootfs.kind).toBe("mmdebstrap");
    if (debian.rootfs.kind === "mmdebstrap") {
      expect(debian.rootfs.suite).toBe("bookworm");
      expect(debian.rootfs.variant).toBe("minbase");
      expect(debian.rootfs.include).toEqual(expect.arrayContaining([
        "bash", "coreutils", "procps", "iproute2", "ca-certificates", "curl", "git", "python3", "openssh-server",
      ]));
    }
    expect(debian.remove).toContain("/etc/ssh/ssh_host_*");
  });

  test("an unknown name is NotFoundError whose hint lists the known images", () => {
    const error = (() => {
      try {
        getRecipe("ubuntu");
      } catch (e) {
        return e;
      }
    })() as NotFoundError;
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message).toBe('Cannot find image "ubuntu": there is no recipe by that name');
    expect(error.hint).toBe(`known images: ${knownImages().join(", ")}`);
    expect(() => getRecipe("__proto__")).toThrow(NotFoundError);
  });

  test("the hash changes with the recipe, the agent and the arch, not with key order", () => {
    const base = getRecipe("base");
    const hash = recipeHash(base, inputs);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    const reordered = parseRecipe(JSON.parse(canonicalJson(base)));
    expect(recipeHash(reordered, inputs)).toBe(hash);
    expect(recipeHash({ ...base, freeMiB: base.freeMiB + 1 }, inputs)).not.toBe(hash);
    const moreFiles = { ...base, files: [...base.files, { path: "/etc/motd", content: "hi\n" }] };
    expect(recipeHash(moreFiles, inputs)).not.toBe(hash);
    expect(recipeHash(base, { ...inputs, agentSha256: "b".repeat(64) })).not.toBe(hash);
    expect(recipeHash(base, { ...inputs, arch: "aarch64" })).not.toBe(hash);
    expect(recipeHash(base, { ...inputs, extra: { busybox: "c".repeat(64) } })).not.toBe(hash);
  });

  test("a recipe with a relative path or an unknown field is refused", () => {
    const base = getRecipe("base");
    expect(() => parseRecipe({ ...base, files: [{ path: "etc/x", content: "" }] })).toThrow(/absolute guest path/);
    expect(() => parseRecipe({ ...base, files: [{ path: "/etc/../x", content: "" }] })).toThrow(/without \.\./);
    expect(() => parseRecipe({ ...base, colour: "blue" })).toThrow(/"colour" is not a known field/);
  });
});
