/**
 * The kernel source is trusted through dpkg's record of the package it came from. These tests
 * run the real dpkg-query and dpkg --verify against a small dpkg database of their own (a root
 * directory with var/lib/dpkg and the package's file), so any version, a tampered tarball and a
 * missing one are each exercised without touching the host's packages.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotFoundError, SmolError } from "../../../lib/errors.ts";
import { customSource, debianSourcePath, KERNEL_SOURCE_PACKAGE, verifyDebianSource } from "../../../lib/kernel/source.ts";

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A root with `pkg` installed at `version`, owning one tarball whose md5 dpkg records. */
function fakeDpkgRoot(pkg: string, version: string, content = "linux source\n"): string {
  const root = mkdtempSync(join(tmpdir(), "smolvm-dpkg-"));
  roots.push(root);
  const relative = debianSourcePath(pkg).slice(1);
  mkdirSync(join(root, "usr/src"), { recursive: true });
  mkdirSync(join(root, "var/lib/dpkg/info"), { recursive: true });
  writeFileSync(join(root, relative), content);
  writeFileSync(join(root, "var/lib/dpkg/status"), [
    `Package: ${pkg}`, "Status: install ok installed", "Priority: optional", "Section: kernel", "Installed-Size: 1",
    "Maintainer: Test <test@example.org>", "Architecture: all", `Version: ${version}`, "Description: test source", "", "",
  ].join("\n"));
  const md5 = createHash("md5").update(content).digest("hex");
  writeFileSync(join(root, `var/lib/dpkg/info/${pkg}.md5sums`), `${md5}  ${relative}\n`);
  writeFileSync(join(root, `var/lib/dpkg/info/${pkg}.list`), `/.\n/usr\n/usr/src\n/${relative}\n`);
  return root;
}

describe("verifyDebianSource", () => {
  test("accepts whatever version of the package dpkg installed, and names it in the identity", async () => {
    for (const version of ["6.12.117-1~deb12u1", "6.12.200-3"]) {
      const root = fakeDpkgRoot(KERNEL_SOURCE_PACKAGE, version);
      const source = await verifyDebianSource({ root });
      expect(source.id).toBe(`debian:${KERNEL_SOURCE_PACKAGE}=${version}`);
      expect(source.version).toBe(version);
      expect(source.path).toBe(join(root, debianSourcePath()));
      expect(source.description).toContain(version);
    }
  });

  test("refuses a tarball dpkg says was modified, naming the package and the reinstall command", async () => {
    const root = fakeDpkgRoot(KERNEL_SOURCE_PACKAGE, "6.12.117-1~deb12u1");
    appendFileSync(join(root, debianSourcePath()), "one more line\n");
    const error = await verifyDebianSource({ root }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SmolError);
    expect((error as SmolError).code).toBe("INTEGRITY_FAILED");
    expect((error as SmolError).message).toContain(KERNEL_SOURCE_PACKAGE);
    expect((error as SmolError).hint).toBe(`restore it: apt-get install --reinstall -y ${KERNEL_SOURCE_PACKAGE}`);
  });

  test("a missing package gives the exact apt-get line; a deleted tarball the reinstall line", async () => {
    const root = fakeDpkgRoot("linux-source-6.1", "6.1.192-3");
    const missing = await verifyDebianSource({ root }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as SmolError).hint).toContain(`apt-get install -y ${KERNEL_SOURCE_PACKAGE}`);

    const other = fakeDpkgRoot(KERNEL_SOURCE_PACKAGE, "6.12.117-1~deb12u1");
    rmSync(join(other, debianSourcePath()));
    const deleted = await verifyDebianSource({ root: other }).catch((e: unknown) => e);
    expect(deleted).toBeInstanceOf(NotFoundError);
    expect((deleted as SmolError).hint).toContain(`apt-get install --reinstall -y ${KERNEL_SOURCE_PACKAGE}`);
  });
});

describe("customSource", () => {
  test("identifies a tarball named by path by its SHA-256, and refuses a missing one", async () => {
    const root = mkdtempSync(join(tmpdir(), "smolvm-src-"));
    roots.push(root);
    const file = join(root, "linux.tar.xz");
    writeFileSync(file, "abc");
    const source = await customSource(file);
    expect(source.id).toBe(`sha256:${createHash("sha256").update("abc").digest("hex")}`);
    expect(await customSource(join(root, "absent.tar.xz")).catch((e: unknown) => e)).toBeInstanceOf(NotFoundError);
  });
});
