/**
 * The snapshot store without a VM: names, the manifest as checked input, staging and publishing
 * (a half-written snapshot is never listed, a name is taken once), removal, what `cleanup`
 * reclaims, checksums, and the template-fit rule.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseSandboxConfig } from "../../../lib/config.ts";
import { paths } from "../../../lib/paths.ts";
import { compressFile, sameStamp, sha256File, stampOf } from "../../../lib/snapshots/_files.ts";
import { templateFits } from "../../../lib/snapshots/compat.ts";
import { manifestSchema, readManifest, writeManifest, type SnapshotManifest } from "../../../lib/snapshots/manifest.ts";
import { manifestOf } from "../../helpers/snapshot-manifest.ts";
import { verifySnapshot } from "../../../lib/snapshots/restore.ts";
import { defaultSnapshotName } from "../../../lib/snapshots/save.ts";
import { templateDir, warmFromEnv } from "../../../lib/snapshots/warm.ts";
import { findSnapshot, listStored, makeStaging, parseSnapshotName, publish, removeSnapshot, strayStaging } from "../../../lib/snapshots/store.ts";


const BASE = { image: "base", kernelPath: "/k/vmlinux", rootfsPath: "/i/rootfs.ext4" };

function manifest(name: string, overrides: Partial<SnapshotManifest> = {}): SnapshotManifest {
  return manifestOf(BASE, { name, ...overrides });
}

/** A published snapshot with one real state file. */
async function stored(name: string): Promise<string> {
  const staging = makeStaging(paths.snapshotsDir(), name);
  writeFileSync(join(staging, "vmstate"), "machine state ".repeat(1000));
  const file = await compressFile(join(staging, "vmstate"), join(staging, "vmstate.zst"));
  await writeManifest(staging, manifest(name, { files: [{ role: "state", file: "vmstate.zst", encoding: "zstd", ...file }] }));
  await publish(staging, join(paths.snapshotsDir(), name));
  return join(paths.snapshotsDir(), name);
}

describe("names", () => {
  test("a snapshot name follows the sandbox-name rule; no path ever gets through", () => {
    for (const good of ["dev", "before-upgrade", "a1"]) expect(parseSnapshotName(good)).toBe(good);
    for (const bad of ["", "-x", "x-", "Dev", "a/b", "..", "../etc", "a.b", "x".repeat(64), 7]) {
      expect(() => parseSnapshotName(bad)).toThrow(/Invalid snapshot name/);
    }
  });

  test("the default name is the sandbox and the UTC time, kept within 63 characters", () => {
    expect(defaultSnapshotName("dev", new Date("2026-12-02T03:15:02.123Z"))).toBe("dev-20261202-031502");
    const long = defaultSnapshotName("x".repeat(63), new Date("2026-12-02T03:15:02Z"));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(parseSnapshotName(long)).toBe(long);
  });
});

describe("the manifest is checked input", () => {
  test("a manifest round-trips; another format, a file name with a path, or an unknown role is refused", async () => {
    const dir = join(paths.snapshotsDir(), "checked");
    mkdirSync(dir, { recursive: true });
    await writeManifest(dir, manifest("checked"));
    expect(readManifest(dir).name).toBe("checked");
    for (const bad of [
      { ...manifest("checked"), format: 2 },
      manifest("checked", { files: [{ role: "state", file: "../../etc/passwd", encoding: "zstd", bytes: 1, sha256: "c".repeat(64) }] }),
      manifest("checked", { files: [{ role: "kernel" as never, file: "k", encoding: "zstd", bytes: 1, sha256: "c".repeat(64) }] }),
      manifest("checked", { files: [] }),
    ]) {
      writeFileSync(join(dir, "manifest.json"), JSON.stringify(bad));
      expect(() => readManifest(dir)).toThrow(/Invalid snapshot manifest/);
    }
    writeFileSync(join(dir, "manifest.json"), "{ not json");
    expect(() => readManifest(dir)).toThrow(/Invalid snapshot manifest/);
    expect(manifestSchema.safeParse(manifest("x", { config: { ...manifest("x").config, env: { SECRET: "1" } } as never })).success).toBe(false);
  });
});

describe("staging and publishing", () => {
  test("a staged snapshot is listed only once published, and a name is taken once", async () => {
    const staging = makeStaging(paths.snapshotsDir(), "once");
    expect(listStored().map((s) => s.manifest.name)).not.toContain("once");
    await writeManifest(staging, manifest("once"));
    await publish(staging, join(paths.snapshotsDir(), "once"));
    expect(listStored().map((s) => s.manifest.name)).toContain("once");
    const second = makeStaging(paths.snapshotsDir(), "once");
    await writeManifest(second, manifest("once"));
    await expect(publish(second, join(paths.snapshotsDir(), "once"))).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
    expect(existsSync(second)).toBe(true); // the caller removes its staging
    await publish(second, join(paths.snapshotsDir(), "once"), { replace: true });
    expect(readdirSync(paths.snapshotsDir()).filter((n) => n === "once" || n.startsWith(".removing"))).toEqual(["once"]);
  });

  test("an unreadable snapshot is left out of the list, and removed all the same", async () => {
    mkdirSync(join(paths.snapshotsDir(), "broken"), { recursive: true });
    expect(listStored().map((s) => s.manifest.name)).not.toContain("broken");
    expect((await removeSnapshot("broken")).name).toBe("broken");
    expect(existsSync(join(paths.snapshotsDir(), "broken"))).toBe(false);
    await expect(removeSnapshot("broken")).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(() => findSnapshot("never-made")).toThrow(/Cannot find snapshot "never-made"/);
  });

  test("cleanup reclaims the staging of a process that is gone, never of one that runs", () => {
    const live = makeStaging(paths.snapshotsDir(), "mine");
    const dead = join(paths.snapshotsDir(), ".partial-theirs-999999999-abcdef");
    const halfRemoved = join(paths.warmDir(), ".removing-999999999-abcdef");
    for (const dir of [dead, halfRemoved]) mkdirSync(dir, { recursive: true });
    expect(strayStaging({ dryRun: true }).sort()).toEqual([dead, halfRemoved].sort());
    expect(existsSync(dead)).toBe(true);
    expect(strayStaging().sort()).toEqual([dead, halfRemoved].sort());
    expect(existsSync(dead) || existsSync(halfRemoved)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });
});

describe("files", () => {
  test("a stored state file is plain zstd that the zstd tool (which a QEMU restore reads through) decompresses", async () => {
    const dir = await stored("readable");
    const state = readManifest(dir).files[0]!;
    const out = spawnSync("zstd", ["-dcq", join(dir, state.file)]);
    expect(out.status).toBe(0);
    expect(out.stdout.toString()).toBe("machine state ".repeat(1000));
    expect(await sha256File(join(dir, state.file))).toEqual({ bytes: state.bytes, sha256: state.sha256 });
  });

  test("verify refuses a truncated or altered file, naming it", async () => {
    const dir = await stored("checksummed");
    await verifySnapshot(findSnapshot("checksummed"));
    const file = join(dir, "vmstate.zst");
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 1));
    await expect(verifySnapshot(findSnapshot("checksummed"))).rejects.toMatchObject({ code: "INTEGRITY_FAILED", message: expect.stringContaining('its state file "vmstate.zst" does not match its checksum') });
    bytes[3] ^= 1;
    writeFileSync(file, bytes);
    await expect(verifySnapshot(findSnapshot("checksummed"))).rejects.toMatchObject({ code: "INTEGRITY_FAILED" });
  });

  test("a stamp holds until the file is rewritten or removed", () => {
    const file = join(paths.snapshotsDir(), "stamped");
    mkdirSync(paths.snapshotsDir(), { recursive: true });
    writeFileSync(file, "one");
    const stamp = stampOf(file);
    expect(sameStamp(stamp)).toBe(true);
    writeFileSync(file, "three");
    expect(sameStamp(stamp)).toBe(false);
    expect(sameStamp({ ...stamp, path: `${file}-gone` })).toBe(false);
  });
});

describe("SMOLVM_WARM", () => {
  test("1 or true asks for warm creates (and templates made on first use), 0 or false for boots, anything else leaves it to the templates there are", () => {
    expect([warmFromEnv({ SMOLVM_WARM: "1" }), warmFromEnv({ SMOLVM_WARM: "true" })]).toEqual([true, true]);
    expect([warmFromEnv({ SMOLVM_WARM: "0" }), warmFromEnv({ SMOLVM_WARM: "false" })]).toEqual([false, false]);
    expect([warmFromEnv({}), warmFromEnv({ SMOLVM_WARM: "" }), warmFromEnv({ SMOLVM_WARM: "yes please" })]).toEqual([undefined, undefined, undefined]);
  });

  test("a template is found by image name only; a name that could be a path is refused", () => {
    expect(templateDir("debian")).toBe(join(paths.warmDir(), "debian"));
    for (const bad of ["../etc", "a/b", "", ".hidden"]) expect(() => templateDir(bad)).toThrow(/Invalid image name/);
  });
});

describe("a warm template fits a create", () => {
  const template = manifest("base", { kind: "template" });
  const asked = parseSandboxConfig({ ...BASE, name: "any", env: { A: "1" } });

  test("of the same kernel, image and shape, whatever its name and env", () => {
    expect(templateFits(template, asked, "qemu")).toBe(true);
  });

  test("not of another memory size, vCPU count, kernel, image, disk size, network or boot arguments, nor on another backend; and never a plain snapshot", () => {
    for (const change of [{ memoryMiB: 1024 }, { vcpus: 2 }, { kernelPath: "/k2/vmlinux" }, { rootfsPath: "/i2/rootfs.ext4" }, { diskSizeMiB: 4096 }, { network: "none" as const }, { bootArgs: "quiet" }]) {
      expect(templateFits(template, { ...asked, ...change }, "qemu")).toBe(false);
    }
    expect(templateFits(template, asked, "firecracker")).toBe(false);
    expect(templateFits({ ...template, kind: "snapshot" }, asked, "qemu")).toBe(false);
  });
});
